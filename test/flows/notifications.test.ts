import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import {
  BRAZE_FULFILLMENT_ERROR_CANVAS_ID,
  BRAZE_ORDER_CONFIRMATION_CANVAS_ID,
} from '../../services/embedded.js';
import type { SeedLineItem } from '../../services/order-management/server.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { announceOrderPlaced, seedPaidOrder } from '../support/orders.js';
import { waitFor } from '../support/wait.js';

/**
 * What a purchase tells the learner and the analytics Service, end to end through the gateway: the
 * fulfillment's signals (order.fulfilled.v1, and order.fulfillment.failed.v1 when the flow fails)
 * reach the learner email Plugin, which triggers Braze Canvases (the stand-in keeps every send); the
 * refunds' signals reach the analytics Plugin, which reports Segment's `Order Refunded` through
 * @segment/analytics-node (the stand-in keeps every event).
 */

let c: CommerceCoordinator;

// Short LMS timeouts, so that "the LMS timed out" fails the fulfillment in seconds.
const LMS_TIMEOUT_MS = 250;

beforeAll(async () => {
  process.env.LMS_TIMEOUT_MS = String(LMS_TIMEOUT_MS);
  c = await startCommerceCoordinator('flow-notifications');
});
afterAll(async () => {
  await c?.stop();
  delete process.env.LMS_TIMEOUT_MS;
});

const ENROLL_PATH = '/api/enrollment/v1/enrollment';
const ENTITLEMENTS_PATH = '/api/entitlements/v1/entitlements/';
const COURSE = DEMO.courses.demo.courseId;
/** A course run whose verified mode is no longer on sale. */
const AUDIT_ONLY_COURSE = 'course-v1:edX+AuditOnly+2026';

// ---- seeding ----------------------------------------------------------------------------------------

let learners = 0;
let orderNumbers = 0;

function seedLearner() {
  const lmsUserId = 8300 + ++learners;
  const learner = { lmsUserId, username: `notify${lmsUserId}`, email: `notify${lmsUserId}@example.com` };
  c.services.lms.seed({ users: [{ id: lmsUserId, username: learner.username, email: learner.email }] });
  return learner;
}

function seedOrder(lineItems: SeedLineItem[], options: { payment?: boolean; mobile?: boolean } = {}) {
  const customer = seedLearner();
  const number = ++orderNumbers;
  const [order] = c.services.orderManagement.seed({
    orders: [
      {
        orderNumber: `2U-2028${String(number).padStart(6, '0')}`,
        customer,
        lineItems,
        ...(options.payment === false
          ? {}
          : { payment: { psp: 'STRIPE' as const, pspPaymentId: `pi_notify_${number}` } }),
      },
    ],
  }).orders;
  if (options.mobile) {
    // The mobile checkout's custom field on the order (the stand-in's seed has no mobile payments).
    const stored = c.services.orderManagement.store.orders.get(order!.id)!;
    stored.custom!.fields.mobileOrder = true;
  }
  return {
    ...order!,
    orderNumber: order!.orderNumber!,
    customer,
    lineIds: order!.lineItems.map((l) => l.id),
  };
}

const courseLine = (courseRunKey: string = COURSE, priceCents = 14_900): SeedLineItem => ({
  title: `Course ${courseRunKey}`,
  priceCents,
  courseRunKey,
});
const bundleLine = (): SeedLineItem => ({ title: 'Program', priceCents: 35_000, bundleKey: randomUUID() });

// ---- the gateway and the stand-ins -------------------------------------------------------------------

/** The order management Service's event for an order, as its subscription delivers it. */
const fulfill = (orderId: string) => announceOrderPlaced(c, orderId);

interface ReceiverRun {
  name: string;
  receiver: string | null;
  status: string;
  output: { sent?: boolean; reason?: string | null; tracked?: boolean } | null;
}

