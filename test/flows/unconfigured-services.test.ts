import { fileURLToPath } from 'node:url';
import { integrations } from '@launchdarkly/node-server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinator, type CoordinatorOptions } from '../../gateway/coordinator.js';
import { ConfigError } from '../../gateway/errors.js';
import { silentLogger } from '../../gateway/log.js';
import { DEMO } from '../../services/demo.js';
import { TEST_AUTH, token } from '../support/coordinator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

/**
 * The repository's Plugins with none of their Services configured (SERVICES=configured, no
 * variables): production refuses to start naming every missing variable and its Plugin; elsewhere the
 * Coordinator starts, /readyz says each Service is not configured, and a flow that needs a Service
 * fails SERVICE_UNAVAILABLE instead of answering COMPLETED with nothing.
 */

const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const PLUGIN_VARIABLE =
  /^(ORDER_MANAGEMENT|STRIPE|PAYPAL|LMS|LEGACY_ECOMMERCE|COMMERCE_FRONTEND|LEGACY_BASKET|RETIREMENT)_/;
for (const name of Object.keys(process.env)) if (PLUGIN_VARIABLE.test(name)) delete process.env[name];
process.env.APOLLO_TELEMETRY_DISABLED ??= '1';

let database: TestDatabase;
const options = (): CoordinatorOptions => ({
  roverConfig: root('rover.yaml'),
  connectionsFile: root('connections.yaml'),
  subgraphsDir: root('subgraphs'),
  database: { url: database.url },
  flags: { testData: new integrations.TestData() },
  auth: TEST_AUTH,
  port: 0,
  logger: silentLogger,
});

beforeAll(async () => {
  database = await createTestDatabase('unconfigured-services');
});

afterAll(async () => {
  await database?.drop();
});

describe('production, no Service configured', () => {
  it('refuses to start, naming every missing variable and its Plugin', async () => {
    const coordinator = new Coordinator({ ...options(), production: true });
    const error = await coordinator.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    await coordinator.stop();
    expect(error).toBeInstanceOf(ConfigError);
    const { problems } = error as ConfigError;
    for (const expected of [
      /^stripe plugin: STRIPE_SECRET_KEY is not set/,
      /^stripe plugin: STRIPE_WEBHOOK_SECRET is not set/,
      /^paypal plugin: PAYPAL_CLIENT_ID is not set/,
      /^lms plugin: LMS_URL is not set/,
      /^order-management plugin: ORDER_MANAGEMENT_URL is not set/,
      /^order-management plugin: RETIREMENT_SALT is not set/,
      /^legacy-ecommerce plugin: LEGACY_ECOMMERCE_URL is not set/,
      /^frontend-apps plugin: COMMERCE_FRONTEND_URL is not set/,
      /^app-store plugin: APP_STORE_PRIVATE_KEY is not set/,
      /^app-store plugin: APP_STORE_ROOT_CERTIFICATES is not set/,
      /^google-play plugin: GOOGLE_PLAY_SERVICE_ACCOUNT_KEY is not set/,
      /^google-play plugin: GOOGLE_PUBSUB_AUDIENCE is not set/,
    ])
      expect(problems).toContainEqual(expect.stringMatching(expected));
    expect(coordinator.state.phase).toBe('stopped');
  });
});

describe('development, no Service configured', () => {
  let coordinator: Coordinator;
  let url: string;
  beforeAll(async () => {
    coordinator = new Coordinator(options());
    url = await coordinator.start();
  });
  afterAll(async () => {
    await coordinator?.stop();
  });

  it('starts, and /readyz says degraded, each Service not configured', async () => {
    const res = await fetch(`${url}/readyz`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      status: string;
      services: Record<string, { status: string; reason?: string }>;
    };
    expect(body.status).toBe('degraded');
    expect(body.services.lms).toEqual({
      status: 'degraded',
      reason: expect.stringMatching(/^not configured: LMS_URL is not set/),
    });
    expect(Object.keys(body.services).sort()).toEqual([
      'app-store',
      'google-play',
      'legacy-ecommerce',
      'lms',
      'order-management',
      'paypal',
      'stripe',
    ]);
  });

  it('fails the order history with SERVICE_UNAVAILABLE instead of an empty COMPLETED answer', async () => {
    const { ada } = DEMO.learners;
    const bearer = await token({ kind: 'learner', lmsUserId: ada.lmsUserId, username: ada.username });
    const res = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
      body: JSON.stringify({
        query: '{ orderHistory(input: {}) { history { orderNumber } flow { status } } }',
      }),
    });
    const body = (await res.json()) as {
      data?: { orderHistory: unknown } | null;
      errors?: Array<{ message: string; extensions: Record<string, unknown> }>;
    };
    expect(body.data?.orderHistory ?? null).toBeNull();
    expect(body.errors).toHaveLength(1);
    expect(body.errors![0]!.extensions).toMatchObject({ code: 'SERVICE_UNAVAILABLE', flowStatus: 'FAILED' });
    expect(body.errors![0]!.message).toContain(
      "The lms Plugin's Service is not configured: LMS_URL is not set",
    );
  });
});
