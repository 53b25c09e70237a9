import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ORDER_FULFILLMENT_WEBHOOK_SECRET } from '../../services/embedded.js';
import {
  LINE_ITEM_STATE_KEYS,
  type LineState,
  type SeedLineItem,
} from '../../services/order-management/server.js';
import {
  FULFILLMENT_SIGNATURE_HEADER,
  FULFILLMENT_TIMESTAMP_HEADER,
  signFulfillmentWebhook,
  type FulfillmentReport,
} from '../../services/order-fulfillment/server.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { announceOrderPlaced, seedPaidOrder } from '../support/orders.js';
import { waitFor } from '../support/wait.js';

// The Order Fulfillment service as a Service, end to end through the gateway against the stand-ins:
// where transition.fulfillment.order-fulfillment-service is on, the fulfillment flow's fulfillOrder is
// the order-fulfillment Plugin's (a progressive @override), which forwards each line to the service; the
// lines stay PROCESSING until its signed webhook (POST /order-fulfillment/fulfillment-response-webhook)
// runs order.fulfillment.reported.v1; and the refund's revoke receiver revokes through the service.

let c: CommerceCoordinator;

beforeAll(async () => {
  c = await startCommerceCoordinator('flow-order-fulfillment');
});
afterAll(async () => {
  await c?.stop();
});

const FLAG = 'transition.fulfillment.order-fulfillment-service';
const WEBHOOK = '/order-fulfillment/fulfillment-response-webhook';
const FULFILL_PATH = '/api/fulfill-order/';
const REVOKE_PATH = '/api/revoke-line/';
const ENROLL_PATH = '/api/enrollment/v1/enrollment';
const ENTITLEMENTS_PATH = '/api/entitlements/v1/entitlements/';

const of = () => c.services.orderFulfillment;

/** The flag on for these orders only (per request: the order is in the flag context), off elsewhere. */
async function flagOnFor(...orderIds: string[]) {
  let flag = c.testData.flag(FLAG).booleanFlag().fallthroughVariation(false);
  for (const id of orderIds) flag = flag.variationForContext('order', id, true);
  await c.testData.update(flag);
}

beforeEach(async () => {
  await c.testData.update(c.testData.flag(FLAG).booleanFlag().variationForAll(false));
  // Reports are held until a test delivers them, unless it says otherwise.
  of().seed({ autoReport: false });
});

// ---- seeding: every test has its own learner, courses and order -----------------------------------

let seq = 0;

function seedOrder(lines: Array<Partial<SeedLineItem> & { kind?: 'COURSE' | 'BUNDLE' }>) {
  const n = ++seq;
  const lmsUserId = 8100 + n;
  const customer = { lmsUserId, username: `ofl${lmsUserId}`, email: `ofl${lmsUserId}@example.com` };
  const lineItems: SeedLineItem[] = lines.map(({ kind, ...line }, i) => ({
    title: `Line ${i}`,
    priceCents: 10_000,
    ...(kind === 'BUNDLE'
      ? { bundleKey: randomUUID() }
      : { courseRunKey: `course-v1:OfX+N${process.pid}S${n}L${i}+2026` }),
    ...line,
  }));
  c.services.lms.seed({
    users: [{ id: lmsUserId, username: customer.username, email: customer.email }],
    courses: lineItems
      .filter((l) => l.courseRunKey)
      .map((l) => ({ courseId: l.courseRunKey!, name: l.title, modes: ['audit', 'verified'] })),
  });
  const [order] = c.services.orderManagement.seed({
    orders: [
      {
        orderNumber: `2U-2028${String(n).padStart(6, '0')}`,
        customer,
        lineItems,
        payment: { psp: 'STRIPE', pspPaymentId: `pi_of_${process.pid}_${n}` },
      },
    ],
  }).orders;
  return { ...order!, customer, lineIds: order!.lineItems.map((l) => l.id), lines: lineItems };
}

// ---- reading the stand-ins ----------------------------------------------------------------------------

const STATE_NAMES = new Map<string, string>(
  Object.entries(LINE_ITEM_STATE_KEYS).map(([name, key]) => [key, name]),
);
const storedOrder = (id: string) => c.services.orderManagement.store.orders.get(id)!;
function lineStates(orderId: string): Record<string, LineState> {
  const { store } = c.services.orderManagement;
  return Object.fromEntries(
    storedOrder(orderId).lineItems.map((line) => {
      const held = line.state.find((s) => s.quantity > 0)!;
      return [line.id, STATE_NAMES.get(store.states.get(held.state.id)!.key) as LineState];
    }),
  );
}
const entitlementUuidOf = (orderId: string, lineId: string) =>
  storedOrder(orderId).lineItems.find((l) => l.id === lineId)!.custom?.fields.entitlementUuid;
