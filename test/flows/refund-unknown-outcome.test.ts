import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { seedPaidOrder, standInState } from '../support/orders.js';
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

const REFUND = /* GraphQL */ `
  mutation ($input: RefundRequestInput!, $key: String) {
    requestRefund(input: $input, idempotencyKey: $key) {
      refundAmountCents
      alreadyRefunded
      flow {
        id
        status
      }
    }
  }
`;
type RefundAnswer = {
  requestRefund: { refundAmountCents: number; alreadyRefunded: boolean | null; flow: { status: string } };
};
const refund = (orderId: string, lineItemIds: string[]) =>
  cc.graphql<RefundAnswer>(REFUND, { input: { orderId, lineItemIds }, key: randomUUID() }, cc.tokens.staff);

const faults = {
  // The SDK's two retries, then the step's four more attempts of three calls each: 14 answers of 500.
  STRIPE: () => {
    cc.services.stripe.failNext({ method: 'POST', path: '/v1/refunds', dropResponse: true });
    cc.services.stripe.failNext({ method: 'POST', path: '/v1/refunds', status: 500, times: 14 });
  },
  PAYPAL: () => {
    cc.services.paypal.failNext({ method: 'POST', path: '/v2/payments/captures/', dropResponse: true });
    cc.services.paypal.failNext({ method: 'POST', path: '/v2/payments/captures/', status: 500, times: 4 });
  },
};

describe('a PSP refund whose answer was lost, then the PSP failing every retry', () => {
  it.each(['STRIPE', 'PAYPAL'] as const)(
    '%s: the flow fails with its return kept; a second request moves no money; the retry records the refund made',
    async (psp) => {
      const order = seedPaidOrder(cc, psp, { prices: [14_900, 9_900] });
      const line = order.lineItemIds[1]!;
      faults[psp]();

      const first = await refund(order.orderId, [line]);
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
      const retried = await cc.graphql<{ retryFlow: { status: string } }>(
        `mutation ($id: ID!) { retryFlow(id: $id, reason: "the PSP is back") { status } }`,
        { id: flowId },
        cc.tokens.staff,
      );
      expect(retried.errors).toBeUndefined();
      expect(retried.data?.retryFlow.status).toBe('COMPLETED');
      const state = standInState(cc, order);
      expect(state.pspRefunds).toEqual([9_900]);
      expect(state.refundTransactions.map((t) => t.amount.centAmount)).toEqual([9_900]);
      expect(state.returnItems.map((i) => i.paymentState)).toEqual(['Refunded']);
      await waitFor(() => expect(standInState(cc, order).enrolled).toEqual([true, false]), {
        what: 'the refunded line to be revoked',
      });
    },
    90_000,
  );
});
