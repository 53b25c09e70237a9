import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import type { StripeObject } from '../../services/stripe/server.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { token } from '../support/coordinator.js';
import { waitFor } from '../support/wait.js';

// An order's payment across the Plugins: the order management Plugin owns `OrderPayment` (what the
// order management Service recorded), the stripe and paypal Plugins add what their PSP holds about it
// (`stripe`, `paypal`). One query for a page of orders costs one call per Service, and one per payment
// at its PSP (Stripe and PayPal have no read of several payments by id): never more, however many of
// their fields are selected.

let c: CommerceCoordinator;

beforeAll(async () => {
  c = await startCommerceCoordinator('flow-order-payments');
});
afterAll(async () => {
  await c?.stop();
});

const learner = { lmsUserId: 7601, username: 'paylearner', email: 'paylearner@example.com' };
const ACTIVITY_URL = 'https://www.paypal.com/activity/payment/';

interface SeededOrder {
  id: string;
  orderNumber: string;
  courseRunKey: string;
  lineItemId: string;
  psp: 'STRIPE' | 'PAYPAL' | null;
  pspPaymentId: string | null;
  /** PayPal: the capture's PayPal order. */
  payPalOrderId?: string;
  /** Stripe: the PaymentIntent as created (what changes later is on its charge and refunds). */
  intent?: StripeObject;
  amountCents: number;
}

/**
 * A learner's six orders, oldest first, consistent across the Services as services/embedded.ts seeds
 * them: three paid with Stripe (one partly refunded, one fully in two refunds), two with PayPal (one
 * partly refunded), one without a payment. The refunds are made in the PSPs' dashboards, so their
 * webhooks record them in the order management Service; every order is fulfilled through the gateway,
 * so that it has its enrollment in the LMS and its fulfillment flow in the Coordinator.
 */
async function seedOrders(): Promise<SeededOrder[]> {
  const { stripe, paypal, orderManagement, lms } = c.services;
  const plan = [
    { psp: 'STRIPE', cents: 12_000, refunds: [3_000] },
    { psp: 'STRIPE', cents: 9_900, refunds: [] },
    { psp: 'PAYPAL', cents: 8_000, refunds: [2_000] },
    { psp: 'STRIPE', cents: 5_000, refunds: [1_000, 4_000] },
    { psp: 'PAYPAL', cents: 4_500, refunds: [] },
    { psp: null, cents: 0, refunds: [] },
  ] as const;
  const courses = plan.map((_, i) => `course-v1:edX+Pay${i}+2026`);
  lms.seed({
    users: [{ id: learner.lmsUserId, username: learner.username, email: learner.email }],
    courses: courses.map((courseId) => ({ courseId, modes: ['audit', 'verified'] })),
  });
  const seeded = plan.map((p, i): SeededOrder => {
    const orderNumber = `2U-2031${String(i + 1).padStart(6, '0')}`;
    const common = {
      id: randomUUID(),
      orderNumber,
      courseRunKey: courses[i]!,
      lineItemId: `li-pay-${i}`,
      amountCents: p.cents,
    };
    if (p.psp === 'STRIPE') {
      const intent = stripe.createPaymentIntent({ amount: p.cents, metadata: { order_number: orderNumber } });
      return { ...common, psp: p.psp, pspPaymentId: intent.id, intent };
    }
    if (p.psp === 'PAYPAL') {
      const payPalOrderId = `PAYORDER${String(i).padStart(9, '0')}`;
      const capture = paypal.createCapture({
        orderId: payPalOrderId,
        amountCents: p.cents,
        invoiceId: orderNumber,
      });
      return { ...common, psp: p.psp, pspPaymentId: capture.id, payPalOrderId };
    }
    return { ...common, psp: null, pspPaymentId: null };
  });
  orderManagement.seed({
    orders: seeded.map((o, i) => ({
      id: o.id,
      orderNumber: o.orderNumber,
      // One day apart, so the page's order (newest first) is known.
      createdAt: new Date(Date.UTC(2026, 1, 1 + i)).toISOString(),
      customer: learner,
      lineItems: [
        { id: o.lineItemId, title: `Payments ${i}`, priceCents: o.amountCents, courseRunKey: o.courseRunKey },
      ],
      ...(o.psp
        ? { payment: { psp: o.psp, pspPaymentId: o.pspPaymentId!, pspOrderId: o.payPalOrderId } }
        : {}),
    })),
  });

  // Dashboard refunds, each recorded on the order's payment through its PSP's webhook.
  for (const [i, p] of plan.entries()) {
    const order = seeded[i]!;
    for (const cents of p.refunds) {
      const refund =
        p.psp === 'STRIPE'
          ? await stripe.refundFromDashboard(order.pspPaymentId!, cents)
          : await paypal.refundFromDashboard(order.pspPaymentId!, cents);
      expect(refund.delivery?.status).toBe(200);
    }
  }
  const refunded = seeded.filter((_, i) => plan[i]!.refunds.length);
  await waitFor(
    async () => {
      for (const order of refunded) {
        const res = await c.graphql<{ order: { payment: { refundedAmountCents: number } } }>(
          'query ($id: ID!) { order(id: $id) { payment { refundedAmountCents } } }',
          { id: order.id },
          c.tokens.staff,
        );
        const expected = plan[seeded.indexOf(order)]!.refunds.reduce((sum, n) => sum + n, 0);
        expect(res.data?.order.payment.refundedAmountCents).toBe(expected);
      }
    },
    { what: 'the dashboard refunds recorded in the order management Service' },
  );

  for (const order of seeded) {
    const res = await c.request('/order-management/fulfill', {
      method: 'POST',
      token: c.tokens.orderManagement,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: randomUUID(), detail: { id: order.id } }),
    });
    expect(await res.json()).toMatchObject({ status: 'COMPLETED' });
  }
  return seeded;
}

