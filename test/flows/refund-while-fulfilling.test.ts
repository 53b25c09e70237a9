import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { announceOrderPlaced, flowsOfOrder, paidByStore, requestRefund } from '../support/orders.js';
import { waitFor } from '../support/wait.js';

/**
 * Where transition.fulfillment.order-fulfillment-service is on, a fulfillment flow ends with its lines
 * PROCESSING: the Order Fulfillment service does the work later and reports it on its webhook. A line
 * refunded in between has its revoke sent at once, before the service has enrolled anyone, so the
 * revoke ends nothing; the enrollment the service then makes must be revoked too, or the learner keeps
 * the course and the money.
 */

let cc: CommerceCoordinator;
beforeAll(async () => {
  cc = await startCommerceCoordinator('flows-refund-while-fulfilling');
});
afterAll(async () => {
  await cc?.stop();
});

const FLAG = 'transition.fulfillment.order-fulfillment-service';
const of = () => cc.services.orderFulfillment;

beforeEach(async () => {
  // The service is slow: its reports wait for the test.
  of().seed({ autoReport: false });
});

let seq = 0;
/** An order of two course lines, not fulfilled yet, the flag on for it; Stripe-paid unless `store`. */
async function placedOrder({ store }: { store?: 'ios' } = {}) {
  const n = ++seq;
  const ada = DEMO.learners.ada;
  const orderNumber = `2U-2026${String(810_000 + (process.pid % 1000) * 10 + n)}`;
  const courseRunKeys = [0, 1].map((i) => `course-v1:RwfX+R${process.pid}N${n}L${i}+2026`);
  const intent = cc.services.stripe.createPaymentIntent({
    amount: 20_000,
    metadata: { order_number: orderNumber },
  });
  const seeded = cc.services.orderManagement.seed({
    orders: [
      {
        orderNumber,
        customer: { lmsUserId: ada.lmsUserId, username: ada.username, email: ada.email },
        lineItems: courseRunKeys.map((courseRunKey, i) => ({
          title: `Course ${i}`,
          priceCents: 10_000,
          courseRunKey,
        })),
        payment: { psp: 'STRIPE', pspPaymentId: intent.id, amountCents: 20_000 },
      },
    ],
  });
  const order = seeded.orders[0];
  if (store) paidByStore(cc, { order: order!, payment: seeded.payments[0]! }, store, `2${process.pid}${n}`);
  await cc.testData.update(
    cc.testData
      .flag(FLAG)
      .booleanFlag()
      .fallthroughVariation(false)
      .variationForContext('order', order!.id, true),
  );
  return {
    id: order!.id,
    lineIds: order!.lineItems.map((l) => l.id),
    courseRunKeys,
    username: ada.username,
    intent,
  };
}

async function fulfill(orderId: string) {
  const placed = await announceOrderPlaced(cc, orderId);
  expect(placed).toMatchObject({ status: 200, body: { status: 'COMPLETED' } });
}

const revokeRuns = async (orderId: string) => {
  const res = await cc.graphql<{ flows: Array<{ receiver: string | null; status: string }> }>(
    `query ($orderId: String!) { flows(orderId: $orderId, limit: 100) { receiver status } }`,
    { orderId },
    cc.tokens.staff,
  );
  return res.data!.flows.filter((f) => f.receiver === 'revoke-returned-line-items');
};

