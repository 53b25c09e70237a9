import { resolve } from 'node:path';
import { announceWorker, isClusterWorker, runPrimary } from './cluster.js';
import {
  authOptions,
  browserLogin,
  connectionLimits,
  databaseTimeouts,
  operationLimits,
  readEnv,
  tracingOptions,
  type Env,
} from './env.js';
import { ConfigError } from './errors.js';
import { createLogger, prettyLogs, type Logger } from './log.js';

/**
 * What an entry point runs beside the Coordinator (the launcher's Service stand-ins): started before
 * the Coordinator is built, so what it sets in `process.env` is what the Plugins read; the companion
 * it returns is told the Coordinator's URL once it listens, and stopped after the Coordinator.
 */
export type Prepare = (env: Env, logger: Logger) => Promise<Companion | undefined>;

export interface Companion {
  started(url: string): void;
  stop(): Promise<void>;
}

/** What closing may take after the drain's deadline (connections, the database, the stand-ins). */
const STOP_GRACE_MS = 2_000;

/**
 * Runs a Coordinator configured from the environment until SIGTERM or SIGINT, then drains and stops it.
 * A start-up failure prints what is wrong (a ConfigError's problems) and exits 1.
 */
export function runCoordinator(prepare?: Prepare): void {
  // @apollo/gateway's libraries report usage hourly unless told not to; opt in explicitly if wanted.
  process.env.APOLLO_TELEMETRY_DISABLED ??= '1';
  run(prepare).catch((error) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`Configuration error in ${error.message}\n`);
    } else {
      process.stderr.write(
        `Start-up failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
    }
    process.exit(1);
  });
}

async function run(prepare: Prepare | undefined) {
  const env = readEnv();
  const logger = createLogger({
    level: env.LOG_LEVEL,
    pretty: prettyLogs(env.LOG_FORMAT, env.NODE_ENV === 'production', process.stdout.isTTY === true),
  });
  // WORKERS > 1: this process is the primary; its workers run the rest of this function, without the
  // companion (the primary runs it once for them all).
  if (env.WORKERS > 1 && !isClusterWorker()) return runPrimary(env, logger, prepare);
  const companion = isClusterWorker() ? undefined : await prepare?.(env, logger);
  // Loaded here, not at the top: a primary of workers never runs a Coordinator, and its memory should
  // not hold the gateway's code.
  const { Coordinator } = await import('./coordinator.js');
  const coordinator = new Coordinator({
    roverConfig: resolve(env.ROVER_CONFIG),
    supergraphFile: env.SUPERGRAPH_FILE && resolve(env.SUPERGRAPH_FILE),
    connectionsFile: resolve(env.CONNECTIONS_FILE),
    subgraphsDir: resolve(env.SUBGRAPHS_DIR),
    remoteSubgraphs: env.REMOTE_SUBGRAPHS,
    subgraphSigningSecret: env.SUBGRAPH_SIGNING_SECRET,
    auth: authOptions(env),
    database: {
      ...(env.DATABASE_URL
        ? { url: env.DATABASE_URL }
        : { dataDir: resolve(env.DATA_DIR, 'postgres'), port: env.EMBEDDED_POSTGRES_PORT }),
      ...databaseTimeouts(env),
    },
    redis: env.REDIS_URL ? { url: env.REDIS_URL, keyPrefix: env.REDIS_KEY_PREFIX } : undefined,
    flags: env.LAUNCHDARKLY_SDK_KEY
      ? { sdkKey: env.LAUNCHDARKLY_SDK_KEY }
      : { flagsFile: resolve(env.FLAGS_FILE) },
    port: env.PORT,
    host: env.HOST,
    logger,
    production: env.NODE_ENV === 'production',
    operationLimits: operationLimits(env),
    leaseMs: env.FLOW_LEASE_MS,
    orderWaitMs: env.ORDER_WAIT_MS,
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
    readinessTimeoutMs: env.READINESS_TIMEOUT_MS,
    corsOrigins: env.CORS_ORIGINS,
    browserLogin: browserLogin(env),
    metrics: {
      port: env.METRICS_PORT,
      host: env.METRICS_HOST,
      maxOperationNames: env.METRICS_MAX_OPERATION_NAMES,
    },
    tracing: tracingOptions(env),
    ...connectionLimits(env),
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    // The drain is bounded by the timeout; this bounds the closing after it, whatever hangs.
    setTimeout(() => {
      logger.error({ timeoutMs: env.SHUTDOWN_TIMEOUT_MS }, 'stop overran the shutdown timeout: exiting');
      process.exit(1);
    }, env.SHUTDOWN_TIMEOUT_MS + STOP_GRACE_MS).unref();
    coordinator
      .stop()
      .then(() => companion?.stop())
      .then(
        () => process.exit(0),
        (err) => {
          logger.error({ err }, 'stop failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // An explicit reload, as with nginx: what the file watch does, on demand (logged either way).
  process.on('SIGHUP', () => {
    if (coordinator.state.phase === 'started') void coordinator.reload();
  });
  const url = await coordinator.start();
  companion?.started(url);
  if (isClusterWorker()) announceWorker(url, coordinator.components.metrics.registry);
  logger.info(
    `GraphQL and Sandbox at ${url}/graphql; health at ${url}/healthz and ${url}/readyz; metrics at ${coordinator.components.metricsUrl}`,
  );
}
