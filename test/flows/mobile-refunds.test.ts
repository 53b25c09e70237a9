import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { untrustedAppStoreSigner } from '../../services/app-store/server.js';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { paidByStore } from '../support/orders.js';
import { waitFor } from '../support/wait.js';

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
  const { order, payment } = paidByStore(
    cc,
    { order: orders[0]!, payment: payments[0]! },
    store,
    transactionId,
  );
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

  it('records a second refund of a payment as at most what is left of it: the record never says more went back', async () => {
    const o = seedMobileOrder('ios', 1_000);
    const refund = (refundId: string, refundedAmountCents: number) =>
      record({
        paymentInterface: 'ios_iap_edx',
        transactionIds: [o.transactionId],
        refundId,
        refundedAmountCents,
        currency: 'USD',
      });
    expect((await refund(`${o.transactionId}-part`, 300)).data!.recordMobileRefund.recorded).toBe(true);
    expect((await refund(`${o.transactionId}-whole`, 1_000)).data!.recordMobileRefund.recorded).toBe(true);
    expect(refundTransactions(o).map((t) => t.amount.centAmount)).toEqual([300, 700]);
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

  it('records nothing on a payment already refunded in full by another refund, and revokes nothing', async () => {
    const o = seedMobileOrder('ios');
    const payment = cc.services.orderManagement.store.payments.get(o.paymentId)!;
    payment.transactions.push({
      id: randomUUID(),
      timestamp: new Date().toISOString(),
      type: 'Refund',
      amount: { ...payment.amountPlanned },
      interactionId: 'refund-made-elsewhere',
      state: 'Success',
    });
    const result = await record({
      paymentInterface: 'ios_iap_edx',
      transactionIds: [o.transactionId],
      refundId: o.transactionId,
      refundedAmountCents: 4_999,
      currency: 'USD',
    });
    expect(result.data!.recordMobileRefund).toMatchObject({
      found: true,
      recorded: false,
      transactionId: null,
      revoked: false,
    });
    expect(refundTransactions(o).map((t) => t.interactionId)).toEqual(['refund-made-elsewhere']);
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

// ---- Through the stores' webhooks -------------------------------------------------------------------

const SIGNAL = 'mobile.payment.refunded.v1';
const UNMATCHED = 'mobile.ios-refund.unmatched.v1';
const LEGACY_FLAG = 'transition.ios-refunds.legacy';

interface Run {
  id: string;
  status: string;
  receiver: string;
  attempt: number;
  input: Record<string, unknown>;
  output: Record<string, unknown> | null;
}

/** The receiver runs of a signal whose input names `refundId`. */
async function runs(signal: string, refundId: string): Promise<Run[]> {
  const result = await cc.graphql<{ flows: Run[] }>(
    `query Runs($name: String!) { flows(name: $name, limit: 200) { id status receiver attempt input output } }`,
    { name: signal },
    cc.tokens.staff,
  );
  expect(result.errors).toBeUndefined();
  return result.data!.flows.filter((f) => f.input.refundId === refundId);
}

/** Waits for the receiver runs of a refund to have completed, `count` of them. */
const completedRuns = (signal: string, refundId: string, count = 1) =>
  waitFor(
    async () => {
      const found = await runs(signal, refundId);
      expect(found.map((r) => r.status)).toEqual(Array(count).fill('COMPLETED'));
      return found;
    },
    { what: `${signal} of ${refundId} completed`, timeoutMs: 15_000 },
  );

/** A mobile order paid through the App Store stand-in (a $49.99 consumable). */
function appleOrder(price = 49_990): MobileOrder {
  const order = seedMobileOrder('ios', Math.round(price / 10));
  cc.services.appStore.seed({
    transactions: [{ transactionId: order.transactionId, productId: 'mobile.ios.usd49', price }],
  });
  return order;
}

/** A purchase the App Store holds but the order management Service does not (bought before). */
function unknownApplePurchase(): string {
  const [transaction] = cc.services.appStore.seed({
    transactions: [{ productId: 'mobile.ios.usd49', price: 49_990 }],
  });
  return transaction!.transactionId;
}

/** A mobile order paid through the Google Play stand-in. */
function googleOrder(paidCents = 12_345): MobileOrder & { purchaseToken: string } {
  const order = seedMobileOrder('android', paidCents);
  const purchaseToken = `token-${randomUUID()}`;
  cc.services.googlePlay.seed({
    purchases: [{ purchaseToken, orderId: order.transactionId, productId: 'mobile.android.usd123' }],
  });
  return { ...order, purchaseToken };
}

const postApple = (body: string) =>
  cc.request('/iap/ios/refund/', { method: 'POST', headers: { 'content-type': 'application/json' }, body });

describe('an Apple REFUND notification at POST /iap/ios/refund/', () => {
  it('is recorded once across redeliveries and concurrent duplicates, then the course is revoked', async () => {
    const o = appleOrder();
    const { signedPayload, delivery } = await cc.services.appStore.refund(o.transactionId);
    expect(delivery!.status).toBe(200);
    expect(JSON.parse(delivery!.body)).toEqual({ received: true, duplicate: false });
    // Apple resends an unanswered notification; three redeliveries, then five at once.
    for (let i = 0; i < 3; i++) {
      const again = await cc.services.appStore.deliver(signedPayload);
      expect([again.status, JSON.parse(again.body)]).toEqual([200, { received: true, duplicate: true }]);
    }
    const together = await Promise.all(
      Array.from({ length: 5 }, () => cc.services.appStore.deliver(signedPayload)),
    );
    expect(together.map((d) => d.status)).toEqual([200, 200, 200, 200, 200]);

    const [run] = await completedRuns(SIGNAL, o.transactionId);
    expect(run!.output).toMatchObject({ found: true, orderId: o.orderId, recorded: true, revoked: true });
    expect(refundTransactions(o)).toMatchObject([
      {
        amount: { centAmount: 4_999, currencyCode: 'USD' },
        interactionId: o.transactionId,
        state: 'Success',
      },
    ]);
    await waitFor(() => isEnrolled(o) === false, { what: 'the course revoked' });
    // A second notification of the same refund (a new notificationUUID): its own run, no second refund.
    await cc.services.appStore.notify({ notificationType: 'REFUND', transactionId: o.transactionId });
    const both = await completedRuns(SIGNAL, o.transactionId, 2);
    expect(both.map((r) => r.output?.recorded).sort()).toEqual([false, true]);
    expect(refundTransactions(o)).toHaveLength(1);
  });

  it('two notifications of one refund arriving at once record it once', async () => {
    const o = appleOrder();
    const signed = await Promise.all(
      [1, 2, 3].map(() =>
        cc.services.appStore.notify(
          { notificationType: 'REFUND', transactionId: o.transactionId },
          { deliver: false },
        ),
      ),
    );
    const deliveries = await Promise.all(signed.map((n) => cc.services.appStore.deliver(n.signedPayload)));
    expect(deliveries.map((d) => [d.status, JSON.parse(d.body).duplicate])).toEqual([
      [200, false],
      [200, false],
      [200, false],
    ]);
    const all = await completedRuns(SIGNAL, o.transactionId, 3);
    expect(all.filter((r) => r.output?.recorded)).toHaveLength(1);
    expect(refundTransactions(o)).toHaveLength(1);
  });

  it('of another type is answered 200 and does nothing', async () => {
    const o = appleOrder();
    for (const notificationType of ['CONSUMPTION_REQUEST', 'REFUND_DECLINED', 'TEST']) {
      const { delivery } = await cc.services.appStore.notify({
        notificationType,
        transactionId: o.transactionId,
      });
      expect([delivery!.status, JSON.parse(delivery!.body)]).toEqual([
        200,
        { received: true, ignored: notificationType },
      ]);
    }
    // A REFUND of another purchase, processed after those, shows the queue has been worked through.
    const other = appleOrder();
    await cc.services.appStore.refund(other.transactionId);
    await completedRuns(SIGNAL, other.transactionId);
    expect(await runs(SIGNAL, o.transactionId)).toEqual([]);
    expect(refundTransactions(o)).toEqual([]);
    expect(isEnrolled(o)).toBe(true);
  });

  it('that Apple did not sign is refused (403 INVALID_SIGNATURE) and changes nothing', async () => {
    const o = appleOrder();
    const { signedPayload } = await cc.services.appStore.refund(o.transactionId, { deliver: false });
    const [header, payload] = signedPayload.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')) as Record<string, unknown>;
    // The same notification signed by a chain that does not end at the configured root (a forger's).
    const wrongRoot = await untrustedAppStoreSigner().sign(claims);
    // Apple's signature over other claims: a notification edited after signing.
    const edited = Buffer.from(JSON.stringify({ ...claims, notificationUUID: randomUUID() })).toString(
      'base64url',
    );
    const tampered = `${header}.${edited}.${signedPayload.split('.')[2]}`;
    for (const forged of [wrongRoot, tampered, 'not.a.jws']) {
      const res = await postApple(JSON.stringify({ signedPayload: forged }));
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ code: 'INVALID_SIGNATURE' });
    }
    for (const malformed of [
      '{"signedPayload":',
      '{}',
      JSON.stringify({ signedPayload: 'x'.repeat(70_000) }),
    ]) {
      const res = await postApple(malformed);
      expect(res.status, malformed.slice(0, 30)).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'BAD_REQUEST' });
    }
    expect(await runs(SIGNAL, o.transactionId)).toEqual([]);
    expect(refundTransactions(o)).toEqual([]);
    // Apple's own delivery of it still counts, once.
    const genuine = await cc.services.appStore.deliver(signedPayload);
    expect(genuine.status).toBe(200);
    await completedRuns(SIGNAL, o.transactionId);
    expect(refundTransactions(o)).toHaveLength(1);
  });

  it('is answered 200 while the order management Service fails, and recorded once it answers again', async () => {
    const o = appleOrder();
    const failing = `/${cc.services.env.ORDER_MANAGEMENT_PROJECT_KEY}/payments`;
    cc.services.orderManagement.failNext(3, 500, failing, 'GET');
    const { delivery } = await cc.services.appStore.refund(o.transactionId);
    expect(delivery!.status).toBe(200);
    const [run] = await completedRuns(SIGNAL, o.transactionId);
    // The Coordinator retried the receiver (one run, delivered again) until the Service answered.
    expect(run!.attempt).toBeGreaterThan(1);
    expect(refundTransactions(o)).toHaveLength(1);
    await waitFor(() => isEnrolled(o) === false, { what: 'the course revoked' });
  });

  it('turns Apple’s milli-units into minor units of the currency (JPY has none)', async () => {
    const o = seedMobileOrder('ios', 1_300);
    const payment = cc.services.orderManagement.store.payments.get(o.paymentId)!;
    payment.amountPlanned = { ...payment.amountPlanned, currencyCode: 'JPY' };
    // ¥1,200.000 in milli-units; the payment planned ¥1,300: Apple's amount is what was refunded.
    cc.services.appStore.seed({
      transactions: [
        { transactionId: o.transactionId, productId: 'mobile.ios.jpy', price: 1_200_000, currency: 'JPY' },
      ],
    });
    await cc.services.appStore.refund(o.transactionId);
    const [run] = await completedRuns(SIGNAL, o.transactionId);
    expect(run!.input).toMatchObject({ refundedAmountCents: 1_200, currency: 'JPY' });
    expect(refundTransactions(o)).toMatchObject([{ amount: { centAmount: 1_200, currencyCode: 'JPY' } }]);
  });

  it('in another currency than the payment’s is recorded as the amount planned, in the payment’s', async () => {
    const o = seedMobileOrder('ios', 4_999);
    // A €45.99 storefront price for a payment recorded at the USD price.
    cc.services.appStore.seed({
      transactions: [
        { transactionId: o.transactionId, productId: 'mobile.ios.usd49', price: 45_990, currency: 'EUR' },
      ],
    });
    await cc.services.appStore.refund(o.transactionId);
    const [run] = await completedRuns(SIGNAL, o.transactionId);
    expect(run!.input).toMatchObject({ refundedAmountCents: 4_599, currency: 'EUR' });
    expect(refundTransactions(o)).toMatchObject([{ amount: { centAmount: 4_999, currencyCode: 'USD' } }]);
  });
});

