import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import {
  adminRedis,
  deleteNamespace,
  machineRedisUrl,
  requireRedis,
  testNamespace,
  type AdminRedis,
} from '../support/redis.js';
import {
  collect,
  compareCursors,
  subscriptionClient,
  waitForValue,
  wsUrl,
  type Collected,
} from '../support/subscriptions.js';
import { createDeferred, waitFor } from '../support/wait.js';

interface FlowEvent {
  cursor: string;
  type: string;
  flowId: string;
  name: string;
  stepIndex: number | null;
  action: string | null;
  status: string | null;
}

interface SignalEvent {
  cursor: string;
  id: string;
  name: string;
  payload: Record<string, unknown>;
  source: string;
}

const FLOW_EVENTS = /* GraphQL */ `
  subscription Events($flowId: ID, $name: String, $after: String) {
    flowEvents(flowId: $flowId, name: $name, after: $after) {
      cursor
      type
      flowId
      name
      stepIndex
      action
      status
    }
  }
`;
const SIGNALS = /* GraphQL */ `
  subscription Signals($name: String!, $after: String) {
    signals(name: $name, after: $after) {
      cursor
      id
      name
      payload
      source
    }
  }
`;
const REFUND_FILTER = 'order.refund.requested.v1';

/** What one refund flow of the fixture connections publishes, in order. */
const REFUND_EVENTS = [
  ['FLOW_STARTED', null, null, 'RUNNING'],
  ...['haltIfLegacy', 'createReturn', 'refundPayment', 'recordRefund'].flatMap((action, index) => [
    ['STEP_STARTED', index, action, 'RUNNING'],
    ['STEP_FINISHED', index, action, 'COMPLETED'],
  ]),
  ['FLOW_FINISHED', null, null, 'COMPLETED'],
];
const shape = (events: FlowEvent[]) => events.map((e) => [e.type, e.stepIndex, e.action, e.status]);

let orderSeq = 0;
const nextOrder = () => `sub-order-${++orderSeq}-${Date.now()}`;

async function refund(t: TestCoordinator, orderId: string) {
  const { data, errors } = await t.graphql<{
    requestRefund: { flow: { id: string; status: string; output: Record<string, unknown> } };
  }>(REQUEST_REFUND, { input: { orderId, amount: 12, learnerId: `learner-${orderId}` } });
  expect(errors).toBeUndefined();
  expect(data!.requestRefund.flow.status).toBe('COMPLETED');
  return data!.requestRefund.flow;
}

const flowEvents = (client: Client, variables: Record<string, unknown> = {}) =>
  collect<FlowEvent>(client, { query: FLOW_EVENTS, variables }, (data) => data.flowEvents as FlowEvent);

/**
 * graphql-ws does not acknowledge a subscription, so a subscriber is known to be live once it has
 * received the events of a flow started after it subscribed: run probe flows on `on` until one arrives.
 */
async function untilLive(subscriber: Collected<FlowEvent>, on: TestCoordinator) {
  const probes = new Set<string>();
  await waitFor(
    async () => {
      if (subscriber.events.some((e) => probes.has(e.flowId) && e.type === 'FLOW_FINISHED')) return true;
      probes.add((await refund(on, nextOrder())).id);
      return false;
    },
    { timeoutMs: 15_000, intervalMs: 50, what: 'the subscriber to receive a probe flow' },
  );
}

/** Ids of the flows whose FLOW_FINISHED is among `events`. */
const finished = (events: FlowEvent[]) =>
  events.filter((e) => e.type === 'FLOW_FINISHED').map((e) => e.flowId);

/** The two receiver runs (one per signal) of the refund of `orderId`, once both completed. */
async function receiverRuns(t: TestCoordinator, orderId: string): Promise<string[]> {
  const prisma = t.coordinator.components.database.prisma;
  return waitForValue(
    async () => {
      const runs = await prisma.flowRun.findMany({
        where: { orderId, kind: 'receiver', status: 'completed' },
      });
      return runs.length === 2 ? runs.map((r) => r.id) : false;
    },
    { timeoutMs: 10_000, what: `the receivers of ${orderId}` },
  );
}

/** Events in strictly increasing cursor order: nothing repeated, nothing out of order. */
function expectIncreasing(events: Array<{ cursor: string }>) {
  for (let i = 1; i < events.length; i++)
    expect(compareCursors(events[i - 1]!.cursor, events[i]!.cursor)).toBe(-1);
}

const clients: Client[] = [];
const client = (t: TestCoordinator) => {
  const c = subscriptionClient(t.url);
  clients.push(c);
  return c;
};

afterAll(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
});