const orderUpdates = (orderId: string) =>
  c.services.orderManagement.calls('POST', `/${c.services.orderManagement.projectKey}/orders/${orderId}`);
const forwardedLines = (orderId: string) =>
  of()
    .fulfillments()
    .filter((f) => f.request.order_id === orderId);
const lmsWrites = () => ({
  enroll: c.services.lms.calls(ENROLL_PATH, 'POST'),
  entitle: c.services.lms.calls(ENTITLEMENTS_PATH, 'POST'),
});

// ---- the gateway ------------------------------------------------------------------------------------

interface FlowRecord {
  id: string;
  name: string;
  kind: string;
  receiver: string | null;
  status: string;
  output: Record<string, unknown> | null;
  error: { code: string; message: string } | null;
  steps: Array<{
    action: string;
    status: string;
    implementation: string | null;
    attempt: number;
    input: Record<string, unknown> | null;
    output: Record<string, unknown> | null;
    flagDecisions: Array<{ flag: string; value: boolean; reason: string }>;
  }>;
}
const FLOW_FIELDS = /* GraphQL */ `
  id name kind receiver status output
  error { code message }
  steps { action status implementation attempt input output flagDecisions { flag value reason } }
`;

/** Every flow record of the order, oldest first. */
async function flowsOf(orderId: string): Promise<FlowRecord[]> {
  const res = await c.graphql<{ flows: FlowRecord[] }>(
    `query ($orderId: String!) { flows(orderId: $orderId, limit: 100) { ${FLOW_FIELDS} } }`,
    { orderId },
    c.tokens.staff,
  );
  expect(res.errors).toBeUndefined();
  return [...res.data!.flows].reverse();
}
const reportFlows = async (orderId: string) =>
  (await flowsOf(orderId)).filter((f) => f.name === 'order.fulfillment.reported.v1');
const step = (flow: FlowRecord, action: string) => {
  const found = flow.steps.find((s) => s.action === action);
  if (!found) throw new Error(`flow ${flow.id} has no step ${action}`);
  return found;
};

/** The order management Service's order-placed event, as its subscription delivers it. */
async function fulfill(orderId: string) {
  const { status, body } = await announceOrderPlaced(c, orderId);
  expect(status).toBe(200);
  const [record] = (await flowsOf(orderId)).filter((f) => f.id === body.flowId);
  return record!;
}

interface Delivery {
  body: string;
  timestamp: number;
  signature: string;
}

/** A completion webhook as the service signs it (or as `sign` says). */
function signedReport(
  report: FulfillmentReport | Record<string, unknown>,
  sign: { timestamp?: number; secret?: string; eventId?: string } = {},
): Delivery {
  const timestamp = sign.timestamp ?? Math.floor(Date.now() / 1000);
  const body = JSON.stringify({ id: sign.eventId ?? randomUUID(), detail: report });
  return {
    body,
    timestamp,
    signature: signFulfillmentWebhook(sign.secret ?? ORDER_FULFILLMENT_WEBHOOK_SECRET, timestamp, body),
  };
}

