import { ConfigError } from '../errors.js';
import type { Env, Plugin } from '@commerce-coordinator/plugin-sdk';

/**
 * Every problem of the Plugins' settings in `env`, each naming its Plugin and variable: what each
 * Plugin's declared readers (`definePlugin({ config })`) find. The Coordinator refuses to start in
 * production on any; `cc config check` prints the same.
 */
export function pluginConfigProblems(plugins: readonly Plugin[], env: Env): string[] {
  const problems: string[] = [];
  for (const plugin of plugins)
    for (const read of plugin.config ?? []) {
      try {
        read(env);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        for (const problem of error.problems) {
          const named = `${plugin.name} plugin: ${problem}`;
          if (!problems.includes(named)) problems.push(named);
        }
      }
    }
  return problems;
}

/** Throws one ConfigError listing every problem of the Plugins' settings (see pluginConfigProblems). */
export function validatePluginConfig(plugins: readonly Plugin[], env: Env): void {
  const problems = pluginConfigProblems(plugins, env);
  if (problems.length) throw new ConfigError('environment', problems);
}