describe('a line refunded while the Order Fulfillment service is still fulfilling it', () => {
  it('is revoked once the service reports it fulfilled; the other line is kept', async () => {
    const order = await placedOrder();
    await fulfill(order.id);

    // Staff refunds the first line while the service has not got to it yet.
    const refund = await requestRefund(cc, order.id, [order.lineIds[0]!]);
    expect(refund.data?.requestRefund).toMatchObject({
      refundAmountCents: 10_000,
      flow: { status: 'COMPLETED' },
    });
    await waitFor(
      async () => expect((await revokeRuns(order.id)).map((r) => r.status)).toEqual(['COMPLETED']),
      {
        what: 'the refund’s revoke ran',
        timeoutMs: 10_000,
      },
    );
    expect(of().enrolled(order.username, order.courseRunKeys[0]!)).toBe(false);

    // Now the service does the work, and reports both lines fulfilled.
    const deliveries = await of().deliverPending(order.id);
    expect(deliveries.map((d) => d.status)).toEqual([200, 200]);

    await waitFor(
      () =>
        expect(of().enrolled(order.username, order.courseRunKeys[0]!), 'refunded line still enrolled').toBe(
          false,
        ),
      { what: 'the refunded line revoked after its fulfillment', timeoutMs: 10_000 },
    );
    expect(of().enrolled(order.username, order.courseRunKeys[1]!)).toBe(true);
    // One refund, however it ends.
    expect(cc.services.stripe.refunds(order.intent.id).map((r) => r.amount)).toEqual([10_000]);
    await waitFor(
      async () =>
        expect((await flowsOfOrder(cc, order.id)).filter((f) => f.status !== 'COMPLETED')).toEqual([]),
      { what: 'every flow of the order completed', timeoutMs: 10_000 },
    );
    // The refund is reported to analytics once, by its own flow: the revoke names no refund.
    expect(
      cc.services.segment.events('Order Refunded').filter((e) => e.properties?.checkout_id === order.id),
    ).toHaveLength(1);
  });

  it('a redelivered report of the refunded line revokes nothing it has not fulfilled', async () => {
    const order = await placedOrder();
    await fulfill(order.id);
    await requestRefund(cc, order.id, [order.lineIds[0]!]);
    await waitFor(
      async () => expect((await revokeRuns(order.id)).map((r) => r.status)).toEqual(['COMPLETED']),
      {
        what: 'the refund’s revoke ran',
        timeoutMs: 10_000,
      },
    );
    await of().deliverPending(order.id);
    await waitFor(() => expect(of().enrolled(order.username, order.courseRunKeys[0]!)).toBe(false), {
      what: 'the refunded line revoked',
      timeoutMs: 10_000,
    });
    // The same report again (the service's bus redelivers): the line stays revoked, the other kept.
    const again = await of().report({
      fulfillment_type: 'enrollment',
      is_fulfilled: true,
      order_id: order.id,
      line_item_id: order.lineIds[0]!,
    });
    expect(again.status).toBe(200);
    await waitFor(
      async () => expect((await revokeRuns(order.id)).every((r) => r.status === 'COMPLETED')).toBe(true),
      {
        what: 'every revoke completed',
        timeoutMs: 10_000,
      },
    );
    expect(of().enrolled(order.username, order.courseRunKeys[0]!)).toBe(false);
    expect(of().enrolled(order.username, order.courseRunKeys[1]!)).toBe(true);
  });

  it('of a store-paid order awaiting the store’s refund is kept: the store’s refund revokes it', async () => {
    const order = await placedOrder({ store: 'ios' });
    await fulfill(order.id);
    const refund = await requestRefund(cc, order.id, [order.lineIds[0]!]);
    expect(refund.data?.requestRefund).toMatchObject({
      refundStatus: 'awaiting_store_refund',
      // settleReturn halts the flow: no PSP refunds a store's purchase.
      flow: { status: 'HALTED' },
    });

    const deliveries = await of().deliverPending(order.id);
    expect(deliveries.map((d) => d.status)).toEqual([200, 200]);
    await waitFor(
      async () =>
        expect(
          (await flowsOfOrder(cc, order.id)).filter((f) => !['COMPLETED', 'HALTED'].includes(f.status)),
        ).toEqual([]),
      { what: 'every flow of the order completed', timeoutMs: 10_000 },
    );
    // No money went back yet: nothing is revoked.
    expect(await revokeRuns(order.id)).toEqual([]);
    expect(of().enrolled(order.username, order.courseRunKeys[0]!)).toBe(true);
  });
});
