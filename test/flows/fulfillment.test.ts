import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import {
  LINE_ITEM_STATE_KEYS,
  type LineState,
  type SeedLineItem,
} from '../../services/order-management/server.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

// The fulfillment Purchase Flow end to end: the order management Service's event reaches the gateway
// (POST /order-management/fulfill), the filter order.fulfillment.requested.v1 runs startFulfillment →
// fulfillOrder (LMS) → completeFulfillment, and the tests read the outcome in the Service stand-ins.

let c: CommerceCoordinator;

beforeAll(async () => {
  c = await startCommerceCoordinator('flow-fulfillment');
});
afterAll(async () => {
  await c?.stop();
});

const ENROLL_PATH = '/api/enrollment/v1/enrollment';
const ENTITLEMENTS_PATH = '/api/entitlements/v1/entitlements/';
const COURSE = DEMO.courses.demo.courseId;
const OTHER_COURSE = DEMO.courses.cs50.courseId;

// ---- seeding: every test has its own learner and orders --------------------------------------------

let learners = 0;
let orderNumbers = 0;

/** A learner known to both the LMS and (through their orders) the order management Service. */
function seedLearner() {
  const lmsUserId = 7100 + ++learners;
  const learner = { lmsUserId, username: `fulfil${lmsUserId}`, email: `fulfil${lmsUserId}@example.com` };
  c.services.lms.seed({ users: [{ id: lmsUserId, username: learner.username, email: learner.email }] });
  return learner;
}

function seedOrder(lineItems: SeedLineItem[], customer = seedLearner()) {
  const [order] = c.services.orderManagement.seed({
    orders: [
      {
        orderNumber: `2U-2027${String(++orderNumbers).padStart(6, '0')}`,
        customer,
        lineItems,
        payment: { psp: 'STRIPE', pspPaymentId: `pi_fulfil_${orderNumbers}` },
      },
    ],
  }).orders;
  return { ...order!, customer, lineIds: order!.lineItems.map((l) => l.id) };
}

/** A course line and a bundle line (the LMS wants a course UUID as the bundle key). */
const courseLine = (courseRunKey: string = COURSE): SeedLineItem => ({
  title: 'Course',
  priceCents: 14_900,
  courseRunKey,
});
const bundleLine = (bundleKey: string = randomUUID()): SeedLineItem => ({
  title: 'Program',
  priceCents: 35_000,
  bundleKey,
});

// ---- reading the stand-ins ----------------------------------------------------------------------------

const STATE_NAMES = new Map<string, string>(
  Object.entries(LINE_ITEM_STATE_KEYS).map(([name, key]) => [key, name]),
);
const storedOrder = (id: string) => c.services.orderManagement.store.orders.get(id)!;
/** Each line's state in the order management stand-in, by line id. */
function lineStates(orderId: string): Record<string, LineState> {
  const { store } = c.services.orderManagement;
  return Object.fromEntries(
    storedOrder(orderId).lineItems.map((line) => {
      const held = line.state.find((s) => s.quantity > 0)!;
      return [line.id, STATE_NAMES.get(store.states.get(held.state.id)!.key) as LineState];
    }),
  );
}
const orderUpdates = (orderId: string) =>
  c.services.orderManagement.calls('POST', `/${c.services.orderManagement.projectKey}/orders/${orderId}`);

const enrollmentsOf = (orderId: string) =>
  c.services.lms
    .state()
    .enrollments.filter((e) =>
      e.attributes.some((a) => a.namespace === 'order' && a.name === 'order_id' && a.value === orderId),
    );
const entitlementsOf = (username: string) =>
  c.services.lms.state().entitlements.filter((e) => e.username === username);
const lmsWrites = () => ({
  enroll: c.services.lms.calls(ENROLL_PATH, 'POST'),
  entitle: c.services.lms.calls(ENTITLEMENTS_PATH, 'POST'),
});

// ---- the gateway ------------------------------------------------------------------------------------