const REFUND = 'pspRefundId refundedAmountCents refundStatus refundCreatedAt';

/**
 * A page of orders with fields of every subgraph: order management (the order and its payment), stripe
 * and paypal (the payment at its PSP, selected twice, with an alias), the LMS (enrollments) and the
 * Coordinator (flows, for staff and Services only).
 */
const PAGE = /* GraphQL */ `
  query ($lmsUserId: Int!) {
    ordersForLearner(lmsUserId: $lmsUserId) {
      id
      orderNumber
      payment {
        psp
        pspPaymentId
        amountCents
        currency
        refundedAmountCents
        stripe {
          status
          amountCents
          amountRefundedCents
          currency
          createdAt
          receiptUrl
          refunds { ${REFUND} }
        }
        stripeAgain: stripe {
          receiptUrl
          refunds { pspRefundId }
        }
        paypal {
          status
          amountCents
          currency
          createdAt
          activityUrl
          refunds { ${REFUND} }
        }
        paypalAgain: paypal {
          activityUrl
        }
      }
      enrollments {
        courseRunKey
        isActive
        lineItemId
      }
      flows {
        name
        status
      }
    }
  }
`;

interface Refund {
  pspRefundId: string;
  refundedAmountCents: number;
  refundStatus: string;
  refundCreatedAt: string;
}

/** What the Stripe stand-in holds about a PaymentIntent: the PaymentIntent, its charge, its refunds. */
function atStripe(order: SeededOrder) {
  const intent = order.intent!;
  const paymentIntentId = intent.id;
  const charge = c.services.stripe.charge(String(intent.latest_charge))!;
  const refunds: Refund[] = c.services.stripe.refunds(paymentIntentId).map((r) => ({
    pspRefundId: r.id,
    refundedAmountCents: r.amount as number,
    refundStatus: r.status as string,
    refundCreatedAt: new Date((r.created as number) * 1000).toISOString(),
  }));
  return {
    status: intent.status,
    amountCents: intent.amount,
    amountRefundedCents: charge.amount_refunded,
    currency: String(intent.currency).toUpperCase(),
    createdAt: new Date((intent.created as number) * 1000).toISOString(),
    receiptUrl: charge.receipt_url,
    refunds,
  };
}

