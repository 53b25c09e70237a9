import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../gateway/errors.js';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { waitFor } from '../support/wait.js';

/**
 * Stripe's refund events (`refund.created`, `refund.updated`, `charge.refund.updated`, `refund.failed`)
 * end to end through the gateway: a signed event says which refund it is about, and the Coordinator
 * records the refund as Stripe holds it (read back by id), never the amount, status or PaymentIntent the
 * body states. A refund Stripe does not have is answered 404 NOT_FOUND, as a refund of a PaymentIntent
 * Stripe does not have is, and records nothing; the order's refunds stay refundable.
 */

let cc: CommerceCoordinator;

beforeAll(async () => {
  cc = await startCommerceCoordinator('stripe-refund-events');
});

afterAll(async () => {
  await cc?.stop();
});

interface SeededOrder {
  orderId: string;
  pspPaymentId: string;
  chargeId: string;
  lineItemIds: string[];
}

let seq = 0;

/** A paid and fulfilled Stripe order of Ada's of one 19,999-cent course (the tester's). */
function seedOrder(): SeededOrder {
  const n = ++seq;
  const ada = DEMO.learners.ada;
  const orderNumber = `2U-2026${String(710_000 + n)}`;
  const courseId = `course-v1:RefundEvt+R${n}+2026`;
  const { services } = cc;
  services.lms.seed({
    courses: [{ courseId }],
    enrollments: [{ username: ada.username, courseId, mode: 'verified', isActive: true }],
  });
  const intent = services.stripe.createPaymentIntent({
    amount: 19_999,
    metadata: { order_number: orderNumber },
  });
  const [order] = services.orderManagement.seed({
    orders: [
      {
        orderNumber,
        customer: { lmsUserId: ada.lmsUserId, username: ada.username, email: ada.email },
        lineItems: [
          { title: 'Refund event course', priceCents: 19_999, courseRunKey: courseId, state: 'SUCCESS' },
        ],
        payment: { psp: 'STRIPE', pspPaymentId: intent.id },
      },
    ],
  }).orders;
  return {
    orderId: order!.id,
    pspPaymentId: intent.id,
    chargeId: intent.latest_charge as string,
    lineItemIds: order!.lineItems.map((l) => l.id),
  };
}

const refundTransactions = (o: SeededOrder) =>
  cc.services.orderManagement.store.payments
    .get(cc.services.orderManagement.store.orders.get(o.orderId)!.paymentInfo!.payments[0]!.id)!
    .transactions.filter((t) => t.type === 'Refund')
    .map((t) => [t.interactionId, t.amount.centAmount, t.state]);

interface ReceiverRun {
  status: string;
  receiver: string;
  input: Record<string, unknown>;
  output: Record<string, unknown> | null;
}

async function receiverRuns(pspRefundId: string): Promise<ReceiverRun[]> {
  const result = await cc.graphql<{ flows: ReceiverRun[] }>(
    `query Runs { flows(name: "payment.refunded.v1", limit: 200) { status receiver input output } }`,
    {},
    cc.tokens.staff,
  );
  expect(result.errors).toBeUndefined();
  return result.data!.flows.filter(
    (f) => f.input.pspRefundId === pspRefundId && f.receiver === 'record-psp-refund',
  );
}

async function requestRefund(o: SeededOrder) {
  return cc.graphql<{ requestRefund: { refundAmountCents: number; flow: { status: string } } }>(
    `mutation Refund($input: RefundRequestInput!) {
      requestRefund(input: $input) { refundAmountCents flow { status } }
    }`,
    { input: { orderId: o.orderId, lineItemIds: o.lineItemIds } },
    cc.tokens.staff,
  );
}

/** A signed event, as Stripe signs it, carrying `refund` as its object. */
const sendRefundEvent = (type: string, refund: Record<string, unknown>) =>
  cc.services.stripe.sendEvent({ type, data: { object: { object: 'refund', ...refund } } });

describe('a signed Stripe refund event naming a refund Stripe does not have', () => {
  it.each(['refund.created', 'refund.updated', 'charge.refund.updated'])(
    '%s: 404 NOT_FOUND, nothing recorded; the order is still refunded normally',
    async (type) => {
      const order = seedOrder();
      const pspRefundId = `re_huge_${type}`;

      const { delivery } = await sendRefundEvent(type, {
        id: pspRefundId,
        amount: 99_999_999,
        currency: 'usd',
        status: 'succeeded',
        created: Math.floor(Date.now() / 1000),
        payment_intent: order.pspPaymentId,
        charge: order.chargeId,
      });

      expect(delivery.status).toBe(404);
      expect(JSON.parse(delivery.body)).toMatchObject({
        code: ErrorCode.NOT_FOUND,
        message: expect.stringContaining(pspRefundId),
      });
      expect(await receiverRuns(pspRefundId)).toEqual([]);
      expect(refundTransactions(order)).toEqual([]);

      // The tester's wedge: requestRefund of that order refunds it, once.
      const refund = await requestRefund(order);
      expect(refund.errors).toBeUndefined();
      expect(refund.data!.requestRefund).toMatchObject({
        refundAmountCents: 19_999,
        flow: { status: 'COMPLETED' },
      });
      expect(refundTransactions(order)).toEqual([
        [cc.services.stripe.refunds(order.pspPaymentId)[0]!.id, 19_999, 'Success'],
      ]);
    },
  );
});

describe('a signed Stripe refund event whose body disagrees with the refund Stripe holds', () => {
  it('records the refund as Stripe holds it: its amount, status and PaymentIntent, not the body’s', async () => {
    const order = seedOrder();
    const other = seedOrder();
    // A real refund of 1,500, pending at Stripe; its own event held back.
    const { refund } = await cc.services.stripe.refundFromDashboard(order.pspPaymentId, 1_500, {
      status: 'pending',
      deliver: false,
    });

    const { delivery } = await sendRefundEvent('refund.updated', {
      ...refund,
      amount: 99_999_999,
      status: 'succeeded',
      payment_intent: other.pspPaymentId,
      charge: other.chargeId,
    });

    expect(delivery.status).toBe(200);
    expect(JSON.parse(delivery.body)).toEqual({
      received: true,
      duplicate: false,
      refunds: [{ pspRefundId: refund.id, refundStatus: 'pending', duplicate: false }],
    });
    const [run] = await waitFor(
      async () => {
        const runs = await receiverRuns(refund.id);
        expect(runs.map((r) => r.status)).toEqual(['COMPLETED']);
        return runs;
      },
      { what: `payment.refunded.v1 of ${refund.id} recorded` },
    );
    expect(run!.input).toMatchObject({
      pspPaymentId: order.pspPaymentId,
      refundedAmountCents: 1_500,
      refundStatus: 'pending',
    });
    expect(refundTransactions(order)).toEqual([[refund.id, 1_500, 'Pending']]);
    expect(refundTransactions(other)).toEqual([]);
  });
});