describe.each([{ feed: 'redis' }, { feed: 'memory' }])(
  'subscriptions over graphql-ws ($feed event feed)',
  ({ feed }) => {
    let t: TestCoordinator;
    let keyPrefix: string | undefined;

    beforeAll(async () => {
      if (feed === 'redis') {
        keyPrefix = `${testNamespace('subscriptions')}:`;
        const url = await requireRedis(machineRedisUrl());
        t = await startTestCoordinator('subscriptions', { overrides: { redis: { url, keyPrefix } } });
      } else {
        t = await startTestCoordinator('subscriptions-memory', { redis: false });
      }
    });
    afterAll(async () => {
      await t?.stop();
      if (keyPrefix) await deleteNamespace(machineRedisUrl(), keyPrefix);
    });

    it('streams STEP_STARTED, STEP_FINISHED and FLOW_FINISHED of a refund flow, in order, to flowEvents(flowId:) and to all flows', async () => {
      const all = flowEvents(client(t));
      await untilLive(all, t);

      // Hold the refund step so the flow is still running when its own subscriber joins.
      const orderId = nextOrder();
      t.ledger.fault({ kind: 'refund', orderId, delayMs: 600 });
      const running = refund(t, orderId);
      const started = await waitForValue(() => {
        const held = all.events.find(
          (e) =>
            e.type === 'STEP_STARTED' &&
            e.stepIndex === 2 &&
            e.name === REFUND_FILTER &&
            !all.events.some((f) => f.flowId === e.flowId && f.type === 'FLOW_FINISHED'),
        );
        if (!held) return false;
        const at = all.events.findIndex((e) => e.flowId === held.flowId && e.type === 'FLOW_STARTED');
        expect(at).toBeGreaterThan(0);
        return { flowId: held.flowId, before: all.events[at - 1]!.cursor };
      });
      // From the cursor just before the flow started: the backlog up to now, then the rest live.
      const one = flowEvents(client(t), { flowId: started.flowId, after: started.before });
      const flow = await running;
      expect(flow.id).toBe(started.flowId);

      await waitFor(() => expect(one.events.map((e) => e.type)).toContain('FLOW_FINISHED'), {
        timeoutMs: 10_000,
      });
      expect(shape(one.events)).toEqual(REFUND_EVENTS);
      expect(one.events.every((e) => e.flowId === flow.id && e.name === REFUND_FILTER)).toBe(true);
      expectIncreasing(one.events);

      await waitFor(() =>
        expect(all.events.filter((e) => e.flowId === flow.id).map((e) => e.type)).toContain('FLOW_FINISHED'),
      );
      const seenByAll = all.events.filter((e) => e.flowId === flow.id);
      expect(shape(seenByAll)).toEqual(REFUND_EVENTS);
      // Both subscribers saw the same events under the same cursors.
      expect(seenByAll).toEqual(one.events);
      expectIncreasing(all.events);
      all.unsubscribe();
      one.unsubscribe();
    });

    it('delivers a signal to signals(name:) with its id and payload', async () => {
      const all = flowEvents(client(t));
      await untilLive(all, t);
      const after = all.events.at(-1)!.cursor;
      const signals = collect<SignalEvent>(
        client(t),
        { query: SIGNALS, variables: { name: 'order.refunded.v1', after } },
        (data) => data.signals as SignalEvent,
      );
      const orderId = nextOrder();
      const flow = await refund(t, orderId);
      const prisma = t.coordinator.components.database.prisma;
      const [outbox] = await waitForValue(async () => {
        const rows = await prisma.outboxSignal.findMany({
          where: { flowId: flow.id, name: 'order.refunded.v1' },
        });
        return rows.length === 1 && rows[0]!.publishedAt ? rows : false;
      });
      const mine = await waitForValue(() => {
        const found = signals.events.filter((s) => s.payload.orderId === orderId);
        return found.length ? found : false;
      });
      expect(mine).toEqual([
        {
          cursor: expect.any(String),
          id: outbox!.id,
          name: 'order.refunded.v1',
          payload: { orderId, refundId: flow.output.refundId, learnerId: `learner-${orderId}` },
          source: `flow:${flow.id}`,
        },
      ]);
      // The receiver ran for that very signal id.
      await waitFor(async () =>
        expect(
          await prisma.flowRun.findMany({
            where: { signalId: outbox!.id },
            select: { receiver: true, status: true },
          }),
        ).toEqual([{ receiver: 'revoke-enrollment', status: 'completed' }]),
      );
      // Only signals of that name reach this subscription.
      expect(signals.events.every((s) => s.name === 'order.refunded.v1')).toBe(true);
      expect(signals.resultErrors).toEqual([]);
      signals.unsubscribe();
      all.unsubscribe();
    });

    it('resumes a subscriber that reconnects with after: <last cursor>: exactly the missed events, then live ones', async () => {
      // The reference subscriber stays connected throughout.
      const reference = flowEvents(client(t));
      await untilLive(reference, t);
      const firstClient = subscriptionClient(t.url);
      const first = flowEvents(firstClient);
      await untilLive(first, t);

      // Disconnect: the socket closes.
      const closed = createDeferred<void>();
      firstClient.on('closed', () => closed.resolve());
      await firstClient.dispose();
      await closed.promise;
      const last = first.events.at(-1)!.cursor;
      const seenBeforeDisconnect = first.events.length;

      // Missed while away: a whole flow, and the receivers of its two signals.
      const missedOrder = nextOrder();
      const missed = await refund(t, missedOrder);
      const missedReceivers = await receiverRuns(t, missedOrder);
      await waitFor(() =>
        expect(finished(reference.events)).toEqual(expect.arrayContaining([missed.id, ...missedReceivers])),
      );
      expect(first.events).toHaveLength(seenBeforeDisconnect);

      const again = flowEvents(client(t), { after: last });
      await waitFor(() =>
        expect(finished(again.events)).toEqual(expect.arrayContaining([missed.id, ...missedReceivers])),
      );
      // …then live.
      const liveOrder = nextOrder();
      const live = await refund(t, liveOrder);
      const liveReceivers = await receiverRuns(t, liveOrder);
      const expected = () => reference.events.filter((e) => compareCursors(e.cursor, last) > 0);
      await waitFor(
        () => {
          expect(finished(reference.events)).toEqual(expect.arrayContaining([live.id, ...liveReceivers]));
          expect(again.events).toEqual(expected());
        },
        { timeoutMs: 10_000 },
      );
      expect(compareCursors(again.events[0]!.cursor, last)).toBe(1);
      expect(shape(again.events.filter((e) => e.flowId === missed.id))).toEqual(REFUND_EVENTS);
      expect(shape(again.events.filter((e) => e.flowId === live.id))).toEqual(REFUND_EVENTS);
      expectIncreasing(again.events);
      again.unsubscribe();
      reference.unsubscribe();
    });
  },
);