/** What the PayPal stand-in holds about a capture: the capture as PayPal answers it, its refunds. */
function atPayPal(captureId: string) {
  const capture = c.services.paypal.capture(captureId)!;
  const amount = capture.amount as { value: string; currency_code: string };
  const refunds: Refund[] = c.services.paypal.refunds(captureId).map((r) => {
    expect(r.status).toBe('COMPLETED');
    return {
      pspRefundId: r.id,
      refundedAmountCents: Math.round(Number((r.amount as { value: string }).value) * 100),
      refundStatus: 'succeeded',
      refundCreatedAt: new Date(String(r.create_time)).toISOString(),
    };
  });
  return {
    status: capture.status,
    amountCents: Math.round(Number(amount.value) * 100),
    currency: amount.currency_code,
    createdAt: new Date(String(capture.create_time)).toISOString(),
    activityUrl: `${ACTIVITY_URL}${captureId}`,
    refunds,
  };
}

/** Every call each Service received so far (PayPal's OAuth token, cached by its SDK, is no read). */
const serviceCalls = () => ({
  orderManagement: c.services.orderManagement.calls(),
  lms: c.services.lms.calls(),
  stripe: c.services.stripe.calls().length,
  paypal: c.services.paypal.calls().filter((call) => call.path !== '/v1/oauth2/token').length,
});
const callsSince = (before: ReturnType<typeof serviceCalls>) => {
  const now = serviceCalls();
  return {
    orderManagement: now.orderManagement - before.orderManagement,
    lms: now.lms - before.lms,
    stripe: now.stripe - before.stripe,
    paypal: now.paypal - before.paypal,
  };
};

interface PageOrder {
  id: string;
  orderNumber: string;
  payment: {
    psp: string;
    stripe: ReturnType<typeof atStripe> | null;
    paypal: ReturnType<typeof atPayPal> | null;
  } | null;
}

let orders: SeededOrder[];

