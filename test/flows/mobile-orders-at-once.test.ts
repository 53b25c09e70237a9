import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { token } from '../support/coordinator.js';
import { waitFor } from '../support/wait.js';

/**
 * One learner turning two different store purchases into orders at the same moment (two devices, or
 * the app's queue of unfinished purchases) through POST /iap/create-order/: each paid purchase gets its
 * order. The mobile flow's replaceActiveCart deletes the web checkout the learner left behind, never the
 * cart of another mobile order still being made; a cart that vanished all the same is a CONFLICT to
 * try again, not NOT_FOUND.
 */

let cc: CommerceCoordinator;
const learner = {
  id: 89_500 + (process.pid % 1000),
  username: `atonce${process.pid}`,
  email: `atonce${process.pid}@example.com`,
};
let bearer: string;

beforeAll(async () => {
  cc = await startCommerceCoordinator('mobile-orders-at-once');
  cc.services.lms.seed({
    users: [{ id: learner.id, username: learner.username, email: learner.email, name: 'Mo Bile' }],
  });
  bearer = await token({ kind: 'learner', lmsUserId: learner.id, username: learner.username });
}, 90_000);
afterAll(async () => {
  await cc?.stop();
});

const om = () => cc.services.orderManagement;
let purchases = 0;
/** An App Store purchase of the USD 149 course; its transaction id is the app's purchase token. */
function purchase(): string {
  const transactionId = `${2_000_000_970_000 + process.pid * 10 + ++purchases}`;
  cc.services.appStore.seed({
    transactions: [{ transactionId, productId: 'mobile.ios.usd149', price: 149_000 }],
  });
  return transactionId;
}

async function createOrder(courseRunKey: string, purchaseToken: string) {
  const res = await cc.request('/iap/create-order/', {
    method: 'POST',
    token: bearer,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      course_run_key: courseRunKey,
      currency_code: 'USD',
      price: '149.00',
      purchase_token: purchaseToken,
      payment_processor: 'ios_iap',
    }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const customer = () =>
  [...om().store.customers.values()].find((c) => c.custom?.fields.lmsUserId === learner.id);
const activeCarts = () =>
  [...om().checkout.carts.values()].filter(
    (c) => c.customerId === customer()?.id && c.cartState === 'Active',
  );
/** The order the purchase paid for (its payment is keyed by the transaction id). */
const orderPaidBy = (transactionId: string) => {
  const payment = [...om().store.payments.values()].find((p) => p.key === transactionId);
  return [...om().store.orders.values()].find((o) =>
    o.paymentInfo?.payments.some((p) => p.id === payment?.id),
  );
};

describe('two different store purchases of one learner made into orders at the same moment', () => {
  it('both become orders (each paid purchase has its order); the web checkout left behind is deleted', async () => {
    // The first request's store verification takes a moment; the second arrives meanwhile.
    cc.services.appStore.admin.injectFault({
      method: 'GET',
      path: '/inApps/v1/transactions/',
      delayMs: 1_500,
    });
    const [a, b] = [purchase(), purchase()];
    const first = createOrder(DEMO.courses.cs50.courseId, a);
    await new Promise((resolve) => setTimeout(resolve, 700));
    // A web checkout of the learner's (the first flow made them a customer), left behind meanwhile.
    await waitFor(() => customer() !== undefined, { what: 'the learner a customer' });
    const [webCart] = om().seed({
      carts: [{ lmsUserId: learner.id, sku: DEMO.courses.demo.courseId }],
    }).carts;
    const second = createOrder(DEMO.courses.demo.courseId, b);
    const results = await Promise.all([first, second]);

    expect(
      results.map((r) => r.status),
      JSON.stringify(results),
    ).toEqual([201, 201]);
    const [orderA, orderB] = [orderPaidBy(a), orderPaidBy(b)];
    expect(results.map((r) => r.body.order_id)).toEqual([orderA?.id, orderB?.id]);
    expect([orderA, orderB].map((o) => o?.lineItems.map((l) => l.variant.sku))).toEqual([
      [DEMO.courses.cs50.courseId],
      [DEMO.courses.demo.courseId],
    ]);
    expect(om().checkout.carts.has(webCart!.id)).toBe(false);
    expect(activeCarts()).toEqual([]);
  }, 30_000);

  it('a cart that vanished before its payment is attached: CONFLICT (try again), no payment made', async () => {
    const [cart] = om().seed({ carts: [{ lmsUserId: learner.id, sku: DEMO.courses.demo.courseId }] }).carts;
    om().checkout.carts.delete(cart!.id);
    const transactionId = purchase();
    const attached = await cc.graphql(
      `mutation ($input: AttachMobilePaymentInput!) { attachMobilePayment(input: $input) { paymentId } }`,
      {
        input: { cartId: cart!.id, transactionId, paymentProcessor: 'ios_iap', usdCentAmount: 14_900 },
      },
      cc.tokens.staff,
    );
    expect(attached.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    expect(attached.errors?.[0]?.message).toMatch(/try again/);
    expect([...om().store.payments.values()].filter((p) => p.key === transactionId)).toEqual([]);
  });
});