interface RouteAnswer {
  status: number;
  body: { flowId?: string; status?: string; code?: string; message?: string; error?: { code: string } };
}

/** The order management Service's event for an order, as its subscription delivers it. */
const envelope = (orderId: string, id: string = randomUUID()) => ({
  id,
  'detail-type': 'LineItemStateTransition',
  source: 'commercetools',
  detail: {
    id: randomUUID(),
    type: 'LineItemStateTransition',
    resource: { typeId: 'order', id: orderId },
    toState: { typeId: 'state', key: LINE_ITEM_STATE_KEYS.PENDING },
  },
});

/** POSTs to the fulfill route, as the order management Service (its service JWT) unless `token` says. */
async function post(body: unknown, token: string | null = c.tokens.orderManagement): Promise<RouteAnswer> {
  const res = await c.request('/order-management/fulfill', {
    method: 'POST',
    ...(token ? { token } : {}),
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as RouteAnswer['body'] };
}
const fulfill = (orderId: string, messageId?: string) => post(envelope(orderId, messageId));

interface FlowRecord {
  id: string;
  status: string;
  orderId: string | null;
  error: { code: string; message: string } | null;
  steps: Array<{
    index: number;
    action: string;
    status: string;
    implementation: string | null;
    attempt: number;
    output: Record<string, unknown> | null;
    error: { code: string; message: string } | null;
  }>;
}
const FLOW_FIELDS = /* GraphQL */ `
  id
  status
  orderId
  error {
    code
    message
  }
  steps {
    index
    action
    status
    implementation
    attempt
    output
    error {
      code
      message
    }
  }
`;

async function flow(id: string): Promise<FlowRecord> {
  const res = await c.graphql<{ flow: FlowRecord | null }>(
    `query ($id: ID!) { flow(id: $id) { ${FLOW_FIELDS} } }`,
    { id },
    c.tokens.staff,
  );
  expect(res.errors).toBeUndefined();
  return res.data!.flow!;
}
async function flowsOf(orderId: string): Promise<FlowRecord[]> {
  const res = await c.graphql<{ flows: FlowRecord[] }>(
    // The fulfillment flows (not the runs of its signals' receivers: the learner's emails).
    `query ($orderId: String!) { flows(orderId: $orderId, name: "order.fulfillment.requested.v1", limit: 200) { ${FLOW_FIELDS} } }`,
    { orderId },
    c.tokens.staff,
  );
  expect(res.errors).toBeUndefined();
  return res.data!.flows;
}
async function fulfillmentFlowCount(): Promise<number> {
  const res = await c.graphql<{ flows: unknown[] }>(
    `{ flows(name: "order.fulfillment.requested.v1", limit: 200) { id } }`,
    {},
    c.tokens.staff,
  );
  expect(res.errors).toBeUndefined();
  return res.data!.flows.length;
}
const stepsByAction = (record: FlowRecord) => Object.fromEntries(record.steps.map((s) => [s.action, s]));

// ---- the tests ----------------------------------------------------------------------------------------

describe('fulfillment: an order placed in the order management Service', () => {
  it('enrolls the course line, grants the bundle, and moves every line PROCESSING (one update) then SUCCESS', async () => {
    const bundleKey = randomUUID();
    const order = seedOrder([courseLine(), bundleLine(bundleKey)]);
    const [courseLineId, bundleLineId] = order.lineIds as [string, string];
    expect(lineStates(order.id)).toEqual({ [courseLineId]: 'INITIAL', [bundleLineId]: 'INITIAL' });

    const answer = await fulfill(order.id);

    expect(answer).toMatchObject({ status: 200, body: { status: 'COMPLETED' } });
    expect(lineStates(order.id)).toEqual({ [courseLineId]: 'SUCCESS', [bundleLineId]: 'SUCCESS' });
    // Two updates in all: every line to PROCESSING in one, every line to its outcome in the other.
    expect(orderUpdates(order.id)).toBe(2);
    expect(storedOrder(order.id).version).toBe(3);

    const [enrollment, ...moreEnrollments] = enrollmentsOf(order.id);
    expect(moreEnrollments).toEqual([]);
    expect(enrollment).toMatchObject({
      username: order.customer.username,
      courseId: COURSE,
      mode: 'verified',
      isActive: true,
    });
    expect(enrollment!.attributes).toEqual(
      expect.arrayContaining([
        { namespace: 'order', name: 'order_id', value: order.id },
        { namespace: 'order', name: 'order_number', value: order.orderNumber },
        { namespace: 'order', name: 'line_item_id', value: courseLineId },
      ]),
    );
    const [entitlement, ...moreEntitlements] = entitlementsOf(order.customer.username);
    expect(moreEntitlements).toEqual([]);
    expect(entitlement).toMatchObject({
      courseUuid: bundleKey,
      mode: 'verified',
      orderNumber: order.orderNumber,
      expiredAt: null,
    });
    // The entitlement is recorded on its line, for a later refund to revoke.
    const storedBundle = storedOrder(order.id).lineItems.find((l) => l.id === bundleLineId)!;
    expect(storedBundle.custom?.fields.entitlementUuid).toBe(entitlement!.uuid);

    const record = await flow(answer.body.flowId!);
    expect(record).toMatchObject({ status: 'COMPLETED', orderId: order.id, error: null });
    expect(record.steps.map((s) => [s.index, s.action, s.status, s.implementation, s.attempt])).toEqual([
      [0, 'startFulfillment', 'COMPLETED', 'order-management', 1],
      [1, 'fulfillOrder', 'COMPLETED', 'lms', 1],
      [2, 'completeFulfillment', 'COMPLETED', 'order-management', 1],
    ]);
    const steps = stepsByAction(record);
    expect(steps.startFulfillment!.output).toMatchObject({
      orderNumber: order.orderNumber,
      username: order.customer.username,
      lineItems: [
        { lineItemId: courseLineId, kind: 'COURSE', courseRunKey: COURSE, mode: 'verified' },
        { lineItemId: bundleLineId, kind: 'BUNDLE', bundleKey },
      ],
    });
    expect(steps.fulfillOrder!.output).toEqual({
      fulfillments: [
        { lineItemId: courseLineId, fulfilled: true, entitlementUuid: null, error: null },
        { lineItemId: bundleLineId, fulfilled: true, entitlementUuid: entitlement!.uuid, error: null },
      ],
    });
    expect(steps.completeFulfillment!.output).toEqual({
      orderId: order.id,
      lineItemStates: [
        { lineItemId: courseLineId, state: 'SUCCESS' },
        { lineItemId: bundleLineId, state: 'SUCCESS' },
      ],
    });
  });
});

describe('fulfillment: LMS failures', () => {
  it('retries the LMS step through transient 503s and enrolls and grants exactly once', async () => {
    // The bundle comes first, so the first attempt grants the entitlement before the enrollment fails:
    // the retried step must find it instead of granting a second one.
    const order = seedOrder([bundleLine(), courseLine()]);
    const before = lmsWrites();
    c.services.lms.failNext(2, 503, ENROLL_PATH);

    const answer = await fulfill(order.id);

    expect(answer).toMatchObject({ status: 200, body: { status: 'COMPLETED' } });
    expect(Object.values(lineStates(order.id))).toEqual(['SUCCESS', 'SUCCESS']);
    const steps = stepsByAction(await flow(answer.body.flowId!));
    expect(steps.fulfillOrder).toMatchObject({ status: 'COMPLETED', attempt: 3, error: null });
    // Three enrollment attempts (two answered 503), one enrollment and one entitlement in the LMS.
    expect(lmsWrites().enroll - before.enroll).toBe(3);
    expect(enrollmentsOf(order.id)).toHaveLength(1);
    expect(lmsWrites().entitle - before.entitle).toBe(1);
    expect(entitlementsOf(order.customer.username)).toHaveLength(1);
  });

  it('fails only the line the LMS refuses (4xx); the other line succeeds', async () => {
    const order = seedOrder([courseLine(), bundleLine()]);
    const [courseLineId, bundleLineId] = order.lineIds as [string, string];
    c.services.lms.failNext(1, 400, ENROLL_PATH);

    const answer = await fulfill(order.id);

    expect(answer).toMatchObject({ status: 200, body: { status: 'COMPLETED' } });
    expect(lineStates(order.id)).toEqual({ [courseLineId]: 'FAILURE', [bundleLineId]: 'SUCCESS' });
    expect(enrollmentsOf(order.id)).toEqual([]);
    expect(entitlementsOf(order.customer.username)).toHaveLength(1);
    const steps = stepsByAction(await flow(answer.body.flowId!));
    // A refusal is an answer, not an outage: the step is not retried.
    expect(steps.fulfillOrder).toMatchObject({ status: 'COMPLETED', attempt: 1 });
    expect(steps.fulfillOrder!.output).toMatchObject({
      fulfillments: [
        { lineItemId: courseLineId, fulfilled: false, error: 'Injected 400.' },
        { lineItemId: bundleLineId, fulfilled: true },
      ],
    });
  });

  it('with the LMS down for good, compensates: every line not SUCCESS ends FAILURE, as the record shows', async () => {
    const order = seedOrder([courseLine(), bundleLine(), { ...courseLine(OTHER_COURSE), state: 'SUCCESS' }]);
    const [courseLineId, bundleLineId, doneLineId] = order.lineIds as [string, string, string];
    const before = lmsWrites();
    // Every attempt of the step (as many as connections.yaml allows) stops at the first line's enrollment.
    const attempts = c.coordinator.components.engine
      .filter('order.fulfillment.requested.v1')
      .steps.find((s) => s.action.name === 'fulfillOrder')!.retry.maximumAttempts;
    expect(attempts).toBeGreaterThan(1);
    c.services.lms.failNext(attempts, 503, ENROLL_PATH);

    const answer = await fulfill(order.id);

    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ status: 'COMPENSATED', error: { code: 'STEP_FAILED' } });
    expect(lmsWrites().enroll - before.enroll).toBe(attempts);
    expect(lineStates(order.id)).toEqual({
      [courseLineId]: 'FAILURE',
      [bundleLineId]: 'FAILURE',
      [doneLineId]: 'SUCCESS',
    });
    expect(enrollmentsOf(order.id)).toEqual([]);
    expect(entitlementsOf(order.customer.username)).toEqual([]);

    const record = await flow(answer.body.flowId!);
    expect(record.status).toBe('COMPENSATED');
    expect(record.error?.message).toMatch(/503/);
    expect(record.steps.map((s) => [s.index, s.action, s.status, s.attempt])).toEqual([
      [0, 'startFulfillment', 'COMPENSATED', 1],
      [1, 'fulfillOrder', 'FAILED', attempts],
      [3, 'failFulfillment', 'COMPLETED', 1],
    ]);
    expect(stepsByAction(record).failFulfillment!.output).toEqual({
      orderId: order.id,
      lineItemStates: [
        { lineItemId: courseLineId, state: 'FAILURE' },
        { lineItemId: bundleLineId, state: 'FAILURE' },
        { lineItemId: doneLineId, state: 'SUCCESS' },
      ],
    });
  });
});

