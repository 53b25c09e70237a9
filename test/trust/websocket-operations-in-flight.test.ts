import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { REQUEST_REFUND, startTestCoordinator, token, type TestCoordinator } from '../support/coordinator.js';
import {
  adminRedis,
  machineRedisUrl,
  requireRedis,
  testNamespace,
  type AdminRedis,
} from '../support/redis.js';
import { wsUrl } from '../support/subscriptions.js';
import { waitFor } from '../support/wait.js';

/**
 * What a graphql-ws client's `complete` does to an operation the server has not finished starting
 * (its token is still being verified, its query measured) or running (a mutation's flow): it must not
 * free the operation's place before the operation ends. Otherwise a client could run any number of
 * operations at once on one connection, past `maxSubscriptionsPerConnection`, and an id sent again at
 * once started a second subscription under it, which nothing ended: not the client's complete, not the
 * socket's close.
 */

let t: TestCoordinator;
let admin: AdminRedis;
let staff: string;
const keyPrefix = `${testNamespace('trust-ws-in-flight')}:`;
beforeAll(async () => {
  const url = await requireRedis(machineRedisUrl());
  admin = await adminRedis(url);
  t = await startTestCoordinator('trust-ws-in-flight', {
    authenticated: true,
    overrides: { redis: { url, keyPrefix }, subscriptionLimits: { maxSubscriptionsPerConnection: 1 } },
  });
  staff = await token({ kind: 'staff', username: 'staff' });
}, 120_000);
afterAll(async () => {
  await t?.stop();
  await admin?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Message = { id?: string; type: string; payload?: unknown };

/** A graphql-transport-ws socket driven by hand, acknowledged, keeping every message it is sent. */
async function rawSocket() {
  const ws = new WebSocket(wsUrl(t.url), 'graphql-transport-ws');
  const messages: Message[] = [];
  ws.on('message', (m) => messages.push(JSON.parse(String(m)) as Message));
  await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
  ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${staff}` } }));
  await waitFor(() => messages.some((m) => m.type === 'connection_ack'), { what: 'connection_ack' });
  return { ws, messages };
}
const subscribe = (id: string, query: string, variables?: Record<string, unknown>) =>
  JSON.stringify({ id, type: 'subscribe', payload: { query, variables } });
const complete = (id: string) => JSON.stringify({ id, type: 'complete' });

/** How many of the Coordinator's feed subscriptions listen to `topic` (its Redis channel's subscribers). */
async function listeners(topic: string): Promise<number> {
  const [channel] = await admin.call<string[]>('PUBSUB', 'CHANNELS', `${keyPrefix}*feed:${topic}`);
  if (!channel) return 0;
  const [, count] = await admin.call<[string, number]>('PUBSUB', 'NUMSUB', channel);
  return count;
}

async function flowStatus(orderId: string): Promise<string | undefined> {
  const answer = await t.graphql<{ flows: Array<{ status: string }> }>(
    'query ($orderId: String) { flows(orderId: $orderId) { status } }',
    { orderId },
    { token: staff },
  );
  return answer.data?.flows[0]?.status;
}

const FLOW_EVENTS = 'subscription ($flowId: ID) { flowEvents(flowId: $flowId) { type } }';

describe('an operation id completed and sent again before its operation started', () => {
  it('runs one subscription under it, and none outlives the socket', async () => {
    const { ws, messages } = await rawSocket();
    const flowId = randomUUID();
    // One burst: the first subscribe is still verifying its token when the complete and the second
    // subscribe of the same id arrive.
    ws.send(subscribe('s', FLOW_EVENTS, { flowId }));
    ws.send(complete('s'));
    ws.send(subscribe('s', FLOW_EVENTS, { flowId }));
    await sleep(500);
    // The second is refused for itself when the id still belonged to the first, which was ending.
    for (const refused of messages.filter((m) => m.id === 's' && m.type === 'error'))
      expect(refused.payload).toMatchObject([{ extensions: { code: 'BAD_REQUEST' } }]);
    ws.close();
    await waitFor(async () => (await listeners('flows')) === 0, {
      timeoutMs: 3_000,
      what: 'every subscription of the closed socket to stop listening',
    });
  });
});

describe('a mutation the client completed while it runs', () => {
  it('keeps its place on the connection until it ends: the next operation is refused TOO_MANY_REQUESTS', async () => {
    const { ws, messages } = await rawSocket();
    const held = `ws-held-${randomUUID()}`;
    const next = `ws-next-${randomUUID()}`;
    // Held at the ledger long enough for the next operation to arrive while it runs.
    t.ledger.fault({ kind: 'refund', orderId: held, delayMs: 1_500 });
    const refund = (orderId: string) => ({ input: { amount: 10, learnerId: 'l-1', orderId } });
    ws.send(subscribe('a', REQUEST_REFUND, refund(held)));
    await waitFor(() => t.ledger.operations().some((o) => o.kind === 'return' && o.orderId === held), {
      what: 'the first refund to reach its held step',
    });
    ws.send(complete('a'));
    ws.send(subscribe('b', REQUEST_REFUND, refund(next)));
    await waitFor(() => messages.some((m) => m.id === 'b' && (m.type === 'error' || m.type === 'complete')), {
      timeoutMs: 5_000,
      what: "the second operation's answer",
    });
    try {
      expect(messages.find((m) => m.id === 'b')).toMatchObject({
        type: 'error',
        payload: [{ extensions: { code: 'TOO_MANY_REQUESTS' } }],
      });
      expect(t.ledger.operations().some((o) => o.orderId === next)).toBe(false);
      // Once the first has ended, its place is free again.
      await waitFor(async () => (await flowStatus(held)) === 'COMPLETED', { what: 'the first flow to end' });
      ws.send(subscribe('c', REQUEST_REFUND, refund(next)));
      await waitFor(() => messages.some((m) => m.id === 'c' && m.type === 'complete'), {
        what: 'the third operation to complete',
      });
      expect(messages.find((m) => m.id === 'c')).toMatchObject({ type: 'next' });
    } finally {
      ws.close();
    }
  });
});
