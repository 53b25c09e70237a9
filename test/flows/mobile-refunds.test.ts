import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

/**
 * Refunds made by the mobile app stores, end to end through the gateway: Apple's App Store Server
 * Notifications (REFUND) at POST /iap/ios/refund/ and Google Play's voided purchases (Pub/Sub push) at
 * POST /iap/android/refund/ → signal mobile.payment.refunded.v1 → recordMobileRefund on the order's
 * mobile payment in the order management Service → order.refunded.v1 → revoke in the LMS; an Apple
 * refund the Service holds no payment for → mobile.ios-refund.unmatched.v1 → legacy ecommerce, when
 * transition.ios-refunds.legacy was on. Mobile-paid orders are seeded in the order management stand-in
 * in the reference's format (ios_iap / android_iap payments).
 */

let cc: CommerceCoordinator;

beforeAll(async () => {
  cc = await startCommerceCoordinator('mobile-refunds');
});

afterAll(async () => {
  await cc?.stop();
});

type Store = 'ios' | 'android';

interface MobileOrder {
  orderId: string;
  paymentId: string;
  /** Apple transactionId / Google orderId. */
  transactionId: string;
  courseRunKey: string;
  paidCents: number;
}

let seq = 0;

/**
 * A mobile-paid, fulfilled order of Ada's: the payment as the create-order flow writes it (method
 * ios_iap | android_iap, interface <method>_edx, interfaceId and Charge = the store's transaction id,
 * key = its normalized form), the order with mobileOrder=true, Ada enrolled in its course run.
 */
function seedMobileOrder(store: Store, paidCents = 4_999): MobileOrder {
  const n = ++seq;
  const ada = DEMO.learners.ada;
  const transactionId =
    store === 'ios' ? `${2_000_000_100_000 + n * 7}` : `GPA.3391-${1000 + n}-5621-${n}0123`;
  const courseRunKey = `course-v1:MobileX+M${n}+2026`;
  cc.services.lms.seed({
    courses: [{ courseId: courseRunKey }],
    enrollments: [{ username: ada.username, courseId: courseRunKey, mode: 'verified', isActive: true }],
  });
  const { orders, payments } = cc.services.orderManagement.seed({
    orders: [
      {
        orderNumber: `2U-2026${String(800_000 + n)}`,
        customer: { lmsUserId: ada.lmsUserId, username: ada.username, email: ada.email },
        lineItems: [{ title: `Mobile course ${n}`, priceCents: paidCents, courseRunKey, state: 'SUCCESS' }],
        payment: { psp: 'STRIPE', pspPaymentId: transactionId },
      },
    ],
  });
  const order = orders[0]!;
  const payment = cc.services.orderManagement.store.payments.get(payments[0]!.id)!;
  const method = store === 'ios' ? 'ios_iap' : 'android_iap';
  payment.paymentMethodInfo = { method, paymentInterface: `${method}_edx` };
  payment.interfaceId = transactionId;
  payment.key = transactionId.replace(/[^A-Za-z0-9_-]/g, '_');
  order.custom!.fields.mobileOrder = true;
  return { orderId: order.id, paymentId: payment.id, transactionId, courseRunKey, paidCents };
}

const refundTransactions = (o: MobileOrder) =>
  cc.services.orderManagement.store.payments
    .get(o.paymentId)!
    .transactions.filter((t) => t.type === 'Refund');

const isEnrolled = (o: MobileOrder) =>
  cc.services.lms.state().enrollments.find((e) => e.username === 'ada' && e.courseId === o.courseRunKey)
    ?.isActive;

const RECORD = `mutation Record($input: RecordMobileRefundInput!) {
  recordMobileRefund(input: $input) {
    found orderId transactionId recorded linkedReturnItems revoked forwardedToLegacy
  }
}`;

interface Recorded {
  found: boolean;
  orderId: string | null;
  transactionId: string | null;
  recorded: boolean;
  linkedReturnItems: number;
  revoked: boolean;
  forwardedToLegacy: boolean;
}

async function record(input: Record<string, unknown>, bearer = cc.tokens.staff) {
  return cc.graphql<{ recordMobileRefund: Recorded }>(
    RECORD,
    {
      input: {
        refundCreatedAt: new Date().toISOString(),
        forwardToLegacy: false,
        ...input,
      },
    },
    bearer,
  );
}