describe('fulfillment: a SUCCESS line never moves again', () => {
  it('fulfilling a fulfilled order again (a new message) changes nothing and enrolls nothing twice', async () => {
    const order = seedOrder([courseLine(), bundleLine()]);
    const first = await fulfill(order.id);
    expect(first.body.status).toBe('COMPLETED');
    const version = storedOrder(order.id).version;
    const before = lmsWrites();

    const again = await fulfill(order.id);

    expect(again).toMatchObject({ status: 200, body: { status: 'COMPLETED' } });
    expect(again.body.flowId).not.toBe(first.body.flowId);
    expect(Object.values(lineStates(order.id))).toEqual(['SUCCESS', 'SUCCESS']);
    expect(storedOrder(order.id).version).toBe(version);
    expect(lmsWrites()).toEqual(before);
    expect(enrollmentsOf(order.id)).toHaveLength(1);
    expect(entitlementsOf(order.customer.username)).toHaveLength(1);
    const steps = stepsByAction(await flow(again.body.flowId!));
    expect(steps.startFulfillment!.output).toMatchObject({ lineItems: [] });
  });

  it('a new message retries a FAILURE line and leaves the SUCCESS line alone', async () => {
    const order = seedOrder([courseLine(), bundleLine()]);
    const [courseLineId, bundleLineId] = order.lineIds as [string, string];
    c.services.lms.failNext(1, 400, ENROLL_PATH);
    await fulfill(order.id);
    expect(lineStates(order.id)).toEqual({ [courseLineId]: 'FAILURE', [bundleLineId]: 'SUCCESS' });
    const before = lmsWrites();

    const again = await fulfill(order.id);

    expect(again.body.status).toBe('COMPLETED');
    expect(lineStates(order.id)).toEqual({ [courseLineId]: 'SUCCESS', [bundleLineId]: 'SUCCESS' });
    expect(lmsWrites()).toEqual({ enroll: before.enroll + 1, entitle: before.entitle });
    expect(enrollmentsOf(order.id)).toHaveLength(1);
    expect(entitlementsOf(order.customer.username)).toHaveLength(1);
    const steps = stepsByAction(await flow(again.body.flowId!));
    expect(steps.startFulfillment!.output).toMatchObject({
      lineItems: [{ lineItemId: courseLineId, kind: 'COURSE' }],
    });
  });

  it('the same message delivered twice, in turn or at once, runs one flow', async () => {
    const order = seedOrder([courseLine(), bundleLine()]);
    const messageId = randomUUID();
    const before = lmsWrites();

    const [one, two] = await Promise.all([fulfill(order.id, messageId), fulfill(order.id, messageId)]);
    const three = await fulfill(order.id, messageId);

    for (const answer of [one, two, three])
      expect(answer).toMatchObject({ status: 200, body: { flowId: one.body.flowId, status: 'COMPLETED' } });
    expect(await flowsOf(order.id)).toHaveLength(1);
    expect(lmsWrites()).toEqual({ enroll: before.enroll + 1, entitle: before.entitle + 1 });
    expect(orderUpdates(order.id)).toBe(2);
    expect(Object.values(lineStates(order.id))).toEqual(['SUCCESS', 'SUCCESS']);
  });
});

