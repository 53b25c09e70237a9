import { Command } from 'commander';
import { usageError } from '../errors.js';
import { createOutput, print } from '../output.js';

export function migrateCommand(): Command {
  return new Command('migrate')
    .description(
      'Apply the pending migrations of prisma/migrations to DATABASE_URL (the Coordinator also does at start-up)',
    )
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const url = process.env.DATABASE_URL;
      if (!url) throw usageError('migrate needs DATABASE_URL: the PostgreSQL database to migrate');
      const output = createOutput(options.json ?? false);
      const { applyMigrations, redactUrl } = await import('../../prisma/migrate.js');
      output.note(`migrating the database at ${redactUrl(url)}`);
      const applied = await applyMigrations(url);
      print(output, { applied }, () =>
        applied.length
          ? `Applied ${applied.join(', ')}.`
          : 'No pending migrations: the database is up to date.',
      );
    });
}
