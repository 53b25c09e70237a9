import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { seedPaidOrder, standInState, type PaidOrder } from '../support/orders.js';
import { waitFor } from '../support/wait.js';

/**
 * retryFlow on the refund Purchase Flow end to end, with the real Plugins and every Service stand-in:
 * a refund that was compensated (the PSP declined it) and one that failed after the money moved are
 * retried to completion — one refund at the PSP, the refund transaction recorded, the enrollment
 * revoked by order.refunded.v1 — asserted on the flow record and the stand-ins' own state.
 */

let cc: CommerceCoordinator;

beforeAll(async () => {
  cc = await startCommerceCoordinator('operators-refund-retry');
});
afterAll(async () => {
  await cc?.stop();
});

interface Flow {
  id: string;
  status: string;
  attempt: number;
  output: Record<string, unknown> | null;
  steps: Array<{
    index: number;
    action: string;
    status: string;
    idempotencyKey: string;
    compensates: number | null;
  }>;
}
const FLOW = 'id status attempt output steps { index action status idempotencyKey compensates }';

async function requestRefund(order: PaidOrder) {
  const { errors } = await cc.graphql(
    `mutation ($input: RefundRequestInput!) { requestRefund(input: $input) { flow { id } } }`,
    { input: { orderId: order.orderId, lineItemIds: [order.lineItemIds[0]] } },
    cc.tokens.staff,
  );
  return { flowId: String(errors?.[0]?.extensions?.flowId), error: errors?.[0] };
}

async function retry(flowId: string): Promise<Flow> {
  const { data, errors } = await cc.graphql<{ retryFlow: Flow }>(
    `mutation ($id: ID!) { retryFlow(id: $id, reason: "the PSP said yes on the phone") { ${FLOW} } }`,
    { id: flowId },
    cc.tokens.staff,
  );
  expect(errors).toBeUndefined();
  return data!.retryFlow;
}

const steps = (flow: Flow) =>
  flow.steps.map((s) => [s.action, s.status, s.idempotencyKey.replace(flow.id, 'F')]);

describe('retrying the refund flow', () => {
  it('compensated after a PSP decline: runs the return again under a new key, refunds once, revokes', async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [14_900, 9_900] });
    cc.services.stripe.failNext({ method: 'POST', path: '/v1/refunds', status: 402 });
    const { flowId, error } = await requestRefund(order);
    expect(error?.extensions).toMatchObject({ code: 'CONFLICT', flowStatus: 'COMPENSATED' });
    expect(standInState(cc, order).returnItems.map((i) => i.paymentState)).toEqual(['NotRefunded']);

    const flow = await retry(flowId);

    expect(flow).toMatchObject({ status: 'COMPLETED', attempt: 2 });
    expect(steps(flow)).toEqual([
      // The lines as named (read-only) keep their key; the undone return and the refused refund get new
      // keys: their old ones would replay what is gone.
      ['refundLines', 'COMPLETED', 'F:0'],
      ['createReturn', 'COMPLETED', 'F:1:2'],
      ['settleReturn', 'SKIPPED', 'F:2'],
      ['refundStripePayment', 'COMPLETED', 'F:3:2'],
      ['refundPayPalPayment', 'SKIPPED', 'F:4'],
      ['recordRefundTransaction', 'COMPLETED', 'F:5'],
      ['markReturnNotRefunded', 'COMPLETED', 'F:6'],
    ]);
    expect(flow.steps[6]!.compensates).toBe(1);
    const state = standInState(cc, order);
    // The first return stays NotRefunded; the second is the one refunded, once, at the PSP.
    expect(state.returns.map((r) => [r.returnTrackingId, r.items.map((i) => i.paymentState)])).toEqual([
      [expect.any(String), ['NotRefunded']],
      [flow.output!.returnId, ['Refunded']],
    ]);
    expect(state.pspRefunds).toEqual([14_900]);
    expect(state.refundTransactions).toHaveLength(1);
    await waitFor(() => expect(standInState(cc, order).enrolled).toEqual([false, true]), {
      what: 'the refunded line to be revoked',
    });
  });

  it('failed after the money moved: records the refund it made, without refunding again', async () => {
    const order = seedPaidOrder(cc, 'PAYPAL', { prices: [14_900, 9_900] });
    cc.services.orderManagement.failNext(1, 400, '/edx-commerce/payments', 'POST');
    const { flowId, error } = await requestRefund(order);
    expect(error?.extensions).toMatchObject({ code: 'CONFLICT', flowStatus: 'FAILED' });
    expect(standInState(cc, order).pspRefunds).toEqual([14_900]);

    const flow = await retry(flowId);

    expect(flow).toMatchObject({ status: 'COMPLETED', attempt: 2 });
    expect(steps(flow)).toEqual([
      ['refundLines', 'COMPLETED', 'F:0'],
      ['createReturn', 'COMPLETED', 'F:1'],
      ['settleReturn', 'SKIPPED', 'F:2'],
      ['refundStripePayment', 'SKIPPED', 'F:3'],
      ['refundPayPalPayment', 'COMPLETED', 'F:4'],
      ['recordRefundTransaction', 'COMPLETED', 'F:5:2'],
      // The first run's compensation, refused because the money had moved, stays on the record.
      ['markReturnNotRefunded', 'FAILED', 'F:6'],
    ]);
    const state = standInState(cc, order);
    expect(state.pspRefunds).toEqual([14_900]);
    expect(state.refundTransactions).toHaveLength(1);
    expect(state.returnItems.map((i) => i.paymentState)).toEqual(['Refunded']);
    await waitFor(() => expect(standInState(cc, order).enrolled).toEqual([false, true]), {
      what: 'the refunded line to be revoked',
    });
  });
});