describe('fulfillment: concurrent completions of one order', () => {
  it('two messages for one order at once, through forced version conflicts: no conflict fails a flow', async () => {
    const order = seedOrder([courseLine(), bundleLine(), courseLine(OTHER_COURSE)]);
    const conflicts = c.services.orderManagement.responses(409);
    const { projectKey } = c.services.orderManagement;
    // Every writer of this order meets a 409 ConcurrentModification on its next three updates.
    c.services.orderManagement.failNext(3, 409, `/${projectKey}/orders/${order.id}`, 'POST');
    // The LMS holds its next entitlement calls a moment (both flows' look-ups, then the first grant), so
    // that the second flow looks for the bundle's entitlement while the first is granting it: the
    // entitlement API is not idempotent, and only one of the flows may grant it.
    c.services.lms.delayNext(3, 250, ENTITLEMENTS_PATH);

    const answers = await Promise.all([fulfill(order.id), fulfill(order.id)]);

    expect(c.services.orderManagement.responses(409) - conflicts).toBeGreaterThanOrEqual(3);
    for (const answer of answers)
      expect(answer).toMatchObject({ status: 200, body: { status: 'COMPLETED' } });
    expect(Object.values(lineStates(order.id))).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS']);
    const records = await flowsOf(order.id);
    expect(records).toHaveLength(2);
    for (const record of records) {
      expect(record.status).toBe('COMPLETED');
      // The conflicts were resolved inside the order management client, never by failing a step.
      for (const step of record.steps) expect(step).toMatchObject({ status: 'COMPLETED', attempt: 1 });
    }
    expect(enrollmentsOf(order.id)).toHaveLength(2);
    expect(entitlementsOf(order.customer.username)).toHaveLength(1);
  });

  it('several orders of one learner at once, through forced version conflicts: every line ends SUCCESS', async () => {
    const learner = seedLearner();
    const orders = [
      seedOrder([courseLine()], learner),
      seedOrder([bundleLine()], learner),
      seedOrder([courseLine(OTHER_COURSE), bundleLine()], learner),
    ];
    const conflicts = c.services.orderManagement.responses(409);
    const { projectKey } = c.services.orderManagement;
    for (const order of orders)
      c.services.orderManagement.failNext(1, 409, `/${projectKey}/orders/${order.id}`, 'POST');

    const answers = await Promise.all(orders.map((order) => fulfill(order.id)));

    expect(c.services.orderManagement.responses(409) - conflicts).toBeGreaterThanOrEqual(orders.length);
    for (const answer of answers)
      expect(answer).toMatchObject({ status: 200, body: { status: 'COMPLETED' } });
    for (const order of orders)
      expect(Object.values(lineStates(order.id)).every((s) => s === 'SUCCESS')).toBe(true);
    expect(entitlementsOf(learner.username)).toHaveLength(2);
    for (const order of orders) {
      const [record, ...others] = await flowsOf(order.id);
      expect(others).toEqual([]);
      for (const step of record!.steps) expect(step).toMatchObject({ status: 'COMPLETED', attempt: 1 });
    }
  });
});

