/** Exit codes: what a script calling the CLI can rely on. */
export const ExitCode = { OK: 0, FAILURE: 1, USAGE: 2 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A failure to report in one line and exit with (1 unless said otherwise); `code`: the Coordinator's. */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly code?: string;
  readonly exitCode: ExitCode;
  constructor(message: string, options: { code?: string; exitCode?: ExitCode } = {}) {
    super(message);
    this.code = options.code;
    this.exitCode = options.exitCode ?? ExitCode.FAILURE;
  }
}

/** Arguments that do not make a command: exit 2, as commander's own usage errors. */
export const usageError = (message: string) => new CliError(message, { exitCode: ExitCode.USAGE });
