import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startServiceStandIns, type ServiceStandIns } from '../../services/embedded.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import {
  REQUEST_REFUND,
  startTestCoordinator,
  TEST_AUTH,
  TEST_JWT_SECRET,
  token,
  type TestCoordinator,
} from '../support/coordinator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  gatewayEnv,
  repositoryConfigEnv,
  killGateways,
  spawnGateway,
  type GatewayProcess,
} from '../support/gateway-process.js';
import { deleteNamespace, freePort, machineRedisUrl, requireRedis, testNamespace } from '../support/redis.js';

/**
 * Flows of one order do not interleave where they change it: a filter with an orderKey runs one flow
 * per order at a time, across gateway processes; the next waits (bounded) and then runs against what
 * the first left, or is refused with ORDER_BUSY when the wait runs out, having changed nothing.
 */

describe('two refund flows of one order (core fixtures)', () => {
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('trust-exclusion-core', { overrides: { orderWaitMs: 1_500 } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const refund = (orderId: string) =>
    t.graphql<{ requestRefund: { flow: { id: string; status: string } } }>(REQUEST_REFUND, {
      input: { orderId, amount: 10, learnerId: 'l-1' },
      key: randomUUID(),
    });
  /** When the flow's first step started (after its run was created) and when the flow ended. */
  const flowTimes = async (id: string) => {
    const flow = await t.coordinator.components.store.flow(id);
    return { firstStep: flow!.steps[0]!.startedAt.getTime(), finishedAt: flow!.finishedAt!.getTime() };
  };

  it('run one after the other: the second starts once the first has ended', async () => {
    const orderId = `exclusive-${randomUUID()}`;
    t.ledger.fault({ kind: 'return', orderId, delayMs: 600 });
    const [first, second] = await Promise.all([refund(orderId), refund(orderId)]);
    expect(first.errors).toBeUndefined();
    expect(second.errors).toBeUndefined();
    const [a, b] = [
      await flowTimes(first.data!.requestRefund.flow.id),
      await flowTimes(second.data!.requestRefund.flow.id),
    ];
    const [earlier, later] = a.firstStep <= b.firstStep ? [a, b] : [b, a];
    expect(later.firstStep).toBeGreaterThanOrEqual(earlier.finishedAt);
    // Other orders are not held up by it.
    const other = `exclusive-other-${randomUUID()}`;
    t.ledger.fault({ kind: 'return', orderId, delayMs: 2_000 });
    const [held, free] = await Promise.all([refund(orderId), refund(other)]);
    const [h, f] = [
      await flowTimes(held.data!.requestRefund.flow.id),
      await flowTimes(free.data!.requestRefund.flow.id),
    ];
    expect(f.finishedAt).toBeLessThan(h.finishedAt);
  });

  it('answers ORDER_BUSY when the first does not end within the wait, and records nothing for it', async () => {
    const orderId = `busy-${randomUUID()}`;
    t.ledger.fault({ kind: 'return', orderId, delayMs: 3_000 });
    const slow = refund(orderId);
    // Until the slow one holds the order.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const refused = await refund(orderId);
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'ORDER_BUSY', orderId });
    expect((await slow).data!.requestRefund.flow.status).toBe('COMPLETED');
    const flows = await t.coordinator.components.store.list({
      orderId,
      name: 'order.refund.requested.v1',
      limit: 10,
    });
    expect(flows.map((f) => f.status)).toEqual(['completed']);
  });
});

