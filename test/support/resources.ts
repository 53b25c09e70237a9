/**
 * Probes for what a process left open, seen from outside it: a listening port, PostgreSQL sessions,
 * Redis connections. Tests use them to check that a failed start or a stop closes everything.
 */
import { connect } from 'node:net';
import pg from 'pg';
import { machinePostgresUrl } from './database.js';
import { adminRedis } from './redis.js';

/** Resolves with the error code of a TCP connect to 127.0.0.1:port (`ECONNREFUSED` when nothing listens), or 'connected'. */
export function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** The sessions other than this probe's own that are connected to `database` on the machine's PostgreSQL. */
export async function databaseSessions(database: string): Promise<number> {
  const client = new pg.Client({ connectionString: machinePostgresUrl() });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rows } = await client.query<{ n: number }>(
      'select count(*)::int as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
      [database],
    );
    return rows[0]!.n;
  } finally {
    await client.end();
  }
}

/** Whether `database` holds the migration runner's table, i.e. someone opened it through `openDatabase`. */
export async function isMigrated(databaseUrl: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: databaseUrl });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rows } = await client.query<{ t: string | null }>(
      `select to_regclass('public._prisma_migrations')::text as t`,
    );
    return rows[0]!.t !== null;
  } finally {
    await client.end();
  }
}

/**
 * The Redis server's client connections other than this probe's own, and how many connections it has
 * accepted since it started (to tell "closed" from "never opened").
 */
export async function redisConnections(url: string): Promise<{ open: number; accepted: number }> {
  const admin = await adminRedis(url);
  try {
    const list = await admin.call<string>('CLIENT', 'LIST');
    const info = await admin.call<string>('INFO', 'stats');
    const accepted = Number(/total_connections_received:(\d+)/.exec(info)?.[1] ?? NaN);
    // This probe is one of the listed clients and one of the accepted connections.
    return { open: list.trim().split('\n').length - 1, accepted: accepted - 1 };
  } finally {
    await admin.close();
  }
}
