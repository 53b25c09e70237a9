import { fileURLToPath } from 'node:url';
import { integrations } from '@launchdarkly/node-server-sdk';
import { Coordinator, type CoordinatorOptions } from '../../gateway/coordinator.js';
import { silentLogger } from '../../gateway/log.js';
import { DEMO } from '../../services/demo.js';
import { startServiceStandIns, type ServiceStandIns } from '../../services/embedded.js';
import { TEST_AUTH, token } from './coordinator.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { adminRedis, deleteNamespace, machineRedisUrl, requireRedis, testNamespace } from './redis.js';

process.env.APOLLO_TELEMETRY_DISABLED ??= '1';

const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));

type GraphQLResponse<T> = {
  data?: T;
  errors?: Array<{ message: string; path?: string[]; extensions?: Record<string, unknown> }>;
};

export interface CommerceCoordinator {
  url: string;
  coordinator: Coordinator;
  services: ServiceStandIns;
  database: TestDatabase;
  testData: InstanceType<typeof integrations.TestData>;
  /** The LMS event bus stream of this run (its own, on the machine's Redis). */
  eventStream: string;
  redisUrl: string;
  /** Tokens of the demo callers (services/demo.ts). */
  tokens: { ada: string; bob: string; staff: string; lms: string; orderManagement: string };
  graphql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    token?: string,
  ): Promise<GraphQLResponse<T>>;
  /** Any REST request to the gateway (webhooks, redirects); never follows redirects. */
  request(path: string, init?: RequestInit & { token?: string }): Promise<Response>;
  stop(): Promise<void>;
}

/**
 * The Coordinator as `npm start` runs it — the repository's rover.yaml, connections.yaml and plugins —
 * on the machine's PostgreSQL (a database of its own) and Redis (a key space and event stream of its
 * own), with every Service stand-in seeded with the demo data, verified callers and TestData flags.
 * One per test file: the plugins read their configuration once per process.
 */
export async function startCommerceCoordinator(
  label: string,
  options: { flags?: 'test-data' | 'flags.json'; overrides?: Partial<CoordinatorOptions> } = {},
): Promise<CommerceCoordinator> {
  const redisUrl = await requireRedis(machineRedisUrl());
  const namespace = testNamespace(label);
  const eventStream = `${namespace}:commerce-order-lifecycle`;
  const services = await startServiceStandIns({ demo: true, redisUrl, eventStream });
  Object.assign(process.env, services.env, { LMS_EVENT_BUS_BLOCK_MS: '200' });
  const database = await createTestDatabase(label);
  const testData = new integrations.TestData();
  const coordinator = new Coordinator({
    roverConfig: root('rover.yaml'),
    connectionsFile: root('connections.yaml'),
    subgraphsDir: root('subgraphs'),
    database: { url: database.url },
    redis: { url: redisUrl, keyPrefix: `${namespace}:` },
    // The repository's flags.json, as on the embedded default, or TestData for tests that flip flags.
    flags: options.flags === 'flags.json' ? { flagsFile: root('flags.json') } : { testData },
    auth: TEST_AUTH,
    port: 0,
    logger: silentLogger,
    outboxPollMs: 50,
    ...options.overrides,
  });
  let url: string;
  try {
    url = await coordinator.start();
  } catch (error) {
    await services.close();
    await database.drop();
    throw error;
  }
  services.connectWebhooks(url);
  const { ada, bob } = DEMO.learners;
  const tokens = {
    ada: await token({ kind: 'learner', lmsUserId: ada.lmsUserId, username: ada.username }),
    bob: await token({ kind: 'learner', lmsUserId: bob.lmsUserId, username: bob.username }),
    staff: await token({ kind: 'staff', username: DEMO.staff.username, lmsUserId: DEMO.staff.lmsUserId }),
    lms: await token({ kind: 'service', clientId: 'lms' }),
    orderManagement: await token({ kind: 'service', clientId: 'order-management' }),
  };
  return {
    url,
    coordinator,
    services,
    database,
    testData,
    eventStream,
    redisUrl,
    tokens,
    async graphql(query, variables, bearer) {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
        },
        body: JSON.stringify({ query, variables }),
      });
      return res.json() as never;
    },
    request(path, init = {}) {
      const { token: bearer, headers, ...rest } = init;
      return fetch(`${url}${path}`, {
        redirect: 'manual',
        ...rest,
        headers: {
          ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
          ...(headers as Record<string, string>),
        },
      });
    },
    async stop() {
      await coordinator.stop();
      await services.close();
      await database.drop();
      await deleteNamespace(redisUrl, `${namespace}:`);
      const admin = await adminRedis(redisUrl);
      await admin.call('DEL', eventStream, `${eventStream}:dead-letter`).finally(() => admin.close());
    },
  };
}
