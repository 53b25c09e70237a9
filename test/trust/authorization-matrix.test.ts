import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { collect, subscriptionClient } from '../support/subscriptions.js';

/**
 * Who may call what: every Action (each Query and Mutation field of the supergraph) and every field of
 * the Coordinator, called by each kind of caller. The table below is the policy; the test fails when
 * the gateway answers otherwise, and when an Action is added without a row.
 *
 *   A  authorised: the call got past every access check (it may still fail on its input)
 *   U  UNAUTHENTICATED
 *   F  FORBIDDEN
 *
 * Columns: anonymous, the learner on their own data (ada), another learner on ada's data (bob), staff,
 * a Service (the LMS's client credentials). Inputs that pass the access check are chosen to change
 * nothing where they can (unknown ids, empty lists), so every row may run as every caller.
 */

type Verdict = 'A' | 'U' | 'F';
type Caller = 'anonymous' | 'learner' | 'otherLearner' | 'staff' | 'service';
const CALLERS: readonly Caller[] = ['anonymous', 'learner', 'otherLearner', 'staff', 'service'];

interface Row {
  /** The operation; ada's data unless the row says otherwise. */
  query: string;
  variables?: Record<string, unknown>;
  /** Anonymous, learner, other learner, staff, Service. */
  expect: `${Verdict}${Verdict}${Verdict}${Verdict}${Verdict}`;
}

const ada = DEMO.learners.ada;
const order = DEMO.orders.adaStripe;
const unknownOrder = '6a1f0c7e-1d2b-4c3a-9e8f-00000000dead';
const STEP_ONLY = 'UFFAA';

