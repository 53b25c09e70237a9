import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../gateway/log.js';
import { DEMO } from '../../services/demo.js';
import { DEFAULT_LMS_CLIENT } from '../../services/lms/server.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { waitFor } from '../support/wait.js';

/**
 * Refund requests and PSP events as the reference's Services send them, end to end through the
 * gateway against the stand-ins:
 * - a refund that names its line by the LMS's entitlement UUID (requestRefund, findRefundLines);
 * - the LMS's refund_seat override, POST /lms/refund/ (course and entitlement bodies), and its answers;
 * - PSP dashboard refunds of payments that are not the Coordinator's, acknowledged without effect;
 * - an order state event about an order that is not sanctioned, logged as a warning;
 * - the enrollment attributes fulfillment writes in the LMS (course and credit lines).
 */

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}
const logLines: LogLine[] = [];
const WARN = 40;

let cc: CommerceCoordinator;

beforeAll(async () => {
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean))
        logLines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  cc = await startCommerceCoordinator('refund-inputs', {
    overrides: { logger: createLogger({ level: 'info', destination }) },
  });
});

afterAll(async () => {
  await cc?.stop();
});

const logged = (msg: RegExp, where: (line: LogLine) => boolean = () => true) =>
  logLines.filter((line) => msg.test(line.msg) && where(line));

// ---- orders of this file's own ---------------------------------------------------------------------

let seq = 0;
const ada = DEMO.learners.ada;

interface SeededOrder {
  orderId: string;
  orderNumber: string;
  pspPaymentId: string;
  courseLineId: string;
  bundleLineId: string;
  entitlementUuid: string;
  courseRunKey: string;
}

/** Ada's Stripe-paid order of a course line (9 900) and a bundle line (20 000) granted as an entitlement. */
function seedOrder(): SeededOrder {
  const n = ++seq;
  const orderNumber = `2U-2029${String(n).padStart(6, '0')}`;
  const courseRunKey = `course-v1:RefundInputsX+R${process.pid}N${n}+2026`;
  const bundleKey = randomUUID();
  const entitlementUuid = randomUUID();
  const { services } = cc;
  services.lms.seed({
    courses: [{ courseId: courseRunKey, name: `Course ${n}` }],
    enrollments: [{ username: ada.username, courseId: courseRunKey, mode: 'verified', isActive: true }],
  });
  const pspPaymentId = services.stripe.createPaymentIntent({
    amount: 29_900,
    metadata: { order_number: orderNumber, source_system: 'commercetools' },
  }).id;
  const [order] = services.orderManagement.seed({
    orders: [
      {
        orderNumber,
        customer: { lmsUserId: ada.lmsUserId, username: ada.username, email: ada.email },
        lineItems: [
          { title: 'Course', priceCents: 9_900, courseRunKey, state: 'SUCCESS' },
          { title: 'Program', priceCents: 20_000, bundleKey, state: 'SUCCESS', entitlementUuid },
        ],
        payment: { psp: 'STRIPE', pspPaymentId },
      },
    ],
  }).orders;
  return {
    orderId: order!.id,
    orderNumber,
    pspPaymentId,
    courseLineId: order!.lineItems[0]!.id,
    bundleLineId: order!.lineItems[1]!.id,
    entitlementUuid,
    courseRunKey,
  };
}

const returnItems = (o: SeededOrder) =>
  cc.services.orderManagement.store.orders.get(o.orderId)!.returnInfo.flatMap((r) => r.items);
const stripeRefunds = (o: SeededOrder) => cc.services.stripe.refunds(o.pspPaymentId);

interface FlowRun {
  id: string;
  name: string;
  receiver: string | null;
  status: string;
  orderId: string | null;
  input: Record<string, unknown>;
  output: Record<string, unknown> | null;
  error: { code: string; message: string } | null;
  steps: Array<{ action: string; status: string; output: Record<string, unknown> | null }>;
}
const FLOW =
  'id name receiver status orderId input output error { code message } steps { action status output }';

async function requestRefund(
  input: Record<string, unknown>,
  token: string = cc.tokens.staff,
): Promise<{ flow?: FlowRun; error?: { message: string; extensions?: Record<string, unknown> } }> {
  const result = await cc.graphql<{ requestRefund: { flow: FlowRun } }>(
    `mutation ($input: RefundRequestInput!) { requestRefund(input: $input) { flow { ${FLOW} } } }`,
    { input },
    token,
  );
  return { flow: result.data?.requestRefund.flow, error: result.errors?.[0] };
}

