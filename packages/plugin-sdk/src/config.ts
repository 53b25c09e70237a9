import type { z } from 'zod';
import { ConfigError } from './errors.js';

/** The environment a Plugin reads its settings from (`process.env` unless a test passes its own). */
export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads a Plugin's settings from the environment with a zod schema. A Plugin calls it when it first
 * needs a setting, not at import: the Coordinator starts without a Service configured, and only what
 * needs a missing variable fails — with a ConfigError naming each variable and what to set it to.
 */
export function readPluginEnv<T extends z.ZodType>(
  plugin: string,
  schema: T,
  env: Env,
  hints: Readonly<Record<string, string>> = {},
): z.infer<T> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    `environment (${plugin} plugin)`,
    parsed.error.issues.map((issue) => {
      const name = issue.path.join('.');
      const hint = hints[name] ? `: set it to ${hints[name]}` : '';
      const value = env[String(issue.path[0])];
      return value === undefined || value === ''
        ? `${name} is not set${hint}`
        : `${name} is invalid (${issue.message})${hint}`;
    }),
  );
}
