// WORKERS > 1: the Coordinator as worker processes (node:cluster) sharing one listening socket. Each
// worker is a whole Coordinator with an owner name of its own; what they share already spans processes
// (the flow record in PostgreSQL, the signal bus and the event feed in Redis, flow leases). The primary
// runs what must exist once, and serves no GraphQL itself.
import cluster, { type Worker } from 'node:cluster';
import { createServer, type Server } from 'node:http';
import { resolve } from 'node:path';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { openDatabase } from './db/database.js';
import { databaseTimeouts, type Env } from './env.js';
import type { Logger } from './log.js';
import type { Companion, Prepare } from './run.js';

/** What a worker tells the primary once its Coordinator listens. */
interface StartedMessage {
  kind: 'coordinator-started';
  url: string;
}

const isStarted = (message: unknown): message is StartedMessage =>
  typeof message === 'object' &&
  message !== null &&
  (message as { kind?: unknown }).kind === 'coordinator-started';

/** The first restart of a dead worker waits this long; each quick death doubles it, up to the cap. */
const RESTART_DELAY_MS = 500;
const MAX_RESTART_DELAY_MS = 30_000;
/** A worker that ran this long before it died is restarted after the first delay again. */
const HEALTHY_RUN_MS = 30_000;
/** What the workers' exits may take after the drain's deadline. */
const STOP_GRACE_MS = 3_000;

export const isClusterWorker = () => cluster.isWorker;

/**
 * In a worker, after its Coordinator started: tells the primary where it listens, and lets the
 * primary's metrics endpoint read this worker's registry.
 */
export function announceWorker(url: string, registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  // Constructing one adds the worker's answer to the primary's metrics requests.
  new AggregatorRegistry();
  process.send?.({ kind: 'coordinator-started', url } satisfies StartedMessage);
}

/**
 * The primary: opens (and migrates) the database once, starting the embedded PostgreSQL when there is
 * no DATABASE_URL, runs the entry point's companion (the Service stand-ins), forks `env.WORKERS`
 * workers with their environment, restarts a worker that dies and forwards SIGTERM/SIGINT (drain, then
 * stop) and SIGHUP (reload). Exits 1 when a worker cannot start.
 */
export async function runPrimary(env: Env, logger: Logger, prepare: Prepare | undefined): Promise<void> {
  const database = await openDatabase(
    env.DATABASE_URL
      ? { url: env.DATABASE_URL, dataDir: '', logger, ...databaseTimeouts(env) }
      : {
          dataDir: resolve(env.DATA_DIR, 'postgres'),
          port: env.EMBEDDED_POSTGRES_PORT,
          logger,
          ...databaseTimeouts(env),
        },
  );
  let companion: Companion | undefined;
  try {
    companion = await prepare?.(env, logger);
  } catch (error) {
    await database.close();
    throw error;
  }
  const metrics = env.METRICS_PORT === undefined ? undefined : await serveClusterMetrics(env, logger);
  // Workers inherit process.env (the stand-ins' URLs are set in it by now); the embedded database is
  // the primary's, so they connect to it by URL. The metrics port is the primary's.
  const workerEnv = { DATABASE_URL: database.url, METRICS_PORT: '' };

  let stopping = false;
  let started = 0;
  const slots = new Map<Worker, { slot: number; forkedAt: number }>();
  const delays = new Map<number, number>();
  const fork = (slot: number) => {
    const worker = cluster.fork({ ...workerEnv, WORKER_INDEX: String(slot) });
    slots.set(worker, { slot, forkedAt: Date.now() });
  };

  const stopAll = async (signal: NodeJS.Signals, code: number) => {
    stopping = true;
    logger.info({ signal, workers: slots.size }, 'stopping the workers');
    const timer = setTimeout(() => {
      logger.error(
        { timeoutMs: env.SHUTDOWN_TIMEOUT_MS },
        'workers overran the shutdown timeout: killing them',
      );
      for (const worker of slots.keys()) worker.process.kill('SIGKILL');
    }, env.SHUTDOWN_TIMEOUT_MS + STOP_GRACE_MS);
    const exits = [...slots.keys()].map(
      (worker) =>
        new Promise<number>((done) => {
          if (worker.isDead()) return done(worker.process.exitCode ?? 1);
          worker.once('exit', (exitCode: number | null) => done(exitCode ?? 1));
          worker.process.kill(signal);
        }),
    );
    const codes = await Promise.all(exits);
    clearTimeout(timer);
    await metrics?.close();
    await companion?.stop().catch((err: unknown) => logger.error({ err }, 'stopping the companion failed'));
    await database.close();
    process.exit(codes.every((c) => c === 0) ? code : 1);
  };

  cluster.on('message', (worker, message) => {
    if (!isStarted(message)) return;
    const slot = slots.get(worker)?.slot;
    logger.info({ worker: slot, workerPid: worker.process.pid, url: message.url }, 'worker started');
    if (++started === env.WORKERS) {
      companion?.started(message.url);
      logger.info({ workers: env.WORKERS, url: message.url }, 'every worker started');
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    const entry = slots.get(worker);
    slots.delete(worker);
    if (stopping || !entry) return;
    if (started < env.WORKERS) {
      // One of the first workers failed: its output says why; the others are stopped.
      logger.error({ worker: entry.slot, code, signal }, 'a worker could not start: stopping');
      void stopAll('SIGTERM', 1);
      return;
    }
    const ranMs = Date.now() - entry.forkedAt;
    const delay =
      ranMs >= HEALTHY_RUN_MS
        ? RESTART_DELAY_MS
        : Math.min((delays.get(entry.slot) ?? RESTART_DELAY_MS / 2) * 2, MAX_RESTART_DELAY_MS);
    delays.set(entry.slot, delay);
    logger.error(
      { worker: entry.slot, workerPid: worker.process.pid, code, signal, restartInMs: delay },
      'worker died: restarting it',
    );
    setTimeout(() => {
      if (!stopping) fork(entry.slot);
    }, delay).unref();
  });

  process.on('SIGTERM', () => void (stopping || stopAll('SIGTERM', 0)));
  process.on('SIGINT', () => void (stopping || stopAll('SIGINT', 0)));
  process.on('SIGHUP', () => {
    for (const worker of slots.keys()) worker.process.kill('SIGHUP');
  });
  logger.info({ workers: env.WORKERS }, 'starting the workers');
  for (let slot = 0; slot < env.WORKERS; slot++) fork(slot);
}

/** The workers' metrics, aggregated, unauthenticated on METRICS_PORT (as one process serves them). */
async function serveClusterMetrics(env: Env, logger: Logger): Promise<{ close(): Promise<void> }> {
  const aggregator = new AggregatorRegistry();
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    aggregator.clusterMetrics().then(
      (text) => res.writeHead(200, { 'content-type': aggregator.contentType }).end(text),
      (err: unknown) => {
        logger.warn({ err }, 'the workers did not answer for their metrics');
        res.writeHead(503).end();
      },
    );
  });
  await new Promise<void>((listening, fail) => {
    server.once('error', fail);
    server.listen(env.METRICS_PORT, env.METRICS_HOST, listening);
  });
  logger.info({ port: env.METRICS_PORT, host: env.METRICS_HOST }, 'aggregated worker metrics served');
  return { close: () => new Promise((closed) => server.close(() => closed())) };
}
