import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { token } from '../support/coordinator.js';

/**
 * The mobile in-app purchase order (POST /iap/create-order/, reference §5.11) end to end: the app's
 * request through the gateway, the store's verification at the App Store / Google Play stand-ins, and
 * the customer, cart, payment and order at the order management stand-in, on real PostgreSQL and Redis.
 */

let t: CommerceCoordinator;
/** A learner of this file's own, unknown to the order management Service until their first order. */
const grace = { lmsUserId: 71, username: 'grace', email: 'grace@example.com', name: 'Grace Brewster Hopper' };
let graceToken: string;

const CS50 = DEMO.courses.cs50.courseId;
const DEMO_COURSE = DEMO.courses.demo.courseId;
const YEAR = new Date().getUTCFullYear();

beforeAll(async () => {
  t = await startCommerceCoordinator('mobile-order');
  t.services.lms.seed({
    users: [{ id: grace.lmsUserId, username: grace.username, email: grace.email, name: grace.name }],
  });
  graceToken = await token({ kind: 'learner', lmsUserId: grace.lmsUserId, username: grace.username });
}, 90_000);
afterAll(() => t?.stop());

const om = () => t.services.orderManagement;
let nextTransaction = 2_000_000_000_700_000;

/** An App Store purchase of the USD 149 course as the App Store holds it; its transaction id is the token. */
function applePurchase(overrides: Record<string, unknown> = {}): string {
  const transactionId = String(nextTransaction++);
  t.services.appStore.seed({
    transactions: [{ transactionId, productId: 'mobile.ios.usd149', price: 149_000, ...overrides }],
  });
  return transactionId;
}

let nextGoogle = 1;
/** A Google Play purchase of the USD 149 course: its purchase token and Google's order id. */
function googlePurchase(overrides: Record<string, unknown> = {}) {
  const n = nextGoogle++;
  const purchaseToken = `play-token-${n}.AO-J1Ox${'x'.repeat(40)}`;
  const orderId = `GPA.3300-0149-${String(n).padStart(4, '0')}-70000`;
  t.services.googlePlay.seed({
    purchases: [
      { purchaseToken, orderId, productId: 'mobile.android.usd149', regionCode: 'DE', ...overrides },
    ],
  });
  return { purchaseToken, orderId };
}

const body = (purchaseToken: string, overrides: Record<string, unknown> = {}) => ({
  course_run_key: CS50,
  currency_code: 'USD',
  price: '149.00',
  purchase_token: purchaseToken,
  payment_processor: 'ios_iap',
  ...overrides,
});