async function postWebhook(
  delivery: Partial<Delivery> & { body: string },
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await c.request(WEBHOOK, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(delivery.timestamp !== undefined
        ? { [FULFILLMENT_TIMESTAMP_HEADER]: String(delivery.timestamp) }
        : {}),
      ...(delivery.signature !== undefined ? { [FULFILLMENT_SIGNATURE_HEADER]: delivery.signature } : {}),
      ...headers,
    },
    body: delivery.body,
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const enrollmentReport = (orderId: string, lineItemId: string, isFulfilled = true): FulfillmentReport => ({
  fulfillment_type: 'enrollment',
  is_fulfilled: isFulfilled,
  order_id: orderId,
  line_item_id: lineItemId,
});

/** An order forwarded with the flag on: its lines PROCESSING, the service's reports held. */
async function forwardedOrder(lines: Parameters<typeof seedOrder>[0] = [{}]) {
  const order = seedOrder(lines);
  await flagOnFor(order.id);
  const record = await fulfill(order.id);
  expect(record.status).toBe('COMPLETED');
  expect(Object.values(lineStates(order.id))).toEqual(order.lineIds.map(() => 'PROCESSING'));
  return order;
}

// ---- the tests ----------------------------------------------------------------------------------------

describe('the fulfillment flow with the flag off: the LMS, as before', () => {
  it('enrolls in the LMS and completes the lines; the Order Fulfillment service hears nothing', async () => {
    const order = seedOrder([{}, { kind: 'BUNDLE' }]);
    const forwardedBefore = of().calls(FULFILL_PATH);
    const before = lmsWrites();

    const record = await fulfill(order.id);

    expect(record.status).toBe('COMPLETED');
    expect(lineStates(order.id)).toEqual({ [order.lineIds[0]!]: 'SUCCESS', [order.lineIds[1]!]: 'SUCCESS' });
    expect(lmsWrites()).toEqual({ enroll: before.enroll + 1, entitle: before.entitle + 1 });
    expect(of().calls(FULFILL_PATH)).toBe(forwardedBefore);
    expect(record.steps.map((s) => [s.action, s.status, s.implementation])).toEqual([
      ['startFulfillment', 'COMPLETED', 'order-management'],
      ['fulfillOrder', 'COMPLETED', 'lms'],
      ['completeFulfillment', 'COMPLETED', 'order-management'],
    ]);
    expect(step(record, 'fulfillOrder').flagDecisions).toEqual([
      { flag: FLAG, value: false, reason: 'FALLTHROUGH' },
    ]);
  });
});

describe('the fulfillment flow with the flag on: forwarded to the Order Fulfillment service', () => {
  it('forwards each line with its line of business and the LMS username; the lines stay PROCESSING', async () => {
    const order = seedOrder([{ lob: 'mba', mode: 'professional' }, { kind: 'BUNDLE' }]);
    const other = seedOrder([{}]);
    await flagOnFor(order.id);
    const before = lmsWrites();

    const record = await fulfill(order.id);

    expect(record.status).toBe('COMPLETED');
    expect(record.steps.map((s) => [s.action, s.status, s.implementation])).toEqual([
      ['startFulfillment', 'COMPLETED', 'order-management'],
      ['fulfillOrder', 'COMPLETED', 'order-fulfillment'],
      ['completeFulfillment', 'COMPLETED', 'order-management'],
    ]);
    expect(step(record, 'fulfillOrder')).toMatchObject({
      output: { fulfillments: [] },
      flagDecisions: [{ flag: FLAG, value: true, reason: 'TARGET_MATCH' }],
    });
    expect(record.output).toMatchObject({
      lineItemStates: order.lineIds.map((lineItemId) => ({ lineItemId, state: 'PROCESSING' })),
    });
    expect(lineStates(order.id)).toEqual({
      [order.lineIds[0]!]: 'PROCESSING',
      [order.lineIds[1]!]: 'PROCESSING',
    });
    // The LMS was not called; the service got one request per line, as the reference sends it.
    expect(lmsWrites()).toEqual(before);
    const forwarded = forwardedLines(order.id).map((f) => f.request);
    expect(forwarded).toEqual([
      expect.objectContaining({
        order_id: order.id,
        order_number: order.orderNumber,
        line_item_id: order.lineIds[0],
        fulfillment_type: 'enrollment',
        course_id: order.lines[0]!.courseRunKey,
        course_mode: 'professional',
        edx_lms_user_id: order.customer.lmsUserId,
        edx_lms_username: order.customer.username,
        lob: 'mba',
      }),
      expect.objectContaining({
        line_item_id: order.lineIds[1],
        fulfillment_type: 'entitlement',
        course_id: order.lines[1]!.bundleKey,
        course_mode: 'verified',
        edx_lms_username: order.customer.username,
        lob: 'edx',
      }),
    ]);
    // Per request: another order, the flag off for it, goes to the LMS.
    const otherRecord = await fulfill(other.id);
    expect(step(otherRecord, 'fulfillOrder').implementation).toBe('lms');
    expect(lineStates(other.id)).toEqual({ [other.lineIds[0]!]: 'SUCCESS' });
    expect(forwardedLines(other.id)).toEqual([]);
  });

  it('completes each line when its signed report arrives: SUCCESS, with the entitlement UUID', async () => {
    const order = await forwardedOrder([{}, { kind: 'BUNDLE' }]);
    const [courseLineId, bundleLineId] = order.lineIds as [string, string];

    const deliveries = await of().deliverPending(order.id);

    expect(deliveries.map((d) => d.status)).toEqual([200, 200]);
    expect(deliveries[0]!.body).toMatchObject({
      message: 'Order Fulfillment Response event processed successfully.',
    });
    expect(lineStates(order.id)).toEqual({ [courseLineId]: 'SUCCESS', [bundleLineId]: 'SUCCESS' });
    const reported = forwardedLines(order.id).find((f) => f.request.line_item_id === bundleLineId)!;
    expect(reported.report.entitlement_uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(entitlementUuidOf(order.id, bundleLineId)).toBe(reported.report.entitlement_uuid);
    const flows = await reportFlows(order.id);
    expect(flows.map((f) => f.status)).toEqual(['COMPLETED', 'COMPLETED']);
    expect(step(flows[1]!, 'completeFulfillment')).toMatchObject({
      implementation: 'order-management',
      input: {
        orderId: order.id,
        fulfillments: [
          { lineItemId: bundleLineId, fulfilled: true, entitlementUuid: reported.report.entitlement_uuid },
        ],
      },
    });
  });

  it('moves a line the service failed to fulfill to FAILURE', async () => {
    const order = seedOrder([{}, {}]);
    of().seed({ failing: [order.lines[1]!.courseRunKey!] });
    await flagOnFor(order.id);
    await fulfill(order.id);

    const deliveries = await of().deliverPending(order.id);

    expect(deliveries.map((d) => d.status)).toEqual([200, 200]);
    expect(lineStates(order.id)).toEqual({
      [order.lineIds[0]!]: 'SUCCESS',
      [order.lineIds[1]!]: 'FAILURE',
    });
  });

  it('a line that failed is forwarded again when the order is fulfilled again, and can then succeed', async () => {
    const order = seedOrder([{}]);
    of().seed({ failing: [order.lines[0]!.courseRunKey!] });
    await flagOnFor(order.id);
    await fulfill(order.id);
    await of().deliverPending(order.id);
    expect(lineStates(order.id)).toEqual({ [order.lineIds[0]!]: 'FAILURE' });

    of().seed({ failing: [] });
    const again = await fulfill(order.id);
    expect(again.status).toBe('COMPLETED');
    expect(lineStates(order.id)).toEqual({ [order.lineIds[0]!]: 'PROCESSING' });
    expect((await of().deliverPending(order.id)).map((d) => d.status)).toEqual([200]);
    expect(lineStates(order.id)).toEqual({ [order.lineIds[0]!]: 'SUCCESS' });
  });

  it('reported by the service on its own (as it runs by default): the lines end SUCCESS', async () => {
    of().seed({ autoReport: true });
    const order = seedOrder([{}, { kind: 'BUNDLE' }]);
    await flagOnFor(order.id);

    await fulfill(order.id);

    await waitFor(
      () =>
        expect(lineStates(order.id)).toEqual({
          [order.lineIds[0]!]: 'SUCCESS',
          [order.lineIds[1]!]: 'SUCCESS',
        }),
      { what: 'both lines reported', timeoutMs: 15_000 },
    );
  });

  it('with the service down for good, compensates: the lines end FAILURE, nothing reported', async () => {
    const order = seedOrder([{}]);
    await flagOnFor(order.id);
    of().admin.injectFault({ method: 'POST', path: FULFILL_PATH, status: 503, times: 50 });
    try {
      const record = await fulfill(order.id);
      expect(record.status).toBe('COMPENSATED');
      expect(step(record, 'fulfillOrder')).toMatchObject({ status: 'FAILED', attempt: 5 });
      expect(lineStates(order.id)).toEqual({ [order.lineIds[0]!]: 'FAILURE' });
      expect(forwardedLines(order.id)).toEqual([]);
    } finally {
      of().admin.clearFaults();
    }
  });

  it('retries transient failures of the service and forwards each line once', async () => {
    const order = seedOrder([{}]);
    await flagOnFor(order.id);
    of().admin.injectFault({ method: 'POST', path: FULFILL_PATH, status: 502, times: 2 });
    const record = await fulfill(order.id);
    expect(record.status).toBe('COMPLETED');
    expect(step(record, 'fulfillOrder')).toMatchObject({ status: 'COMPLETED', attempt: 3 });
    expect(forwardedLines(order.id)).toHaveLength(1);
    expect(lineStates(order.id)).toEqual({ [order.lineIds[0]!]: 'PROCESSING' });
  });
});

describe('the completion webhook refuses what the service did not sign, and changes nothing', () => {
  it.each([
    ['unsigned', (d: Delivery) => ({ body: d.body })],
    ['without its timestamp', (d: Delivery) => ({ body: d.body, signature: d.signature })],
    ['without its signature', (d: Delivery) => ({ body: d.body, timestamp: d.timestamp })],
    [
      'signed with another secret',
      (d: Delivery) => signedReport(JSON.parse(d.body).detail, { secret: 'not-the-shared-secret-at-all' }),
    ],
    [
      'a body changed after signing',
      (d: Delivery) => ({ ...d, body: d.body.replace('"is_fulfilled":true', '"is_fulfilled":false') }),
    ],
    ['a timestamp changed after signing', (d: Delivery) => ({ ...d, timestamp: d.timestamp + 1 })],
    ['a garbled signature', (d: Delivery) => ({ ...d, signature: `${d.signature.slice(0, -4)}AAA=` })],
    [
      'replayed after the window (an old delivery)',
      (d: Delivery) => signedReport(JSON.parse(d.body).detail, { timestamp: d.timestamp - 121 }),
    ],
    [
      'signed ahead of the window',
      (d: Delivery) => signedReport(JSON.parse(d.body).detail, { timestamp: d.timestamp + 121 }),
    ],
  ])('%s: 403 INVALID_SIGNATURE', async (_, tamper) => {
    const order = await forwardedOrder();
    const updates = orderUpdates(order.id);
    const genuine = signedReport(enrollmentReport(order.id, order.lineIds[0]!));

    const answer = await postWebhook(tamper(genuine));

    expect(answer).toMatchObject({ status: 403, body: { code: 'INVALID_SIGNATURE' } });
    expect(lineStates(order.id)).toEqual({ [order.lineIds[0]!]: 'PROCESSING' });
    expect(orderUpdates(order.id)).toBe(updates);
    expect(await reportFlows(order.id)).toEqual([]);
    // The genuine delivery still works afterwards.
    expect((await postWebhook(genuine)).status).toBe(200);
    expect(lineStates(order.id)).toEqual({ [order.lineIds[0]!]: 'SUCCESS' });
  });
});

describe('the completion webhook: what a signed report must say', () => {
  it('an entitlement reported fulfilled without its UUID: 400, the line stays PROCESSING', async () => {
    const order = await forwardedOrder([{ kind: 'BUNDLE' }]);
    const [lineId] = order.lineIds as [string];
    for (const uuid of [undefined, null, '', '   ']) {
      const answer = await postWebhook(
        signedReport({
          fulfillment_type: 'entitlement',
          is_fulfilled: true,
          ...(uuid === undefined ? {} : { entitlement_uuid: uuid }),
          order_id: order.id,
          line_item_id: lineId,
        }),
      );
      expect(answer).toMatchObject({
        status: 400,
        body: {
          code: 'BAD_USER_INPUT',
          message: 'Entitlement uuid is required for Entitlement Fulfillment.',
        },
      });
    }
    expect(lineStates(order.id)).toEqual({ [lineId]: 'PROCESSING' });
    expect(await reportFlows(order.id)).toEqual([]);
    // A failed entitlement has no UUID to give: accepted, FAILURE.
    const failed = await postWebhook(
      signedReport({
        fulfillment_type: 'entitlement',
        is_fulfilled: false,
        order_id: order.id,
        line_item_id: lineId,
      }),
    );
    expect(failed.status).toBe(200);
    expect(lineStates(order.id)).toEqual({ [lineId]: 'FAILURE' });
  });

  it('an enrollment reported without a UUID: 200, the line SUCCESS', async () => {
    const order = await forwardedOrder();
    const answer = await postWebhook(signedReport(enrollmentReport(order.id, order.lineIds[0]!)));
    expect(answer).toMatchObject({
      status: 200,
      body: {
        message: 'Order Fulfillment Response event processed successfully.',
        lineItemStates: [{ lineItemId: order.lineIds[0], state: 'SUCCESS' }],
      },
    });
    expect(lineStates(order.id)).toEqual({ [order.lineIds[0]!]: 'SUCCESS' });
    expect(entitlementUuidOf(order.id, order.lineIds[0]!)).toBeUndefined();
  });

  it.each([
    ['not JSON', '{"detail": '],
    ['no detail', '{"id": "x"}'],
    ['an unknown fulfillment type', { fulfillment_type: 'shipment', is_fulfilled: true }],
    ['is_fulfilled not a boolean', { is_fulfilled: 'yes' }],
    ['no line item id', { line_item_id: undefined }],
    ['an over-long order id', { order_id: 'x'.repeat(5_000) }],
  ])('a signed body with %s: 400 BAD_REQUEST, nothing run', async (_, change) => {
    const order = await forwardedOrder();
    const base = enrollmentReport(order.id, order.lineIds[0]!);
    const timestamp = Math.floor(Date.now() / 1000);
    const body =
      typeof change === 'string'
        ? change
        : JSON.stringify({ id: randomUUID(), detail: { ...base, ...change } });
    const answer = await postWebhook({
      body,
      timestamp,
      signature: signFulfillmentWebhook(ORDER_FULFILLMENT_WEBHOOK_SECRET, timestamp, body),
    });
    expect(answer).toMatchObject({ status: 400, body: { code: 'BAD_REQUEST' } });
    expect(lineStates(order.id)).toEqual({ [order.lineIds[0]!]: 'PROCESSING' });
    expect(await reportFlows(order.id)).toEqual([]);
  });

  it('a report about a line or an order that does not exist is refused, and changes nothing', async () => {
    const order = await forwardedOrder();
    const updates = orderUpdates(order.id);
    const noLine = await postWebhook(signedReport(enrollmentReport(order.id, 'li-no-such-line')));
    expect(noLine).toMatchObject({ status: 400, body: { code: 'BAD_USER_INPUT' } });
    const noOrder = await postWebhook(signedReport(enrollmentReport(randomUUID(), order.lineIds[0]!)));
    expect(noOrder).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    expect(lineStates(order.id)).toEqual({ [order.lineIds[0]!]: 'PROCESSING' });
    expect(orderUpdates(order.id)).toBe(updates);
  });
});

describe('the completion webhook delivered more than once completes the line once', () => {
  it('the same delivery again, in turn or at once: one flow, one update', async () => {
    const order = await forwardedOrder();
    const updates = orderUpdates(order.id);
    const delivery = signedReport(enrollmentReport(order.id, order.lineIds[0]!));

    const answers = [
      ...(await Promise.all([postWebhook(delivery), postWebhook(delivery), postWebhook(delivery)])),
      await postWebhook(delivery),
    ];

    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(new Set(answers.map((a) => a.body.flowId)).size).toBe(1);
    expect(await reportFlows(order.id)).toHaveLength(1);
    expect(orderUpdates(order.id)).toBe(updates + 1);
    expect(lineStates(order.id)).toEqual({ [order.lineIds[0]!]: 'SUCCESS' });
  });

  it('a redelivery signed anew, and a failure reported after the success, change nothing', async () => {
    const order = await forwardedOrder();
    const report = enrollmentReport(order.id, order.lineIds[0]!);
    expect((await postWebhook(signedReport(report))).status).toBe(200);
    const updates = orderUpdates(order.id);

    const again = await postWebhook(signedReport(report));
    const late = await postWebhook(signedReport({ ...report, is_fulfilled: false }));

    expect([again.status, late.status]).toEqual([200, 200]);
    expect(late.body.lineItemStates).toEqual([{ lineItemId: order.lineIds[0], state: 'SUCCESS' }]);
    expect(lineStates(order.id)).toEqual({ [order.lineIds[0]!]: 'SUCCESS' });
    expect(orderUpdates(order.id)).toBe(updates);
  });

  it('reports of two lines of one order at once: both complete', async () => {
    const order = await forwardedOrder([{}, {}, {}]);
    const answers = await Promise.all(
      order.lineIds.map((id) => postWebhook(signedReport(enrollmentReport(order.id, id)))),
    );
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(Object.values(lineStates(order.id))).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS']);
  });
});

describe('revokes of refunded lines', () => {
  async function refund(orderId: string, lineItemIds: string[]) {
    const res = await c.graphql<{ requestRefund: { flow: { status: string } } }>(
      `mutation ($input: RefundRequestInput!) { requestRefund(input: $input) { flow { status } } }`,
      { input: { orderId, lineItemIds } },
      c.tokens.staff,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data!.requestRefund.flow.status).toBe('COMPLETED');
  }
  const revocationRun = (orderId: string) =>
    waitFor(
      async () => {
        const runs = (await flowsOf(orderId)).filter((f) => f.receiver === 'revoke-returned-line-items');
        expect(runs.map((r) => r.status)).toEqual(['COMPLETED']);
        return runs[0]!;
      },
      { what: 'the revoke receiver ran', timeoutMs: 10_000 },
    );
  const enrollment = (username: string, courseId: string) =>
    c.services.lms.state().enrollments.find((e) => e.username === username && e.courseId === courseId);

  it('go to the Order Fulfillment service where the flag is on, not to the LMS', async () => {
    const order = seedPaidOrder(c, 'STRIPE');
    await flagOnFor(order.orderId);
    const revokesBefore = of().calls(REVOKE_PATH);

    await refund(order.orderId, [order.lineItemIds[0]!]);

    const run = await revocationRun(order.orderId);
    expect(run.steps).toEqual([
      expect.objectContaining({
        action: 'revokeLineItems',
        implementation: 'order-fulfillment',
        status: 'COMPLETED',
        output: { revoked: 1 },
        flagDecisions: [{ flag: FLAG, value: true, reason: 'TARGET_MATCH' }],
      }),
    ]);
    expect(of().calls(REVOKE_PATH)).toBe(revokesBefore + 1);
    expect(of().revocations()).toContainEqual({
      edx_lms_username: order.learner.username,
      course_run_key: order.courseRunKeys[0],
      course_mode: 'verified',
      lob: 'edx',
    });
    // The LMS was not asked: the enrollment there is the service's to end.
    expect(enrollment(order.learner.username, order.courseRunKeys[0]!)?.isActive).toBe(true);
  });

  it('go to the LMS where the flag is off; the service hears nothing', async () => {
    const order = seedPaidOrder(c, 'STRIPE');
    const revokesBefore = of().calls(REVOKE_PATH);

    await refund(order.orderId, [order.lineItemIds[0]!]);

    const run = await revocationRun(order.orderId);
    expect(run.steps).toEqual([
      expect.objectContaining({ action: 'revokeLineItems', implementation: 'lms', status: 'COMPLETED' }),
    ]);
    expect(enrollment(order.learner.username, order.courseRunKeys[0]!)?.isActive).toBe(false);
    expect(of().calls(REVOKE_PATH)).toBe(revokesBefore);
  });

  it('of an entitlement: the service gets its UUID, the course UUID and the line of business', async () => {
    const bundleKey = randomUUID();
    const entitlementUuid = randomUUID();
    const payment = c.services.stripe.createPaymentIntent({ amount: 35_000 });
    const [order] = c.services.orderManagement.seed({
      orders: [
        {
          orderNumber: `2U-2028${String(900_000 + ++seq)}`,
          customer: { lmsUserId: 8999, username: 'oflbundle', email: 'oflbundle@example.com' },
          lineItems: [
            {
              title: 'Program',
              priceCents: 35_000,
              bundleKey,
              entitlementUuid,
              lob: 'mba',
              state: 'SUCCESS',
            },
          ],
          payment: { psp: 'STRIPE', pspPaymentId: payment.id, amountCents: 35_000 },
        },
      ],
    }).orders;
    await flagOnFor(order!.id);

    await refund(order!.id, [order!.lineItems[0]!.id]);

    const run = await revocationRun(order!.id);
    expect(run.steps[0]).toMatchObject({ implementation: 'order-fulfillment', output: { revoked: 1 } });
    expect(of().revocations()).toContainEqual({
      edx_lms_username: 'oflbundle',
      course_run_key: bundleKey,
      course_mode: 'verified',
      entitlement_uuid: entitlementUuid,
      lob: 'mba',
    });
  });

  it('are retried through a service outage and revoke the line', async () => {
    const order = seedPaidOrder(c, 'STRIPE');
    await flagOnFor(order.orderId);
    of().admin.injectFault({ method: 'POST', path: REVOKE_PATH, status: 503, times: 2 });

    await refund(order.orderId, [order.lineItemIds[1]!]);

    const run = await revocationRun(order.orderId);
    expect(run.steps.at(-1)).toMatchObject({ implementation: 'order-fulfillment', status: 'COMPLETED' });
    expect(of().revocations()).toContainEqual(
      expect.objectContaining({
        course_run_key: order.courseRunKeys[1],
        edx_lms_username: order.learner.username,
      }),
    );
  });
});