describe('an Apple refund of a purchase the order management Service does not hold', () => {
  it('is not forwarded to legacy ecommerce while transition.ios-refunds.legacy is off', async () => {
    cc.testData.update(cc.testData.flag(LEGACY_FLAG).booleanFlag().variationForAll(false));
    const transactionId = unknownApplePurchase();
    const { delivery } = await cc.services.appStore.refund(transactionId);
    expect(delivery!.status).toBe(200);
    const [run] = await completedRuns(SIGNAL, transactionId);
    expect(run!.output).toMatchObject({ found: false, forwardedToLegacy: false });
    expect(run!.input).not.toHaveProperty('legacyPayload');
    expect(await runs(UNMATCHED, transactionId)).toEqual([]);
    expect(cc.services.legacyEcommerce.iosRefunds().some((b) => b.includes(delivery!.signedPayload))).toBe(
      false,
    );
  });

  it('is forwarded byte for byte while the flag is on, once, through a legacy outage', async () => {
    cc.testData.update(cc.testData.flag(LEGACY_FLAG).booleanFlag().variationForAll(true));
    try {
      const transactionId = unknownApplePurchase();
      cc.services.legacyEcommerce.failNext(2, 503, '/api/iap/v1/ios/refund/');
      const { signedPayload, delivery } = await cc.services.appStore.refund(transactionId);
      expect(delivery!.status).toBe(200);
      await cc.services.appStore.deliver(signedPayload);
      const [forward] = await completedRuns(UNMATCHED, transactionId);
      expect(forward!.receiver).toBe('forward-ios-refund-to-legacy');
      expect(forward!.attempt).toBeGreaterThan(1);
      const sent = JSON.stringify({ signedPayload });
      expect(cc.services.legacyEcommerce.iosRefunds().filter((b) => b === sent)).toHaveLength(1);
      // A refund of a purchase the Service does hold stays with the Coordinator, flag or not.
      const known = appleOrder();
      const { signedPayload: knownPayload } = await cc.services.appStore.refund(known.transactionId);
      await completedRuns(SIGNAL, known.transactionId);
      expect(refundTransactions(known)).toHaveLength(1);
      expect(await runs(UNMATCHED, known.transactionId)).toEqual([]);
      expect(cc.services.legacyEcommerce.iosRefunds().some((b) => b.includes(knownPayload))).toBe(false);
    } finally {
      cc.testData.update(cc.testData.flag(LEGACY_FLAG).booleanFlag().variationForAll(false));
    }
  });
});