async function receiverRuns(orderId: string, receiver: string): Promise<ReceiverRun[]> {
  const res = await c.graphql<{ flows: ReceiverRun[] }>(
    'query ($orderId: String) { flows(orderId: $orderId, limit: 100) { name receiver status output } }',
    { orderId },
    c.tokens.staff,
  );
  expect(res.errors).toBeUndefined();
  return res.data!.flows.filter((f) => f.receiver === receiver);
}

/** Waits until `count` runs of the receiver for the order ended COMPLETED; returns them. */
const completedRuns = (orderId: string, receiver: string, count = 1) =>
  waitFor(
    async () => {
      const runs = (await receiverRuns(orderId, receiver)).filter((r) => r.status === 'COMPLETED');
      expect(runs).toHaveLength(count);
      return runs;
    },
    { what: `${count} completed ${receiver} run(s) of ${orderId}`, timeoutMs: 20_000 },
  );

const confirmations = (orderNumber: string) =>
  c.services.braze
    .sends(BRAZE_ORDER_CONFIRMATION_CANVAS_ID)
    .filter((s) => s.recipients[0]!.trigger_properties?.order_number === orderNumber);
const errorEmails = (orderNumber: string) =>
  c.services.braze
    .sends(BRAZE_FULFILLMENT_ERROR_CANVAS_ID)
    .filter((s) => s.recipients[0]!.trigger_properties?.order_number === orderNumber);

// ---- order confirmation ------------------------------------------------------------------------------

