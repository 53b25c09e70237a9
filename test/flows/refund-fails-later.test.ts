import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { requestRefund, seedPaidOrder, standInState } from '../support/orders.js';
import { waitFor } from '../support/wait.js';

/**
 * A return the refund flow recorded Refunded against a PSP refund that was still pending, which
 * the PSP then fails (the money goes back onto the charge). The record must follow the PSP: the return
 * may not stay Refunded against a Failure transaction, or its lines can never be refunded again while
 * nothing was given back.
 */

let cc: CommerceCoordinator;
beforeAll(async () => {
  cc = await startCommerceCoordinator('flows-refund-fails-later');
});
afterAll(async () => {
  await cc?.stop();
});

describe('a pending PSP refund a return was settled with, then failed by the PSP', () => {
  it('Stripe: the return no longer counts as refunded; its line can be refunded again', async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [14_900, 14_900] });
    // Someone refunds the whole payment in the dashboard; the refund is pending (its event held back).
    const { refund: dashboard } = await cc.services.stripe.refundFromDashboard(
      order.pspPaymentId,
      undefined,
      {
        status: 'pending',
        deliver: false,
      },
    );

    // Staff refunds line A: Stripe says the charge is refunded, the flow answers the pending refund.
    const first = await requestRefund(cc, order.orderId, [order.lineItemIds[0]!], {
      key: `pf-1-${order.orderId}`,
    });
    expect(first.errors).toBeUndefined();
    expect(first.data!.requestRefund).toMatchObject({ pspRefundId: dashboard.id, refundStatus: 'pending' });
    expect(standInState(cc, order).returnItems.map((i) => i.paymentState)).toEqual(['Refunded']);

    // The card network refuses: the refund fails, the money is back on the charge (nothing refunded).
    const settled = await cc.services.stripe.settleRefund(dashboard.id, 'failed');
    expect(settled.delivery?.status).toBe(200);
    await waitFor(
      () =>
        expect(standInState(cc, order).refundTransactions.map((t) => [t.interactionId, t.state])).toEqual([
          [dashboard.id, 'Failure'],
        ]),
      { what: 'the refund recorded Failure' },
    );
    expect(
      cc.services.stripe.charge(String(cc.services.stripe.refunds(order.pspPaymentId)[0]!.charge))!
        .amount_refunded,
    ).toBe(0);

    // The record must not say line A was refunded: nothing was.
    await waitFor(
      () => expect(standInState(cc, order).returnItems.map((i) => i.paymentState)).not.toContain('Refunded'),
      { what: 'the return no longer Refunded', timeoutMs: 3_000 },
    );

    // And line A can be refunded: the learner gets the line's share, once.
    const again = await requestRefund(cc, order.orderId, [order.lineItemIds[0]!], {
      key: `pf-2-${order.orderId}`,
    });
    expect(again.errors).toBeUndefined();
    expect(again.data!.requestRefund).toMatchObject({
      alreadyRefunded: false,
      refundAmountCents: 14_900,
      refundStatus: 'succeeded',
      flow: { status: 'COMPLETED' },
    });
    const state = standInState(cc, order);
    expect(state.pspRefunds.sort()).toEqual([14_900, 29_800]);
    expect(
      state.refundTransactions.filter((t) => t.state === 'Success').map((t) => t.amount.centAmount),
    ).toEqual([14_900]);
  });

  it('Stripe: the Coordinator’s own refund, succeeded, then failed by the card network', async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [14_900, 14_900] });
    const first = await requestRefund(cc, order.orderId, [order.lineItemIds[0]!], {
      key: `sf-1-${order.orderId}`,
    });
    expect(first.data!.requestRefund).toMatchObject({
      refundStatus: 'succeeded',
      flow: { status: 'COMPLETED' },
    });
    const refundId = first.data!.requestRefund!.pspRefundId!;

    // Days later the card turns out closed: Stripe fails the refund (succeeded → failed), money back on the charge.
    const failed = await cc.services.stripe.failSucceededRefund(refundId);
    expect(failed.delivery?.status).toBe(200);

    await waitFor(
      () =>
        expect(standInState(cc, order).refundTransactions.map((t) => [t.interactionId, t.state])).toEqual([
          [refundId, 'Failure'],
        ]),
      { what: 'the refund recorded Failure, as Stripe holds it', timeoutMs: 3_000 },
    );
    // The payment is recorded first, then its returns: each in an update of its own.
    await waitFor(
      () => expect(standInState(cc, order).returnItems.map((i) => i.paymentState)).toEqual(['NotRefunded']),
      { what: 'the return settled with the failed refund to be NotRefunded', timeoutMs: 3_000 },
    );
  });

  it('Stripe: a failure recorded between the flow recording the refund and settling its return', async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [14_900, 14_900] });
    // The flow's settling of its return (the update that links the return to the refund) waits…
    const settling = cc.services.orderManagement.hold(
      ({ method, path, body }) =>
        method === 'POST' &&
        path.endsWith(`/orders/${order.orderId}`) &&
        JSON.stringify(body).includes('setReturnItemCustomType'),
    );
    const refunding = requestRefund(cc, order.orderId, [order.lineItemIds[0]!]);
    await waitFor(() => expect(settling.held()).toBe(1), { what: 'the flow settling its return' });

    // …while Stripe fails the refund and the webhook's receiver records the failure: it finds no
    // return settled with the refund yet, so it has nothing to undo.
    const [refund] = cc.services.stripe.refunds(order.pspPaymentId);
    const failed = await cc.services.stripe.failSucceededRefund(refund!.id);
    expect(failed.delivery?.status).toBe(200);
    await waitFor(
      async () => {
        const { data } = await cc.graphql<{
          flows: Array<{ receiver: string | null; status: string; input: Record<string, unknown> }>;
        }>(
          'query { flows(name: "payment.refunded.v1", limit: 50) { receiver status input } }',
          {},
          cc.tokens.staff,
        );
        const recorded = data?.flows.find(
          (f) =>
            f.receiver === 'record-psp-refund' &&
            f.input.pspRefundId === refund!.id &&
            f.input.refundStatus === 'failed',
        );
        expect(recorded?.status).toBe('COMPLETED');
      },
      { what: 'the failure recorded by the webhook’s receiver' },
    );
    expect(standInState(cc, order).refundTransactions.map((t) => t.state)).toEqual(['Failure']);

    settling.release();
    const answer = await refunding;
    expect(answer.data!.requestRefund).toMatchObject({ flow: { status: 'COMPLETED' } });
    // The return must not stay Refunded against a failed refund: its line could never be refunded again.
    expect(standInState(cc, order).returnItems.map((i) => i.paymentState)).toEqual(['NotRefunded']);
    const again = await requestRefund(cc, order.orderId, [order.lineItemIds[0]!]);
    expect(again.data!.requestRefund).toMatchObject({
      alreadyRefunded: false,
      refundAmountCents: 14_900,
      flow: { status: 'COMPLETED' },
    });
  });
});