describe("an order's payment across the Plugins", () => {
  it('reads a page of Stripe-, PayPal- and unpaid orders: one call per Service, one per payment at a PSP', async () => {
    orders = await seedOrders();
    const before = serviceCalls();
    const stripeReadsBefore = new Map(
      orders
        .filter((o) => o.psp === 'STRIPE')
        .map((o) => [
          o.pspPaymentId!,
          c.services.stripe.calls(`/v1/payment_intents/${o.pspPaymentId}`).length,
        ]),
    );

    const res = await c.graphql<{ ordersForLearner: PageOrder[] }>(
      PAGE,
      { lmsUserId: learner.lmsUserId },
      c.tokens.staff,
    );
    const calls = callsSince(before);

    expect(res.errors).toBeUndefined();
    const page = res.data!.ordersForLearner;
    // Newest first.
    expect(page.map((o) => o.orderNumber)).toEqual(orders.map((o) => o.orderNumber).reverse());
    for (const entry of page) {
      const seeded = orders.find((o) => o.id === entry.id)!;
      const stripe = seeded.psp === 'STRIPE' ? atStripe(seeded) : null;
      const paypal = seeded.psp === 'PAYPAL' ? atPayPal(seeded.pspPaymentId!) : null;
      const refunds = (stripe ?? paypal)?.refunds ?? [];
      expect(entry).toEqual({
        id: seeded.id,
        orderNumber: seeded.orderNumber,
        payment: seeded.psp
          ? {
              psp: seeded.psp,
              pspPaymentId: seeded.pspPaymentId,
              amountCents: seeded.amountCents,
              currency: 'USD',
              // What the order management Service recorded is what the PSP did.
              refundedAmountCents: refunds.reduce((sum, r) => sum + r.refundedAmountCents, 0),
              stripe,
              stripeAgain: stripe && {
                receiptUrl: stripe.receiptUrl,
                refunds: stripe.refunds.map((r) => ({ pspRefundId: r.pspRefundId })),
              },
              paypal,
              paypalAgain: paypal && { activityUrl: paypal.activityUrl },
            }
          : null,
        enrollments: [{ courseRunKey: seeded.courseRunKey, isActive: true, lineItemId: seeded.lineItemId }],
        // The fulfillment (its signal's receivers, the learner emails, may still be running beside it).
        flows: expect.arrayContaining([{ name: 'order.fulfillment.requested.v1', status: 'COMPLETED' }]),
      });
    }
    // What the page shows, at a glance.
    const stripeOf = (i: number) => page.find((o) => o.id === orders[i]!.id)!.payment!.stripe!;
    const payPalOf = (i: number) => page.find((o) => o.id === orders[i]!.id)!.payment!.paypal!;
    expect(stripeOf(0)).toMatchObject({
      status: 'succeeded',
      amountCents: 12_000,
      amountRefundedCents: 3_000,
    });
    expect(stripeOf(0).refunds.map((r) => r.refundedAmountCents)).toEqual([3_000]);
    expect(stripeOf(1)).toMatchObject({ amountRefundedCents: 0, refunds: [] });
    expect(stripeOf(3).refunds.map((r) => r.refundedAmountCents)).toEqual([4_000, 1_000]);
    expect(payPalOf(2)).toMatchObject({ status: 'PARTIALLY_REFUNDED', amountCents: 8_000 });
    expect(payPalOf(2).refunds.map((r) => r.refundedAmountCents)).toEqual([2_000]);
    expect(payPalOf(4)).toMatchObject({ status: 'COMPLETED', refunds: [] });
    expect(page.find((o) => o.id === orders[5]!.id)!.payment).toBeNull();

    // One call per Service for the page; at each PSP one per payment (3 Stripe, 2 PayPal), and no more.
    expect(calls).toEqual({ orderManagement: 1, lms: 1, stripe: 3, paypal: 2 });
    for (const [id, reads] of stripeReadsBefore)
      expect(c.services.stripe.calls(`/v1/payment_intents/${id}`).length - reads).toBe(1);
    // PayPal: each capture's PayPal order (which lists the capture and its refunds), not the capture.
    for (const o of orders.filter((o) => o.psp === 'PAYPAL')) {
      expect(c.services.paypal.calls(`/v2/checkout/orders/${o.payPalOrderId}`).length).toBe(1);
      expect(c.services.paypal.calls(`/v2/payments/captures/${o.pspPaymentId}`).length).toBe(0);
    }
  });

  it('lets a learner read the payment details of their own orders, and refuses another learner', async () => {
    const payLearner = await token({ kind: 'learner', ...learner });
    const [stripeOrder, , payPalOrder] = orders;
    const ORDER = /* GraphQL */ `
      query ($id: ID!) {
        order(id: $id) {
          orderNumber
          payment {
            stripe {
              status
              receiptUrl
              refunds {
                pspRefundId
                refundedAmountCents
              }
            }
            paypal {
              status
              activityUrl
              refunds {
                pspRefundId
                refundedAmountCents
              }
            }
          }
        }
      }
    `;
    type Answer = { order: { orderNumber: string; payment: PageOrder['payment'] } | null };

    let before = serviceCalls();
    const own = await c.graphql<Answer>(ORDER, { id: stripeOrder!.id }, payLearner);
    expect(own.errors).toBeUndefined();
    const atStripeNow = atStripe(stripeOrder!);
    expect(own.data!.order).toEqual({
      orderNumber: stripeOrder!.orderNumber,
      payment: {
        stripe: {
          status: 'succeeded',
          receiptUrl: atStripeNow.receiptUrl,
          refunds: atStripeNow.refunds.map(({ pspRefundId, refundedAmountCents }) => ({
            pspRefundId,
            refundedAmountCents,
          })),
        },
        paypal: null,
      },
    });
    expect(callsSince(before)).toEqual({ orderManagement: 1, lms: 0, stripe: 1, paypal: 0 });

    before = serviceCalls();
    const ownPayPal = await c.graphql<Answer>(ORDER, { id: payPalOrder!.id }, payLearner);
    expect(ownPayPal.errors).toBeUndefined();
    expect(ownPayPal.data!.order!.payment).toMatchObject({
      stripe: null,
      paypal: { status: 'PARTIALLY_REFUNDED', activityUrl: `${ACTIVITY_URL}${payPalOrder!.pspPaymentId}` },
    });
    expect(callsSince(before)).toEqual({ orderManagement: 1, lms: 0, stripe: 0, paypal: 1 });

    // Their page of orders (without the flows, which are for staff and Services).
    const page = await c.graphql<{ ordersForLearner: PageOrder[] }>(
      'query ($u: Int!) { ordersForLearner(lmsUserId: $u) { payment { stripe { status } paypal { status } } } }',
      { u: learner.lmsUserId },
      payLearner,
    );
    expect(page.errors).toBeUndefined();
    expect(
      page.data!.ordersForLearner.map((o) => o.payment && (o.payment.stripe ?? o.payment.paypal)),
    ).toEqual([
      null,
      { status: 'COMPLETED' },
      { status: 'succeeded' },
      { status: 'PARTIALLY_REFUNDED' },
      { status: 'succeeded' },
      { status: 'succeeded' },
    ]);

    // Another learner: refused by the order management Plugin, so no PSP is asked.
    before = serviceCalls();
    const other = await c.graphql<Answer>(ORDER, { id: stripeOrder!.id }, c.tokens.ada);
    expect(other.errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
    expect(other.data?.order ?? null).toBeNull();
    const otherPage = await c.graphql(
      'query ($u: Int!) { ordersForLearner(lmsUserId: $u) { payment { stripe { status } paypal { status } } } }',
      { u: learner.lmsUserId },
      c.tokens.ada,
    );
    expect(otherPage.errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
    // Nor can a payment be named directly: entity references are not in the supergraph API.
    const forged = await c.graphql(
      `query ($r: [_Any!]!) { _entities(representations: $r) { ... on OrderPayment { stripe { status } } } }`,
      {
        r: [
          {
            __typename: 'OrderPayment',
            pspPaymentId: stripeOrder!.pspPaymentId,
            lmsUserId: DEMO.learners.ada.lmsUserId,
          },
        ],
      },
      c.tokens.ada,
    );
    expect(new Set(forged.errors?.map((e) => e.extensions?.code))).toEqual(
      new Set(['GRAPHQL_VALIDATION_FAILED']),
    );
    expect(forged.errors?.map((e) => e.message).join('\n')).toContain('"_entities"');
    expect(callsSince(before)).toMatchObject({ stripe: 0, paypal: 0 });
  });

  it("does not ask the PSPs when a Purchase Flow reads an order: a step selects only its Action's fields", async () => {
    const payPalOrder = orders[2]!;
    const before = serviceCalls();
    const res = await c.graphql<{
      orderReceipt: {
        flow: { status: string; output: { url: string; order: { payment: Record<string, unknown> } } };
      };
    }>(
      'query ($n: String!) { orderReceipt(input: { orderNumber: $n }) { flow { status output } } }',
      { n: payPalOrder.orderNumber },
      c.tokens.staff,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data!.orderReceipt.flow.status).toBe('COMPLETED');
    expect(res.data!.orderReceipt.flow.output.url).toBe(`${ACTIVITY_URL}${payPalOrder.pspPaymentId}`);
    const payment = res.data!.orderReceipt.flow.output.order.payment;
    expect(payment).toMatchObject({ psp: 'PAYPAL', pspPaymentId: payPalOrder.pspPaymentId });
    expect(payment).not.toHaveProperty('stripe');
    expect(payment).not.toHaveProperty('paypal');
    // The PayPal receipt is its activity page: no PayPal call at all.
    expect(callsSince(before)).toMatchObject({ stripe: 0, paypal: 0 });
  });
});
