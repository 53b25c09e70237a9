import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Coordinator } from '../../gateway/coordinator.js';
import { readEnv } from '../../gateway/env.js';
import { ConfigError } from '../../gateway/errors.js';
import { silentLogger } from '../../gateway/log.js';
import { serveSubgraph } from '@commerce-coordinator/plugin-sdk';
import { createTestDatabase } from '../support/database.js';
import ordersPlugin from '../fixtures/subgraphs/orders/index.js';
import {
  REQUEST_REFUND,
  fixture,
  startTestCoordinator,
  type TestCoordinator,
} from '../support/coordinator.js';
import {
  ASSERTION_HEADER,
  serveFixturePlugins,
  TEST_SUBGRAPH_SIGNING_SECRET,
  type ReceivedRequest,
  type RemoteSubgraphs,
} from '../support/remote-subgraphs.js';
import { isMigrated } from '../support/resources.js';
import { waitFor } from '../support/wait.js';

type Step = {
  index: number;
  action: string;
  status: string;
  implementation: string | null;
  attempt: number;
  idempotencyKey: string;
  output: Record<string, unknown> | null;
  flagDecisions: Array<{ flag: string; value: boolean; reason: string }>;
};
type Flow = { id: string; status: string; orderId: string; output: Record<string, unknown>; steps: Step[] };

let remote: RemoteSubgraphs;
let t: TestCoordinator;
let orderSeq = 0;
const nextOrder = () => `remote-order-${++orderSeq}-${Date.now()}`;

beforeAll(async () => {
  remote = await serveFixturePlugins();
  t = await startTestCoordinator('remote-subgraphs', { overrides: remote.coordinatorOptions });
});
afterAll(async () => {
  await t?.stop();
  await remote?.close();
});

const refund = async (input: Record<string, unknown>) => {
  const { data, errors } = await t.graphql<{ requestRefund: { flow: Flow } }>(REQUEST_REFUND, { input });
  expect(errors).toBeUndefined();
  return data!.requestRefund.flow;
};

/** The requests a subgraph server received for one flow: those whose signed step names the flow. */
const requestsOfFlow = (subgraph: string, flowId: string) =>
  remote.requests(subgraph).filter((r) => r.claims?.step?.flowId === flowId);

const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url');

