import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { deleteNamespace, startPrivateRedis, testNamespace, type PrivateRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

let redis: PrivateRedis;
let t: TestCoordinator;
let keyPrefix: string;

beforeAll(async () => {
  redis = await startPrivateRedis();
  keyPrefix = `${testNamespace('redis-outage')}:`;
  t = await startTestCoordinator('redis-outage', { overrides: { redis: { url: redis.url, keyPrefix } } });
});

afterAll(async () => {
  try {
    await t?.stop();
  } finally {
    if (redis) {
      await deleteNamespace(redis.url, keyPrefix).catch(() => {});
      await redis.dispose();
    }
  }
});

const run = `${Date.now()}`;
let seq = 0;

async function refund(orderId: string) {
  const { data, errors } = await t.graphql<{ requestRefund: { id: string; status: string } }>(
    REQUEST_REFUND,
    {
      input: { orderId, amount: 30, learnerId: `learner-${orderId}` },
    },
  );
  expect(errors).toBeUndefined();
  return data!.requestRefund;
}

const prisma = () => t.coordinator.components.database.prisma;

/** Waits until each of the flow's two signals was published and ran its one receiver to completion. */
async function expectDeliveredOnce(flowId: string, orderId: string) {
  await waitFor(
    async () => {
      const signals = await prisma().outboxSignal.findMany({ where: { flowId } });
      expect(signals.map((s) => s.name).sort()).toEqual(['order.refunded.v1', 'payment.refunded.v1']);
      for (const signal of signals) {
        expect(signal.publishedAt).not.toBeNull();
        const runs = await prisma().flowRun.findMany({ where: { signalId: signal.id } });
        expect(runs.map((r) => [r.receiver, r.status])).toEqual([
          [signal.name === 'order.refunded.v1' ? 'revoke-enrollment' : 'record-psp-refund', 'completed'],
        ]);
      }
    },
    { timeoutMs: 15_000, what: `the signals of ${orderId} to be delivered` },
  );
  // One revoke (order.refunded.v1) and two records (the flow's step, and payment.refunded.v1's receiver).
  const ops = t.ledger.operations().filter((o) => o.orderId === orderId);
  expect(ops.filter((o) => o.kind === 'revoke')).toHaveLength(1);
  expect(ops.filter((o) => o.kind === 'record')).toHaveLength(2);
}

describe('a Redis outage', () => {
  it('does not stop flows; their signals wait in the outbox and are delivered once when Redis is back', async () => {
    // With Redis up, a flow's signals go through at once.
    const before = `before-${run}`;
    const first = await refund(before);
    expect(first.status).toBe('COMPLETED');
    await expectDeliveredOnce(first.id, before);

    await redis.stop();
    await waitFor(async () => {
      const res = await fetch(`${t.url}/readyz`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { checks: unknown }).checks).toEqual({
        database: true,
        bus: false,
        supergraph: true,
      });
    });

    // Flows complete without the bus.
    const orders = Array.from({ length: 3 }, () => `during-${run}-${++seq}`);
    const flows = await Promise.all(orders.map(refund));
    expect(flows.map((f) => f.status)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    const ids = flows.map((f) => f.id);

    // Their signals wait in the outbox: committed, not published. The dispatcher keeps trying (the
    // oldest first, stopping at the first refusal) and records why it could not publish.
    await waitFor(async () => {
      const waiting = await prisma().outboxSignal.findMany({ where: { flowId: { in: ids } } });
      expect(waiting).toHaveLength(6);
      for (const signal of waiting) expect(signal.publishedAt).toBeNull();
      const tried = waiting.filter((signal) => signal.publishAttempts > 0);
      expect(tried.reduce((sum, signal) => sum + signal.publishAttempts, 0)).toBeGreaterThan(1);
      for (const signal of tried) expect(signal.lastError).toMatch(/Redis is unreachable/);
    });
    // Nothing reached a receiver.
    expect(await prisma().flowRun.count({ where: { kind: 'receiver', orderId: { in: orders } } })).toBe(0);
    expect(t.ledger.operations().filter((o) => orders.includes(o.orderId) && o.kind === 'revoke')).toEqual(
      [],
    );

    // Back (empty: this Redis keeps no data, as after a restart without persistence).
    await redis.restart();
    for (const [index, flow] of flows.entries()) await expectDeliveredOnce(flow.id, orders[index]!);
    expect((await fetch(`${t.url}/readyz`)).status).toBe(200);

    // The flow from before the outage was not delivered again, and nothing else waits.
    await expectDeliveredOnce(first.id, before);
    expect(await prisma().outboxSignal.count({ where: { publishedAt: null } })).toBe(0);
    expect(await prisma().flowRun.count({ where: { kind: 'receiver' } })).toBe(8);
  });
});
