import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestCoordinator, token, type TestCoordinator } from '../support/coordinator.js';
import { wsUrl } from '../support/subscriptions.js';
import { waitFor } from '../support/wait.js';

/**
 * One verified caller's subscriptions are capped over all its connections, not only per connection:
 * otherwise one Service (or one leaked token) opening connection after connection holds as many
 * subscriptions, and as much of every event's fan-out, as the gateway has websocket slots.
 */

let t: TestCoordinator;
let ada: string;
let grace: string;
let lms: string;
beforeAll(async () => {
  t = await startTestCoordinator('trust-ws-caller-cap', {
    authenticated: true,
    overrides: { subscriptionLimits: { maxSubscriptionsPerConnection: 5, maxSubscriptionsPerCaller: 2 } },
  });
  ada = await token({ kind: 'staff', username: 'ada-staff' });
  grace = await token({ kind: 'staff', username: 'grace-staff' });
  lms = await token({ kind: 'service', clientId: 'lms' });
}, 120_000);
afterAll(async () => {
  await t?.stop();
});

type Message = { id?: string; type: string; payload?: unknown };

/** A graphql-transport-ws socket driven by hand, acknowledged, keeping every message it is sent. */
async function rawSocket(bearer: string) {
  const ws = new WebSocket(wsUrl(t.url), 'graphql-transport-ws');
  const messages: Message[] = [];
  ws.on('message', (m) => messages.push(JSON.parse(String(m)) as Message));
  await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
  ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${bearer}` } }));
  await waitFor(() => messages.some((m) => m.type === 'connection_ack'), { what: 'connection_ack' });
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  return {
    messages,
    subscribe: (id: string) =>
      ws.send(
        JSON.stringify({
          id,
          type: 'subscribe',
          payload: { query: 'subscription { flowEvents { type } }' },
        }),
      ),
    close: async () => {
      ws.close();
      await closed;
    },
  };
}

/** Whether `id` was refused, accepted (no answer within the wait: a subscription waits for events). */
async function answerOf(socket: { messages: Message[] }, id: string): Promise<Message | undefined> {
  await new Promise((r) => setTimeout(r, 300));
  return socket.messages.find((m) => m.id === id);
}

describe("a caller's subscriptions over all its connections", () => {
  it('are capped: one more is TOO_MANY_REQUESTS, other callers are not, and a closed connection frees its places', async () => {
    const first = await rawSocket(ada);
    const second = await rawSocket(ada);
    const third = await rawSocket(ada);
    const other = await rawSocket(grace);
    const service = await rawSocket(lms);
    try {
      first.subscribe('a');
      second.subscribe('b');
      expect(await answerOf(first, 'a')).toBeUndefined();
      expect(await answerOf(second, 'b')).toBeUndefined();
      third.subscribe('c');
      expect(await answerOf(third, 'c')).toEqual({
        id: 'c',
        type: 'error',
        payload: [
          {
            message: 'Too many subscriptions of this caller: at most 2 at once, over all its connections',
            extensions: { code: 'TOO_MANY_REQUESTS', limit: 2 },
          },
        ],
      });
      // Other callers have places of their own.
      other.subscribe('d');
      service.subscribe('e');
      service.subscribe('f');
      expect(await answerOf(other, 'd')).toBeUndefined();
      expect(await answerOf(service, 'f')).toBeUndefined();
      // A closed connection gives its subscriptions' places back.
      await second.close();
      third.subscribe('g');
      expect(await answerOf(third, 'g')).toBeUndefined();
    } finally {
      await Promise.all([first, third, other, service].map((s) => s.close()));
    }
  });
});