describe('the refund flow with every plugin served as a remote subgraph', () => {
  it('completes with the same step records as in process, every Action crossing an HTTP hop', async () => {
    const orderId = nextOrder();
    const flow = await refund({ orderId, amount: 40, learnerId: 'learner-1' });
    expect(flow.status).toBe('COMPLETED');
    expect(
      flow.steps.map((s) => [s.index, s.action, s.status, s.implementation, s.attempt, s.idempotencyKey]),
    ).toEqual([
      [0, 'haltIfLegacy', 'COMPLETED', 'orders', 1, `${flow.id}:0`],
      [1, 'createReturn', 'COMPLETED', 'orders', 1, `${flow.id}:1`],
      [2, 'refundPayment', 'COMPLETED', 'payments', 1, `${flow.id}:2`],
      [3, 'recordRefund', 'COMPLETED', 'orders', 1, `${flow.id}:3`],
    ]);
    expect(flow.output).toMatchObject({
      orderId,
      amount: 40,
      refundAmount: 40,
      psp: 'payments',
      recorded: true,
    });
    expect(flow.output.refundId).toMatch(/^refund-/);
    // The subgraph servers, not in-process resolvers, served the steps.
    expect(requestsOfFlow('orders', flow.id).map((r) => r.claims!.step!.stepIndex)).toEqual([0, 1, 3]);
    expect(requestsOfFlow('payments', flow.id).map((r) => r.claims!.step!.stepIndex)).toEqual([2]);
    expect(requestsOfFlow('payments-v2', flow.id)).toEqual([]);
  });

  it('signs the step identity, the subgraph and the body of each call, and sends no bare step headers', async () => {
    const orderId = nextOrder();
    const flow = await refund({ orderId, amount: 12 });
    const [paymentsRequest] = requestsOfFlow('payments', flow.id);
    const claims = paymentsRequest!.claims!;
    expect(claims).toMatchObject({
      aud: 'payments',
      step: { flowId: flow.id, stepIndex: 2, attempt: 1, idempotencyKey: `${flow.id}:2` },
      bodySha256: sha256(paymentsRequest!.raw),
    });
    // An anonymous flow (the test Coordinator verifies no callers) asserts no principal.
    expect(claims.principal).toBeUndefined();
    expect(claims.exp! - claims.iat!).toBeLessThanOrEqual(60);
    for (const bare of [
      'idempotency-key',
      'x-coordinator-flow-id',
      'x-coordinator-step',
      'x-coordinator-principal',
    ])
      expect(paymentsRequest!.headers[bare]).toBeUndefined();
    expect(
      t.ledger
        .operations()
        .filter((o) => o.key.startsWith(`${flow.id}:`))
        .map((o) => [o.kind, o.key]),
    ).toEqual([
      ['return', `${flow.id}:1`],
      ['refund', `${flow.id}:2`],
      ['record', `${flow.id}:3`],
    ]);
  });

  it("commits a signal emitted by a remote plugin's resolver and runs its receiver", async () => {
    const orderId = nextOrder();
    const flow = await refund({ orderId, amount: 11, learnerId: 'learner-9' });
    expect(flow.status).toBe('COMPLETED');
    // payments emits payment.refunded.v1 inside refundPayment; its receiver record-psp-refund calls recordRefund.
    const runs = await waitFor(
      async () => {
        const { data } = await t.graphql<{
          flows: Array<{
            id: string;
            name: string;
            receiver: string | null;
            status: string;
            input: Record<string, unknown>;
          }>;
        }>(`query($o: String) { flows(orderId: $o) { id name receiver status input } }`, { o: orderId });
        const receivers = data!.flows.filter((f) => f.receiver);
        expect(receivers.map((f) => [f.name, f.receiver, f.status]).sort()).toEqual([
          ['order.refunded.v1', 'revoke-enrollment', 'COMPLETED'],
          ['payment.refunded.v1', 'record-psp-refund', 'COMPLETED'],
        ]);
        return receivers;
      },
      { timeoutMs: 10_000, what: 'receiver runs' },
    );
    const pspRun = runs.find((r) => r.receiver === 'record-psp-refund')!;
    expect(pspRun.input).toEqual({ orderId, refundId: flow.output.refundId });
    // The receiver's Action went over HTTP too, to orders, with the receiver run's own key, signed as the
    // Coordinator's own service principal, and reached the ledger.
    expect(
      requestsOfFlow('orders', pspRun.id).map((r) => [
        r.body.query.match(/\{\s*(\w+)/)?.[1],
        r.claims!.step!.idempotencyKey,
        r.claims!.principal?.kind,
      ]),
    ).toEqual([['recordRefund', `${pspRun.id}:0`, 'service']]);
    expect(
      t.ledger
        .operations()
        .filter((o) => o.key === `${pspRun.id}:0`)
        .map((o) => [o.kind, o.orderId]),
    ).toEqual([['record', orderId]]);
  });

  it('moves refundPayment to payments-v2 when the Transition-to-Plugin flag says so', async () => {
    const orderId = nextOrder();
    await t.testData.update(
      t.testData
        .flag('transition.refunds.payments-v2')
        .booleanFlag()
        .fallthroughVariation(false)
        .variationForContext('order', orderId, true),
    );
    const moved = await refund({ orderId, amount: 9 });
    expect(moved.steps[2]).toMatchObject({
      action: 'refundPayment',
      implementation: 'payments-v2',
      output: { psp: 'payments-v2' },
    });
    expect(moved.steps[2]!.flagDecisions).toEqual([
      { flag: 'transition.refunds.payments-v2', value: true, reason: 'TARGET_MATCH' },
    ]);
    expect(
      requestsOfFlow('payments-v2', moved.id).map((r) => [r.claims!.aud, r.claims!.step!.idempotencyKey]),
    ).toEqual([['payments-v2', `${moved.id}:2`]]);
    expect(requestsOfFlow('payments', moved.id)).toEqual([]);

    const other = await refund({ orderId: nextOrder(), amount: 9 });
    expect(other.steps[2]).toMatchObject({ implementation: 'payments', output: { psp: 'payments' } });
    expect(requestsOfFlow('payments', other.id)).toHaveLength(1);
  });
});

const REVOKE = `mutation($input: RevokeEnrollmentInput!) { revokeEnrollment(input: $input) { revokedEnrollment } }`;
const CREATE_RETURN = `mutation($input: CreateReturnInput!) { createReturn(input: $input) { returnId } }`;
const staffHeader = Buffer.from(
  JSON.stringify({ kind: 'staff', subject: 'staff-1', username: 'support' }),
).toString('base64url');

/** A refusal of a subgraph: 401, a GraphQL-shaped body, UNAUTHENTICATED, and why. */
const refused = (why: RegExp) => ({
  status: 401,
  body: { errors: [{ message: expect.stringMatching(why), extensions: { code: 'UNAUTHENTICATED' } }] },
});

/** The headers a captured call carried that a replay would send again (not the connection's own). */
const replayHeaders = (request: ReceivedRequest) =>
  Object.fromEntries(
    Object.entries(request.headers).filter(
      (entry): entry is [string, string] =>
        typeof entry[1] === 'string' &&
        !['host', 'content-length', 'connection', 'transfer-encoding'].includes(entry[0]),
    ),
  );

/** The call a finished flow's step made to a subgraph, as an eavesdropper would have captured it. */
async function capturedCall(subgraph: string, action: string): Promise<ReceivedRequest> {
  const flow = await refund({ orderId: nextOrder(), amount: 7 });
  expect(flow.status).toBe('COMPLETED');
  const call = remote
    .requests(subgraph)
    .find((r) => r.body.query.includes(action) && r.raw.includes(flow.orderId));
  expect(call).toBeDefined();
  return call!;
}

describe('calls that reach a remote subgraph without the gateway signing them', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('refuses a forged staff principal header, and the Action does not run', async () => {
    const before = t.ledger.calls('/operations/revoke');
    const answer = await remote.post(
      'orders',
      JSON.stringify({ query: REVOKE, variables: { input: { orderId: nextOrder() } } }),
      { 'x-coordinator-principal': staffHeader, 'idempotency-key': 'forged-revoke-1' },
    );
    expect(answer).toEqual(refused(/signed by the Coordinator/));
    expect(t.ledger.calls('/operations/revoke')).toBe(before);
  });

  it('refuses a bare flow id and idempotency key: no made-up flow step runs', async () => {
    const before = t.ledger.calls('/operations/return');
    const answer = await remote.post(
      'orders',
      JSON.stringify({ query: CREATE_RETURN, variables: { input: { orderId: nextOrder(), amount: 99 } } }),
      {
        'x-coordinator-flow-id': 'flow-made-up',
        'x-coordinator-step': '1',
        'x-coordinator-attempt': '1',
        'idempotency-key': 'flow-made-up:1',
      },
    );
    expect(answer).toEqual(refused(/signed by the Coordinator/));
    expect(t.ledger.calls('/operations/return')).toBe(before);
  });

  it("refuses a captured call's signature sent with another body", async () => {
    const call = await capturedCall('orders', 'createReturn');
    const before = t.ledger.calls('/operations/return');
    const body = JSON.stringify({
      ...call.body,
      variables: { input: { orderId: nextOrder(), amount: 99 } },
    });
    expect(await remote.post('orders', body, replayHeaders(call))).toEqual(refused(/body/));
    expect(t.ledger.calls('/operations/return')).toBe(before);
  });

  it("refuses a captured call's signature sent to another subgraph", async () => {
    const call = await capturedCall('payments', 'refundPayment');
    const before = t.ledger.calls('/operations/refund');
    // payments-v2 serves the same Action (a progressive @override): the body is valid there too.
    expect(await remote.post('payments-v2', call.raw, replayHeaders(call))).toEqual(
      refused(/addressed to another subgraph/),
    );
    expect(t.ledger.calls('/operations/refund')).toBe(before);
  });

  it('refuses a captured call sent again as it was', async () => {
    const call = await capturedCall('orders', 'createReturn');
    const before = t.ledger.calls('/operations/return');
    expect(await remote.post('orders', call.raw, replayHeaders(call))).toEqual(refused(/already/));
    expect(t.ledger.calls('/operations/return')).toBe(before);
  });

  it("refuses a captured call's signature once it has expired", async () => {
    const call = await capturedCall('orders', 'createReturn');
    const before = t.ledger.calls('/operations/return');
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 2 * 60_000);
    expect(await remote.post('orders', call.raw, replayHeaders(call))).toEqual(refused(/expired/));
    expect(t.ledger.calls('/operations/return')).toBe(before);
  });

  it('refuses a captured signature whose claims were changed (another principal)', async () => {
    const call = await capturedCall('orders', 'createReturn');
    const [head, , signature] = (call.headers[ASSERTION_HEADER] as string).split('.');
    const claims = { ...call.claims, principal: { kind: 'staff', subject: 'staff-1', username: 'support' } };
    const forged = `${head}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
    const before = t.ledger.calls('/operations/return');
    expect(await remote.post('orders', call.raw, { [ASSERTION_HEADER]: forged })).toEqual(
      refused(/signature/),
    );
    expect(t.ledger.calls('/operations/return')).toBe(before);
  });

  it("does not pass a client's x-coordinator-* headers on to a subgraph", async () => {
    const res = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-coordinator-principal': staffHeader,
        'x-coordinator-flow-id': 'flow-made-up',
        'idempotency-key': 'flow-made-up:0',
      },
      body: JSON.stringify({ query: 'mutation { whoCalls(input: {}) { callerKind } }' }),
    });
    expect(await res.json()).toEqual({ data: { whoCalls: { callerKind: 'anonymous' } } });
    const [call] = remote.requests('orders').filter((r) => r.body.query.includes('whoCalls'));
    expect(call!.claims).toMatchObject({ aud: 'orders' });
    expect(call!.claims!.principal).toBeUndefined();
    expect(call!.claims!.step).toBeUndefined();
  });
});

describe('start-up without the subgraph signing secret', () => {
  it('a gateway with remote subgraphs and no secret refuses to start, before it opens anything', async () => {
    const database = await createTestDatabase('remote-no-secret', { migrate: false });
    try {
      const coordinator = new Coordinator({
        roverConfig: remote.roverConfig,
        connectionsFile: fixture('connections.yaml'),
        subgraphsDir: fixture('subgraphs'),
        remoteSubgraphs: ['orders'],
        database: { url: database.url },
        flags: { testData: t.testData },
        port: 0,
        logger: silentLogger,
      });
      const error = await coordinator.start().then(
        () => coordinator.stop().then(() => undefined),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems).toEqual([
        expect.stringMatching(/^SUBGRAPH_SIGNING_SECRET: .*REMOTE_SUBGRAPHS names orders/),
      ]);
      expect(coordinator.state.phase).toBe('failed to start');
      expect(await isMigrated(database.url)).toBe(false);
    } finally {
      await database.drop();
    }
  });

  it('the environment refuses a secret shorter than 32 bytes', () => {
    expect(() => readEnv({ SUBGRAPH_SIGNING_SECRET: 'too-short' })).toThrow(ConfigError);
    expect(() => readEnv({ SUBGRAPH_SIGNING_SECRET: 'too-short' })).toThrow(
      /SUBGRAPH_SIGNING_SECRET: must be at least 32 bytes/,
    );
    expect(readEnv({ SUBGRAPH_SIGNING_SECRET: TEST_SUBGRAPH_SIGNING_SECRET }).SUBGRAPH_SIGNING_SECRET).toBe(
      TEST_SUBGRAPH_SIGNING_SECRET,
    );
  });

  it('the environment refuses a signing secret equal to JWT_SECRET', () => {
    expect(() =>
      readEnv({
        SUBGRAPH_SIGNING_SECRET: TEST_SUBGRAPH_SIGNING_SECRET,
        JWT_SECRET: TEST_SUBGRAPH_SIGNING_SECRET,
      }),
    ).toThrow(/SUBGRAPH_SIGNING_SECRET: must differ from JWT_SECRET/);
  });

  it('serveSubgraph answers a body over 1 MiB with 413, without holding it', async () => {
    const served = await serveSubgraph(ordersPlugin, {
      secret: TEST_SUBGRAPH_SIGNING_SECRET,
      name: 'orders',
    });
    try {
      const res = await fetch(served.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-coordinator-assertion': 'a.b.c' },
        body: JSON.stringify({ query: `{ ${'x'.repeat(2 << 20)} }` }),
      });
      expect(res.status).toBe(413);
      expect(await res.json()).toMatchObject({ errors: [{ extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
    } finally {
      await served.close();
    }
  });

  it('serveSubgraph refuses to start without a secret, or with a short one', async () => {
    for (const options of [undefined, {}, { secret: '' }, { secret: 'x'.repeat(31) }]) {
      const served = serveSubgraph(ordersPlugin, options as never);
      const error = await served.then(
        (s) => s.close().then(() => undefined),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems).toEqual([expect.stringMatching(/^secret: /)]);
    }
  });
});
