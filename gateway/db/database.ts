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

export interface OpenDatabaseOptions {
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
 * Connects to the database and applies pending migrations before returning. Every failure at this stage
 * is an Error whose message names what to fix: DATABASE_URL, or the embedded server's data directory.
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  return options.url === undefined ? openEmbedded(options) : openUrl(options.url, options.logger);
}

async function openUrl(url: string, logger: Logger): Promise<Database> {
  checkUrl(url);
  try {
    await applyMigrations(url, logger);
  } catch (error) {
    throw new Error(`DATABASE_URL (${redactUrl(url)}): ${messageOf(error)}`, { cause: error });
  }
  return connect(url, logger, false, async () => undefined);
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
  return connect(url, logger, true, () => server.stop());
}

function connect(url: string, logger: Logger, embedded: boolean, stopServer: () => Promise<void>): Database {
  const pool = new pg.Pool({ connectionString: url });
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