describe('fulfillment: bad deliveries', () => {
  it('refuses a malformed envelope with 400 BAD_USER_INPUT and records nothing', async () => {
    const order = seedOrder([courseLine()]);
    const flows = await fulfillmentFlowCount();
    const reads = c.services.orderManagement.calls(
      'GET',
      `/${c.services.orderManagement.projectKey}/orders/${order.id}`,
    );

    for (const body of [
      { detail: { id: order.id } },
      { id: randomUUID(), detail: {} },
      { id: '', detail: { id: order.id } },
      { id: randomUUID(), detail: { id: 42 } },
      '{"id": "not json',
    ]) {
      const answer = await post(body);
      expect(answer.status).toBe(400);
      expect(answer.body.code).toBe('BAD_USER_INPUT');
      expect(answer.body.message).toEqual(expect.any(String));
    }

    expect(await fulfillmentFlowCount()).toBe(flows);
    expect(await flowsOf(order.id)).toEqual([]);
    expect(
      c.services.orderManagement.calls('GET', `/${c.services.orderManagement.projectKey}/orders/${order.id}`),
    ).toBe(reads);
    expect(Object.values(lineStates(order.id))).toEqual(['INITIAL']);
  });

  it('refuses an order id the flow record cannot hold with 400 BAD_USER_INPUT, recording nothing', async () => {
    const flows = await fulfillmentFlowCount();
    for (const orderId of ['o'.repeat(3_000), 'order-\u0000-1']) {
      const answer = await post(envelope(orderId));
      expect(answer).toMatchObject({
        status: 400,
        body: { code: 'BAD_USER_INPUT' },
      });
    }
    expect(await fulfillmentFlowCount()).toBe(flows);
  });

  it('refuses a delivery without a token (401) and a learner’s (403)', async () => {
    const order = seedOrder([courseLine()]);
    const flows = await fulfillmentFlowCount();

    const anonymous = await post(envelope(order.id), null);
    expect(anonymous).toMatchObject({ status: 401, body: { code: 'UNAUTHENTICATED' } });
    const learner = await post(envelope(order.id), c.tokens.bob);
    expect(learner).toMatchObject({ status: 403, body: { code: 'FORBIDDEN' } });

    expect(await fulfillmentFlowCount()).toBe(flows);
    expect(Object.values(lineStates(order.id))).toEqual(['INITIAL']);
    expect(enrollmentsOf(order.id)).toEqual([]);
  });
});
