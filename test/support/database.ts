import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { applyMigrations } from '../../prisma/migrate.js';

/** The PostgreSQL server the machines run for tests; `TEST_DATABASE_URL` overrides it. */
export function machinePostgresUrl(): string {
  return process.env.TEST_DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/postgres';
}

/**
 * Resolves with `url` when a PostgreSQL answers there, and fails the run otherwise: a suite that needs
 * PostgreSQL must never pass by skipping itself.
 */
export async function requirePostgres(url: string = machinePostgresUrl()): Promise<string> {
  await withServer(url, (client) => client.query('select 1'));
  return url;
}

export interface TestDatabase {
  /** URL of the new database, on the same server as `machinePostgresUrl()`. */
  readonly url: string;
  /** The database's name, `cc_<label>_<random>`. */
  readonly name: string;
  /** Drops the database, even with connections still open to it. */
  drop(): Promise<void>;
}

export interface TestDatabaseOptions {
  /**
   * Apply the migrations before returning. Off for tests of the migration runner itself.
   * @default true
   */
  migrate?: boolean;
}

/**
 * A fresh, migrated database of its own for one test file or test: `cc_<label>_<random>`, readable so
 * leftovers can be traced, suffixed so parallel runs never share one. Fails the run (never skips it)
 * when PostgreSQL is not reachable.
 */
export async function createTestDatabase(
  label: string,
  options: TestDatabaseOptions = {},
): Promise<TestDatabase> {
  const serverUrl = machinePostgresUrl();
  const name = testDatabaseName(label);
  await withServer(serverUrl, (client) => client.query(`create database ${client.escapeIdentifier(name)}`));
  const url = databaseUrl(serverUrl, name);
  const drop = () =>
    withServer(serverUrl, async (client) => {
      await client.query(`drop database if exists ${client.escapeIdentifier(name)} with (force)`);
    });
  if (options.migrate ?? true) {
    try {
      await applyMigrations(url);
    } catch (error) {
      await drop().catch(() => undefined);
      throw error;
    }
  }
  return { url, name, drop };
}

/** PostgreSQL identifiers stop at 63 bytes; keep the random suffix whole. */
function testDatabaseName(label: string): string {
  const slug = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_|_$/g, '')
    .slice(0, 40);
  return `cc_${slug || 'test'}_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
}

function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.href;
}

async function withServer<T>(serverUrl: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at ${serverUrl} (${error instanceof Error ? error.message : String(error)}). ` +
        'These tests need a real PostgreSQL: start it: ' +
        'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start ' +
        '(or point TEST_DATABASE_URL at one).',
    );
  }
  try {
    return await run(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
