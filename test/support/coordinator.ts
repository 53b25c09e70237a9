import { fileURLToPath } from 'node:url';
import { integrations } from '@launchdarkly/node-server-sdk';
import { signToken, type TokenSubject } from '../../gateway/auth/tokens.js';
import { Coordinator, type CoordinatorOptions } from '../../gateway/coordinator.js';
import { silentLogger } from '../../gateway/log.js';
import { startLedger, type Ledger } from '../fixtures/services/ledger.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { deleteNamespace, machineRedisUrl, requireRedis, testNamespace } from './redis.js';

process.env.APOLLO_TELEMETRY_DISABLED ??= '1';

/** The HS256 secret test Coordinators verify callers with; `token()` signs with it. */
export const TEST_JWT_SECRET = 'test-secret-of-the-test-coordinators';
export const token = (subject: TokenSubject) => signToken(TEST_JWT_SECRET, subject);
/** The clients whose tokens the test Coordinators take for a Service: the LMS, order management, a scraper. */
export const TEST_AUTH = {
  secret: TEST_JWT_SECRET,
  serviceClients: ['lms', 'order-management', 'prometheus'],
} as const;

export const fixture = (path: string) => fileURLToPath(new URL(`../fixtures/${path}`, import.meta.url));

export interface TestCoordinator {
  coordinator: Coordinator;
  url: string;
  ledger: Ledger;
  database: TestDatabase;
  testData: InstanceType<typeof integrations.TestData>;
  /** POSTs a GraphQL operation to /graphql and returns the parsed body. */
  graphql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    options?: { token?: string },
  ): Promise<{ data?: T; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }>;
  stop(): Promise<void>;
}

/**
 * A Coordinator on the fixture supergraph with its own database, its own Redis key space (unless
 * `redis: false`), TestData flags and a fresh ledger stand-in, on a free port.
 */
export async function startTestCoordinator(
  label: string,
  options: {
    redis?: boolean;
    authenticated?: boolean;
    ledger?: Ledger;
    database?: TestDatabase;
    overrides?: Partial<CoordinatorOptions>;
  } = {},
): Promise<TestCoordinator> {
  const ledger = options.ledger ?? (await startLedger());
  process.env.LEDGER_URL = ledger.url;
  const database = options.database ?? (await createTestDatabase(label));
  const redisUrl = options.redis === false ? undefined : await requireRedis(machineRedisUrl());
  const keyPrefix = `${testNamespace(label)}:`;
  const testData = new integrations.TestData();
  const coordinator = new Coordinator({
    roverConfig: fixture('rover.yaml'),
    connectionsFile: fixture('connections.yaml'),
    subgraphsDir: fixture('subgraphs'),
    database: { url: database.url },
    redis: redisUrl ? { url: redisUrl, keyPrefix } : undefined,
    flags: { testData },
    // The core's tests run open; `authenticated: true` verifies callers' tokens (signed by `token()`).
    auth: options.authenticated ? TEST_AUTH : undefined,
    port: 0,
    logger: silentLogger,
    outboxPollMs: 50,
    ...options.overrides,
  });
  const url = await coordinator.start();
  return {
    coordinator,
    url,
    ledger,
    database,
    testData,
    async graphql(query, variables, { token } = {}) {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify({ query, variables }),
      });
      return res.json() as never;
    },
    async stop() {
      await coordinator.stop();
      if (!options.ledger) await ledger.close();
      if (!options.database) await database.drop();
      if (redisUrl) await deleteNamespace(redisUrl, keyPrefix);
    },
  };
}

export const REQUEST_REFUND = /* GraphQL */ `
  mutation Refund($input: RefundRequestInput!, $key: String) {
    requestRefund(input: $input, idempotencyKey: $key) {
      flow {
        id
        status
        orderId
        output
        error {
          code
          message
        }
        steps {
          index
          action
          status
          implementation
          attempt
          idempotencyKey
          output
          flagDecisions {
            flag
            value
            reason
          }
          error {
            code
            message
          }
        }
      }
    }
  }
`;
