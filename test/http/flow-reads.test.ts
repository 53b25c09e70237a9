import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { FlowFields } from '../../gateway/flows/store.js';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { waitFor } from '../support/wait.js';

const REFUND = 'order.refund.requested.v1';
const NOTHING: FlowFields = { input: false, output: false, failure: false, principal: false, steps: false };

/** The flow records API loads what the query shows: the JSON columns and the steps only when selected. */
describe('reads of flow records', () => {
  let t: TestCoordinator;
  let flowId: string;
  const orderId = 'reads-order-1';
  beforeAll(async () => {
    t = await startTestCoordinator('http-flow-reads', { redis: false });
    const { data } = await t.graphql<{ requestRefund: { flow: { id: string; status: string } } }>(
      REQUEST_REFUND,
      {
        input: { orderId, amount: 7 },
      },
    );
    expect(data!.requestRefund.flow.status).toBe('COMPLETED');
    flowId = data!.requestRefund.flow.id;
    // Its signals' receiver runs are about the order too: recorded by the time the reads start.
    await waitFor(async () => {
      const runs = await t.graphql<{ flows: Array<{ status: string }> }>(
        `{ flows(orderId: "${orderId}") { status } }`,
      );
      expect(runs.data!.flows.map((f) => f.status)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    });
  });
  afterAll(async () => t?.stop());
  afterEach(() => vi.restoreAllMocks());

  const store = () => t.coordinator.components.store;

  it('loads neither the JSON columns nor the steps of flows whose selection shows neither', async () => {
    const list = vi.spyOn(store(), 'list');
    const { data } = await t.graphql(
      `{ flows(orderId: "${orderId}", name: "${REFUND}") { id name status error { code } } }`,
    );
    expect(data).toEqual({
      flows: [{ id: flowId, name: 'order.refund.requested.v1', status: 'COMPLETED', error: null }],
    });
    expect(list.mock.calls.map((c) => c[1])).toEqual([NOTHING]);
  });

  it('loads the steps, and of them only the columns selected, through fragments too', async () => {
    const list = vi.spyOn(store(), 'list');
    const { data } = await t.graphql<{ flows: Array<{ input: unknown; steps: unknown[] }> }>(`
      { flows(orderId: "${orderId}", name: "${REFUND}") { input ...Steps } }
      fragment Steps on FlowRun { steps { action output error { details } } }`);
    expect(data!.flows).toEqual([
      {
        input: { orderId, amount: 7 },
        steps: [
          { action: 'haltIfLegacy', output: { orderId }, error: null },
          { action: 'createReturn', output: { returnId: expect.any(String), refundAmount: 7 }, error: null },
          {
            action: 'refundPayment',
            output: { refundId: expect.any(String), refundedAmount: 7, psp: 'payments' },
            error: null,
          },
          { action: 'recordRefund', output: { recorded: true }, error: null },
        ],
      },
    ]);
    expect(list.mock.calls.map((c) => c[1])).toEqual([
      { ...NOTHING, input: true, steps: { input: false, output: true, failure: true, flagDecisions: false } },
    ]);
  });

  it('reads one flow by id with what its selection shows', async () => {
    const flow = vi.spyOn(store(), 'flow');
    const { data } = await t.graphql(
      `{ flow(id: "${flowId}") { status startedBy steps { index flagDecisions { flag } } } }`,
    );
    expect(data).toEqual({
      flow: {
        status: 'COMPLETED',
        startedBy: null,
        steps: [
          { index: 0, flagDecisions: [] },
          { index: 1, flagDecisions: [] },
          // The refund's Transition-to-Plugin flag chose its Implementation.
          { index: 2, flagDecisions: [{ flag: 'transition.refunds.payments-v2' }] },
          { index: 3, flagDecisions: [] },
        ],
      },
    });
    expect(flow.mock.calls).toEqual([
      [
        flowId,
        {
          ...NOTHING,
          principal: true,
          steps: { input: false, output: false, failure: false, flagDecisions: true },
        },
      ],
    ]);
  });

  it("loads an order's flows once per distinct selection", async () => {
    const byOrders = vi.spyOn(store(), 'byOrders');
    const { data } = await t.graphql<{
      orders: Array<{
        id: string;
        flows: unknown[];
        again: unknown[];
        withOutput: Array<{ output: unknown }>;
      }>;
    }>(`{ orders(ids: ["${orderId}", "reads-none"]) {
      id flows { id } again: flows { id } withOutput: flows { id output } } }`);
    const [order, none] = data!.orders;
    // The filter's run and its two signals' receiver runs, newest first.
    expect(order!.flows).toHaveLength(3);
    expect(order!.flows).toContainEqual({ id: flowId });
    expect(order!.again).toEqual(order!.flows);
    expect(order!.withOutput.map(({ output: _, ...id }) => id)).toEqual(order!.flows);
    expect(order!.withOutput).toContainEqual({
      id: flowId,
      output: expect.objectContaining({ orderId, recorded: true }),
    });
    expect(none).toEqual({ id: 'reads-none', flows: [], again: [], withOutput: [] });
    expect(byOrders.mock.calls.map((c) => c[1])).toEqual([NOTHING, { ...NOTHING, output: true }]);
  });

  it('leaves out of the records it reads the columns not asked for', async () => {
    const [bare] = await store().list({ orderId, name: REFUND, limit: 1 }, NOTHING);
    expect(bare).toEqual(expect.objectContaining({ id: flowId, status: 'completed' }));
    for (const column of ['input', 'output', 'failure', 'principal', 'steps'])
      expect(bare).not.toHaveProperty(column);
    const whole = await store().flow(flowId, {
      ...NOTHING,
      steps: { input: false, output: true, failure: false, flagDecisions: false },
    });
    expect(whole!.steps).toHaveLength(4);
    expect(whole!.steps![1]).toHaveProperty('output');
    expect(whole!.steps![1]).not.toHaveProperty('input');
    // Without fields, the whole record: what the engine and recovery read.
    const full = await store().flow(flowId);
    expect(full).toEqual(expect.objectContaining({ input: { orderId, amount: 7 }, principal: null }));
    expect(full!.steps[0]).toEqual(
      expect.objectContaining({ input: { orderId }, output: { orderId }, flagDecisions: null }),
    );
  });
});