/** Every root field, by name (both operations' fields are distinct here). */
const MATRIX: Record<string, Row> = {
  // ---- The Coordinator: flow records, dead letters, and one field per filter.
  flow: { query: `{ flow(id: "${unknownOrder}") { id } }`, expect: 'UFFAA' },
  flows: { query: '{ flows(limit: 1) { id } }', expect: 'UFFAA' },
  deadLetters: { query: '{ deadLetters(receiver: "record-psp-refund") { id } }', expect: 'UFFAA' },
  replayDeadLetters: {
    query: 'mutation { replayDeadLetters(receiver: "record-psp-refund", ids: ["0-1"], reason: "matrix") }',
    expect: 'UFFAA',
  },
  signal: { query: `{ signal(id: "${unknownOrder}") { id } }`, expect: 'UFFAA' },
  operatorActions: { query: '{ operatorActions(limit: 1) { id } }', expect: 'UFFAA' },
  retryFlow: {
    query: `mutation { retryFlow(id: "${unknownOrder}", reason: "matrix") { id } }`,
    expect: 'UFFAA',
  },
  cancelFlow: {
    query: `mutation { cancelFlow(id: "${unknownOrder}", reason: "matrix") { id } }`,
    expect: 'UFFAA',
  },
  redeliverSignal: {
    query: `mutation { redeliverSignal(signalId: "${unknownOrder}", receiver: "record-psp-refund", reason: "matrix") }`,
    expect: 'UFFAA',
  },
  requestRefund: {
    query: `mutation { requestRefund(input: { orderId: "${order.id}", lineItemIds: [] }) { flow { id } } }`,
    expect: 'UFFAA',
  },
  requestFulfillment: {
    query: `mutation { requestFulfillment(input: { orderId: "${unknownOrder}" }) { flow { id } } }`,
    expect: 'UFFAA',
  },
  reportFulfillment: {
    query: `mutation { reportFulfillment(input: { orderId: "${unknownOrder}", fulfillments: [] }) { flow { id } } }`,
    expect: 'UFFAA',
  },
  retireLearner: {
    query: 'mutation { retireLearner(input: { lmsUserId: 999999 }) { flow { id } } }',
    expect: 'UFFAA',
  },
  // The learner's own history; bob asking for ada's is refused by the flow's first step, before
  // anything else runs; a Service has no order history.
  orderHistory: {
    query: `query ($input: OrderHistoryInput!) { orderHistory(input: $input) { flow { id } } }`,
    variables: { input: { username: ada.username } },
    expect: 'UAFAF',
  },
  orderReceipt: {
    query: `{ orderReceipt(input: { orderNumber: "${order.orderNumber}" }) { flow { id } } }`,
    expect: 'UAFAF',
  },
  findRefundLines: {
    query: `{ findRefundLines(input: { orderNumber: "${order.orderNumber}", entitlementUuid: "none" }) { orderId } }`,
    expect: 'UFFAA',
  },
  // Anyone signed in checks out for themself (bob here for bob); not a Service.
  checkoutPage: { query: '{ checkoutPage(input: { query: "sku=1" }) { flow { id } } }', expect: 'UAAAF' },

  // ---- order-management: a learner reads their own orders; the mutations are steps of flows.
  order: { query: `{ order(id: "${order.id}") { id } }`, expect: 'UAFAA' },
  orderByNumber: { query: `{ orderByNumber(orderNumber: "${order.orderNumber}") { id } }`, expect: 'UAFAA' },
  ordersForLearner: { query: `{ ordersForLearner(lmsUserId: ${ada.lmsUserId}) { id } }`, expect: 'UAFAA' },
  refundLines: {
    query: `{ refundLines(input: { orderId: "${unknownOrder}", lineItemIds: [] }) { orderId } }`,
    expect: STEP_ONLY,
  },
  createReturn: {
    query: `mutation { createReturn(input: { orderId: "${order.id}", lineItemIds: [] }) { returnId } }`,
    expect: STEP_ONLY,
  },
  markReturnNotRefunded: {
    query: `mutation { markReturnNotRefunded(input: { orderId: "${unknownOrder}", returnId: "r" }) { returnId } }`,
    expect: STEP_ONLY,
  },
  settleReturn: {
    query: `mutation { settleReturn(input: { orderId: "${unknownOrder}", returnId: "r", settlement: NO_PAYMENT }) { returnId } }`,
    expect: STEP_ONLY,
  },
  recordRefundTransaction: {
    query: `mutation { recordRefundTransaction(input: { pspPaymentId: "pi_unknown", pspRefundId: "re_x", refundedAmountCents: 1, currency: "USD", refundStatus: "succeeded", refundCreatedAt: "2026-01-01T00:00:00Z" }) { transactionId } }`,
    expect: STEP_ONLY,
  },
  startFulfillment: {
    query: `mutation { startFulfillment(input: { orderId: "${unknownOrder}" }) { orderNumber } }`,
    expect: STEP_ONLY,
  },
  failFulfillment: {
    query: `mutation { failFulfillment(input: { orderId: "${unknownOrder}" }) { orderId } }`,
    expect: STEP_ONLY,
  },
  completeFulfillment: {
    query: `mutation { completeFulfillment(input: { orderId: "${unknownOrder}", fulfillments: [] }) { orderId } }`,
    expect: STEP_ONLY,
  },
  anonymizeCustomer: {
    query: 'mutation { anonymizeCustomer(input: { lmsUserId: 999999 }) { customersRetired } }',
    expect: STEP_ONLY,
  },

  // ---- lms: a learner reads their own account; the mutations are steps and receivers.
  learner: { query: `{ learner(username: "${ada.username}") { lmsUserId } }`, expect: 'UAFAA' },
  fulfillOrder: {
    query: `mutation { fulfillOrder(input: { orderId: "${unknownOrder}", orderNumber: "2U-0", lmsUserId: 999999, username: "nobody", lineItems: [] }) { fulfillments { lineItemId } } }`,
    expect: STEP_ONLY,
  },
  revokeLineItems: {
    query: `mutation { revokeLineItems(input: { orderId: "${unknownOrder}", lmsUserId: 999999, username: "nobody", returnedItems: [] }) { revoked } }`,
    expect: STEP_ONLY,
  },
  deactivateLearner: {
    query: 'mutation { deactivateLearner(input: { username: "nobody-at-all" }) { deactivated } }',
    expect: STEP_ONLY,
  },

  // ---- Mobile in-app purchases: the mobile order flow (learners for themselves, staff for them) and its
  // steps; the stores' refunds (receivers of mobile.payment.refunded.v1 and mobile.ios-refund.unmatched.v1).
  createMobileOrder: {
    query:
      'mutation { createMobileOrder(input: { courseRunKey: "x", currencyCode: "USD", price: "1.00", purchaseToken: "t", paymentProcessor: "ios_iap" }) { flow { id } } }',
    expect: 'UAAAF',
  },
  mobileOrderRequest: {
    query:
      '{ mobileOrderRequest(input: { courseRunKey: "x", currencyCode: "USD", price: "1.00", purchaseToken: "t", paymentProcessor: "ios_iap" }) { username } }',
    // Staff only in effect: a Service is refused by the step itself (orders are for learners).
    expect: 'UFFAF',
  },
  ensureMobileCustomer: {
    query:
      'mutation { ensureMobileCustomer(input: { lmsUserId: 999999, username: "nobody" }) { customerId } }',
    expect: STEP_ONLY,
  },
  replaceActiveCart: {
    query: 'mutation { replaceActiveCart(input: { customerId: "nobody" }) { replacedCarts } }',
    expect: STEP_ONLY,
  },
  nextOrderNumber: { query: 'mutation { nextOrderNumber { orderNumber } }', expect: STEP_ONLY },
  createMobileCart: {
    query:
      'mutation { createMobileCart(input: { customerId: "nobody", lmsUserId: 999999, username: "nobody", email: "n@example.com", orderNumber: "2U-0", courseRunKey: "x", currencyCode: "USD", price: "1.00", paymentProcessor: "ios_iap" }) { cartId } }',
    expect: STEP_ONLY,
  },
  deleteMobileCart: {
    query: 'mutation { deleteMobileCart(input: { cartId: "nobody" }) { cartDeleted } }',
    expect: STEP_ONLY,
  },
  attachMobilePayment: {
    query:
      'mutation { attachMobilePayment(input: { cartId: "nobody", transactionId: "t", paymentProcessor: "ios_iap", usdCentAmount: 100 }) { paymentId } }',
    expect: STEP_ONLY,
  },
  placeMobileOrder: {
    query: 'mutation { placeMobileOrder(input: { cartId: "nobody" }) { orderId } }',
    expect: STEP_ONLY,
  },
  recordMobileRefund: {
    query:
      'mutation { recordMobileRefund(input: { paymentInterface: "ios_iap_edx", transactionIds: ["t"], refundId: "t", refundCreatedAt: "2026-01-01T00:00:00Z", forwardToLegacy: false }) { found } }',
    expect: STEP_ONLY,
  },
  forwardIosRefund: {
    query:
      'mutation { forwardIosRefund(input: { refundId: "t", transactionIds: ["t"], legacyPayload: "{}" }) { status } }',
    expect: STEP_ONLY,
  },

  // ---- learner-email and analytics: receivers of the fulfillment's and refunds' signals.
  sendOrderConfirmation: {
    query: `mutation { sendOrderConfirmation(input: { orderId: "${unknownOrder}", order: { id: "${unknownOrder}", orderNumber: "2U-0", lmsUserId: 999999, username: "nobody", email: "nobody@example.com", createdAt: "2026-01-01T00:00:00Z", totalCents: 0, currency: "USD", mobileOrder: false, lineItems: [] }, lineItemStates: [] }) { sent } }`,
    expect: STEP_ONLY,
  },
  sendFulfillmentErrorEmail: {
    query: `mutation { sendFulfillmentErrorEmail(input: { orderId: "${unknownOrder}" }) { sent } }`,
    expect: STEP_ONLY,
  },
  trackOrderRefunded: {
    query: 'mutation { trackOrderRefunded(input: {}) { tracked } }',
    expect: STEP_ONLY,
  },

  // ---- legacy-ecommerce
  legacyOrders: { query: `{ legacyOrders(username: "${ada.username}") { number } }`, expect: 'UAFAA' },
  legacyReceiptUrl: { query: '{ legacyReceiptUrl(orderNumber: "EDX-100001") { url } }', expect: STEP_ONLY },

  // ---- frontend-apps: steps of the history, receipt and checkout flows.
  orderHistoryRequest: {
    query: `{ orderHistoryRequest(input: { username: "${ada.username}" }) { username } }`,
    // A Service has no order history (the Action's own rule).
    expect: 'UFFAF',
  },
  mergeOrderHistory: {
    query: '{ mergeOrderHistory(input: { since: "2026-01-01T00:00:00Z" }) { count } }',
    expect: STEP_ONLY,
  },
  receiptRequest: {
    query: '{ receiptRequest(input: { orderNumber: "EDX-1" }) { legacyOrder } }',
    expect: STEP_ONLY,
  },
  receiptFound: {
    query: '{ receiptFound(input: { orderNumber: "EDX-1", url: "https://x" }) { url } }',
    expect: STEP_ONLY,
  },
  // Checkout is for people (the Action's own rule).
  paymentPage: { query: '{ paymentPage(input: { query: "sku=1" }) { url } }', expect: 'UFFAF' },

  // ---- The PSPs: steps of the refund and receipt flows.
  stripeReceiptUrl: { query: '{ stripeReceiptUrl(pspPaymentId: "pi_unknown") { url } }', expect: STEP_ONLY },
  refundStripePayment: {
    query: `mutation { refundStripePayment(input: { pspPaymentId: "pi_unknown", refundAmountCents: 1, currency: "USD" }) { pspRefundId } }`,
    expect: STEP_ONLY,
  },
  payPalReceiptUrl: { query: '{ payPalReceiptUrl(pspPaymentId: "CAP-UNKNOWN") { url } }', expect: STEP_ONLY },
  refundPayPalPayment: {
    query: `mutation { refundPayPalPayment(input: { pspPaymentId: "CAP-UNKNOWN", refundAmountCents: 1, currency: "USD" }) { pspRefundId } }`,
    expect: STEP_ONLY,
  },

  // ---- The stores: steps of the mobile order flow (an unknown purchase: PAYMENT_REQUIRED once authorised).
  verifyAppStorePurchase: {
    query:
      '{ verifyAppStorePurchase(input: { purchaseToken: "1", productId: "mobile.ios.usd1" }) { transactionId } }',
    expect: STEP_ONLY,
  },
  verifyGooglePlayPurchase: {
    query:
      '{ verifyGooglePlayPurchase(input: { purchaseToken: "unknown", productId: "mobile.android.usd1" }) { transactionId } }',
    expect: STEP_ONLY,
  },
  // ---- Before a purchase: any signed-in caller asks about discount codes and program prices; the
  // first-time discount is the LMS's (staff, Services); credit checkout is for people.
  discountCodeInfo: {
    query:
      '{ discountCodeInfo(input: { code: "WELCOME25", courseRunKey: "course-v1:edX+DemoX+2026" }) { flow { id } } }',
    expect: 'UAAAA',
  },
  firstTimeDiscountEligibility: {
    query: '{ firstTimeDiscountEligibility(input: { email: "ada@example.com", code: "X" }) { flow { id } } }',
    expect: 'UFFAA',
  },
  programPrice: {
    query: '{ programPrice(input: { bundleKey: "none", courseKeys: ["edX+DemoX"] }) { flow { id } } }',
    expect: 'UAAAA',
  },
  creditCheckout: {
    query: '{ creditCheckout(input: { courseRunKey: "course-v1:edX+DemoX+2026" }) { flow { id } } }',
    expect: 'UAAAF',
  },
  discountCodeApplicability: {
    query: '{ discountCodeApplicability(input: { code: "WELCOME25", courseRunKey: "x" }) { isApplicable } }',
    expect: STEP_ONLY,
  },
  firstTimeDiscountEligible: {
    query: '{ firstTimeDiscountEligible(input: { email: "ada@example.com", code: "X" }) { isEligible } }',
    expect: STEP_ONLY,
  },
  programPriceInfo: {
    query: '{ programPriceInfo(input: { bundleKey: "none", courseKeys: ["x"] }) { totalInclTaxCents } }',
    expect: STEP_ONLY,
  },
  creditVariant: {
    query: '{ creditVariant(input: { courseRunKey: "x" }) { creditSku } }',
    expect: STEP_ONLY,
  },
};

