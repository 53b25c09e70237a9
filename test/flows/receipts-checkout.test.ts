import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

/**
 * Receipts (`orderReceipt` → filter `order.receipt.requested.v1`, and the redirect
 * `GET /orders/unified/order_receipt/?order_number=`) and the payment page entry
 * (`GET /lms/payment_page_redirect/?…` → filter `checkout.payment-page.requested.v1`) through the
 * gateway, against the Service stand-ins.
 */

const CHECKOUT_FLAG = 'transition.checkout.coordinator';
// A signed-in caller's redirect: kept by the browser for a month, never by a shared cache.
const RECEIPT_CACHE = 'private, max-age=2591000';

interface FlowStep {
  index: number;
  action: string;
  status: string;
  implementation: string | null;
  flagDecisions: Array<{ flag: string; value: boolean; reason: string }>;
  error: { code: string; message: string } | null;
}
interface FlowRun {
  id: string;
  status: string;
  input: Record<string, unknown>;
  output: Record<string, unknown> | null;
  error: { code: string; message: string } | null;
  steps: FlowStep[];
}
type GraphQLError = { message: string; extensions?: { code?: string; flowId?: string } };

const FLOW = `id status input output error { code message }
  steps { index action status implementation flagDecisions { flag value reason } error { code message } }`;
/** What a learner may read of a flow they ran: not its data. */
const LEARNER_FLOW = `id status error { code message } steps { index action status implementation }`;

let cc: CommerceCoordinator;
const { ada } = DEMO.learners;
const adaCustomer = { lmsUserId: ada.lmsUserId, username: ada.username, email: ada.email };
/** This file's own orders of Ada's, paid at each PSP (seeded consistently across the Services). */
const orders = { stripe: '2U-3200000001', payPal: '2U-3200000002' };
let stripeReceipt: string;
let payPalCaptureId: string;

beforeAll(async () => {
  cc = await startCommerceCoordinator('flow-receipts-checkout');
  const { stripe, paypal, orderManagement } = cc.services;
  const [intent] = stripe.seed({
    paymentIntents: [{ amount: 12_300, metadata: { order_number: orders.stripe } }],
  });
  stripeReceipt = String(stripe.charge(String(intent!.latest_charge))!.receipt_url);
  const [capture] = paypal.seed({ captures: [{ amountCents: 4_500, invoiceId: orders.payPal }] });
  payPalCaptureId = String(capture!.id);
  orderManagement.seed({
    orders: [
      {
        orderNumber: orders.stripe,
        customer: adaCustomer,
        lineItems: [{ id: 'li-r-1', title: 'Receipts 101', priceCents: 12_300, state: 'SUCCESS' }],
        payment: { psp: 'STRIPE', pspPaymentId: String(intent!.id) },
      },
      {
        orderNumber: orders.payPal,
        customer: adaCustomer,
        lineItems: [{ id: 'li-r-2', title: 'Receipts 102', priceCents: 4_500, state: 'SUCCESS' }],
        payment: { psp: 'PAYPAL', pspPaymentId: payPalCaptureId },
      },
    ],
  });
});

afterAll(async () => {
  await cc?.stop();
});

const receipt = (orderNumber: string, bearer?: string) =>
  cc.graphql<{ orderReceipt: { url: string | null; flow: FlowRun } }>(
    `query Receipt($n: String!) { orderReceipt(input: { orderNumber: $n }) { url flow { ${LEARNER_FLOW} } } }`,
    { n: orderNumber },
    bearer,
  );

async function receiptFlow(orderNumber: string, bearer: string): Promise<FlowRun> {
  const res = await receipt(orderNumber, bearer);
  expect(res.errors).toBeUndefined();
  expect(res.data!.orderReceipt.flow.status).toBe('COMPLETED');
  // The caller gets the URL, typed; the rest of the flow's data is on its record, for staff.
  const flow = await flowById(res.data!.orderReceipt.flow.id);
  expect(res.data!.orderReceipt.url).toBe(flow.output!.url);
  return flow;
}

async function flowById(id: string | undefined): Promise<FlowRun> {
  expect(id).toEqual(expect.any(String));
  const res = await cc.graphql<{ flow: FlowRun }>(
    `query($id: ID!) { flow(id: $id) { ${FLOW} } }`,
    { id },
    cc.tokens.staff,
  );
  expect(res.errors).toBeUndefined();
  return res.data!.flow;
}

const recordedFlow = (error: GraphQLError | undefined) => flowById(error?.extensions?.flowId);

