// The Coordinator's entry point: configuration from the environment, then start, then stop on a signal.
import { resolve } from 'node:path';
import { Coordinator } from './coordinator.js';
import {
  authOptions,
  browserLogin,
  connectionLimits,
  operationLimits,
  readEnv,
  tracingOptions,
} from './env.js';
import { ConfigError } from './errors.js';
import { createLogger, prettyLogs } from './log.js';

// @apollo/gateway's libraries report usage hourly unless told not to; opt in explicitly if wanted.
process.env.APOLLO_TELEMETRY_DISABLED ??= '1';

async function main() {
  const env = readEnv();
  const logger = createLogger({
    level: env.LOG_LEVEL,
    pretty: prettyLogs(env.LOG_FORMAT, env.NODE_ENV === 'production', process.stdout.isTTY === true),
  });
  const standIns =
    (env.SERVICES ?? (env.NODE_ENV === 'production' ? 'configured' : 'stand-ins')) === 'stand-ins'
      ? await startStandIns(env.REDIS_URL)
      : undefined;
  const coordinator = new Coordinator({
    roverConfig: resolve(env.ROVER_CONFIG),
    connectionsFile: resolve(env.CONNECTIONS_FILE),
    subgraphsDir: resolve(env.SUBGRAPHS_DIR),
    remoteSubgraphs: env.REMOTE_SUBGRAPHS,
    subgraphSigningSecret: env.SUBGRAPH_SIGNING_SECRET,
    auth: authOptions(env),
    database: env.DATABASE_URL
      ? { url: env.DATABASE_URL }
      : { dataDir: resolve(env.DATA_DIR, 'postgres'), port: env.EMBEDDED_POSTGRES_PORT },
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
    coordinator
      .stop()
      .then(() => standIns?.close())
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
  const url = await coordinator.start();
  standIns?.connectWebhooks(url);
  if (standIns)
    logger.info(
      { services: Object.fromEntries(Object.entries(standIns.env).filter(([k]) => k.endsWith('_URL'))) },
      'Service stand-ins running with the demo data (SERVICES=configured to use real Services)',
    );
  logger.info(
    `GraphQL and Sandbox at ${url}/graphql; health at ${url}/healthz and ${url}/readyz; metrics at ${coordinator.components.metricsUrl}`,
  );
}

/**
 * The embedded default: a stand-in for every Service, the plugins pointed at them. Variables already
 * set win, so one Service can be real while the others are stand-ins.
 */
async function startStandIns(redisUrl: string | undefined) {
  const { startServiceStandIns } = await import('../services/embedded.js');
  const standIns = await startServiceStandIns({ demo: true, redisUrl });
  for (const [name, value] of Object.entries(standIns.env)) process.env[name] ??= value;
  return standIns;
}

main().catch((error) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`Configuration error in ${error.message}\n`);
  } else {
    process.stderr.write(
      `Start-up failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
  }
  process.exit(1);
});
