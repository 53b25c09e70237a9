import { createHmac, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lifecycle, WEBHOOK_SECRET } from '../fixtures/subgraphs/payments/index.js';
import WebSocket from 'ws';
import { signToken } from '../../gateway/auth/tokens.js';
import {
  startTestCoordinator,
  TEST_JWT_SECRET,
  token,
  type TestCoordinator,
} from '../support/coordinator.js';
import { collect, subscriptionClient } from '../support/subscriptions.js';
import { waitFor } from '../support/wait.js';

// What the core lends Plugins: the verified caller, data-driven step conditions, REST routes whose
// events are committed once, background work, and flags in the caller's context.
let t: TestCoordinator;
let learner: string;
let otherLearner: string;
let staff: string;

const ECHO = /* GraphQL */ `
  query Echo($input: EchoInput!) {
    echoCaller(input: $input) {
      callerKind
      callerName
      audited
      flow {
        id
        status
        startedBy
        steps {
          action
          status
          flagDecisions {
            flag
            value
          }
        }
      }
    }
  }
`;

const FLOWS = /* GraphQL */ `
  query {
    flows(limit: 1) {
      id
    }
  }
`;

beforeAll(async () => {
  t = await startTestCoordinator('plugins', { authenticated: true });
  learner = await token({ kind: 'learner', lmsUserId: 7, username: 'ada' });
  otherLearner = await token({ kind: 'learner', lmsUserId: 8, username: 'bob' });
  staff = await token({ kind: 'staff', username: 'grace' });
});
afterAll(async () => t?.stop());