describe('two Coordinator processes sharing one database and one Redis', () => {
  let a: TestCoordinator;
  let b: TestCoordinator;
  let keyPrefix: string;

  beforeAll(async () => {
    keyPrefix = `${testNamespace('subscriptions-two')}:`;
    const url = await requireRedis(machineRedisUrl());
    a = await startTestCoordinator('subscriptions-two', { overrides: { redis: { url, keyPrefix } } });
    b = await startTestCoordinator('subscriptions-two-b', {
      database: a.database,
      ledger: a.ledger,
      overrides: { redis: { url, keyPrefix } },
    });
  });
  afterAll(async () => {
    await b?.stop();
    await a?.stop();
    await deleteNamespace(machineRedisUrl(), keyPrefix);
  });

  it('delivers the events of a flow run in one to a subscriber connected to the other', async () => {
    expect(a.url).not.toBe(b.url);
    const onB = flowEvents(client(b), { name: REFUND_FILTER });
    // Live once a flow run by A reached B's subscriber.
    await untilLive(onB, a);
    const flow = await refund(a, nextOrder());
    await waitFor(
      () => expect(onB.events.some((e) => e.flowId === flow.id && e.type === 'FLOW_FINISHED')).toBe(true),
      {
        timeoutMs: 10_000,
      },
    );
    expect(shape(onB.events.filter((e) => e.flowId === flow.id))).toEqual(REFUND_EVENTS);
    // A ran and recorded it; B reads the same record from the shared database.
    const onBRecord = await b.graphql<{ flow: { status: string } }>(
      `query($id: ID!) { flow(id: $id) { status } }`,
      { id: flow.id },
    );
    expect(onBRecord.data!.flow.status).toBe('COMPLETED');
    expect(onB.events.every((e) => e.name === REFUND_FILTER)).toBe(true);
    onB.unsubscribe();
  });
});