/** POSTs to /iap/create-order/ as ada, or as `bearer` (null: anonymous). */
async function createOrder(payload: unknown, bearer: string | null = t.tokens.ada) {
  const res = await t.request('/iap/create-order/', {
    method: 'POST',
    ...(bearer ? { token: bearer } : {}),
    headers: { 'content-type': 'application/json' },
    body: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const customerOf = (lmsUserId: number) =>
  [...om().store.customers.values()].find((c) => c.custom?.fields.lmsUserId === lmsUserId);
const cartsOf = (lmsUserId: number) => {
  const customer = customerOf(lmsUserId);
  return [...om().checkout.carts.values()].filter((c) => customer && c.customerId === customer.id);
};
const activeCartsOf = (lmsUserId: number) => cartsOf(lmsUserId).filter((c) => c.cartState === 'Active');
const paymentsWithKey = (key: string) => [...om().store.payments.values()].filter((p) => p.key === key);
const ordersPaidBy = (paymentId: string) =>
  [...om().store.orders.values()].filter((o) => o.paymentInfo?.payments.some((p) => p.id === paymentId));
const stateKey = (id: string) => om().store.states.get(id)?.key;
const counter = () => om().checkout.customObjects.get('coordinator/order-number');

describe('an App Store purchase', () => {
  it("becomes a placed order: the learner's web cart is replaced, the order Complete and Paid, its lines pending fulfillment", async () => {
    // A web checkout ada left behind.
    const [webCart] = om().seed({
      carts: [{ lmsUserId: DEMO.learners.ada.lmsUserId, sku: DEMO_COURSE }],
    }).carts;
    const before = counter()!.value as { year: number; counter: number };
    const transactionId = applePurchase();

    const res = await createOrder(body(transactionId));

    expect(res.status).toBe(201);
    const order = om().store.orders.get(String(res.body.order_id))!;
    expect(res.body).toEqual({ order_id: order.id, order_number: order.orderNumber });
    expect(order.orderNumber).toMatch(new RegExp(`^2U-${YEAR}\\d{6}$`));
    // The next number of this year's counter, past the demo orders' numbers.
    const after = counter()!.value as { year: number; counter: number };
    expect(after.year).toBe(YEAR);
    expect(order.orderNumber).toBe(`2U-${YEAR}${String(after.counter).padStart(6, '0')}`);
    if (before.year === YEAR) expect(after.counter).toBe(before.counter + 1);
    const placed = order as typeof order & { paymentState?: string; shipmentState?: string };
    expect([placed.orderState, placed.paymentState, placed.shipmentState]).toEqual([
      'Complete',
      'Paid',
      'Shipped',
    ]);
    expect(order.custom?.fields).toMatchObject({ lmsUserId: 3, lmsUsername: 'ada', mobileOrder: true });
    expect(order.lineItems).toHaveLength(1);
    const [line] = order.lineItems;
    expect(line!.variant.sku).toBe(CS50);
    expect(line!.totalPrice).toMatchObject({ centAmount: 14_900, currencyCode: 'USD' });
    expect(line!.state.map((s) => [s.quantity, stateKey(s.state.id)])).toEqual([
      [1, '2u-fulfillment-pending-state'],
    ]);
    // The payment, in the reference's format.
    const [payment] = paymentsWithKey(transactionId);
    expect(order.paymentInfo?.payments.map((p) => p.id)).toEqual([payment!.id]);
    expect(payment).toMatchObject({
      interfaceId: transactionId,
      amountPlanned: { centAmount: 14_900, currencyCode: 'USD' },
      paymentMethodInfo: { method: 'ios_iap', paymentInterface: 'ios_iap_edx' },
      paymentStatus: { interfaceCode: 'succeeded' },
    });
    expect(payment!.transactions.map((x) => [x.type, x.state, x.interactionId, x.amount.centAmount])).toEqual(
      [['Charge', 'Success', transactionId, 14_900]],
    );
    // The web cart is gone; the order's cart is ordered.
    expect(om().checkout.carts.has(webCart!.id)).toBe(false);
    expect(activeCartsOf(3)).toEqual([]);
  });

  it("is then fulfilled by the order management Service's event: the learner is enrolled", async () => {
    const transactionId = applePurchase();
    const created = await createOrder(body(transactionId, { course_run_key: DEMO_COURSE }), t.tokens.bob);
    expect(created.status).toBe(201);
    const orderId = String(created.body.order_id);

    const res = await t.request('/order-management/fulfill', {
      method: 'POST',
      token: t.tokens.orderManagement,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        id: `evt-mobile-${orderId}`,
        detail: { id: `msg-${orderId}`, resource: { id: orderId } },
      }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'COMPLETED' });
    const order = om().store.orders.get(orderId)!;
    expect(order.lineItems.map((l) => stateKey(l.state[0]!.state.id))).toEqual([
      '2u-fulfillment-success-state',
    ]);
    const enrollments = t.services.lms
      .state()
      .enrollments.filter((e) => e.attributes?.some((a) => a.name === 'order_id' && a.value === orderId));
    expect(enrollments.map((e) => [e.username, e.courseId, e.isActive])).toEqual([
      ['bob', DEMO_COURSE, true],
    ]);
  });

  it("makes a customer for a learner the Service does not know, with the LMS's names and email", async () => {
    expect(customerOf(grace.lmsUserId)).toBeUndefined();
    const res = await createOrder(body(applePurchase()), graceToken);
    expect(res.status).toBe(201);
    expect(customerOf(grace.lmsUserId)).toMatchObject({
      email: grace.email,
      firstName: 'Grace',
      lastName: 'Brewster Hopper',
      custom: { fields: { lmsUserId: grace.lmsUserId, lmsUsername: 'grace' } },
    });
    const order = om().store.orders.get(String(res.body.order_id))!;
    expect(order.customerId).toBe(customerOf(grace.lmsUserId)!.id);
    expect(order.customerEmail).toBe(grace.email);
  });

  it("in another currency: the line at the app's price, the payment at the USD price", async () => {
    const transactionId = applePurchase();
    const res = await createOrder(body(transactionId, { currency_code: 'jpy', price: 22_800 }));
    expect(res.status).toBe(201);
    const order = om().store.orders.get(String(res.body.order_id))!;
    expect(order.lineItems[0]!.totalPrice).toMatchObject({ centAmount: 22_800, currencyCode: 'JPY' });
    expect(paymentsWithKey(transactionId)[0]!.amountPlanned).toMatchObject({
      centAmount: 14_900,
      currencyCode: 'USD',
    });
  });
});

describe('a Google Play purchase', () => {
  it("becomes a placed order paid by Google's order id, in the buyer's country", async () => {
    const { purchaseToken, orderId } = googlePurchase();
    const res = await createOrder(body(purchaseToken, { payment_processor: 'android_iap' }));
    expect(res.status).toBe(201);
    const order = om().store.orders.get(String(res.body.order_id))! as ReturnType<
      typeof om
    >['store']['orders'] extends Map<string, infer O>
      ? O & { billingAddress?: { country: string } }
      : never;
    const [payment] = paymentsWithKey(orderId.replace(/[^A-Za-z0-9_-]/g, '_'));
    expect(payment).toMatchObject({
      interfaceId: orderId,
      paymentMethodInfo: { method: 'android_iap', paymentInterface: 'android_iap_edx' },
      paymentStatus: { interfaceCode: 'succeeded' },
    });
    expect(payment!.transactions.map((x) => [x.type, x.state, x.interactionId])).toEqual([
      ['Charge', 'Success', orderId],
    ]);
    expect(order.paymentInfo?.payments.map((p) => p.id)).toEqual([payment!.id]);
    expect(order.billingAddress).toEqual({ country: 'DE' });
    expect(order.lineItems[0]!.state.map((s) => stateKey(s.state.id))).toEqual([
      '2u-fulfillment-pending-state',
    ]);
  });
});

describe('what the app sends', () => {
  it('needs a signed-in learner: 401, and nothing is made', async () => {
    const carts = om().checkout.carts.size;
    const res = await createOrder(body(applePurchase()), null);
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ code: 'UNAUTHENTICATED', error: expect.any(String) });
    const forged = await createOrder(body(applePurchase()), `${t.tokens.ada.slice(0, -4)}AAAA`);
    expect(forged.status).toBe(401);
    expect(om().checkout.carts.size).toBe(carts);
  });

  it('is refused with 400 when it is not a valid order request, before any cart is made', async () => {
    const carts = om().checkout.carts.size;
    const token = applePurchase();
    const bad: unknown[] = [
      'not json',
      '[]',
      { ...body(token), course_run_key: undefined },
      body(token, { course_run_key: '  ' }),
      body(token, { price: 'abc' }),
      body(token, { price: -149 }),
      body(token, { price: '0' }),
      body(token, { price: '149.000001' }),
      body(token, { price: 1e21 }),
      body(token, { currency_code: 'US' }),
      body(token, { purchase_token: '' }),
      body(token, { purchase_token: 'x'.repeat(5000) }),
      body(token, { payment_processor: 'paypal' }),
      body(token, { course_run_key: 'x'.repeat(300) }),
    ];
    for (const payload of bad) {
      const res = await createOrder(payload);
      expect(res.status, JSON.stringify(payload).slice(0, 80)).toBe(400);
      expect(res.body.code).toBe('BAD_USER_INPUT');
      expect(res.body.error).toEqual(expect.any(String));
    }
    expect(om().checkout.carts.size).toBe(carts);
    expect(paymentsWithKey(token)).toEqual([]);
  });

  it('for a course run the apps do not sell: 400, and the cart is not made', async () => {
    const carts = om().checkout.carts.size;
    const res = await createOrder(body(applePurchase(), { course_run_key: 'course-v1:edX+Nope+2026' }));
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('BAD_USER_INPUT');
    expect(om().checkout.carts.size).toBe(carts);
  });

  it('through GraphQL: a learner orders only for themself, a Service not at all', async () => {
    const mutation = `mutation($input: MobileOrderInput!) { createMobileOrder(input: $input) { orderId orderNumber } }`;
    const input = {
      courseRunKey: CS50,
      currencyCode: 'USD',
      price: '149.00',
      purchaseToken: applePurchase(),
      paymentProcessor: 'ios_iap',
    };
    const other = await t.graphql(mutation, { input: { ...input, username: 'bob' } }, t.tokens.ada);
    expect(other.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const service = await t.graphql(mutation, { input }, t.tokens.lms);
    expect(service.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    // Staff for a learner: the order is the learner's.
    const staff = await t.graphql<{ createMobileOrder: { orderId: string } }>(
      mutation,
      { input: { ...input, username: 'bob' } },
      t.tokens.staff,
    );
    expect(staff.errors).toBeUndefined();
    const order = om().store.orders.get(staff.data!.createMobileOrder.orderId)!;
    expect(order.custom?.fields).toMatchObject({
      lmsUserId: DEMO.learners.bob.lmsUserId,
      lmsUsername: 'bob',
    });
  });
});

describe('a purchase the store does not vouch for', () => {
  it('an invalid token: 400, and the cart made for it is deleted', async () => {
    const carts = om().checkout.carts.size;
    const res = await createOrder(body('not-an-apple-transaction-id'));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'BAD_USER_INPUT', error: expect.any(String) });
    expect(om().checkout.carts.size).toBe(carts);
    expect(activeCartsOf(3)).toEqual([]);
  });

  it('no purchase of that product (a purchase of another price): 400 or 402, the cart deleted', async () => {
    const transactionId = applePurchase({ productId: 'mobile.ios.usd49', price: 49_000 });
    const res = await createOrder(body(transactionId));
    expect([400, 402]).toContain(res.status);
    expect(activeCartsOf(3)).toEqual([]);
    expect(paymentsWithKey(transactionId)).toEqual([]);
  });

  it('a refunded purchase: 402, the cart deleted', async () => {
    const transactionId = applePurchase({ revocationDate: new Date(Date.now() - 60_000).toISOString() });
    const res = await createOrder(body(transactionId));
    expect(res.status).toBe(402);
    expect(res.body.code).toBe('PAYMENT_REQUIRED');
    expect(activeCartsOf(3)).toEqual([]);
    expect(paymentsWithKey(transactionId)).toEqual([]);
  });

  it('a cancelled Google Play purchase: 402, the cart deleted', async () => {
    const { purchaseToken, orderId } = googlePurchase({ purchaseState: 1 });
    const res = await createOrder(body(purchaseToken, { payment_processor: 'android_iap' }));
    expect(res.status).toBe(402);
    expect(activeCartsOf(3)).toEqual([]);
    expect(paymentsWithKey(orderId.replace(/[^A-Za-z0-9_-]/g, '_'))).toEqual([]);
  });

  it('the store failing: 500 after its retries, the cart deleted', async () => {
    const transactionId = applePurchase();
    t.services.appStore.admin.injectFault({ path: '/inApps/', status: 500, times: 20 });
    try {
      const res = await createOrder(body(transactionId));
      expect(res.status).toBe(500);
      expect(res.body.error).toEqual(expect.any(String));
    } finally {
      t.services.appStore.admin.clearFaults();
    }
    expect(activeCartsOf(3)).toEqual([]);
    expect(paymentsWithKey(transactionId)).toEqual([]);
    // The same purchase once the store answers again.
    expect((await createOrder(body(transactionId))).status).toBe(201);
  });
});

