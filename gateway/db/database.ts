// The Coordinator's database: the PostgreSQL at DATABASE_URL, or one the gateway starts itself (the
// embedded default), migrated before anything uses it.
import { resolve } from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { applyMigrations, redactUrl } from '../../prisma/migrate.js';
import type { Logger } from '../log.js';
import { PrismaClient } from './generated/client.js';

export interface Database {
  prisma: PrismaClient;
  /** The connection pool under Prisma's adapter, for the few statements that run prepared. */
  pool: pg.Pool;
  /** The connection URL in use; for the embedded server it includes the generated password. */
  url: string;
  /** True when this process started the PostgreSQL server (and `close()` stops it). */
  embedded: boolean;
  /** Whether the database answers a trivial query within a short time (for /readyz). Never throws. */
  ready(): Promise<boolean>;
  /** Disconnects, and stops the embedded server if there is one. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * How long a database call may wait, so that a database which accepts connections but never answers
 * (a hung server, a network that drops every packet) fails calls as an outage, SERVICE_UNAVAILABLE,
 * instead of holding them, and the pool's connections, for as long as a socket lives. Migrations run
 * on a connection of their own (prisma/migrate.ts) and are not bounded by these.
 */
export interface DatabaseTimeouts {
  /**
   * Bound of opening a connection, and of waiting for a free one when the pool's are all in use
   * (DATABASE_CONNECT_TIMEOUT_MS). @default 5000
   */
  connectTimeoutMs?: number;
  /**
   * Bound of one statement (DATABASE_QUERY_TIMEOUT_MS): the server cancels a statement that runs
   * longer (`statement_timeout`: rolled back, the connection still usable), and a server that has not
   * answered `QUERY_TIMEOUT_GRACE_MS` after that is given up on: the connection is closed, so what it
   * had open is rolled back and it is never handed out again. @default 30000
   */
  queryTimeoutMs?: number;
}

export interface OpenDatabaseOptions extends DatabaseTimeouts {
  /** A PostgreSQL URL (DATABASE_URL). Without one, an embedded server is started. */
  url?: string;
  /** Where the embedded server keeps its data; unused with `url`. Relative paths resolve from the cwd. */
  dataDir: string;
  logger: Logger;
  /**
   * The embedded server's port on 127.0.0.1; unused with `url`.
   * @default 5488
   */
  port?: number;
}

export const defaultEmbeddedPort = 5488;
/** The database created on the embedded server. */
export const embeddedDatabaseName = 'coordinator';
/** Long enough for a loaded server, short enough for a readiness probe that runs every few seconds. */
const readyTimeoutMs = 2_000;
/**
 * A healthy server opens a connection in milliseconds, and a pool whose 10 connections have all been
 * busy for this long is overloaded: the caller is better told to retry (503) than held.
 */
export const defaultConnectTimeoutMs = 5_000;
/**
 * Far above any statement the gateway runs (writes of one flow's record, bounded batches, a page of a
 * list), so that only a stuck one reaches it (a lock held by a vanished session, a server that stopped
 * answering); well under the HTTP socket timeout (120 s), so that the caller still hears the 503.
 */
export const defaultQueryTimeoutMs = 30_000;
/**
 * How much longer than the server's `statement_timeout` the client waits: a server that still answers
 * cancels a slow statement itself, with a definite answer (the statement rolled back) on a connection
 * that stays usable; the client gives up only on a server that no longer answers at all.
 */
const QUERY_TIMEOUT_GRACE_MS = 1_000;
/** pg's error when a query has had no answer within `query_timeout`. */
const READ_TIMEOUT_MESSAGE = 'Query read timeout';

/**
 * Connects to the database and applies pending migrations before returning. Every failure at this stage
 * is an Error whose message names what to fix: DATABASE_URL, or the embedded server's data directory.
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  return options.url === undefined ? openEmbedded(options) : openUrl(options.url, options);
}

async function openUrl(url: string, options: OpenDatabaseOptions): Promise<Database> {
  const { logger } = options;
  checkUrl(url);
  try {
    await applyMigrations(url, logger);
  } catch (error) {
    throw new Error(`DATABASE_URL (${redactUrl(url)}): ${messageOf(error)}`, { cause: error });
  }
  return connect(url, options, false, async () => undefined);
}

async function openEmbedded(options: OpenDatabaseOptions): Promise<Database> {
  const dataDir = resolve(options.dataDir);
  const port = options.port ?? defaultEmbeddedPort;
  const { logger } = options;
  const started = Date.now();
  const { startEmbeddedPostgres, ensureDatabase } = await importWithoutExitHooks(
    () => import('./embedded-postgres.js'),
  );
  const failure = (error: unknown) =>
    new Error(
      `embedded PostgreSQL (data directory ${dataDir}, port ${port}): ${messageOf(error)}. ` +
        'Set DATABASE_URL to use another PostgreSQL instead.',
      { cause: error },
    );
  const server = await startEmbeddedPostgres({ dataDir, port, logger }).catch((error: unknown) => {
    throw failure(error);
  });
  const url = server.url(embeddedDatabaseName);
  try {
    await ensureDatabase(server, embeddedDatabaseName);
    await applyMigrations(url, logger);
  } catch (error) {
    await server.stop().catch(() => undefined);
    throw failure(error);
  }
  logger.info({ dataDir, port, ms: Date.now() - started }, 'embedded PostgreSQL is running');
  return connect(url, options, true, () => server.stop());
}

function connect(
  url: string,
  options: OpenDatabaseOptions,
  embedded: boolean,
  stopServer: () => Promise<void>,
): Database {
  const { logger } = options;
  const queryTimeoutMs = options.queryTimeoutMs ?? defaultQueryTimeoutMs;
  const pool = new pg.Pool({
    connectionString: url,
    Client: EndedOnTimeoutClient,
    connectionTimeoutMillis: options.connectTimeoutMs ?? defaultConnectTimeoutMs,
    statement_timeout: queryTimeoutMs,
    query_timeout: queryTimeoutMs + QUERY_TIMEOUT_GRACE_MS,
  });
  // An idle connection the server ends (a restart, a failover, a shutdown) is dropped from the pool and
  // replaced on the next query; unhandled, its 'error' event would end the process.
  pool.on('error', (err) => logger.warn({ err }, 'database connection lost'));
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
  let closing: Promise<void> | undefined;
  return {
    prisma,
    pool,
    url,
    embedded,
    ready: () => answersWithin(prisma, readyTimeoutMs),
    close() {
      closing ??= prisma.$disconnect().finally(stopServer);
      return closing;
    },
  };
}

/**
 * A pg client that ends itself when one of its queries has had no answer within `query_timeout`. pg
 * answers the caller then ("Query read timeout") but leaves the connection as it was: the statement
 * still on the wire and, in a transaction, the ROLLBACK queued behind it timing out too, dropped
 * unsent. A caller that releases the client without an error (Prisma's adapter ends every transaction
 * so, and so do the outbox and the flow-end sweep) would give the pool back a connection still inside
 * that transaction: the next caller's statements would run, and maybe commit, in it. Ended, the client
 * is dropped by the pool whoever releases it and however, the calls queued on it fail, and the server
 * rolls back what it had open when it sees the connection close. (A Submittable, which no caller of
 * this pool passes, keeps pg's own behaviour.)
 */
class EndedOnTimeoutClient extends pg.Client {
  private endedOnTimeout = false;

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- pg's overloads return a promise, nothing or the Submittable
  override query(...args: unknown[]): any {
    const endOnTimeout = (error: unknown) => {
      if (this.endedOnTimeout || !(error instanceof Error) || error.message !== READ_TIMEOUT_MESSAGE) return;
      this.endedOnTimeout = true;
      this.end().catch(() => undefined);
    };
    // pg's (config, values?, callback?) with the callback second or third, or a promise without one.
    const at = typeof args[2] === 'function' ? 2 : typeof args[1] === 'function' ? 1 : -1;
    if (at >= 0) {
      const callback = args[at] as (error: unknown, result?: unknown) => void;
      // Ended before the callback runs, so that a release in it already sees the client ending.
      args[at] = (error: unknown, result?: unknown) => {
        endOnTimeout(error);
        callback(error, result);
      };
    }
    const result: unknown = (super.query as (...queryArgs: unknown[]) => unknown).apply(this, args);
    // Registered before the caller's own handlers, so it runs before them.
    if (at < 0 && result instanceof Promise) result.catch(endOnTimeout);
    return result;
  }
}

async function answersWithin(prisma: PrismaClient, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolveTimeout) => {
    timer = setTimeout(() => resolveTimeout(false), ms);
  });
  const query = prisma.$queryRaw`select 1`.then(
    () => true,
    () => false,
  );
  try {
    return await Promise.race([query, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A malformed URL would otherwise surface as an obscure driver error, or a connection to localhost. */
function checkUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error('DATABASE_URL is not a URL; expected postgresql://user:password@host:5432/database');
  }
  if (parsed.protocol !== 'postgresql:' && parsed.protocol !== 'postgres:') {
    throw new Error(
      `DATABASE_URL (${redactUrl(url)}) must start with postgresql:// (got ${parsed.protocol}//); ` +
        'this gateway stores its data in PostgreSQL only',
    );
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const EXIT_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'exit', 'beforeExit'] as const;

/**
 * embedded-postgres installs process-wide signal handlers when imported: on SIGTERM it stops its
 * servers and exits at once, which would cut the gateway's graceful stop short (the drain still needs
 * the database). The Coordinator stops the embedded server itself in `close()`, so those handlers are
 * removed. Loaded on demand, so a gateway with DATABASE_URL never installs them.
 */
async function importWithoutExitHooks<T>(load: () => Promise<T>): Promise<T> {
  const before = new Map(EXIT_SIGNALS.map((s) => [s, new Set(process.listeners(s as NodeJS.Signals))]));
  const module = await load();
  for (const signal of EXIT_SIGNALS) {
    for (const listener of process.listeners(signal as NodeJS.Signals)) {
      if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
    }
  }
  return module;
}