describe('graphql-ws protocol errors', () => {
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('subscriptions-protocol');
  });
  afterAll(async () => t?.stop());

  it('answers a subscribe request with an invalid query with an error message, and the socket stays usable', async () => {
    const c = subscriptionClient(t.url, { lazy: false, onNonLazyError: () => {} });
    const closes: unknown[] = [];
    c.on('closed', (event) => closes.push(event));

    const unknownField = collect(c, { query: 'subscription { nope }' }, (d) => d);
    const errors = (await unknownField.failed.promise) as Array<{ message: string }>;
    expect(errors).toEqual([
      expect.objectContaining({ message: 'Cannot query field "nope" on type "Subscription".' }),
    ]);

    const syntax = collect(c, { query: 'subscription { flowEvents(' }, (d) => d);
    const syntaxErrors = (await syntax.failed.promise) as Array<{ message: string }>;
    expect(syntaxErrors[0]!.message).toMatch(/^Syntax Error/);

    const missingArg = collect(c, { query: 'subscription { signals { id } }' }, (d) => d);
    const missingErrors = (await missingArg.failed.promise) as Array<{ message: string }>;
    expect(missingErrors[0]!.message).toBe(
      'Field "signals" argument "name" of type "String!" is required, but it was not provided.',
    );

    const unknownSignal = collect(
      c,
      { query: `subscription { signals(name: "${'x'.repeat(300)}") { id } }` },
      (d) => d,
    );
    await unknownSignal.completed.promise;
    expect(unknownSignal.resultErrors).toEqual([
      expect.objectContaining({
        message: `No signal '${'x'.repeat(100)}…' is configured`,
        extensions: expect.objectContaining({ code: 'BAD_USER_INPUT' }),
      }),
    ]);

    const badCursor = collect(
      c,
      { query: 'subscription { flowEvents(after: "not-a-cursor") { cursor } }' },
      (d) => d,
    );
    const cursorErrors = (await badCursor.failed.promise) as Array<{ message: string }>;
    expect(cursorErrors).toEqual([expect.objectContaining({ message: "Invalid cursor 'not-a-cursor'" })]);

    // The same socket still runs operations, and the server still serves HTTP.
    const query = collect(c, { query: '{ flows(limit: 1) { id } }' }, (d) => d);
    await query.completed.promise;
    expect(query.events).toEqual([{ flows: expect.any(Array) }]);
    expect(closes).toEqual([]);
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    await c.dispose();
  });

  it('closes a socket that never sends connection_init with 4408', async () => {
    const socket = new WebSocket(wsUrl(t.url), 'graphql-transport-ws');
    const opened = createDeferred<void>();
    const closed = createDeferred<{ code: number; reason: string }>();
    socket.once('open', () => opened.resolve());
    socket.once('close', (code, reason) => closed.resolve({ code, reason: reason.toString() }));
    await opened.promise;
    const openedAt = Date.now();
    await expect(closed.promise).resolves.toEqual({
      code: 4408,
      reason: 'Connection initialisation timeout',
    });
    // Closed by the timeout (3 s by default), not at once.
    expect(Date.now() - openedAt).toBeGreaterThanOrEqual(2_500);
  });
});

describe('a subscription that ends', () => {
  let t: TestCoordinator;
  let keyPrefix: string;
  let admin: AdminRedis;

  beforeAll(async () => {
    keyPrefix = `${testNamespace('subscriptions-end')}:`;
    const url = await requireRedis(machineRedisUrl());
    admin = await adminRedis(url);
    t = await startTestCoordinator('subscriptions-end', { overrides: { redis: { url, keyPrefix } } });
  });
  afterAll(async () => {
    await t?.stop();
    await admin?.close();
    await deleteNamespace(machineRedisUrl(), keyPrefix);
  });

  /** How many of the Coordinator's subscriptions listen to `topic`'s channel. */
  const listeners = async (topic: string) => {
    const [channel] = await admin.call<string[]>('PUBSUB', 'CHANNELS', `${keyPrefix}*feed:${topic}`);
    if (!channel) return 0;
    const [, count] = await admin.call<[string, number]>('PUBSUB', 'NUMSUB', channel);
    return count;
  };

  // No flow runs and no signal is sent here: before, a subscription held its queue and its channel
  // until an event came.
  it('lets go of its feed subscription at once when the client completes it, or disconnects', async () => {
    const c = subscriptionClient(t.url);
    const [flows, signal] = ['flows', 'signal:payment.refunded.v1'];
    const completed = flowEvents(c);
    const disconnected = collect(
      c,
      { query: SIGNALS, variables: { name: 'payment.refunded.v1' } },
      (d) => d.signals as SignalEvent,
    );
    await waitFor(async () => (await listeners(flows)) === 1 && (await listeners(signal)) === 1, {
      what: 'both subscriptions to listen',
    });
    completed.unsubscribe();
    await waitFor(async () => (await listeners(flows)) === 0, {
      timeoutMs: 3_000,
      what: 'the completed subscription to stop listening',
    });
    expect(await listeners(signal)).toBe(1);
    await c.dispose();
    await waitFor(async () => (await listeners(signal)) === 0, {
      timeoutMs: 3_000,
      what: 'the subscription of the closed socket to stop listening',
    });
    expect(disconnected.events).toEqual([]);
  });
});