describe('the caller', () => {
  it('answers a token that does not verify with HTTP 401 and UNAUTHENTICATED', async () => {
    const res = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer not.a.jwt' },
      body: JSON.stringify({ query: '{ caller { callerKind } }' }),
    });
    expect(res.status).toBe(401);
    const body = (await res.json()) as { errors: Array<{ extensions: { code: string } }> };
    expect(body.errors[0]!.extensions.code).toBe('UNAUTHENTICATED');
  });

  it('reaches the Action that serves a query, through the gateway', async () => {
    const { data } = await t.graphql<{ caller: unknown }>(
      '{ caller { callerKind callerName } }',
      {},
      { token: learner },
    );
    expect(data!.caller).toEqual({ callerKind: 'learner', callerName: 'ada' });
    // Without a token nothing is planned, let alone run (caller-required.ts).
    const anonymous = await t.graphql<{ caller: unknown }>('{ caller { callerKind } }');
    expect(anonymous.data).toBeUndefined();
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('refuses a document without a caller before validating it: validation alone costs the gateway tens of milliseconds', async () => {
    // 180 selections of one field with different arguments: validation compares them pairwise.
    const conflicting = `{ ${Array.from({ length: 180 }, (_, i) => `caller(x${i}: ${i}) { callerKind }`).join(' ')} }`;
    const anonymous = await t.graphql(conflicting);
    expect(anonymous.errors).toEqual([
      expect.objectContaining({ extensions: expect.objectContaining({ code: 'UNAUTHENTICATED' }) }),
    ]);
    // With a caller it is refused by the operation limits, also before validation (repeats).
    const limited = await t.graphql(conflicting, {}, { token: learner });
    expect(limited.errors?.[0]?.extensions).toMatchObject({
      code: 'OPERATION_LIMIT_EXCEEDED',
      limit: 'repeats',
      value: 180,
    });
    // Introspection stays open without a caller (Sandbox, the explorer), as does a document Apollo
    // cannot parse (its own error says why).
    expect((await t.graphql<{ __typename: string }>('{ __typename }')).data).toEqual({ __typename: 'Query' });
    expect((await t.graphql('{ caller {')).errors?.[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
  });

  it("reaches every step of a flow it starts, and is recorded as the flow's starter", async () => {
    await t.testData.update(
      t.testData
        .flag('transition.echo.audit')
        .booleanFlag()
        .fallthroughVariation(false)
        .variationForContext('user', '7', true),
    );
    const { data, errors } = await t.graphql<{
      echoCaller: { callerKind: string; flow: { steps: Array<{ flagDecisions: unknown[] }> } };
    }>(ECHO, { input: { channel: 'WEB' } }, { token: learner });
    expect(errors).toBeUndefined();
    // What the step saw is the filter's typed result; the learner reads no data of the record.
    expect(data!.echoCaller).toMatchObject({
      callerKind: 'learner',
      callerName: 'ada',
      audited: true,
      flow: {
        status: 'COMPLETED',
        startedBy: { kind: 'learner', username: 'ada', lmsUserId: 7 },
        steps: [{ action: 'whoCalls', status: 'COMPLETED' }],
      },
    });
    // A flag the Action evaluated is recorded on its step, like the gateway's own decisions; the
    // override label of another Action (transition.refunds.payments-v2) is neither evaluated nor recorded.
    expect(data!.echoCaller.flow.steps[0]!.flagDecisions).toEqual([
      { flag: 'transition.echo.audit', value: true },
    ]);
  });

  it('keeps flow records from anonymous callers and learners, and shows them to staff', async () => {
    expect((await t.graphql(FLOWS)).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect((await t.graphql(FLOWS, {}, { token: learner })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const asStaff = await t.graphql<{ flows: unknown[] }>(FLOWS, {}, { token: staff });
    expect(asStaff.errors).toBeUndefined();
    expect(asStaff.data!.flows).toHaveLength(1);
  });
});

describe('a flow without a caller', () => {
  it('is refused once callers are verified: its steps would act for nobody', async () => {
    const { data, errors } = await t.graphql(ECHO, { input: { channel: 'WEB' } });
    expect(errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(data?.echoCaller ?? null).toBeNull();
  });
});

describe('a step with a condition', () => {
  it('runs when the flow data matches and is recorded as skipped when it does not', async () => {
    const mobile = await t.graphql<{ echoCaller: { flow: { status: string; steps: unknown[] } } }>(
      ECHO,
      { input: { channel: 'MOBILE' } },
      { token: learner },
    );
    expect(mobile.data!.echoCaller.flow.status).toBe('COMPLETED');
    expect(mobile.data!.echoCaller).toMatchObject({ callerKind: null, callerName: null, audited: null });
    expect(mobile.data!.echoCaller.flow.steps).toEqual([
      { action: 'whoCalls', status: 'SKIPPED', flagDecisions: [] },
    ]);
  });
});

describe('the order entity', () => {
  it('carries its flows, read for a page of orders with one query, for staff only', async () => {
    const orderId = `entity-${Date.now()}`;
    const refund = await t.graphql<{ requestRefund: { flow: { id: string } } }>(
      'mutation($input: RefundRequestInput!) { requestRefund(input: $input) { flow { id } } }',
      { input: { orderId, amount: 5 } },
      { token: staff },
    );
    expect(refund.errors).toBeUndefined();
    const query = 'query($ids: [ID!]!) { orders(ids: $ids) { id number flows { id name status } } }';
    type Page = { orders: Array<{ id: string; number: string; flows: Array<Record<string, string>> }> };
    // The refund flow, then its two signals' receiver runs, all about the order.
    const page = await waitFor(async () => {
      const answer = await t.graphql<Page>(query, { ids: [orderId, 'no-flows'] }, { token: staff });
      expect(answer.errors).toBeUndefined();
      const flows = answer.data!.orders[0]!.flows;
      return flows.length === 3 && flows.every((f) => f.status === 'COMPLETED') && answer.data!;
    });
    expect(page.orders[0]).toMatchObject({ id: orderId, number: `ORD-${orderId}` });
    expect(page.orders[0]!.flows.map((f) => f.name).sort()).toEqual([
      'order.refund.requested.v1',
      'order.refunded.v1',
      'payment.refunded.v1',
    ]);
    // Newest first: the filter's own run started before its signals' receivers.
    expect(page.orders[0]!.flows.at(-1)).toEqual({
      id: refund.data!.requestRefund.flow.id,
      name: 'order.refund.requested.v1',
      status: 'COMPLETED',
    });
    expect(page.orders[1]).toEqual({ id: 'no-flows', number: 'ORD-no-flows', flows: [] });
    const asLearner = await t.graphql(query, { ids: [orderId] }, { token: learner });
    expect(asLearner.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});

describe('a step whose Action returns a list', () => {
  it('stores the whole result under its `as` name', async () => {
    const { data, errors } = await t.graphql<{ lookupOrders: { flow: { output: unknown } } }>(
      'query($input: LookupInput!) { lookupOrders(input: $input) { flow { output } } }',
      { input: { ids: ['1', '2'] } },
      { token: staff },
    );
    expect(errors).toBeUndefined();
    // The step's result is what its Action's subgraph returns: not the fields other subgraphs add to
    // the entity (its payments), which would make every run call them too.
    expect(data!.lookupOrders.flow.output).toEqual({
      ids: ['1', '2'],
      page: [
        { id: '1', number: 'ORD-1' },
        { id: '2', number: 'ORD-2' },
      ],
    });
  });
});

describe("a Plugin's route (a Service's webhook)", () => {
  const send = (event: Record<string, unknown>, secret = WEBHOOK_SECRET) => {
    const body = JSON.stringify(event);
    return fetch(`${t.url}/payments/webhook`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-ledger-signature': createHmac('sha256', secret).update(body).digest('hex'),
      },
      body,
    });
  };

  it('commits the event as a signal once, however often the Service sends it, and its receiver runs once', async () => {
    const orderId = `webhook-${Date.now()}`;
    const event = { id: `evt-${orderId}`, orderId, refundId: 're-1' };
    const answers = await Promise.all([send(event), send(event), send(event)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    const bodies = (await Promise.all(answers.map((a) => a.json()))) as Array<{ duplicate: boolean }>;
    expect(bodies.filter((b) => !b.duplicate)).toHaveLength(1);
    await waitFor(() => t.ledger.operations().some((o) => o.orderId === orderId && o.kind === 'record'));
    // A late repeat, after delivery, is still a duplicate.
    expect(((await (await send(event)).json()) as { duplicate: boolean }).duplicate).toBe(true);
    const receiverRuns = await t.graphql<{ flows: Array<{ receiver: string }> }>(
      `query($o: String) { flows(orderId: $o) { receiver } }`,
      { o: orderId },
      { token: staff },
    );
    expect(receiverRuns.data!.flows).toEqual([{ receiver: 'record-psp-refund' }]);
    expect(t.ledger.operations().filter((o) => o.orderId === orderId)).toHaveLength(1);
  });

  it('answers an event id longer than 255 characters with 400 BAD_USER_INPUT, and commits nothing', async () => {
    // Incompressible: PostgreSQL's index on the signal's dedupe key took it whole, and refused it.
    const id = randomBytes(1400).toString('hex');
    const orderId = `long-id-${Date.now()}`;
    const res = await send({ id, orderId, refundId: 're-1' });
    expect({ status: res.status, body: await res.json() }).toEqual({
      status: 400,
      body: { code: 'BAD_USER_INPUT', message: 'The event id is longer than 255 characters' },
    });
    const outbox = t.coordinator.components.database.prisma.outboxSignal;
    expect(await outbox.count({ where: { payload: { path: ['orderId'], equals: orderId } } })).toBe(0);
    // At 255 characters it is an event like any other.
    expect((await send({ id: 'e'.repeat(255), orderId, refundId: 're-1' })).status).toBe(200);
  });

  it('answers what the plugin answers to a bad signature, and 405 to another method', async () => {
    const res = await send({ id: 'evt-forged', orderId: 'x', refundId: 'y' }, 'wrong-secret');
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ code: 'invalid_signature' });
    const get = await fetch(`${t.url}/payments/webhook`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
  });

  it('refuses a request whose bearer token does not verify, before the plugin sees it', async () => {
    const res = await fetch(`${t.url}/payments/webhook`, {
      method: 'POST',
      headers: { authorization: 'Bearer forged' },
      body: '{}',
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { code: string }).code).toBe('UNAUTHENTICATED');
  });
});

describe('flags in the Plugin', () => {
  it("evaluates a Transition-to-Coordinator flag in the caller's (learner's) context", async () => {
    await t.testData.update(
      t.testData
        .flag('transition.history.coordinator')
        .booleanFlag()
        .fallthroughVariation(false)
        .variationForContext('user', '7', true),
    );
    const ask = (jwt: string) =>
      t.graphql<{ flag: boolean }>('{ flag(name: "transition.history.coordinator") }', {}, { token: jwt });
    expect((await ask(learner)).data!.flag).toBe(true);
    expect((await ask(otherLearner)).data!.flag).toBe(false);
  });
});

describe("a Plugin's background work", () => {
  it('starts with the Coordinator and is stopped with it', async () => {
    const before = { ...lifecycle };
    expect(before.started).toBeGreaterThan(before.stopped);
    const other = await startTestCoordinator('plugins-lifecycle', { redis: false });
    expect(lifecycle.started).toBe(before.started + 1);
    await other.stop();
    expect(lifecycle.stopped).toBe(before.stopped + 1);
  });
});

describe('queries, mutations and subscribes over the socket, once callers are verified', () => {
  const connect = (authorization: string, options: Parameters<typeof subscriptionClient>[1] = {}) => {
    const client = subscriptionClient(t.url, { connectionParams: { authorization }, ...options });
    clients.push(client);
    return client;
  };
  const clients: Array<ReturnType<typeof subscriptionClient>> = [];
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
  });
  const once = async (client: ReturnType<typeof subscriptionClient>, query: string, variables = {}) => {
    const run = collect(client, { query, variables }, (d) => d);
    await Promise.race([run.completed.promise, run.failed.promise]);
    return {
      events: run.events,
      errors: run.resultErrors,
      failed: run.failed.settled ? await run.failed.promise : undefined,
    };
  };
  const codes = (errors: unknown) =>
    (errors as Array<{ extensions?: { code?: string } }>).map((e) => e.extensions?.code);

  it("runs a query as the connection's caller, against the whole graph (a Plugin's field too)", async () => {
    const client = connect(`Bearer ${staff}`);
    expect(await once(client, '{ caller { callerKind callerName } }')).toEqual({
      events: [{ caller: { callerKind: 'staff', callerName: 'grace' } }],
      errors: [],
      failed: undefined,
    });
    expect((await once(client, FLOWS)).events).toEqual([{ flows: expect.any(Array) }]);
    // Refused as over HTTP, as an error message for it: an unknown field, variables of the wrong type.
    expect(codes((await once(client, '{ nope }')).failed)).toEqual(['GRAPHQL_VALIDATION_FAILED']);
    const wrong = await once(client, 'query($n: Int) { flows(limit: $n) { id } }', { n: 'many' });
    expect(codes(wrong.failed)).toEqual(['BAD_USER_INPUT']);
  });

  it('counts an Authorization header on the handshake, as README says', async () => {
    class WithHeader extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols, { headers: { authorization: `Bearer ${staff}` } });
      }
    }
    const client = subscriptionClient(t.url, { webSocketImpl: WithHeader });
    clients.push(client);
    expect((await once(client, '{ caller { callerKind } }')).events).toEqual([
      { caller: { callerKind: 'staff' } },
    ]);
  });

  it('closes a connection with 4403 once its token expires, and a reconnect with it is refused', async () => {
    const shortLived = await signToken(
      TEST_JWT_SECRET,
      { kind: 'staff', username: 'brief' },
      { expiresIn: '2s' },
    );
    const client = connect(`Bearer ${shortLived}`, { retryAttempts: 0 });
    const held = collect(
      client,
      { query: 'subscription { signals(name: "payment.refunded.v1") { id } }' },
      (d) => d,
    );
    expect((await once(client, '{ caller { callerKind } }')).events).toEqual([
      { caller: { callerKind: 'staff' } },
    ]);
    const opened = Date.now();
    // Before, its subscription streamed on for as long as the socket stayed open.
    const closed = (await held.failed.promise) as { code: number; reason: string };
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 4403, reason: 'The token expired' });
    expect(Date.now() - opened).toBeLessThan(3_500);
    const again = await once(client, '{ caller { callerKind } }');
    expect((again.failed as { code: number }).code).toBe(4403);
  });

  it('refuses subscription variables of the wrong type, or missing, with BAD_USER_INPUT', async () => {
    const client = connect(`Bearer ${staff}`);
    const query = 'subscription($n: String!) { signals(name: $n) { id } }';
    for (const variables of [{ n: { a: 1 } }, {}])
      expect(codes((await once(client, query, variables)).failed)).toEqual(['BAD_USER_INPUT']);
  });
});

describe('subscriptions once callers are verified', () => {
  const subscribe = (authorization?: string) => {
    const client = subscriptionClient(t.url, {
      connectionParams: authorization ? { authorization } : {},
    });
    return {
      client,
      run: collect(
        client,
        { query: 'subscription { signals(name: "payment.refunded.v1") { id } }' },
        (d) => d,
      ),
    };
  };

  it('close a connection without a staff or Service token with 4403, and serve one with it', async () => {
    for (const authorization of [undefined, `Bearer ${learner}`]) {
      const { client, run } = subscribe(authorization);
      expect(((await run.failed.promise) as { code: number }).code).toBe(4403);
      await client.dispose();
    }
    const { client, run } = subscribe(`Bearer ${staff}`);
    // Until the subscription is live, a signal may pass before it: send new events until one arrives.
    let n = 0;
    await waitFor(async () => {
      const body = JSON.stringify({ id: `evt-sub-${Date.now()}-${++n}`, orderId: `sub-${n}`, refundId: 'r' });
      await fetch(`${t.url}/payments/webhook`, {
        method: 'POST',
        headers: { 'x-ledger-signature': createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex') },
        body,
      });
      return run.events.length > 0;
    });
    expect(run.failed.settled).toBe(false);
    run.unsubscribe();
    await client.dispose();
  });
});
