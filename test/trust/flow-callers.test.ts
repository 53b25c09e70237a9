import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { flowsOfOrder, seedPaidOrder, standInState, type PaidOrder } from '../support/orders.js';

/**
 * Who may run a flow is decided before its first effect: a caller its filter does not admit is refused
 * with nothing run and nothing recorded, never midway after money moved. And the Actions that are steps
 * of flows are not for learners to call directly.
 */

let cc: CommerceCoordinator;

beforeAll(async () => {
  cc = await startCommerceCoordinator('trust-flow-callers');
});
afterAll(async () => {
  await cc?.stop();
});

const REFUND = /* GraphQL */ `
  mutation ($input: RefundRequestInput!) {
    requestRefund(input: $input) {
      flow {
        id
        status
      }
    }
  }
`;

const refund = (order: PaidOrder, lines: string[], token: string) =>
  cc.graphql<{ requestRefund: { flow: { id: string; status: string } } }>(
    REFUND,
    { input: { orderId: order.orderId, lineItemIds: lines } },
    token,
  );

/** Nothing of a refund happened: no return, no PSP refund, no transaction, the enrollment active. */
function expectUntouched(order: PaidOrder) {
  const state = standInState(cc, order);
  expect(state.returns).toEqual([]);
  expect(state.pspRefunds).toEqual([]);
  expect(state.refundTransactions).toEqual([]);
  expect(state.enrolled).toEqual([true, true]);
}

describe('a refund flow asked for by a learner', () => {
  it('is refused before anything runs, also for their own order: no money moves, nothing is recorded', async () => {
    for (const psp of ['STRIPE', 'PAYPAL'] as const) {
      const order = seedPaidOrder(cc, psp);
      const answer = await refund(order, [order.lineItemIds[0]!], cc.tokens.ada);

      expect(answer.data?.requestRefund ?? null).toBeNull();
      expect(answer.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      expectUntouched(order);
      expect(await flowsOfOrder(cc, order.orderId)).toEqual([]);
    }
  });

  it('runs for the LMS and staff, whose refund the learner asked the LMS for', async () => {
    const order = seedPaidOrder(cc, 'STRIPE');
    const answer = await refund(order, [order.lineItemIds[0]!], cc.tokens.lms);
    expect(answer.errors).toBeUndefined();
    expect(answer.data!.requestRefund.flow.status).toBe('COMPLETED');
    expect(standInState(cc, order).pspRefunds).toEqual([14_900]);
    expect((await flowsOfOrder(cc, order.orderId)).map((f) => f.startedBy?.kind)).toContain('service');
  });
});

describe('the Actions that are steps of flows', () => {
  const CREATE_RETURN = /* GraphQL */ `
    mutation ($input: CreateReturnInput!) {
      createReturn(input: $input) {
        returnId
      }
    }
  `;

  it('are refused to a learner calling them directly, so staff can still refund the line', async () => {
    const order = seedPaidOrder(cc, 'STRIPE');
    const line = order.lineItemIds[0]!;

    const direct = await cc.graphql(
      CREATE_RETURN,
      { input: { orderId: order.orderId, lineItemIds: [line] } },
      cc.tokens.ada,
    );
    expect(direct.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expectUntouched(order);

    const refundDirect = await cc.graphql(
      `mutation ($input: RefundPaymentInput!) { refundStripePayment(input: $input) { pspRefundId } }`,
      { input: { pspPaymentId: order.pspPaymentId, refundAmountCents: 100, currency: 'USD' } },
      cc.tokens.ada,
    );
    expect(refundDirect.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expectUntouched(order);

    // The line is not taken by a stray return: staff's refund of it goes through.
    const byStaff = await refund(order, [line], cc.tokens.staff);
    expect(byStaff.errors).toBeUndefined();
    expect(byStaff.data!.requestRefund.flow.status).toBe('COMPLETED');
    expect(standInState(cc, order).pspRefunds).toEqual([14_900]);
  });
});
