import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { deleteNamespace, startPrivateRedis, testNamespace, type PrivateRedis } from '../support/redis.js';
import { collect, compareCursors, subscriptionClient, type Collected } from '../support/subscriptions.js';
import { createDeferred, waitFor } from '../support/wait.js';

let redis: PrivateRedis;
let t: TestCoordinator;
let keyPrefix: string;

beforeAll(async () => {
  redis = await startPrivateRedis();
  keyPrefix = `${testNamespace('redis-outage')}:`;
  t = await startTestCoordinator('redis-outage', { overrides: { redis: { url: redis.url, keyPrefix } } });
});

const clients: Client[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
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
  const { data, errors } = await t.graphql<{ requestRefund: { flow: { id: string; status: string } } }>(
    REQUEST_REFUND,
    {
      input: { orderId, amount: 30, learnerId: `learner-${orderId}` },
    },
  );
  expect(errors).toBeUndefined();
  return data!.requestRefund.flow;
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
        flags: true,
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

const FLOW_EVENTS = /* GraphQL */ `
  subscription Events($after: String) {
    flowEvents(after: $after) {
      cursor
      type
      flowId
      stepIndex
      status
    }
  }
`;
interface FlowEvent {
  cursor: string;
  type: string;
  flowId: string;
  stepIndex: number | null;
  status: string | null;
}
/** What one refund flow of the fixture connections publishes, in order. */
const REFUND_EVENTS = [
  ['FLOW_STARTED', null],
  ...[0, 1, 2, 3].flatMap((index) => [
    ['STEP_STARTED', index],
    ['STEP_FINISHED', index],
  ]),
  ['FLOW_FINISHED', null],
];

function subscribe(after?: string) {
  const client = subscriptionClient(t.url);
  clients.push(client);
  const events = collect<FlowEvent>(
    client,
    { query: FLOW_EVENTS, variables: after ? { after } : {} },
    (data) => data.flowEvents as FlowEvent,
  );
  return { client, events };
}

/** graphql-ws does not acknowledge a subscription: it is live once a flow run after it shows up. */
async function untilLive(subscriber: Collected<FlowEvent>) {
  await waitFor(
    async () => {
      const probe = await refund(`probe-${run}-${++seq}`);
      await waitFor(
        () => subscriber.events.some((e) => e.flowId === probe.id && e.type === 'FLOW_FINISHED'),
        {
          timeoutMs: 2_000,
        },
      );
    },
    { timeoutMs: 15_000, what: 'the subscriber to receive a probe flow' },
  );
}

function expectOnceInOrder(events: FlowEvent[], flowIds: readonly string[]) {
  for (let i = 1; i < events.length; i++)
    expect(compareCursors(events[i - 1]!.cursor, events[i]!.cursor)).toBe(-1);
  for (const flowId of flowIds)
    expect(events.filter((e) => e.flowId === flowId).map((e) => [e.type, e.stepIndex])).toEqual(
      REFUND_EVENTS,
    );
}

describe('flow events through a Redis outage', () => {
  it('reach a subscriber that resumes with its cursor, and one that stayed connected, each once and in order', async () => {
    const stayed = subscribe();
    const leaving = subscribe();
    await untilLive(stayed.events);
    await untilLive(leaving.events);
    // The leaving subscriber goes away; it will come back with its last cursor.
    const closed = createDeferred();
    leaving.client.on('closed', () => closed.resolve());
    await leaving.client.dispose();
    await closed.promise;
    const cursor = leaving.events.events.at(-1)!.cursor;

    await redis.stop();
    const orders = Array.from({ length: 8 }, () => `events-${run}-${++seq}`);
    const flows = [];
    for (const orderId of orders) flows.push(await refund(orderId));
    expect(flows.map((f) => f.status)).toEqual(Array(8).fill('COMPLETED'));
    const ids = flows.map((f) => f.id);
    await redis.restart();

    const back = subscribe(cursor);
    const finishedOnce = (events: FlowEvent[]) => {
      for (const id of ids)
        expect(events.filter((e) => e.flowId === id && e.type === 'FLOW_FINISHED')).toHaveLength(1);
    };
    await waitFor(() => finishedOnce(back.events.events), {
      timeoutMs: 20_000,
      what: 'the resumed subscriber to receive the flows run during the outage',
    });
    await waitFor(() => finishedOnce(stayed.events.events), {
      timeoutMs: 20_000,
      what: 'the connected subscriber to receive the flows run during the outage',
    });
    // A flow after them: once it arrives, any repeat of theirs would have arrived before it.
    const after = await refund(`events-after-${run}`);
    for (const subscriber of [back, stayed])
      await waitFor(() =>
        expect(
          subscriber.events.events.some((e) => e.flowId === after.id && e.type === 'FLOW_FINISHED'),
        ).toBe(true),
      );
    expectOnceInOrder(back.events.events, [...ids, after.id]);
    expectOnceInOrder(stayed.events.events, [...ids, after.id]);
    expect(compareCursors(back.events.events[0]!.cursor, cursor)).toBe(1);
    expect([back.events.resultErrors, stayed.events.resultErrors]).toEqual([[], []]);
  });
});