describe('two fulfillment events for one order while the first is still fulfilling', () => {
  let cc: CommerceCoordinator;
  beforeAll(async () => {
    cc = await startCommerceCoordinator('trust-exclusion-fulfil');
  });
  afterAll(async () => {
    await cc?.stop();
  });

  it('enroll the learner once per course line', async () => {
    const { lms, orderManagement } = cc.services;
    const username = `excl${process.pid}`;
    lms.seed({ users: [{ id: 88_001, username, email: `${username}@example.com` }] });
    const [order] = orderManagement.seed({
      orders: [
        {
          orderNumber: `2U-2027${String(process.pid % 1_000_000).padStart(6, '0')}`,
          customer: { lmsUserId: 88_001, username, email: `${username}@example.com` },
          lineItems: [
            { title: 'Demo', priceCents: 1_000, courseRunKey: DEMO.courses.demo.courseId },
            { title: 'CS50', priceCents: 1_000, courseRunKey: DEMO.courses.cs50.courseId },
          ],
          payment: { psp: 'STRIPE', pspPaymentId: `pi_excl_${process.pid}` },
        },
      ],
    }).orders;
    const enrollPath = '/api/enrollment/v1/enrollment';
    const before = lms.calls(enrollPath, 'POST');
    // The first flow's enrollments take a while: the second event arrives meanwhile.
    lms.delayNext(2, 400, enrollPath);
    const fulfil = () =>
      cc.request('/order-management/fulfill', {
        method: 'POST',
        token: cc.tokens.orderManagement,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: randomUUID(), detail: { id: order!.id } }),
      });
    const answers = await Promise.all([fulfil(), fulfil()]);
    for (const answer of answers) expect(answer.status).toBe(200);
    expect(lms.calls(enrollPath, 'POST') - before).toBe(2);
  });
});

describe('two gateway processes fulfilling one order at the same moment', () => {
  let services: ServiceStandIns;
  let database: TestDatabase;
  let redisUrl: string;
  let keyPrefix: string;
  const gateways: GatewayProcess[] = [];

  beforeAll(async () => {
    redisUrl = await requireRedis(machineRedisUrl());
    keyPrefix = `${testNamespace('trust-exclusion-processes')}:`;
    services = await startServiceStandIns({ demo: true });
    database = await createTestDatabase('trust-exclusion-processes');
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      gateways.push(
        spawnGateway({
          port,
          env: gatewayEnv({
            ...services.env,
            ...repositoryConfigEnv(),
            DATABASE_URL: database.url,
            REDIS_URL: redisUrl,
            REDIS_KEY_PREFIX: keyPrefix,
            JWT_SECRET: TEST_JWT_SECRET,
            JWT_SERVICE_CLIENTS: TEST_AUTH.serviceClients.join(','),
            PORT: String(port),
            LOG_LEVEL: 'warn',
          }),
        }),
      );
    }
    await Promise.all(gateways.map((g) => g.ready(60_000)));
  }, 90_000);
  afterAll(async () => {
    await killGateways();
    await services?.close();
    await database?.drop();
    if (keyPrefix) await deleteNamespace(redisUrl, keyPrefix);
  });

  it('grant one entitlement for a bundle line', async () => {
    const { lms, orderManagement } = services;
    const username = `twoproc${process.pid}`;
    lms.seed({ users: [{ id: 88_002, username, email: `${username}@example.com` }] });
    const bundleKey = randomUUID();
    const [order] = orderManagement.seed({
      orders: [
        {
          orderNumber: `2U-2028${String(process.pid % 1_000_000).padStart(6, '0')}`,
          customer: { lmsUserId: 88_002, username, email: `${username}@example.com` },
          lineItems: [{ title: 'Program', priceCents: 35_000, bundleKey }],
          payment: { psp: 'STRIPE', pspPaymentId: `pi_twoproc_${process.pid}` },
        },
      ],
    }).orders;
    // Both look-ups happen before either grant, unless the flows are kept apart.
    lms.delayNext(2, 500, '/api/entitlements/v1/entitlements/');
    const bearer = await token({ kind: 'service', clientId: 'order-management' });
    const answers = await Promise.all(
      gateways.map((gateway) =>
        fetch(`${gateway.url}/order-management/fulfill`, {
          method: 'POST',
          headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
          body: JSON.stringify({ id: randomUUID(), detail: { id: order!.id } }),
        }),
      ),
    );
    for (const answer of answers) expect(answer.status).toBe(200);
    const entitlements = lms
      .state()
      .entitlements.filter((e) => e.username === username && e.expiredAt === null);
    expect(entitlements.map((e) => e.courseUuid)).toEqual([bundleKey]);
  });
});
