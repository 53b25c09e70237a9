import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StepHeader } from '../../gateway/sdk/plugin.js';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { serveFixturePlugins, type RemoteSubgraphs } from '../support/remote-subgraphs.js';
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

const refund = async (input: Record<string, unknown>) => {
  const { data, errors } = await t.graphql<{ requestRefund: Flow }>(REQUEST_REFUND, { input });
  expect(errors).toBeUndefined();
  return data!.requestRefund;
};

/** The requests a subgraph server received for one flow: those carrying the flow's id header. */
const requestsOfFlow = (subgraph: string, flowId: string) =>
  remote.requests(subgraph).filter((r) => r.headers[StepHeader.flowId] === flowId);

describe('the refund flow with every plugin served as a remote subgraph', () => {
  beforeAll(async () => {
    remote = await serveFixturePlugins();
    t = await startTestCoordinator('remote-subgraphs', {
      overrides: { roverConfig: remote.roverConfig, remoteSubgraphs: ['*'] },
    });
  });
  afterAll(async () => {
    await t?.stop();
    await remote?.close();
  });

  it('completes with the same step records as in process, every Action crossing an HTTP hop', async () => {
    const orderId = nextOrder();
    const flow = await refund({ orderId, amount: 40, learnerId: 'learner-1' });
    expect(flow.status).toBe('COMPLETED');
    expect(
      flow.steps.map((s) => [s.index, s.action, s.status, s.implementation, s.attempt, s.idempotencyKey]),
    ).toEqual([
      [0, 'haltIfLegacy', 'completed', 'orders', 1, `${flow.id}:0`],
      [1, 'createReturn', 'completed', 'orders', 1, `${flow.id}:1`],
      [2, 'refundPayment', 'completed', 'payments', 1, `${flow.id}:2`],
      [3, 'recordRefund', 'completed', 'orders', 1, `${flow.id}:3`],
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
    expect(requestsOfFlow('orders', flow.id).map((r) => r.headers[StepHeader.stepIndex])).toEqual([
      '0',
      '1',
      '3',
    ]);
    expect(requestsOfFlow('payments', flow.id).map((r) => r.headers[StepHeader.stepIndex])).toEqual(['2']);
    expect(requestsOfFlow('payments-v2', flow.id)).toEqual([]);
  });

  it('carries the idempotency key through the HTTP hop to the Service', async () => {
    const orderId = nextOrder();
    const flow = await refund({ orderId, amount: 12 });
    const [paymentsRequest] = requestsOfFlow('payments', flow.id);
    expect(paymentsRequest!.headers).toMatchObject({
      [StepHeader.idempotencyKey]: `${flow.id}:2`,
      [StepHeader.flowId]: flow.id,
      [StepHeader.stepIndex]: '2',
      [StepHeader.attempt]: '1',
    });
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
    // The receiver's Action went over HTTP too, to orders, with the receiver run's own key, and reached the ledger.
    expect(
      requestsOfFlow('orders', pspRun.id).map((r) => [
        r.body.query.match(/\{\s*(\w+)/)?.[1],
        r.headers[StepHeader.idempotencyKey],
      ]),
    ).toEqual([['recordRefund', `${pspRun.id}:0`]]);
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
    expect(requestsOfFlow('payments-v2', moved.id).map((r) => r.headers[StepHeader.idempotencyKey])).toEqual([
      `${moved.id}:2`,
    ]);
    expect(requestsOfFlow('payments', moved.id)).toEqual([]);

    const other = await refund({ orderId: nextOrder(), amount: 9 });
    expect(other.steps[2]).toMatchObject({ implementation: 'payments', output: { psp: 'payments' } });
    expect(requestsOfFlow('payments', other.id)).toHaveLength(1);
  });
});
