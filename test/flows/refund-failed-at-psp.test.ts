import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { flowsOfOrder, requestRefund, seedPaidOrder, standInState } from '../support/orders.js';
import { waitFor } from '../support/wait.js';

/**
 * A refund the PSP answers as failed when it is made (PayPal's `FAILED`: it could not process it, and
 * no money moved). The flow must not go on as if the learner had been refunded: no `order.refunded.v1`
 * (which revokes the course), the return NotRefunded, and the line refundable again.
 */

let cc: CommerceCoordinator;
beforeAll(async () => {
  cc = await startCommerceCoordinator('flows-refund-failed-at-psp');
});
afterAll(async () => {
  await cc?.stop();
});

describe('a PSP refund answered failed when it is made', () => {
  it('PayPal: CONFLICT, the return compensated, nothing revoked, and the line can be refunded again', async () => {
    const order = seedPaidOrder(cc, 'PAYPAL', { prices: [14_900, 9_900] });
    cc.services.paypal.failNextRefund();

    const failed = await requestRefund(cc, order.orderId, [order.lineItemIds[0]!]);

    expect(failed.errors?.[0]?.extensions).toMatchObject({
      code: 'CONFLICT',
      flowStatus: 'COMPENSATED',
      psp: 'paypal',
      refundStatus: 'failed',
    });
    expect(failed.errors?.[0]?.message).toMatch(/failed/i);
    const afterFailure = standInState(cc, order);
    expect(afterFailure.pspRefunds).toEqual([14_900]);
    expect(cc.services.paypal.refunds(order.pspPaymentId).map((r) => r.status)).toEqual(['FAILED']);
    // Nothing was refunded: the return does not count, no Success transaction, the course stays (a
    // COMPENSATED flow emits no order.refunded.v1).
    expect(afterFailure.returnItems.map((i) => i.paymentState)).toEqual(['NotRefunded']);
    expect(afterFailure.refundTransactions.filter((t) => t.state === 'Success')).toEqual([]);
    expect(afterFailure.enrolled).toEqual([true, true]);
    const [flow] = await flowsOfOrder(cc, order.orderId);
    expect(flow).toMatchObject({ name: 'order.refund.requested.v1', status: 'COMPENSATED' });

    // Asked again, the line is refunded: once, its share, and only now is the course revoked.
    const again = await requestRefund(cc, order.orderId, [order.lineItemIds[0]!]);
    expect(again.errors).toBeUndefined();
    expect(again.data!.requestRefund).toMatchObject({
      refundAmountCents: 14_900,
      refundStatus: 'succeeded',
      alreadyRefunded: false,
      flow: { status: 'COMPLETED' },
    });
    const state = standInState(cc, order);
    expect(cc.services.paypal.refunds(order.pspPaymentId).map((r) => r.status)).toEqual([
      'COMPLETED',
      'FAILED',
    ]);
    expect(
      state.refundTransactions.filter((t) => t.state === 'Success').map((t) => t.amount.centAmount),
    ).toEqual([14_900]);
    expect(state.returnItems.map((i) => i.paymentState).sort()).toEqual(['NotRefunded', 'Refunded']);
    await waitFor(() => expect(standInState(cc, order).enrolled).toEqual([false, true]), {
      what: 'order.refunded.v1 revoked the refunded line',
    });
  });
});
