import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { wsUrl } from '../support/subscriptions.js';

/** What one request (or one client) can make the Coordinator do: break a connection it shares, or plan without credentials. */

let cc: CommerceCoordinator;
beforeAll(async () => {
  cc = await startCommerceCoordinator('trust-exhaustion');
}, 120_000);
afterAll(async () => {
  await cc?.stop();
});

/** A graphql-transport-ws socket driven by hand, keeping every message and how it closed. */
async function rawSocket(token: string) {
  const ws = new WebSocket(wsUrl(cc.url), 'graphql-transport-ws');
  const messages: Array<{ id?: string; type: string; payload?: unknown }> = [];
  const state: { closed?: { code: number; reason: string } } = {};
  ws.on('message', (m) => messages.push(JSON.parse(String(m))));
  ws.on('close', (code, reason) => (state.closed = { code, reason: String(reason) }));
  await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
  ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
  for (let i = 0; i < 200 && !messages.length && !state.closed; i++) await sleep(10);
  return { ws, messages, state };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a subscription with an undeclared, deeply nested variable', () => {
  // A 1 MiB message of undeclared nested arrays: serialised for the key of shared results, it threw
  // RangeError, and graphql-ws closed the whole socket (4500), ending the connection's other subscriptions.
  it('is answered for itself, and the connection and its other subscriptions stay open', async () => {
    const { ws, messages, state } = await rawSocket(cc.tokens.staff);
    expect(messages[0]).toMatchObject({ type: 'connection_ack' });
    ws.send(
      JSON.stringify({
        id: 'kept',
        type: 'subscribe',
        payload: { query: 'subscription { signals(name: "order.refunded.v1") { id } }' },
      }),
    );
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    ws.send(
      `{"id":"deep","type":"subscribe","payload":{"query":"subscription { signals(name: \\"order.refunded.v1\\") { id } }","variables":{"x":${deep}}}}`,
    );
    await sleep(1_000);
    try {
      expect(state.closed).toBeUndefined();
    } finally {
      ws.close();
    }
  });
});

describe('an operation without a caller', () => {
  // Planning a new operation is synchronous work (tens of ms for a few dozen aliased entity fields):
  // an anonymous client renaming a 30-alias query each time held /healthz for seconds, though every
  // Action refuses it afterwards. It is refused before planning.
  const selection =
    'id orderNumber lmsUserId username email createdAt totalCents currency mobileOrder state ' +
    'lineItems { title } returns { __typename } enrollments { __typename } flows { id } ' +
    'payment { psp pspPaymentId amountCents stripe { __typename } paypal { __typename } }';
  const operation = `query Renamed${Math.random().toString(36).slice(2)} { ${Array.from(
    { length: 30 },
    (_, i) => `a${i}: order(id: "o-${i}") { ${selection} }`,
  ).join(' ')} }`;
  const post = (body: object, headers: Record<string, string> = {}) =>
    fetch(`${cc.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });

  it('is refused UNAUTHENTICATED (401) before it is planned', async () => {
    const res = await post({ query: operation });
    expect(res.status).toBe(401);
    const body = (await res.json()) as { errors: Array<{ extensions: { code: string } }> };
    expect(body.errors[0]!.extensions.code).toBe('UNAUTHENTICATED');
  });

  it('may introspect (Sandbox, the explorer), and a caller with a token is planned as before', async () => {
    const introspection = await post({ query: '{ __typename __schema { queryType { name } } }' });
    expect(introspection.status).toBe(200);
    expect(await introspection.json()).toEqual({
      data: { __typename: 'Query', __schema: { queryType: { name: 'Query' } } },
    });
    const staff = await post(
      { query: `{ order(id: "6a1f0c7e-1d2b-4c3a-9e8f-000000000001") { orderNumber } }` },
      { authorization: `Bearer ${cc.tokens.staff}` },
    );
    expect(await staff.json()).toEqual({ data: { order: { orderNumber: '2U-2026000001' } } });
  });
});