/** The newest recorded flow of a filter (each test file has a Coordinator and database of its own). */
async function latestFlow(name: string): Promise<FlowRun | undefined> {
  const res = await cc.graphql<{ flows: FlowRun[] }>(
    `query($name: String!) { flows(name: $name, limit: 1) { ${FLOW} } }`,
    { name },
    cc.tokens.staff,
  );
  expect(res.errors).toBeUndefined();
  return res.data!.flows[0];
}

const ran = (flow: FlowRun) => flow.steps.filter((s) => s.status !== 'SKIPPED').map((s) => s.action);
const stripePaymentIntentReads = () => cc.services.stripe.calls('/v1/payment_intents/').length;

describe('receipts (orderReceipt)', () => {
  it("sends a legacy order to the legacy service's receipt page", async () => {
    const flow = await receiptFlow(DEMO.legacyOrders.adaRecent, cc.tokens.ada);
    const url = `${cc.services.legacyEcommerce.url}/checkout/receipt/?order_number=${DEMO.legacyOrders.adaRecent}`;
    expect(flow.output!.url).toBe(url);
    expect(ran(flow)).toEqual(['receiptRequest', 'legacyReceiptUrl', 'receiptFound']);
    // The page is the legacy service's own receipt of that order.
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(`Receipt for order ${DEMO.legacyOrders.adaRecent}`);
  });

  it("sends a Stripe-paid order to its Stripe charge's receipt_url", async () => {
    const reads = stripePaymentIntentReads();
    const flow = await receiptFlow(orders.stripe, cc.tokens.ada);
    expect(flow.output!.url).toBe(stripeReceipt);
    expect(ran(flow)).toEqual(['receiptRequest', 'orderByNumber', 'stripeReceiptUrl', 'receiptFound']);
    expect(flow.steps.find((s) => s.action === 'stripeReceiptUrl')!.implementation).toBe('stripe');
    expect(stripePaymentIntentReads()).toBe(reads + 1);
    const page = await fetch(stripeReceipt);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('$123.00 paid');
  });

  it("sends a PayPal-paid order to the capture's PayPal activity page", async () => {
    const flow = await receiptFlow(orders.payPal, cc.tokens.ada);
    expect(flow.output!.url).toBe(`https://www.paypal.com/activity/payment/${payPalCaptureId}`);
    expect(ran(flow)).toEqual(['receiptRequest', 'orderByNumber', 'payPalReceiptUrl', 'receiptFound']);
    expect(flow.steps.find((s) => s.action === 'payPalReceiptUrl')!.implementation).toBe('paypal');
  });

  it('lets staff see any learner’s receipt', async () => {
    const flow = await receiptFlow(orders.stripe, cc.tokens.staff);
    expect(flow.output!.url).toBe(stripeReceipt);
  });

  it('answers NOT_FOUND for an order without a successful payment, without asking a PSP', async () => {
    const reads = stripePaymentIntentReads();
    const res = await receipt(DEMO.orders.adaUnpaid.orderNumber, cc.tokens.ada);
    expect(res.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(res.errors?.[0]?.message).toContain('no successful payment');
    const flow = await recordedFlow(res.errors?.[0]);
    expect(flow.status).toBe('FAILED');
    expect(ran(flow)).toEqual(['receiptRequest', 'orderByNumber', 'receiptFound']);
    expect(stripePaymentIntentReads()).toBe(reads);
  });

  it('answers NOT_FOUND for an unknown order', async () => {
    const res = await receipt('2U-3299999999', cc.tokens.ada);
    expect(res.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const flow = await recordedFlow(res.errors?.[0]);
    expect(flow.steps.find((s) => s.action === 'orderByNumber')!.status).toBe('FAILED');
  });

  it("refuses another learner's order (FORBIDDEN) and an anonymous caller (UNAUTHENTICATED)", async () => {
    const reads = stripePaymentIntentReads();
    const forbidden = await receipt(orders.stripe, cc.tokens.bob);
    expect(forbidden.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await recordedFlow(forbidden.errors?.[0])).status).toBe('FAILED');

    const anonymous = await receipt(orders.stripe);
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    // Refused before any flow is recorded: a flow's steps act for its caller, and there is none.
    expect(anonymous.errors?.[0]?.extensions?.flowId).toBeUndefined();
    // Neither reached Stripe.
    expect(stripePaymentIntentReads()).toBe(reads);
  });
});

describe('receipts (GET /orders/unified/order_receipt/)', () => {
  const path = (orderNumber: string) =>
    `/orders/unified/order_receipt/?order_number=${encodeURIComponent(orderNumber)}`;

  it('redirects 303 to the receipt, cacheable for a month', async () => {
    for (const [orderNumber, location] of [
      [orders.stripe, () => stripeReceipt],
      [orders.payPal, () => `https://www.paypal.com/activity/payment/${payPalCaptureId}`],
      [
        DEMO.legacyOrders.adaRecent,
        () =>
          `${cc.services.legacyEcommerce.url}/checkout/receipt/?order_number=${DEMO.legacyOrders.adaRecent}`,
      ],
    ] as const) {
      const res = await cc.request(path(orderNumber), { token: cc.tokens.ada });
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toBe(location());
      expect(res.headers.get('cache-control')).toBe(RECEIPT_CACHE);
    }
  });

  it('answers 404 when there is no receipt (no successful payment, unknown order), not cached', async () => {
    for (const orderNumber of [DEMO.orders.adaUnpaid.orderNumber, '2U-3299999999']) {
      const res = await cc.request(path(orderNumber), { token: cc.tokens.ada });
      expect(res.status).toBe(404);
      expect(res.headers.get('location')).toBeNull();
      // No freshness given; private as every answer to a signed-in caller is.
      expect(res.headers.get('cache-control')).toBe('private');
      const body = (await res.json()) as { code: string; flowId: string };
      expect(body.code).toBe('NOT_FOUND');
      expect((await flowById(body.flowId)).status).toBe('FAILED');
    }
  });

  it("answers 403 for another learner's order", async () => {
    const res = await cc.request(path(orders.stripe), { token: cc.tokens.bob });
    expect(res.status).toBe(403);
    expect(res.headers.get('location')).toBeNull();
    expect(((await res.json()) as { code: string }).code).toBe('FORBIDDEN');
  });

  it('answers 400 without an order_number and 401 without a token, starting no flow', async () => {
    const before = await latestFlow('order.receipt.requested.v1');
    for (const query of ['', '?order_number=', '?order=2U-3200000001']) {
      const res = await cc.request(`/orders/unified/order_receipt/${query}`, { token: cc.tokens.ada });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe('BAD_USER_INPUT');
    }
    const anonymous = await cc.request(path(orders.stripe));
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('location')).toBeNull();
    expect(((await anonymous.json()) as { code: string }).code).toBe('UNAUTHENTICATED');
    expect((await latestFlow('order.receipt.requested.v1'))?.id).toBe(before?.id);
  });
});

