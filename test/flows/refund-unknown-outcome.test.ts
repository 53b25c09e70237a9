import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { requestRefund, seedPaidOrder, standInState, type PaidOrder } from '../support/orders.js';
import { waitFor } from '../support/wait.js';

/**
 * A PSP refund whose outcome the flow cannot learn: the PSP made it, its answer was lost, and every
 * retry met a 500. The refund may have happened, so nothing before it is undone: the return keeps its
 * lines (a second request cannot refund them again) and an operator's retry finishes the flow under
 * the same idempotency key, the PSP answering the refund it made.
 */

let cc: CommerceCoordinator;
beforeAll(async () => {
  cc = await startCommerceCoordinator('flows-refund-unknown-outcome');
});
afterAll(async () => {
  await cc?.stop();
});

const refund = (orderId: string, lineItemIds: string[]) => requestRefund(cc, orderId, lineItemIds);

/** Staff's retryFlow completes the flow, and the PSP and the record hold the one refund of the line. */
async function expectRetriedToTheOneRefund(order: PaidOrder, flowId: string, reason: string) {
  const retried = await cc.graphql<{ retryFlow: { status: string } }>(
    `mutation ($id: ID!, $reason: String!) { retryFlow(id: $id, reason: $reason) { status } }`,
    { id: flowId, reason },
    cc.tokens.staff,
  );
  expect(retried.errors).toBeUndefined();
  expect(retried.data?.retryFlow.status).toBe('COMPLETED');
  const state = standInState(cc, order);
  expect(state.pspRefunds).toEqual([9_900]);
  expect(state.refundTransactions.map((t) => t.amount.centAmount)).toEqual([9_900]);
  expect(state.returnItems.map((i) => i.paymentState)).toEqual(['Refunded']);
}

/**
 * The PSP makes the refund but its answer is lost (the connection drops), and from then on it answers
 * every call 500 (`unreachable`), the Plugin's look for a refund the return already has included,
 * until `reachable` again.
 */
const psps = {
  STRIPE: { standIn: () => cc.services.stripe, refund: '/v1/refunds', all: '/v1/' },
  PAYPAL: { standIn: () => cc.services.paypal, refund: '/v2/payments/captures/', all: '/v2/' },
};
async function refundLostThenDown(psp: keyof typeof psps, orderId: string, lineItemIds: string[]) {
  const { standIn, refund: path, all } = psps[psp];
  const posts = () =>
    standIn()
      .calls(path)
      .filter((c) => c.method === 'POST').length;
  const before = posts();
  standIn().failNext({ method: 'POST', path, dropResponse: true, delayMs: 300 });
  const answer = refund(orderId, lineItemIds);
  await waitFor(() => expect(posts()).toBeGreaterThan(before), { what: 'the refund call to arrive' });
  standIn().failNext({ path: all, status: 500, times: 10_000 });
  try {
    return await answer;
  } finally {
    standIn().clearFaults();
  }
}

describe('a PSP refund whose answer was lost, then the PSP failing every retry', () => {
  it.each(['STRIPE', 'PAYPAL'] as const)(
    '%s: the flow fails with its return kept; a second request moves no money; the retry records the refund made',
    async (psp) => {
      const order = seedPaidOrder(cc, psp, { prices: [14_900, 9_900] });
      const line = order.lineItemIds[1]!;

      const first = await refundLostThenDown(psp, order.orderId, [line]);
      expect(first.errors?.[0]?.extensions).toMatchObject({ code: 'STEP_FAILED', flowStatus: 'FAILED' });
      const flowId = String(first.errors![0]!.extensions!.flowId);
      // The PSP did refund the line's share; the return still holds the line.
      expect(standInState(cc, order).pspRefunds).toEqual([9_900]);
      expect(standInState(cc, order).returnItems.map((i) => i.paymentState)).toEqual(['Initial']);

      // The PSP is back; the same line is asked for again (staff, or the LMS: a new request).
      const second = await refund(order.orderId, [line]);
      expect(second.errors).toBeUndefined();
      expect(second.data?.requestRefund).toMatchObject({ refundAmountCents: 0, alreadyRefunded: true });
      expect(standInState(cc, order).pspRefunds).toEqual([9_900]);

      // The operator's retry replays the refund under its key: the PSP answers the one it made.
      await expectRetriedToTheOneRefund(order, flowId, 'the PSP is back');
      await waitFor(() => expect(standInState(cc, order).enrolled).toEqual([true, false]), {
        what: 'the refunded line to be revoked',
      });
    },
    90_000,
  );
});

const forgetKeys = {
  STRIPE: () => cc.services.stripe.forgetIdempotencyKeys(),
  PAYPAL: () => cc.services.paypal.forgetRequestIds(),
};

describe('the same refund retried after the PSP forgot its idempotency key', () => {
  it.each(['STRIPE', 'PAYPAL'] as const)(
    '%s: the retry finds the refund made for the return, and makes none',
    async (psp) => {
      const order = seedPaidOrder(cc, psp, { prices: [14_900, 9_900] });
      const first = await refundLostThenDown(psp, order.orderId, [order.lineItemIds[1]!]);
      expect(first.errors?.[0]?.extensions).toMatchObject({ code: 'STEP_FAILED', flowStatus: 'FAILED' });
      expect(standInState(cc, order).pspRefunds).toEqual([9_900]);

      // The operator retries days later: the key means nothing to the PSP any more (Stripe keeps keys
      // 24 hours); the refund made for the return is found, not made again.
      forgetKeys[psp]();
      await expectRetriedToTheOneRefund(
        order,
        String(first.errors![0]!.extensions!.flowId),
        'after the weekend',
      );
    },
    90_000,
  );
});