describe('a mobile refund whose receiver fails for good', () => {
  it('is kept as a dead letter, and completes when an operator replays it', async () => {
    cc.testData.update(cc.testData.flag(LEGACY_FLAG).booleanFlag().variationForAll(true));
    try {
      const transactionId = unknownApplePurchase();
      // Legacy ecommerce refuses the forward (a 400 is not retried: it would refuse it again).
      cc.services.legacyEcommerce.failNext(1, 400, '/api/iap/v1/ios/refund/');
      const { signedPayload, delivery } = await cc.services.appStore.refund(transactionId);
      expect(delivery!.status).toBe(200);
      type Letter = { id: string; receiver: string; payload: { refundId: string }; error: { code: string } };
      const DEAD = `query Dead { deadLetters(receiver: "forward-ios-refund-to-legacy") { id receiver payload error { code } } }`;
      const [letter] = await waitFor(
        async () => {
          const { data } = await cc.graphql<{ deadLetters: Letter[] }>(DEAD, {}, cc.tokens.staff);
          const mine = data!.deadLetters.filter((l) => l.payload.refundId === transactionId);
          expect(mine).toHaveLength(1);
          return mine;
        },
        { what: 'the forward dead-lettered', timeoutMs: 15_000 },
      );
      expect(letter!.error.code).toBe('CONFLICT');
      const sent = JSON.stringify({ signedPayload });
      expect(cc.services.legacyEcommerce.iosRefunds()).not.toContain(sent);
      const replay = await cc.graphql<{ replayDeadLetters: number }>(
        `mutation Replay($ids: [ID!]) { replayDeadLetters(ids: $ids, reason: "legacy ecommerce fixed") }`,
        { ids: [letter!.id] },
        cc.tokens.staff,
      );
      expect(replay.errors).toBeUndefined();
      expect(replay.data!.replayDeadLetters).toBe(1);
      await waitFor(() => cc.services.legacyEcommerce.iosRefunds().filter((b) => b === sent).length === 1, {
        what: 'the replayed forward',
        timeoutMs: 15_000,
      });
    } finally {
      cc.testData.update(cc.testData.flag(LEGACY_FLAG).booleanFlag().variationForAll(false));
    }
  });
});