/** Fields of the federated Order that other Plugins and the Coordinator add: ada's order, by caller. */
const ORDER_FIELDS: Record<string, Row> = {
  'Order.flows': { query: `{ order(id: "${order.id}") { flows { id } } }`, expect: 'UFFAA' },
  'Order.enrollments': {
    query: `{ order(id: "${order.id}") { enrollments { courseRunKey } } }`,
    expect: 'UAFAA',
  },
  'OrderPayment.stripe': {
    query: `{ order(id: "${order.id}") { payment { stripe { status } } } }`,
    expect: 'UAFAA',
  },
};

let cc: CommerceCoordinator;
let tokens: Record<Caller, string | undefined>;

beforeAll(async () => {
  cc = await startCommerceCoordinator('trust-authorization-matrix');
  tokens = {
    anonymous: undefined,
    learner: cc.tokens.ada,
    otherLearner: cc.tokens.bob,
    staff: cc.tokens.staff,
    service: cc.tokens.lms,
  };
});
afterAll(async () => {
  await cc?.stop();
});

async function verdict(row: Row, caller: Caller): Promise<Verdict> {
  const { errors } = await cc.graphql(row.query, row.variables, tokens[caller]);
  const codes = (errors ?? []).map((e) => e.extensions?.code);
  if (codes.includes('UNAUTHENTICATED')) return 'U';
  if (codes.includes('FORBIDDEN')) return 'F';
  // Anything else must be an answer past the checks: never a broken request.
  for (const code of codes)
    expect(
      ['BAD_USER_INPUT', 'NOT_FOUND', 'CONFLICT', 'STEP_FAILED', 'SERVICE_UNAVAILABLE', 'PAYMENT_REQUIRED'],
      row.query,
    ).toContain(code);
  return 'A';
}