describe('the order confirmation email', () => {
  it('goes out once for a fulfilled Stripe order, with the receipt link, even when fulfilled again', async () => {
    const order = seedOrder([courseLine(COURSE, 14_900), bundleLine()]);

    expect((await fulfill(order.id)).body.status).toBe('COMPLETED');
    const [run] = await completedRuns(order.id, 'send-order-confirmation');
    expect(run!.output).toMatchObject({ sent: true });

    const [send, ...more] = confirmations(order.orderNumber);
    expect(more).toEqual([]);
    expect(send!.recipients).toEqual([
      { external_user_id: String(order.customer.lmsUserId), trigger_properties: expect.any(Object) },
    ]);
    const properties = send!.recipients[0]!.trigger_properties!;
    expect(properties).toMatchObject({
      order_id: order.id,
      order_number: order.orderNumber,
      order_subtotal: '$499.00',
      order_total: '$499.00',
      order_discount: '$0.00',
      hide_receipt_cta: false,
      view_receipt_cta_url: expect.stringMatching(
        new RegExp(`/orders/unified/order_receipt/\\?order_number=${order.orderNumber}$`),
      ),
    });
    expect(properties.order_items).toEqual([
      expect.objectContaining({ title: `Course ${COURSE}`, price: '$149.00', course_run_key: COURSE }),
      expect.objectContaining({ title: 'Program', price: '$350.00' }),
    ]);

    // Another fulfillment of the same order (a new message) within the day: no second email.
    expect((await fulfill(order.id)).body.status).toBe('COMPLETED');
    const runs = await completedRuns(order.id, 'send-order-confirmation', 2);
    expect(runs.map((r) => r.output?.sent).sort()).toEqual([false, true]);
    expect(confirmations(order.orderNumber)).toHaveLength(1);
  });

  it('two fulfillments of one order at once send one email', async () => {
    const order = seedOrder([courseLine()]);

    const answers = await Promise.all([fulfill(order.id), fulfill(order.id)]);

    for (const answer of answers) expect(answer.body.status).toBe('COMPLETED');
    await completedRuns(order.id, 'send-order-confirmation', 2);
    expect(confirmations(order.orderNumber)).toHaveLength(1);
  });

  it('hides the receipt link of a mobile order', async () => {
    const order = seedOrder([courseLine()], { mobile: true });

    await fulfill(order.id);
    await completedRuns(order.id, 'send-order-confirmation');

    const [send] = confirmations(order.orderNumber);
    expect(send!.recipients[0]!.trigger_properties).toMatchObject({
      hide_receipt_cta: true,
      view_receipt_cta_url: null,
    });
  });

  it('hides the receipt link of a zero-total order paid by neither Stripe nor PayPal', async () => {
    const order = seedOrder([courseLine(COURSE, 0)], { payment: false });

    await fulfill(order.id);
    await completedRuns(order.id, 'send-order-confirmation');

    const [send] = confirmations(order.orderNumber);
    expect(send!.recipients[0]!.trigger_properties).toMatchObject({
      order_total: '$0.00',
      hide_receipt_cta: true,
      view_receipt_cta_url: null,
    });
  });

  it('is not sent when no line was fulfilled', async () => {
    const order = seedOrder([courseLine()]);
    c.services.lms.failNext(1, 400, ENROLL_PATH);

    await fulfill(order.id);
    const [run] = await completedRuns(order.id, 'send-order-confirmation');

    expect(run!.output).toMatchObject({ sent: false });
    expect(confirmations(order.orderNumber)).toEqual([]);
  });

  it('with Braze down, the fulfillment completes; the email goes out when Braze is back', async () => {
    const order = seedOrder([courseLine()]);
    // Every first delivery and its first retry fail (the receiver is retried by the bus).
    c.services.braze.admin.injectFault({ path: '/canvas/trigger/send', status: 503, times: 2 });

    const answer = await fulfill(order.id);

    expect(answer).toMatchObject({ status: 200, body: { status: 'COMPLETED' } });
    const stored = c.services.orderManagement.store.orders.get(order.id)!;
    expect(stored.lineItems).toHaveLength(1);
    await completedRuns(order.id, 'send-order-confirmation');
    expect(confirmations(order.orderNumber)).toHaveLength(1);
    // The failed attempts reached Braze and were answered 503.
    const attempts = c.services.braze.admin.journal({ path: '/canvas/trigger/send' });
    expect(attempts.filter((a) => a.status === 503).length).toBeGreaterThanOrEqual(2);
  });

  it('refuses a forged call that does not come from a flow: learners may not send emails', async () => {
    const order = seedOrder([courseLine()]);
    const res = await c.graphql(
      `mutation ($input: SendOrderConfirmationInput!) { sendOrderConfirmation(input: $input) { sent } }`,
      {
        input: {
          orderId: order.id,
          order: {
            id: order.id,
            orderNumber: order.orderNumber,
            lmsUserId: DEMO.learners.ada.lmsUserId,
            username: 'ada',
            email: DEMO.learners.ada.email,
            createdAt: new Date().toISOString(),
            totalCents: 0,
            currency: 'USD',
            mobileOrder: false,
            lineItems: [],
          },
          lineItemStates: [{ lineItemId: order.lineIds[0], state: 'SUCCESS' }],
        },
      },
      c.tokens.ada,
    );
    expect(res.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(confirmations(order.orderNumber)).toEqual([]);
  });
});

// ---- fulfillment error email -------------------------------------------------------------------------

describe('the fulfillment error email', () => {
  beforeAll(() => {
    c.services.lms.seed({ courses: [{ courseId: AUDIT_ONLY_COURSE, modes: ['audit'] }] });
  });

  it('goes out once when the LMS refuses an enrollment because the course mode expired', async () => {
    const order = seedOrder([courseLine(AUDIT_ONLY_COURSE), courseLine()]);

    const answer = await fulfill(order.id);

    expect(answer.body.status).toBe('COMPLETED');
    const [run] = await completedRuns(order.id, 'send-fulfillment-error-email');
    expect(run!.output).toMatchObject({ sent: true });
    const [send, ...more] = errorEmails(order.orderNumber);
    expect(more).toEqual([]);
    expect(send!.recipients[0]!.external_user_id).toBe(String(order.customer.lmsUserId));
    // Only the refused line; the other was enrolled.
    expect(send!.recipients[0]!.trigger_properties!.failed_items).toEqual([
      expect.objectContaining({ kind: 'course', course_run_key: AUDIT_ONLY_COURSE }),
    ]);

    // The same failure again (a new message): still one email for the order.
    await fulfill(order.id);
    await completedRuns(order.id, 'send-fulfillment-error-email', 2);
    expect(errorEmails(order.orderNumber)).toHaveLength(1);
  });

  it('goes out once after the last retry when the LMS stays unavailable (503)', async () => {
    const order = seedOrder([courseLine()]);
    const attempts = c.coordinator.components.engine
      .filter('order.fulfillment.requested.v1')
      .steps.find((s) => s.action.name === 'fulfillOrder')!.retry.maximumAttempts;
    c.services.lms.failNext(attempts, 503, ENROLL_PATH);

    const answer = await fulfill(order.id);

    expect(answer.body.status).toBe('COMPENSATED');
    const [run] = await completedRuns(order.id, 'send-fulfillment-failure-email');
    expect(run!.output).toMatchObject({ sent: true });
    expect(errorEmails(order.orderNumber)).toHaveLength(1);
    // Nothing was fulfilled: no confirmation.
    expect(await receiverRuns(order.id, 'send-order-confirmation')).toEqual([]);
    expect(confirmations(order.orderNumber)).toEqual([]);
  });

  it('goes out once after the last retry when the LMS times out', async () => {
    const order = seedOrder([courseLine()]);
    const attempts = c.coordinator.components.engine
      .filter('order.fulfillment.requested.v1')
      .steps.find((s) => s.action.name === 'fulfillOrder')!.retry.maximumAttempts;
    // Held past the Plugin's timeout, then refused, so no late enrollment happens behind the timeout.
    c.services.lms.admin.injectFault({
      method: 'POST',
      path: ENROLL_PATH,
      delayMs: LMS_TIMEOUT_MS * 3,
      status: 504,
      times: attempts,
    });

    const answer = await fulfill(order.id);

    expect(answer.body.status).toBe('COMPENSATED');
    await completedRuns(order.id, 'send-fulfillment-failure-email');
    expect(errorEmails(order.orderNumber)).toHaveLength(1);
  }, 30_000);

  it('is not sent for another enrollment error (a refusal of ours, or a 500 outage)', async () => {
    const refused = seedOrder([courseLine()]);
    c.services.lms.failNext(1, 400, ENROLL_PATH);
    await fulfill(refused.id);
    const [refusedRun] = await completedRuns(refused.id, 'send-fulfillment-error-email');
    expect(refusedRun!.output).toMatchObject({ sent: false });

    const broken = seedOrder([courseLine()]);
    const attempts = c.coordinator.components.engine
      .filter('order.fulfillment.requested.v1')
      .steps.find((s) => s.action.name === 'fulfillOrder')!.retry.maximumAttempts;
    c.services.lms.failNext(attempts, 500, ENROLL_PATH);
    expect((await fulfill(broken.id)).body.status).toBe('COMPENSATED');
    const [brokenRun] = await completedRuns(broken.id, 'send-fulfillment-failure-email');
    expect(brokenRun!.output).toMatchObject({ sent: false });

    expect(errorEmails(refused.orderNumber)).toEqual([]);
    expect(errorEmails(broken.orderNumber)).toEqual([]);
  });

  it('is sent for any entitlement error', async () => {
    const refused = seedOrder([bundleLine()]);
    c.services.lms.failNext(1, 400, ENTITLEMENTS_PATH);
    await fulfill(refused.id);
    await completedRuns(refused.id, 'send-fulfillment-error-email');
    const [send] = errorEmails(refused.orderNumber);
    expect(send!.recipients[0]!.trigger_properties!.failed_items).toEqual([
      expect.objectContaining({ kind: 'program' }),
    ]);

    const broken = seedOrder([bundleLine()]);
    const attempts = c.coordinator.components.engine
      .filter('order.fulfillment.requested.v1')
      .steps.find((s) => s.action.name === 'fulfillOrder')!.retry.maximumAttempts;
    c.services.lms.failNext(attempts, 500, '/api/entitlements/');
    expect((await fulfill(broken.id)).body.status).toBe('COMPENSATED');
    await completedRuns(broken.id, 'send-fulfillment-failure-email');
    expect(errorEmails(broken.orderNumber)).toHaveLength(1);
  });
});

// ---- Segment Order Refunded --------------------------------------------------------------------------

describe('Segment Order Refunded', () => {
  const refundedEvents = (orderNumber: string) =>
    c.services.segment.events('Order Refunded').filter((e) => e.properties?.order_id === orderNumber);

  it('is reported once per refund after requestRefund, with the refunded amount and items', async () => {
    const order = seedPaidOrder(c, 'STRIPE', { prices: [14_900, 9_900] });

    const res = await c.graphql<{ requestRefund: { flow: { status: string }; pspRefundId: string } }>(
      `mutation ($input: RefundRequestInput!) { requestRefund(input: $input) { flow { status } pspRefundId } }`,
      { input: { orderId: order.orderId, lineItemIds: [order.lineItemIds[1]] } },
      c.tokens.staff,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data!.requestRefund.flow.status).toBe('COMPLETED');
    const refundId = res.data!.requestRefund.pspRefundId;

    await completedRuns(order.orderId, 'track-order-refunded');
    const [event, ...more] = refundedEvents(order.orderNumber);
    expect(more).toEqual([]);
    expect(event).toMatchObject({
      type: 'track',
      event: 'Order Refunded',
      userId: String(order.learner.lmsUserId),
      properties: {
        track_plan_id: 19,
        order_id: order.orderNumber,
        checkout_id: order.orderId,
        refund_id: refundId,
        payment_processor: 'stripe',
        total: 99,
        currency: 'USD',
        products: [
          {
            product_id: order.courseRunKeys[1],
            sku: order.courseRunKeys[1],
            category: 'course',
            quantity: 1,
            lob: 'edx',
          },
        ],
      },
    });
    expect(event!.messageId).toMatch(/^order-refunded-[0-9a-f]{32}$/);
  });

  it('is reported once after a refund in the Stripe dashboard, however often the webhook comes', async () => {
    const order = seedPaidOrder(c, 'STRIPE', { prices: [14_900] });
    const before = c.services.segment.events('Order Refunded').length;

    const made = await c.services.stripe.refundFromDashboard(order.pspPaymentId, 5_000);
    expect(made.delivery?.status).toBe(200);
    await waitFor(
      () =>
        expect(
          c.services.segment
            .events('Order Refunded')
            .filter((e) => e.properties?.refund_id === made.refund.id),
        ).toHaveLength(1),
      { what: 'the dashboard refund reported' },
    );
    await c.services.stripe.redeliver(made.event.id);
    // The redelivered event is dropped by the webhook's dedupe or Segment's messageId: still one.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const events = c.services.segment.events('Order Refunded').slice(before);
    expect(events.filter((e) => e.properties?.refund_id === made.refund.id)).toHaveLength(1);
    expect(events.find((e) => e.properties?.refund_id === made.refund.id)).toMatchObject({
      properties: { total: 50, currency: 'USD', payment_processor: 'stripe' },
    });
  });

  it('with Segment down, the refund completes and the event is reported when Segment is back', async () => {
    const order = seedPaidOrder(c, 'STRIPE', { prices: [14_900] });
    c.services.segment.admin.injectFault({ path: '/v1/batch', status: 503, times: 3 });

    const res = await c.graphql<{ requestRefund: { flow: { status: string } } }>(
      `mutation ($input: RefundRequestInput!) { requestRefund(input: $input) { flow { status } } }`,
      { input: { orderId: order.orderId, lineItemIds: order.lineItemIds } },
      c.tokens.staff,
    );
    expect(res.data?.requestRefund.flow.status).toBe('COMPLETED');
    await completedRuns(order.orderId, 'track-order-refunded');
    expect(refundedEvents(order.orderNumber)).toHaveLength(1);
    expect(refundedEvents(order.orderNumber)[0]!.properties).toMatchObject({ total: 149 });
  });
});