describe('payment page (GET /lms/payment_page_redirect/)', () => {
  /** What the LMS's Upgrade button sends: repeated keys, UTM and dwft_ parameters, encoded characters. */
  const QUERY = [
    'sku=8CF08E5',
    'sku=A1B2C3D',
    'course_run_key=course-v1%3AedX%2BDemoX%2B2026',
    'utm_source=lms',
    'utm_medium=upgrade%20button',
    'utm_campaign=spring+2026%2Bbeta',
    'dwft_transition_to_coordinator.order_create=1',
    'dwft_ref=a%26b%3Dc%3Bd',
    'name=Ad%C3%A1%20L%C3%B6velace',
    'emoji=%F0%9F%8E%93',
    'pct=100%25',
    'empty=',
    'sku=8CF08E5',
  ].join('&');
  const pairs = (search: string) => [...new URLSearchParams(search)];

  beforeAll(async () => {
    // On for Ada only: everyone else keeps the legacy basket.
    await cc.testData.update(
      cc.testData
        .flag(CHECKOUT_FLAG)
        .fallthroughVariation(false)
        .variationForContext('user', String(ada.lmsUserId), true),
    );
  });

  const redirect = (bearer?: string, query = QUERY) =>
    cc.request(`/lms/payment_page_redirect/?${query}`, { ...(bearer ? { token: bearer } : {}) });

  function expectRedirect(res: Response, base: string) {
    expect(res.status).toBe(303);
    const location = new URL(res.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).toBe(base);
    // Every parameter, in order, repeated keys included, with the same decoded value...
    expect(pairs(location.search)).toEqual(pairs(QUERY));
    // ...and the very bytes the LMS sent (encoding included: %20 stays %20, ~ stays ~).
    expect(res.headers.get('location')!.split('?')[1]).toBe(QUERY);
    return location;
  }

  it('sends a learner with the checkout flag on to the commerce frontend, every parameter preserved', async () => {
    const res = await redirect(cc.tokens.ada);
    const location = expectRedirect(res, cc.services.env.COMMERCE_FRONTEND_URL!);
    expect(location.searchParams.getAll('sku')).toEqual(['8CF08E5', 'A1B2C3D', '8CF08E5']);
    expect(location.searchParams.get('course_run_key')).toBe('course-v1:edX+DemoX+2026');
    expect(location.searchParams.get('utm_medium')).toBe('upgrade button');
    expect(location.searchParams.get('utm_campaign')).toBe('spring 2026+beta');
    expect(location.searchParams.get('dwft_transition_to_coordinator.order_create')).toBe('1');
    expect(location.searchParams.get('dwft_ref')).toBe('a&b=c;d');
    expect(location.searchParams.get('name')).toBe('Adá Lövelace');
    expect(location.searchParams.get('emoji')).toBe('🎓');
    expect(location.searchParams.get('pct')).toBe('100%');
    expect(location.searchParams.get('empty')).toBe('');

    const flow = (await latestFlow('checkout.payment-page.requested.v1'))!;
    expect(flow.status).toBe('COMPLETED');
    expect(flow.output).toMatchObject({ url: location.href, frontend: 'commerce-frontend' });
    expect(pairs(String(flow.input.query))).toEqual(pairs(QUERY));
    expect(flow.steps[0]).toMatchObject({ action: 'paymentPage', status: 'COMPLETED' });
    expect(flow.steps[0]!.flagDecisions).toContainEqual({
      flag: CHECKOUT_FLAG,
      value: true,
      reason: 'TARGET_MATCH',
    });
  });

  it('sends a learner with the flag off to the legacy basket, every parameter preserved', async () => {
    const res = await redirect(cc.tokens.bob);
    const location = expectRedirect(res, cc.services.env.LEGACY_BASKET_URL!);
    expect(location.origin).toBe(cc.services.legacyEcommerce.url);

    const flow = (await latestFlow('checkout.payment-page.requested.v1'))!;
    expect(flow.output).toMatchObject({ url: location.href, frontend: 'legacy-ecommerce' });
    expect(flow.steps[0]!.flagDecisions).toContainEqual({
      flag: CHECKOUT_FLAG,
      value: false,
      reason: 'FALLTHROUGH',
    });
  });

  it('follows the flag as it changes, without a restart', async () => {
    await cc.testData.update(cc.testData.flag(CHECKOUT_FLAG).variationForAll(false));
    expectRedirect(await redirect(cc.tokens.ada), cc.services.env.LEGACY_BASKET_URL!);
    await cc.testData.update(cc.testData.flag(CHECKOUT_FLAG).variationForAll(true));
    expectRedirect(await redirect(cc.tokens.bob), cc.services.env.COMMERCE_FRONTEND_URL!);
    await cc.testData.update(
      cc.testData
        .flag(CHECKOUT_FLAG)
        .fallthroughVariation(false)
        .variationForContext('user', String(ada.lmsUserId), true),
    );
    expectRedirect(await redirect(cc.tokens.ada), cc.services.env.COMMERCE_FRONTEND_URL!);
    expectRedirect(await redirect(cc.tokens.bob), cc.services.env.LEGACY_BASKET_URL!);
  });

  it('redirects without parameters too', async () => {
    const res = await redirect(cc.tokens.ada, '');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(cc.services.env.COMMERCE_FRONTEND_URL);
  });

  it('answers 401 without a token, starting no flow', async () => {
    const before = await latestFlow('checkout.payment-page.requested.v1');
    const res = await redirect(undefined);
    expect(res.status).toBe(401);
    expect(res.headers.get('location')).toBeNull();
    expect(((await res.json()) as { code: string }).code).toBe('UNAUTHENTICATED');
    expect((await latestFlow('checkout.payment-page.requested.v1'))?.id).toBe(before?.id);
  });

  it('answers the same through GraphQL (checkoutPage), and refuses an anonymous caller', async () => {
    const query = `query($q: String!) { checkoutPage(input: { query: $q }) { url frontend flow { status } } }`;
    const res = await cc.graphql<{ checkoutPage: { url: string; frontend: string; flow: FlowRun } }>(
      query,
      { q: QUERY },
      cc.tokens.ada,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data!.checkoutPage.flow.status).toBe('COMPLETED');
    expect(res.data!.checkoutPage.frontend).toEqual(expect.any(String));
    const url = new URL(res.data!.checkoutPage.url);
    expect(`${url.origin}${url.pathname}`).toBe(cc.services.env.COMMERCE_FRONTEND_URL);
    expect(pairs(url.search)).toEqual(pairs(QUERY));

    const anonymous = await cc.graphql(query, { q: QUERY });
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});