async function verdicts(rows: Record<string, Row>) {
  const seen: Record<string, string> = {};
  for (const [name, row] of Object.entries(rows)) {
    let line = '';
    for (const caller of CALLERS) line += await verdict(row, caller);
    seen[name] = line;
  }
  return seen;
}

const expected = (rows: Record<string, Row>) =>
  Object.fromEntries(Object.entries(rows).map(([name, row]) => [name, row.expect]));

describe('the authorisation matrix', () => {
  it('has a row for every Action and every field of the Coordinator', async () => {
    const { data } = await cc.graphql<{
      __schema: {
        queryType: { fields: Array<{ name: string }> };
        mutationType: { fields: Array<{ name: string }> };
      };
    }>('{ __schema { queryType { fields { name } } mutationType { fields { name } } } }');
    const fields = [...data!.__schema.queryType.fields, ...data!.__schema.mutationType.fields].map(
      (f) => f.name,
    );
    expect(fields.sort()).toEqual(Object.keys(MATRIX).sort());
  });

  it('answers every Action as the table says, for anonymous, learner, other learner, staff and Service', async () => {
    expect(await verdicts(MATRIX)).toEqual(expected(MATRIX));
  }, 120_000);

  it('guards the fields other Plugins add to an order as the table says', async () => {
    expect(await verdicts(ORDER_FIELDS)).toEqual(expected(ORDER_FIELDS));
  });

  it('opens subscriptions to staff and Services only (4403 for the others)', async () => {
    const seen: Record<string, string> = {};
    for (const caller of CALLERS) {
      const bearer = tokens[caller];
      const client = subscriptionClient(cc.url, {
        connectionParams: bearer ? { authorization: `Bearer ${bearer}` } : {},
      });
      const sub = collect(client, { query: 'subscription { flowEvents { type } }' }, (d) => d);
      const outcome = await Promise.race([
        sub.failed.promise.then((e) => `closed ${(e as { code?: number }).code}`),
        new Promise<string>((resolve) => client.on('connected', () => resolve('connected'))),
      ]);
      seen[caller] = outcome;
      sub.unsubscribe();
      await client.dispose();
    }
    expect(seen).toEqual({
      anonymous: 'closed 4403',
      learner: 'closed 4403',
      otherLearner: 'closed 4403',
      staff: 'connected',
      service: 'connected',
    });
  });
});