describe('a purchase that paid already', () => {
  it('answers 409 when its payment is on another order, and deletes the new cart', async () => {
    const transactionId = applePurchase();
    const first = await createOrder(body(transactionId));
    expect(first.status).toBe(201);
    const orders = om().store.orders.size;

    const again = await createOrder(body(transactionId));
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'CONFLICT', error: expect.stringContaining(transactionId) });
    // Another learner with the same purchase token is refused too.
    const other = await createOrder(body(transactionId), t.tokens.bob);
    expect(other.status).toBe(409);
    expect(om().store.orders.size).toBe(orders);
    expect(paymentsWithKey(transactionId)).toHaveLength(1);
    expect(activeCartsOf(3)).toEqual([]);
    expect(activeCartsOf(4)).toEqual([]);
  });

  it('reuses a payment of the purchase that no cart or order holds (an earlier order that failed)', async () => {
    const transactionId = applePurchase();
    const [dangling] = om().seed({
      mobilePayments: [{ method: 'ios_iap', transactionId, usdCents: 14_900 }],
    }).mobilePayments;
    const res = await createOrder(body(transactionId));
    expect(res.status).toBe(201);
    const order = om().store.orders.get(String(res.body.order_id))!;
    expect(order.paymentInfo?.payments.map((p) => p.id)).toEqual([dangling!.id]);
    expect(paymentsWithKey(transactionId)).toHaveLength(1);
  });

  it('an order management failure before the order exists: 500, the cart deleted, the payment reused by the next request', async () => {
    const transactionId = applePurchase();
    om().admin.injectFault({ method: 'POST', path: '/edx-commerce/orders', status: 503, times: 20 });
    let res;
    try {
      res = await createOrder(body(transactionId));
    } finally {
      om().admin.clearFaults();
    }
    expect(res.status).toBe(500);
    expect(activeCartsOf(3)).toEqual([]);
    const [payment] = paymentsWithKey(transactionId);
    expect(ordersPaidBy(payment!.id)).toEqual([]);

    // The app sends the purchase again.
    const retried = await createOrder(body(transactionId));
    expect(retried.status).toBe(201);
    expect(paymentsWithKey(transactionId)).toHaveLength(1);
    expect(ordersPaidBy(payment!.id).map((o) => o.id)).toEqual([retried.body.order_id]);
  });

  it('an order placed whose lines could not move: the order is kept, and a retry of the flow finishes it', async () => {
    const transactionId = applePurchase();
    // Order updates fail; creating the order (POST /orders) does not.
    om().admin.injectFault({ method: 'POST', path: '/edx-commerce/orders/', status: 503, times: 50 });
    let res;
    try {
      res = await createOrder(body(transactionId));
    } finally {
      om().admin.clearFaults();
    }
    expect(res.status).toBe(500);
    const flowId = String(res.body.flowId);
    const [payment] = paymentsWithKey(transactionId);
    const [order] = ordersPaidBy(payment!.id);
    expect(order!.lineItems[0]!.state.map((s) => stateKey(s.state.id))).toEqual(['Initial']);
    // Its cart stays (ordered): the compensation refuses to pretend nothing was made.
    const cartRef = (order as typeof order & { cart?: { id: string } }).cart!;
    expect(om().checkout.carts.get(cartRef.id)?.cartState).toBe('Ordered');

    const retried = await t.graphql<{ retryFlow: { status: string } }>(
      `mutation($id: ID!) { retryFlow(id: $id, reason: "order management is back") { status } }`,
      { id: flowId },
      t.tokens.staff,
    );
    expect(retried.errors).toBeUndefined();
    expect(retried.data!.retryFlow.status).toBe('COMPLETED');
    const [again, ...more] = ordersPaidBy(payment!.id);
    expect(more).toEqual([]);
    expect(again!.id).toBe(order!.id);
    expect(again!.orderNumber).toBe(order!.orderNumber);
    expect(again!.lineItems[0]!.state.map((s) => stateKey(s.state.id))).toEqual([
      '2u-fulfillment-pending-state',
    ]);
    expect(paymentsWithKey(transactionId)).toHaveLength(1);
  });

  it('sent several times at once makes one order and one payment; the other requests answer 409', async () => {
    const transactionId = applePurchase();
    const results = await Promise.all([
      createOrder(body(transactionId)),
      createOrder(body(transactionId)),
      createOrder(body(transactionId), t.tokens.bob),
      createOrder(body(transactionId), graceToken),
    ]);
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s !== 201).every((s) => s === 409)).toBe(true);
    const payments = paymentsWithKey(transactionId);
    expect(payments).toHaveLength(1);
    const orders = ordersPaidBy(payments[0]!.id);
    expect(orders.map((o) => o.id)).toEqual([results.find((r) => r.status === 201)!.body.order_id]);
    for (const learner of [3, 4, grace.lmsUserId]) expect(activeCartsOf(learner)).toEqual([]);
  });
});

