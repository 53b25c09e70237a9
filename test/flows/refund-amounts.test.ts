import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { requestRefund, seedPaidOrder, standInState } from '../support/orders.js';
import { waitFor } from '../support/wait.js';

/** Refund amounts: odd shares and free lines; what the PSP gets is what is recorded. */

let cc: CommerceCoordinator;
beforeAll(async () => {
  cc = await startCommerceCoordinator('flows-refund-amounts');
});
afterAll(async () => {
  await cc?.stop();
});

const refund = (orderId: string, lineItemIds: string[]) => requestRefund(cc, orderId, lineItemIds);

describe.each(['STRIPE', 'PAYPAL'] as const)('%s', (psp) => {
  it('three lines with a discount, refunded one at a time and two at once: PSP = record = payment', async () => {
    // 100.00 + 33.33 + 66.67 with 0.01 off; shares that do not divide evenly.
    const order = seedPaidOrder(cc, psp, { prices: [10_000, 3_333, 6_667], paidCents: 19_999 });
    const [a, b, c] = order.lineItemIds as [string, string, string];
    const first = await refund(order.orderId, [b]);
    expect(first.errors).toBeUndefined();
    const rest = await Promise.all([refund(order.orderId, [a]), refund(order.orderId, [c])]);
    expect(rest.map((r) => r.errors)).toEqual([undefined, undefined]);
    const state = standInState(cc, order);
    const recorded = state.refundTransactions.map((t) => t.amount.centAmount).sort((x, y) => x - y);
    expect(state.pspRefunds.sort((x, y) => x - y)).toEqual(recorded);
    expect(recorded.reduce((s, x) => s + x, 0)).toBe(19_999);
    expect(state.returnItems.map((i) => i.paymentState)).toEqual(['Refunded', 'Refunded', 'Refunded']);
  });

  it('a free line of a paid order, returned first: no PSP refund and no error', async () => {
    const order = seedPaidOrder(cc, psp, { prices: [14_900, 0] });
    const answer = await refund(order.orderId, [order.lineItemIds[1]!]);
    expect(answer.errors).toBeUndefined();
    expect(answer.data!.requestRefund!.refundAmountCents).toBe(0);
    expect(standInState(cc, order).pspRefunds).toEqual([]);
    // The paid line is still refunded in full afterwards.
    const paid = await refund(order.orderId, [order.lineItemIds[0]!]);
    expect(paid.errors).toBeUndefined();
    await waitFor(() => expect(standInState(cc, order).pspRefunds).toEqual([14_900]));
  });
});
