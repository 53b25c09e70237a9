import { fileURLToPath } from 'node:url';
import { integrations } from '@launchdarkly/node-server-sdk';
import { Coordinator, type CoordinatorOptions } from '../../gateway/coordinator.js';
import { silentLogger } from '../../gateway/log.js';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { deleteNamespace, machineRedisUrl, requireRedis, testNamespace } from '../../test/support/redis.js';

const fixture = (path: string) => fileURLToPath(new URL(`../flows/fixture/${path}`, import.meta.url));

export interface FixtureCoordinator {
  coordinator: Coordinator;
  /** The gateway's base URL (`/graphql` is under it). */
  url: string;
  database: TestDatabase;
  redisUrl: string;
  /** Stops the Coordinator, then drops its database and its Redis keys. */
  stop(): Promise<void>;
}

/**
 * The benchmarks' Coordinator, in this process: bench/flows/fixture (one Plugin, `shop`, whose Actions
 * call the bench Service stand-in at BENCH_SERVICE_URL) on a PostgreSQL database and a Redis namespace
 * of its own, on the machine's servers.
 */
export async function startFixtureCoordinator(
  label: string,
  options: Pick<CoordinatorOptions, 'flowPlugins' | 'outboxPollMs'> = {},
): Promise<FixtureCoordinator> {
  const redisUrl = await requireRedis(machineRedisUrl());
  const namespace = testNamespace(label);
  const database = await createTestDatabase('bench');
  const coordinator = fixtureCoordinator(
    database.url,
    { url: redisUrl, keyPrefix: `${namespace}:` },
    options,
  );
  const stop = async () => {
    await coordinator.stop().catch(() => {});
    await database.drop();
    await deleteNamespace(redisUrl, `${namespace}:`);
  };
  try {
    return { coordinator, url: await coordinator.start(), database, redisUrl, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The benchmarks' Coordinator on the database and Redis namespace given, not started, on a free port. */
export function fixtureCoordinator(
  databaseUrl: string,
  redis: { url: string; keyPrefix: string },
  options: Pick<CoordinatorOptions, 'flowPlugins' | 'outboxPollMs'> = {},
): Coordinator {
  return new Coordinator({
    roverConfig: fixture('rover.yaml'),
    connectionsFile: fixture('connections.yaml'),
    subgraphsDir: fixture('subgraphs'),
    database: { url: databaseUrl },
    redis,
    flags: { testData: new integrations.TestData() },
    port: 0,
    logger: silentLogger,
    ...options,
  });
}