describe('order numbers', () => {
  it('of concurrent orders are all different and follow each other', async () => {
    const before = (counter()!.value as { counter: number }).counter;
    const results = await Promise.all([
      createOrder(body(applePurchase())),
      createOrder(body(applePurchase()), t.tokens.bob),
      createOrder(body(applePurchase()), graceToken),
    ]);
    expect(results.map((r) => r.status)).toEqual([201, 201, 201]);
    const numbers = results.map((r) => String(r.body.order_number)).sort();
    expect(new Set(numbers).size).toBe(3);
    const counters = numbers.map((n) => Number(n.slice(-6)));
    expect(Math.max(...counters) - Math.min(...counters)).toBe(2);
    expect(Math.min(...counters)).toBeGreaterThan(before);
  });

  it("start again in a new year: last year's counter gives way to the first free number of this year", async () => {
    om().seed({
      customObjects: [
        { container: 'coordinator', key: 'order-number', value: { year: YEAR - 1, counter: 41_234 } },
      ],
    });
    const res = await createOrder(body(applePurchase()));
    expect(res.status).toBe(201);
    const taken = new Set(
      [...om().store.orders.values()].filter((o) => o.id !== res.body.order_id).map((o) => o.orderNumber),
    );
    let first = 1;
    while (taken.has(`2U-${YEAR}${String(first).padStart(6, '0')}`)) first += 1;
    expect(res.body.order_number).toBe(`2U-${YEAR}${String(first).padStart(6, '0')}`);
    expect(counter()!.value).toMatchObject({ year: YEAR, counter: first });
  });
});
