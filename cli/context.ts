import { InvalidArgumentError, type Command } from 'commander';
import { createOutput, type Output } from './output.js';
import { DEFAULT_URL, openSource, type Source } from './source.js';

/** Options every command takes (on the program): where the Coordinator is, and as whom. */
export interface GlobalOptions {
  url?: string;
  token?: string;
  database?: boolean;
}

/**
 * Opens the command's source, says which it is (on stderr), runs `run` and closes it. `access`:
 * whether the command only reads (then the database may stand in for a Coordinator that is down).
 */
export async function withSource(
  command: Command,
  access: 'read' | 'write',
  run: (source: Source, output: Output) => Promise<void>,
): Promise<void> {
  const options = command.optsWithGlobals<GlobalOptions & { json?: boolean }>();
  const output = createOutput(options.json ?? false);
  const source = await openSource(
    {
      url: options.url ?? process.env.CC_URL ?? DEFAULT_URL,
      token: options.token ?? (process.env.CC_TOKEN || undefined),
      database: options.database ?? false,
    },
    access,
  );
  output.note(source.description);
  try {
    await run(source, output);
  } finally {
    await source.close();
  }
}

/** A whole number within bounds, for options such as `--limit`. */
export const integer =
  (min: number, max: number) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };

/** An ISO 8601 time, checked here so a typo is a usage error, not a round trip. */
export const isoTime = (value: string): string => {
  if (Number.isNaN(new Date(value).getTime()))
    throw new InvalidArgumentError('expected an ISO 8601 time, e.g. 2026-12-01T00:00:00Z');
  return value;
};

/** A reason operators must give: not blank. */
export const reason = (value: string): string => {
  if (!value.trim()) throw new InvalidArgumentError('say why: the reason is recorded with the action');
  return value;
};
