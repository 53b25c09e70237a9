// The operator CLI: `npm run cc -- <command>` (or `commerce-coordinator <command>` once installed).
// It talks to a running Coordinator over GraphQL with a staff or Service token, or reads its database
// directly when it is down; `--help` on every command says what it does.
import { Command, CommanderError } from 'commander';
import { deadLettersCommand } from './commands/dead-letters.js';
import { configCommand } from './commands/config.js';
import { flowsCommand } from './commands/flows.js';
import { migrateCommand } from './commands/migrate.js';
import { signalsCommand } from './commands/signals.js';
import { CliError, ExitCode } from './errors.js';
import { DEFAULT_URL } from './source.js';

process.env.APOLLO_TELEMETRY_DISABLED ??= '1';

export function program(): Command {
  const cc = new Command('commerce-coordinator')
    .description('Operate the Commerce Coordinator: inspect, retry and cancel flows, replay signals')
    // Usage errors exit 2, not commander's 1: see run().
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .option('--url <url>', `the Coordinator (default: CC_URL, else ${DEFAULT_URL})`)
    .option('--token <jwt>', 'a staff or Service token (default: CC_TOKEN)')
    .option('--database', 'read the database at DATABASE_URL directly, not the Coordinator')
    .addHelpText(
      'after',
      `
Reads use the Coordinator when it answers, else the database at DATABASE_URL (saying so on stderr).
Exit codes: 0 success, 1 failure, 2 usage.`,
    );
  for (const command of [
    flowsCommand(),
    signalsCommand(),
    deadLettersCommand(),
    configCommand(),
    migrateCommand(),
  ])
    cc.addCommand(command);
  // Settings given on the program reach commands added with addCommand only through this.
  const inherit = (command: Command) => {
    command.exitOverride().showHelpAfterError('(add --help for usage)');
    command.commands.forEach(inherit);
  };
  cc.commands.forEach(inherit);
  return cc;
}

/** Runs the CLI on `argv` (without node and the script) and resolves with its exit code. */
export async function run(argv: readonly string[]): Promise<ExitCode> {
  try {
    await program().parseAsync([...argv], { from: 'user' });
    return ExitCode.OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version are not errors; a group run without a command shows its help as one.
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return ExitCode.OK;
      return ExitCode.USAGE;
    }
    if (error instanceof CliError) {
      process.stderr.write(`error: ${error.message}\n`);
      return error.exitCode;
    }
    const { ConfigError } = await import('../gateway/errors.js');
    if (error instanceof ConfigError) {
      process.stderr.write(`Configuration error in ${error.message}\n`);
      return ExitCode.FAILURE;
    }
    process.stderr.write(
      `error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return ExitCode.FAILURE;
  }
}

process.exitCode = await run(process.argv.slice(2));
// Everything a command opened is closed by now; should a client library keep a handle, do not hang.
setTimeout(() => process.exit(), 2_000).unref();