describe('the recordMobileRefund Action (the receiver of mobile.payment.refunded.v1)', () => {
  it('records an Apple refund once, in minor units of the payment’s currency', async () => {
    const o = seedMobileOrder('ios');
    const input = {
      paymentInterface: 'ios_iap_edx',
      transactionIds: [o.transactionId],
      refundId: o.transactionId,
      refundedAmountCents: 4_999,
      currency: 'USD',
    };
    const first = await record(input);
    expect(first.errors).toBeUndefined();
    expect(first.data!.recordMobileRefund).toMatchObject({ found: true, orderId: o.orderId, recorded: true });
    const again = await record(input);
    expect(again.data!.recordMobileRefund).toMatchObject({
      found: true,
      recorded: false,
      transactionId: first.data!.recordMobileRefund.transactionId,
    });
    expect(refundTransactions(o)).toMatchObject([
      {
        amount: { centAmount: 4_999, currencyCode: 'USD' },
        interactionId: o.transactionId,
        state: 'Success',
      },
    ]);
  });

  it('a Google refund (no amount) is the payment’s amountPlanned; a learner may not record one', async () => {
    const o = seedMobileOrder('android', 12_345);
    const input = {
      paymentInterface: 'android_iap_edx',
      transactionIds: [o.transactionId],
      refundId: o.transactionId,
    };
    const forbidden = await record(input, cc.tokens.ada);
    expect(forbidden.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(refundTransactions(o)).toEqual([]);
    const result = await record(input);
    expect(result.data!.recordMobileRefund).toMatchObject({ found: true, recorded: true });
    expect(refundTransactions(o)).toMatchObject([{ amount: { centAmount: 12_345, currencyCode: 'USD' } }]);
  });

  it('does not take an Apple refund for a Google payment, nor bad input', async () => {
    const o = seedMobileOrder('android');
    const wrongStore = await record({
      paymentInterface: 'ios_iap_edx',
      transactionIds: [o.transactionId],
      refundId: o.transactionId,
    });
    expect(wrongStore.data!.recordMobileRefund).toMatchObject({ found: false, recorded: false });
    for (const bad of [
      { paymentInterface: 'stripe_edx', transactionIds: [o.transactionId], refundId: 'x' },
      { paymentInterface: 'android_iap_edx', transactionIds: [], refundId: 'x' },
      {
        paymentInterface: 'android_iap_edx',
        transactionIds: ['x'],
        refundId: 'x',
        refundedAmountCents: -1,
        currency: 'USD',
      },
      { paymentInterface: 'android_iap_edx', transactionIds: ['x'], refundId: 'x', refundedAmountCents: 5 },
      {
        paymentInterface: 'android_iap_edx',
        transactionIds: ['x'],
        refundId: 'x',
        refundCreatedAt: 'yesterday',
      },
      { paymentInterface: 'android_iap_edx', transactionIds: ['x'.repeat(201)], refundId: 'x' },
    ]) {
      const refused = await record(bad);
      expect(refused.errors?.[0]?.extensions?.code, JSON.stringify(bad)).toBe('BAD_USER_INPUT');
    }
    expect(refundTransactions(o)).toEqual([]);
  });

  it('links a return refunded in the Merchant Center without a transaction to the refund', async () => {
    const o = seedMobileOrder('ios');
    const order = cc.services.orderManagement.store.orders.get(o.orderId)!;
    const now = new Date().toISOString();
    order.returnInfo.push({
      items: [
        {
          type: 'LineItemReturnItem',
          id: randomUUID(),
          quantity: 1,
          lineItemId: order.lineItems[0]!.id,
          shipmentState: 'Returned',
          paymentState: 'Refunded',
          createdAt: now,
          lastModifiedAt: now,
        },
      ],
    });
    const result = await record({
      paymentInterface: 'ios_iap_edx',
      transactionIds: [o.transactionId],
      refundId: o.transactionId,
      refundedAmountCents: 4_999,
      currency: 'USD',
    });
    expect(result.data!.recordMobileRefund).toMatchObject({ recorded: true, linkedReturnItems: 1 });
    const item = cc.services.orderManagement.store.orders.get(o.orderId)!.returnInfo[0]!.items[0]!;
    expect(item.paymentState).toBe('Refunded');
    expect(item.custom?.fields.transactionId).toBe(result.data!.recordMobileRefund.transactionId);
    expect(isEnrolled(o)).toBe(true);
  });
});

describe('the forwardIosRefund Action (the receiver of mobile.ios-refund.unmatched.v1)', () => {
  const FORWARD = `mutation Forward($input: ForwardIosRefundInput!) { forwardIosRefund(input: $input) { status } }`;

  it('hands legacy ecommerce the body byte for byte; an outage fails the call so that it is retried', async () => {
    const body = `{"signedPayload":"eyJhbGciOiJFUzI1NiJ9.${randomUUID()}.sig"}`;
    const input = { refundId: 'r-1', transactionIds: ['t-1'], legacyPayload: body };
    cc.services.legacyEcommerce.failNext(1, 503, '/api/iap/v1/ios/refund/');
    const outage = await cc.graphql(FORWARD, { input }, cc.tokens.staff);
    expect(outage.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
    expect(cc.services.legacyEcommerce.iosRefunds()).not.toContain(body);
    const forwarded = await cc.graphql<{ forwardIosRefund: { status: number } }>(
      FORWARD,
      { input },
      cc.tokens.staff,
    );
    expect(forwarded.errors).toBeUndefined();
    expect(forwarded.data!.forwardIosRefund.status).toBe(200);
    expect(cc.services.legacyEcommerce.iosRefunds().filter((b) => b === body)).toHaveLength(1);
  });

  it('a refusal by legacy ecommerce is CONFLICT; learners may not forward', async () => {
    const refused = await cc.graphql(
      FORWARD,
      { input: { refundId: 'r-2', transactionIds: ['t-2'], legacyPayload: '{"notApple":true}' } },
      cc.tokens.staff,
    );
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT', legacyStatus: 400 });
    const learner = await cc.graphql(
      FORWARD,
      { input: { refundId: 'r-3', transactionIds: ['t-3'], legacyPayload: '{"signedPayload":"x"}' } },
      cc.tokens.ada,
    );
    expect(learner.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});