async function flowsNamed(name: string): Promise<FlowRun[]> {
  const result = await cc.graphql<{ flows: FlowRun[] }>(
    `query ($name: String) { flows(name: $name, limit: 200) { ${FLOW} } }`,
    { name },
    cc.tokens.staff,
  );
  expect(result.errors).toBeUndefined();
  return result.data!.flows;
}

// ---- 1. a refund that names its line by the entitlement -----------------------------------------------

describe('requestRefund naming the line by its entitlement UUID', () => {
  it('refunds the line that carries the entitlement, resolved by the flow’s first step', async () => {
    const o = seedOrder();
    const { flow, error } = await requestRefund({ orderId: o.orderId, entitlementUuid: o.entitlementUuid });
    expect(error).toBeUndefined();
    expect(flow).toMatchObject({ status: 'COMPLETED', orderId: o.orderId });
    expect(flow!.steps.map((s) => [s.action, s.status])).toEqual([
      ['refundLines', 'COMPLETED'],
      ['createReturn', 'COMPLETED'],
      ['settleReturn', 'SKIPPED'],
      ['refundStripePayment', 'COMPLETED'],
      ['refundPayPalPayment', 'SKIPPED'],
      ['recordRefundTransaction', 'COMPLETED'],
    ]);
    expect(flow!.steps[0]!.output).toEqual({ orderId: o.orderId, lineItemIds: [o.bundleLineId] });
    expect(returnItems(o).map((i) => i.lineItemId)).toEqual([o.bundleLineId]);
    expect(stripeRefunds(o).map((r) => r.amount)).toEqual([20_000]);
  });

  it('names by line ids as before: the first step passes them on', async () => {
    const o = seedOrder();
    const { flow } = await requestRefund({ orderId: o.orderId, lineItemIds: [o.courseLineId] });
    expect(flow).toMatchObject({ status: 'COMPLETED' });
    expect(flow!.steps[0]).toMatchObject({
      action: 'refundLines',
      output: { orderId: o.orderId, lineItemIds: [o.courseLineId] },
    });
    expect(stripeRefunds(o).map((r) => r.amount)).toEqual([9_900]);
  });

  it('an entitlement no line of the order carries: BAD_USER_INPUT "Line item does not exist.", nothing returned', async () => {
    const o = seedOrder();
    const { flow, error } = await requestRefund({ orderId: o.orderId, entitlementUuid: randomUUID() });
    expect(flow).toBeUndefined();
    expect(error).toMatchObject({
      message: 'Line item does not exist.',
      extensions: { code: 'BAD_USER_INPUT' },
    });
    expect(returnItems(o)).toEqual([]);
    expect(stripeRefunds(o)).toEqual([]);
  });

  it('another order’s entitlement does not name a line of this one', async () => {
    const [o, other] = [seedOrder(), seedOrder()];
    const { error } = await requestRefund({ orderId: o.orderId, entitlementUuid: other.entitlementUuid });
    expect(error).toMatchObject({
      message: 'Line item does not exist.',
      extensions: { code: 'BAD_USER_INPUT' },
    });
    expect(returnItems(o)).toEqual([]);
    expect(returnItems(other)).toEqual([]);
  });

  it('both ways at once, or neither: BAD_USER_INPUT before anything changes', async () => {
    const o = seedOrder();
    const both = await requestRefund({
      orderId: o.orderId,
      lineItemIds: [o.courseLineId],
      entitlementUuid: o.entitlementUuid,
    });
    expect(both.error).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    expect(both.error!.message).toMatch(/not both/);
    const neither = await requestRefund({ orderId: o.orderId });
    expect(neither.error).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    const blank = await requestRefund({ orderId: o.orderId, entitlementUuid: '   ' });
    expect(blank.error).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    expect(returnItems(o)).toEqual([]);
  });

  it('one flow per order still: the same line named both ways at once is returned and refunded once', async () => {
    const o = seedOrder();
    const answers = await Promise.all([
      requestRefund({ orderId: o.orderId, entitlementUuid: o.entitlementUuid }),
      requestRefund({ orderId: o.orderId, lineItemIds: [o.bundleLineId] }),
    ]);
    const completed = answers.filter((a) => a.flow?.status === 'COMPLETED');
    expect(completed).toHaveLength(1);
    // The other, run after it, finds the line already returned: an idempotent success, no second refund.
    const other = answers.find((a) => a !== completed[0])!;
    expect(other.error).toBeUndefined();
    expect(other.flow).toMatchObject({ status: 'HALTED', output: { settlement: 'ALREADY_RETURNED' } });
    expect(returnItems(o).map((i) => i.lineItemId)).toEqual([o.bundleLineId]);
    expect(stripeRefunds(o).map((r) => r.amount)).toEqual([20_000]);
    // Both flows were about the order (the exclusion holds on its id).
    const flows = (await flowsNamed('order.refund.requested.v1')).filter((f) => f.orderId === o.orderId);
    expect(flows).toHaveLength(2);
  });

  it('findRefundLines resolves an order number and an entitlement to the order and its line; learners may not', async () => {
    const o = seedOrder();
    const query = `query ($input: RefundLinesInput!) { findRefundLines(input: $input) { orderId lineItemIds } }`;
    const found = await cc.graphql<{ findRefundLines: { orderId: string; lineItemIds: string[] } }>(
      query,
      { input: { orderNumber: o.orderNumber, entitlementUuid: o.entitlementUuid } },
      cc.tokens.lms,
    );
    expect(found.errors).toBeUndefined();
    expect(found.data!.findRefundLines).toEqual({ orderId: o.orderId, lineItemIds: [o.bundleLineId] });
    const unknownOrder = await cc.graphql(
      query,
      { input: { orderNumber: '2U-2029999999', entitlementUuid: o.entitlementUuid } },
      cc.tokens.lms,
    );
    expect(unknownOrder.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const learner = await cc.graphql(
      query,
      { input: { orderNumber: o.orderNumber, entitlementUuid: o.entitlementUuid } },
      cc.tokens.ada,
    );
    expect(learner.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});

// ---- 2. POST /lms/refund/ ------------------------------------------------------------------------------

interface RefundAnswer {
  status: number;
  body: Record<string, unknown> & { code?: string; message?: string; flowId?: string; status?: string };
}

async function postRefund(body: unknown, token: string | null = cc.tokens.lms): Promise<RefundAnswer> {
  const res = await cc.request('/lms/refund/', {
    method: 'POST',
    ...(token ? { token } : {}),
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as RefundAnswer['body'] };
}

/** The LMS's course refund: the enrollment's attributes, as fulfillment wrote them. */
const courseBody = (
  o: SeededOrder,
  attributes?: Array<{ namespace: string; name: string; value: unknown }>,
) => ({
  course_id: o.courseRunKey,
  username: ada.username,
  enrollment_attributes: attributes ?? [
    { namespace: 'order', name: 'order_number', value: o.orderNumber },
    { namespace: 'order', name: 'order_id', value: o.orderId },
    { namespace: 'order', name: 'line_item_id', value: o.courseLineId },
  ],
});

const entitlementBody = (o: SeededOrder, uuid = o.entitlementUuid, orderNumber = o.orderNumber) => ({
  entitlement_uuid: uuid,
  username: ada.username,
  order_number: orderNumber,
});

/** Uses up the injected refund failures left (a refund of no payment is a 4xx once they are gone). */
async function drainStripeRefundFaults(): Promise<void> {
  const { stripe } = cc.services;
  for (let i = 0; i < 60; i++) {
    const res = await fetch(`${stripe.url}/v1/refunds`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${stripe.secretKey}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'payment_intent=pi_missing',
    });
    await res.arrayBuffer();
    if (res.status < 500) return;
  }
  throw new Error('the injected Stripe failures did not run out');
}

describe('POST /lms/refund/ (the LMS’s refund_seat override)', () => {
  it('a course refund: 200, the enrollment’s line returned and refunded; the LMS’s retry refunds nothing more', async () => {
    const o = seedOrder();
    const first = await postRefund(courseBody(o));
    expect(first).toMatchObject({
      status: 200,
      body: {
        status: 'COMPLETED',
        orderId: o.orderId,
        lineItemIds: [o.courseLineId],
        refundAmountCents: 9_900,
      },
    });
    expect(returnItems(o).map((i) => i.lineItemId)).toEqual([o.courseLineId]);
    expect(stripeRefunds(o).map((r) => r.amount)).toEqual([9_900]);

    const retried = await postRefund(courseBody(o));
    expect(retried).toMatchObject({ status: 200, body: { flowId: first.body.flowId } });
    expect(returnItems(o)).toHaveLength(1);
    expect(stripeRefunds(o)).toHaveLength(1);
  });

  it('staff may call it too', async () => {
    const o = seedOrder();
    expect(await postRefund(courseBody(o), cc.tokens.staff)).toMatchObject({ status: 200 });
    expect(returnItems(o).map((i) => i.lineItemId)).toEqual([o.courseLineId]);
  });

  it('a line already returned by another request: 200 "Refund already created …", nothing more refunded', async () => {
    const o = seedOrder();
    const { flow } = await requestRefund({ orderId: o.orderId, lineItemIds: [o.courseLineId] });
    expect(flow?.status).toBe('COMPLETED');
    const answer = await postRefund(courseBody(o));
    expect(answer.status).toBe(200);
    expect(answer.body.message).toBe(
      `Refund already created for order ${o.orderId} with order line item id ${o.courseLineId}`,
    );
    expect(returnItems(o)).toHaveLength(1);
    expect(stripeRefunds(o)).toHaveLength(1);
  });

  it('an entitlement refund: 200, the line that carries the entitlement returned and refunded, once', async () => {
    const o = seedOrder();
    const first = await postRefund(entitlementBody(o));
    expect(first).toMatchObject({
      status: 200,
      body: {
        status: 'COMPLETED',
        orderId: o.orderId,
        lineItemIds: [o.bundleLineId],
        refundAmountCents: 20_000,
      },
    });
    expect(returnItems(o).map((i) => i.lineItemId)).toEqual([o.bundleLineId]);
    const retried = await postRefund(entitlementBody(o));
    expect(retried).toMatchObject({ status: 200, body: { flowId: first.body.flowId } });
    expect(stripeRefunds(o).map((r) => r.amount)).toEqual([20_000]);
    // The refund flow ran about the order, which it knew before it started.
    const [refund] = (await flowsNamed('order.refund.requested.v1')).filter(
      (f) => f.id === first.body.flowId,
    );
    expect(refund).toMatchObject({
      orderId: o.orderId,
      input: { orderId: o.orderId, entitlementUuid: o.entitlementUuid },
    });
  });

  it('an entitlement no line carries: 400 "Line item does not exist."; an unknown order: 400 NOT_FOUND', async () => {
    const o = seedOrder();
    expect(await postRefund(entitlementBody(o, randomUUID()))).toMatchObject({
      status: 400,
      body: { code: 'BAD_USER_INPUT', message: 'Line item does not exist.' },
    });
    expect(await postRefund(entitlementBody(o, o.entitlementUuid, '2U-2029999998'))).toMatchObject({
      status: 400,
      body: { code: 'NOT_FOUND' },
    });
    expect(returnItems(o)).toEqual([]);
  });

  it('a course body without order.order_id or order.line_item_id: 400 with the reference’s messages', async () => {
    const o = seedOrder();
    const noOrder = courseBody(o).enrollment_attributes.filter((a) => a.name !== 'order_id');
    expect(await postRefund(courseBody(o, noOrder))).toMatchObject({
      status: 400,
      body: {
        code: 'BAD_USER_INPUT',
        message: 'the enrollment_attributes array requires an orders: order_id attribute.',
      },
    });
    const noLine = courseBody(o).enrollment_attributes.filter((a) => a.name !== 'line_item_id');
    expect(await postRefund(courseBody(o, noLine))).toMatchObject({
      status: 400,
      body: {
        code: 'BAD_USER_INPUT',
        message: 'the enrollment_attributes array requires an orders: line_item_id attribute.',
      },
    });
    // An attribute of another namespace does not stand in for the order's.
    const otherNamespace = [
      { namespace: 'credit', name: 'order_id', value: o.orderId },
      { namespace: 'order', name: 'line_item_id', value: o.courseLineId },
    ];
    expect((await postRefund(courseBody(o, otherNamespace))).status).toBe(400);
    // A line item id that is not the order's: 400, nothing returned.
    const wrongLine = courseBody(o).enrollment_attributes.map((a) =>
      a.name === 'line_item_id' ? { ...a, value: randomUUID() } : a,
    );
    expect(await postRefund(courseBody(o, wrongLine))).toMatchObject({
      status: 400,
      body: { code: 'BAD_USER_INPUT' },
    });
    expect(returnItems(o)).toEqual([]);
  });

  it('what is not a refund request: 400 "Invalid input provided", never a 500', async () => {
    for (const body of [
      'not json',
      '[]',
      'null',
      { username: 'ada' },
      { course_id: 'x', username: 'ada', enrollment_attributes: 'order_id' },
      { entitlement_uuid: 'e', username: 'ada' },
      { entitlement_uuid: 42, username: 'ada', order_number: '2U-1' },
      { entitlement_uuid: 'x'.repeat(10_000), username: 'ada', order_number: '2U-1' },
      {
        course_id: 'c',
        username: 'ada',
        enrollment_attributes: Array.from({ length: 1_000 }, () => ({
          namespace: 'a',
          name: 'b',
          value: 'c',
        })),
      },
    ]) {
      const answer = await postRefund(body);
      expect(answer, JSON.stringify(body).slice(0, 80)).toMatchObject({
        status: 400,
        body: { code: 'BAD_USER_INPUT', message: 'Invalid input provided' },
      });
    }
  });

  it('only Services and staff: 401 without a JWT, 403 with a learner’s', async () => {
    const o = seedOrder();
    expect(await postRefund(courseBody(o), null)).toMatchObject({
      status: 401,
      body: { code: 'UNAUTHENTICATED' },
    });
    expect(await postRefund(courseBody(o), cc.tokens.ada)).toMatchObject({
      status: 403,
      body: { code: 'FORBIDDEN' },
    });
    expect(returnItems(o)).toEqual([]);
  });

  it('a PSP that fails for good: a 5xx with a stable code, the return held for a retry', async () => {
    const o = seedOrder();
    cc.services.stripe.failNext({
      method: 'POST',
      path: '/v1/refunds',
      status: 500,
      times: 50,
      shouldRetry: false,
    });
    try {
      const answer = await postRefund(courseBody(o));
      expect(answer.status).toBeGreaterThanOrEqual(500);
      expect(typeof answer.body.code).toBe('string');
      expect(answer.body.flowId).toEqual(expect.any(String));
      expect(stripeRefunds(o)).toEqual([]);
      // A 500 does not say whether Stripe refunded: the return keeps its line until a retry knows.
      expect(returnItems(o).map((i) => i.paymentState)).toEqual(['Initial']);
    } finally {
      await drainStripeRefundFaults();
    }
  });
});

// ---- 3. PSP refunds of orders that are not the Coordinator's ------------------------------------------

async function receiverRuns(pspRefundId: string): Promise<FlowRun[]> {
  // The receiver that records the refund (the analytics receiver of the same signal runs beside it).
  return (await flowsNamed('payment.refunded.v1')).filter(
    (f) => f.receiver === 'record-psp-refund' && f.input.pspRefundId === pspRefundId,
  );
}

describe('a PSP dashboard refund of a payment that is not the Coordinator’s', () => {
  it.each([
    ['a legacy ecommerce order', { order_number: 'EDX-123456' }, /legacy ecommerce order/],
    [
      'another source system',
      { order_number: '2U-2029123456', source_system: 'other-storefront' },
      /source system 'other-storefront'/,
    ],
  ])('Stripe, %s: 200 and logged, no signal and no receiver run', async (_what, metadata, reason) => {
    const intent = cc.services.stripe.createPaymentIntent({ amount: 5_000, metadata });
    const made = await cc.services.stripe.refundFromDashboard(intent.id, 5_000);
    expect(made.delivery?.status).toBe(200);
    const body = JSON.parse(made.delivery!.body) as { received: boolean; ignored: string; reason: string };
    expect(body).toMatchObject({ received: true, ignored: 'charge.refunded' });
    expect(body.reason).toMatch(reason);
    expect(logged(/not the Coordinator’s/, (l) => l.pspPaymentId === intent.id)).toHaveLength(1);
    // What the Coordinator would do, it would have done by the time a redelivery is answered.
    await cc.services.stripe.redeliver(made.event.id);
    expect(await receiverRuns(made.refund.id)).toEqual([]);
  });

  it('PayPal, a legacy ecommerce order: 200 and logged, no signal', async () => {
    const capture = cc.services.paypal.createCapture({ amountCents: 5_000, invoiceId: 'EDX-654321' });
    const made = await cc.services.paypal.refundFromDashboard(capture.id as string, 5_000);
    expect(made.delivery?.status).toBe(200);
    expect(JSON.parse(made.delivery!.body)).toMatchObject({
      received: true,
      ignored: 'PAYMENT.CAPTURE.REFUNDED',
    });
    expect(logged(/not the Coordinator’s/, (l) => l.pspPaymentId === capture.id)).toHaveLength(1);
    expect(await receiverRuns(made.refund.id as string)).toEqual([]);
  });

  it('a payment of ours whose order is missing stays an error: the signal is published and its receiver fails', async () => {
    const intent = cc.services.stripe.createPaymentIntent({
      amount: 5_000,
      metadata: { order_number: '2U-2029777777', source_system: 'commercetools' },
    });
    const made = await cc.services.stripe.refundFromDashboard(intent.id, 5_000);
    expect(made.delivery?.status).toBe(200);
    expect(JSON.parse(made.delivery!.body)).toMatchObject({ received: true, duplicate: false });
    await waitFor(
      async () => {
        const runs = await receiverRuns(made.refund.id);
        expect(runs.map((r) => r.status)).toContain('FAILED');
      },
      { what: 'the receiver run of a payment the order management Service does not have to fail' },
    );
  });

  it('a refund of one of ours is still recorded', async () => {
    const o = seedOrder();
    const made = await cc.services.stripe.refundFromDashboard(o.pspPaymentId, 1_000);
    expect(made.delivery?.status).toBe(200);
    expect(JSON.parse(made.delivery!.body)).toMatchObject({ received: true, duplicate: false });
    await waitFor(
      async () => expect((await receiverRuns(made.refund.id)).map((r) => r.status)).toEqual(['COMPLETED']),
      { what: 'the dashboard refund recorded' },
    );
  });
});

// ---- 4. an order state event about an order that is not sanctioned ------------------------------------

describe('an order state event about an order that is not sanctioned', () => {
  it('is answered 200 without a signal and logged as a warning, with the order and its state', async () => {
    const o = seedOrder();
    const res = await cc.request('/order-management/sanctioned', {
      method: 'POST',
      token: cc.tokens.orderManagement,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        id: randomUUID(),
        detail: { id: randomUUID(), type: 'OrderStateChanged', resource: { typeId: 'order', id: o.orderId } },
      }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ published: false, state: 'COMPLETE' });
    const [line, ...more] = logged(/not sanctioned/, (l) => l.orderId === o.orderId);
    expect(more).toEqual([]);
    expect(line).toMatchObject({
      level: WARN,
      orderId: o.orderId,
      orderNumber: o.orderNumber,
      state: 'COMPLETE',
    });
  });
});

// ---- 5. enrollment attributes -----------------------------------------------------------------------

describe('the enrollment attributes fulfillment writes in the LMS', () => {
  it('order number, id, line item id, date placed, source system; and the credit provider of a credit line', async () => {
    const n = ++seq;
    const courseRunKey = `course-v1:AttrX+A${process.pid}N${n}+2026`;
    const creditRunKey = `course-v1:CreditX+C${process.pid}N${n}+2026`;
    cc.services.lms.seed({
      courses: [
        { courseId: courseRunKey, name: 'Course', modes: ['audit', 'verified'] },
        { courseId: creditRunKey, name: 'Credit course', modes: ['verified', 'credit'] },
      ],
    });
    const createdAt = '2026-11-30T10:20:30.000Z';
    const [order] = cc.services.orderManagement.seed({
      orders: [
        {
          orderNumber: `2U-2029${String(500_000 + n)}`,
          createdAt,
          customer: { lmsUserId: ada.lmsUserId, username: ada.username, email: ada.email },
          lineItems: [
            { title: 'Course', priceCents: 4_900, courseRunKey, state: 'PENDING' },
            {
              title: 'Credit',
              priceCents: 39_900,
              courseRunKey: creditRunKey,
              mode: 'credit',
              creditProvider: 'asu',
              state: 'PENDING',
            },
          ],
        },
      ],
    }).orders;
    const [courseLine, creditLine] = order!.lineItems;
    const res = await cc.request('/order-management/fulfill', {
      method: 'POST',
      token: cc.tokens.orderManagement,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        id: randomUUID(),
        detail: { id: randomUUID(), resource: { typeId: 'order', id: order!.id } },
      }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'COMPLETED' });

    const enrollment = (courseId: string) =>
      cc.services.lms
        .state()
        .enrollments.find((e) => e.username === ada.username && e.courseId === courseId)!;
    const orderAttributes = (lineItemId: string) => [
      { namespace: 'order', name: 'order_number', value: order!.orderNumber },
      { namespace: 'order', name: 'order_id', value: order!.id },
      { namespace: 'order', name: 'line_item_id', value: lineItemId },
      { namespace: 'order', name: 'date_placed', value: createdAt },
      { namespace: 'order', name: 'source_system', value: 'commercetools' },
    ];
    expect(enrollment(courseRunKey)).toMatchObject({ mode: 'verified', isActive: true });
    expect(enrollment(courseRunKey).attributes).toEqual(orderAttributes(courseLine!.id));
    expect(enrollment(creditRunKey)).toMatchObject({ mode: 'credit', isActive: true });
    expect(enrollment(creditRunKey).attributes).toEqual([
      ...orderAttributes(creditLine!.id),
      { namespace: 'credit', name: 'provider_id', value: 'asu' },
    ]);
  });

  describe('the LMS stand-in checks them as the enrollment API does', () => {
    async function lmsToken(): Promise<string> {
      const res = await fetch(`${cc.services.lms.url}/oauth2/access_token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: DEFAULT_LMS_CLIENT.clientId,
          client_secret: DEFAULT_LMS_CLIENT.clientSecret,
          token_type: 'jwt',
        }),
      });
      return ((await res.json()) as { access_token: string }).access_token;
    }
    const enroll = async (body: Record<string, unknown>) => {
      const res = await fetch(`${cc.services.lms.url}/api/enrollment/v1/enrollment`, {
        method: 'POST',
        headers: { authorization: `JWT ${await lmsToken()}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };

    it('an attribute without its namespace, name or value: 400 with edx-platform’s message', async () => {
      const courseId = `course-v1:AttrX+Check${process.pid}+2026`;
      cc.services.lms.seed({ courses: [{ courseId, name: 'Check', modes: ['verified', 'credit'] }] });
      for (const missing of ['namespace', 'name', 'value'] as const) {
        const attribute: Record<string, string> = { namespace: 'order', name: 'order_id', value: 'o-1' };
        delete attribute[missing];
        const answer = await enroll({
          user: ada.username,
          mode: 'verified',
          course_details: { course_id: courseId },
          enrollment_attributes: [attribute],
        });
        const message = `'${missing}' not in enrollment attribute`;
        expect(answer).toEqual({ status: 400, body: { message, localizedMessage: message } });
      }
      expect(
        cc.services.lms
          .state()
          .enrollments.find((e) => e.username === ada.username && e.courseId === courseId),
      ).toBeUndefined();
    });

    it('an enrollment changed to credit with attributes but no credit.provider_id: 400 (REQUIRED_ATTRIBUTES)', async () => {
      const courseId = `course-v1:AttrX+Upgrade${process.pid}+2026`;
      cc.services.lms.seed({ courses: [{ courseId, name: 'Upgrade', modes: ['verified', 'credit'] }] });
      const base = { user: ada.username, course_details: { course_id: courseId } };
      expect((await enroll({ ...base, mode: 'verified' })).status).toBe(200);
      const orderOnly = [{ namespace: 'order', name: 'order_id', value: 'o-2' }];
      expect(await enroll({ ...base, mode: 'credit', enrollment_attributes: orderOnly })).toEqual({
        status: 400,
        body: {
          message:
            "Missing enrollment attributes: requested mode=credit required attributes=['credit:provider_id']",
        },
      });
      const withProvider = [...orderOnly, { namespace: 'credit', name: 'provider_id', value: 'asu' }];
      const upgraded = await enroll({ ...base, mode: 'credit', enrollment_attributes: withProvider });
      expect(upgraded).toMatchObject({ status: 200, body: { mode: 'credit' } });
      const kept = cc.services.lms
        .state()
        .enrollments.find((e) => e.username === ada.username && e.courseId === courseId)!;
      expect(kept.attributes).toEqual(withProvider);
    });
  });
});