describe('a Google Play voided purchase at POST /iap/android/refund/', () => {
  const pushAndroid = (body: string, authorization?: string) =>
    cc.request('/iap/android/refund/', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
      body,
    });

  it('without a valid Google OIDC token is 403, and nothing is recorded', async () => {
    const o = googleOrder();
    const { body } = await cc.services.googlePlay.voidPurchase(
      { purchaseToken: o.purchaseToken, orderId: o.transactionId },
      { deliver: false },
    );
    const now = Math.floor(Date.now() / 1000);
    const play = cc.services.googlePlay;
    const tokens: Array<[string, string | undefined]> = [
      ['missing', undefined],
      ['not a JWT', 'Bearer not-a-jwt'],
      ['another scheme', `Basic ${await play.pushToken()}`],
      ['expired', `Bearer ${await play.pushToken({ iat: now - 7200, exp: now - 3600 })}`],
      ['another audience', `Bearer ${await play.pushToken({ aud: 'https://attacker.example.com/push' })}`],
      [
        'another service account',
        `Bearer ${await play.pushToken({ email: 'someone@example.iam.gserviceaccount.com' })}`,
      ],
      ['another issuer', `Bearer ${await play.pushToken({ iss: 'https://attacker.example.com' })}`],
    ];
    for (const [what, authorization] of tokens) {
      const res = await pushAndroid(body, authorization);
      expect(res.status, what).toBe(403);
      expect(await res.json(), what).toMatchObject({ code: 'INVALID_SIGNATURE' });
    }
    expect(await runs(SIGNAL, o.transactionId)).toEqual([]);
    expect(refundTransactions(o)).toEqual([]);
  });

  it('of another subscription, not a voided purchase, or partial, is answered 200 and ignored', async () => {
    const o = googleOrder();
    const play = cc.services.googlePlay;
    const voided = await play.voidPurchase(
      { purchaseToken: o.purchaseToken, orderId: o.transactionId },
      { deliver: false },
    );
    const elsewhere = JSON.stringify({
      ...(JSON.parse(voided.body) as object),
      subscription: 'projects/other/subscriptions/other-refunds',
    });
    const notVoided = play.pushBody({
      version: '1.0',
      packageName: play.packageName,
      eventTimeMillis: String(Date.now()),
      oneTimeProductNotification: {
        version: '1.0',
        notificationType: 1,
        purchaseToken: o.purchaseToken,
        sku: 'x',
      },
    });
    const partial = await play.voidPurchase(
      { purchaseToken: o.purchaseToken, orderId: o.transactionId, refundType: 2 },
      { deliver: false },
    );
    for (const [why, body] of [
      ['subscription', elsewhere],
      ['not a voided purchase', notVoided],
      ['partial refund', partial.body],
    ] as const) {
      const delivery = await play.push(body);
      expect(delivery.status, why).toBe(200);
      expect(JSON.parse(delivery.body), why).toMatchObject({ received: true, ignored: why });
    }
    // A full refund of another purchase, processed after those, shows the queue has been worked through.
    const other = googleOrder();
    await play.voidPurchase({ purchaseToken: other.purchaseToken, orderId: other.transactionId });
    await completedRuns(SIGNAL, other.transactionId);
    expect(await runs(SIGNAL, o.transactionId)).toEqual([]);
    expect(refundTransactions(o)).toEqual([]);
    expect(isEnrolled(o)).toBe(true);
  });

  it('in full: one refund transaction for the amount planned, the course revoked, redeliveries ignored', async () => {
    const o = googleOrder(12_345);
    const play = cc.services.googlePlay;
    const { delivery } = await play.voidPurchase({
      purchaseToken: o.purchaseToken,
      orderId: o.transactionId,
    });
    expect(delivery!.status).toBe(200);
    expect(JSON.parse(delivery!.body)).toMatchObject({ received: true, duplicate: false });
    const again = await Promise.all([1, 2, 3].map(() => play.push(delivery!.request.body)));
    expect(again.map((d) => [d.status, JSON.parse(d.body).duplicate])).toEqual([
      [200, true],
      [200, true],
      [200, true],
    ]);
    const [run] = await completedRuns(SIGNAL, o.transactionId);
    expect(run!.output).toMatchObject({ found: true, recorded: true, revoked: true });
    expect(refundTransactions(o)).toMatchObject([
      {
        amount: { centAmount: 12_345, currencyCode: 'USD' },
        interactionId: o.transactionId,
        state: 'Success',
      },
    ]);
    await waitFor(() => isEnrolled(o) === false, { what: 'the course revoked' });
    // Pub/Sub may also push the same notification again under a new messageId: no second refund.
    await play.voidPurchase({ purchaseToken: o.purchaseToken, orderId: o.transactionId });
    await completedRuns(SIGNAL, o.transactionId, 2);
    expect(refundTransactions(o)).toHaveLength(1);
  });
});
