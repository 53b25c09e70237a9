import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { token } from '../support/coordinator.js';

/**
 * The order history Purchase Flow (`orderHistory` → filter `order.history.requested.v1`) through the
 * gateway, against the Service stand-ins: the legacy ecommerce service's orders and the order management
 * Service's merged, newest first, cut at 180 days; a legacy outage does not hide the new orders; who may
 * see whose history. The Transition-to-Coordinator flag is on for everyone here (its flips are in
 * transition-flags.test.ts).
 */

const HISTORY_FLAG = 'transition.order-history.coordinator';
const DAY_MS = 86_400_000;
const daysAgo = (days: number) => new Date(Date.now() - days * DAY_MS).toISOString();

interface HistoryEntry {
  orderNumber: string;
  placedAt: string;
  system: 'COORDINATOR' | 'LEGACY';
  totalCents: number;
  currency: string;
  lines: Array<{ title: string; quantity: number; priceCents: number }>;
}
interface FlowStep {
  index: number;
  action: string;
  status: string;
  implementation: string | null;
  attempt: number;
  flagDecisions: Array<{ flag: string; value: boolean; reason: string }>;
  error: { code: string; message: string } | null;
}
interface FlowRun {
  id: string;
  status: string;
  startedBy: { kind: string; username?: string } | null;
  output: { history: HistoryEntry[]; count: number; since: string; username: string } | null;
  error: { code: string; message: string } | null;
  steps: FlowStep[];
}
type GraphQLError = { message: string; extensions?: { code?: string; flowId?: string } };

const FLOW = `id status startedBy output error { code message }
  steps { index action status implementation attempt flagDecisions { flag value reason } error { code message } }`;
const ENTRY = 'orderNumber placedAt system totalCents currency lines { title quantity priceCents }';
/** What the caller gets: the typed history, and of the flow record only what a learner may read. */
const HISTORY = `query History($input: OrderHistoryInput!) {
  orderHistory(input: $input) { history { ${ENTRY} } count flow { id status steps { action status } } }
}`;
type HistoryResult = {
  history: HistoryEntry[] | null;
  count: number | null;
  flow: { id: string; status: string; steps: Array<{ action: string; status: string }> };
};

let cc: CommerceCoordinator;
/** A learner of this file's own, with orders on both sides of the 180-day cut in both systems. */
const hedy = { lmsUserId: 31, username: 'hedy', email: 'hedy@example.com', name: 'Hedy Lamarr' };
let hedyToken: string;

beforeAll(async () => {
  cc = await startCommerceCoordinator('flow-order-history');
  await cc.testData.update(cc.testData.flag(HISTORY_FLAG).variationForAll(true));
  const { lms, orderManagement, legacyEcommerce } = cc.services;
  lms.seed({ users: [{ id: hedy.lmsUserId, username: hedy.username, email: hedy.email, name: hedy.name }] });
  const customer = { lmsUserId: hedy.lmsUserId, username: hedy.username, email: hedy.email };
  const line = (id: string, priceCents: number) => ({
    id,
    title: `Course ${id}`,
    priceCents,
    courseRunKey: `course-v1:edX+${id}+2026`,
    state: 'SUCCESS' as const,
  });
  orderManagement.seed({
    orders: [
      { orderNumber: '2U-3100000001', createdAt: daysAgo(1), customer, lineItems: [line('H1', 1_000)] },
      { orderNumber: '2U-3100000003', createdAt: daysAgo(3), customer, lineItems: [line('H3', 3_000)] },
      {
        orderNumber: '2U-3100000179',
        createdAt: daysAgo(179),
        customer,
        lineItems: [line('H179a', 1_500), line('H179b', 2_500)],
      },
      { orderNumber: '2U-3100000181', createdAt: daysAgo(181), customer, lineItems: [line('H181', 9_900)] },
    ],
  });
  legacyEcommerce.seed({
    orders: [
      {
        number: 'EDX-310002',
        username: hedy.username,
        datePlaced: daysAgo(2),
        lines: [{ title: 'Legacy Two', linePriceExclTax: '12.34', quantity: 2 }],
      },
      {
        number: 'EDX-310170',
        username: hedy.username,
        datePlaced: daysAgo(170),
        lines: [{ title: 'Legacy 170', linePriceExclTax: '49.00' }],
      },
      {
        number: 'EDX-310190',
        username: hedy.username,
        datePlaced: daysAgo(190),
        lines: [{ title: 'Legacy 190', linePriceExclTax: '19.00' }],
      },
    ],
  });
  hedyToken = await token({ kind: 'learner', lmsUserId: hedy.lmsUserId, username: hedy.username });
});

afterAll(async () => {
  await cc?.stop();
});

async function history(input: { username?: string }, bearer?: string) {
  return cc.graphql<{ orderHistory: HistoryResult }>(HISTORY, { input }, bearer);
}

/** The flow record of a history request (read back as staff), once its typed result matched it. */
async function historyOf(input: { username?: string }, bearer: string): Promise<FlowRun> {
  const res = await history(input, bearer);
  expect(res.errors).toBeUndefined();
  const result = res.data!.orderHistory;
  const flow = await flowById(result.flow.id);
  expect(result.history).toEqual(flow.output!.history);
  expect(result.count).toBe(flow.output!.count);
  return flow;
}

async function flowById(flowId: unknown): Promise<FlowRun> {
  expect(flowId).toEqual(expect.any(String));
  const res = await cc.graphql<{ flow: FlowRun }>(
    `query($id: ID!) { flow(id: $id) { ${FLOW} } }`,
    { id: flowId },
    cc.tokens.staff,
  );
  expect(res.errors).toBeUndefined();
  return res.data!.flow;
}

/** The recorded flow a failed request left, read back as staff. */
const recordedFlow = (error: GraphQLError | undefined) => flowById(error?.extensions?.flowId);

const step = (flow: FlowRun, action: string) => flow.steps.find((s) => s.action === action)!;
const legacyCalls = () => cc.services.legacyEcommerce.calls('/api/v2/orders/', 'GET');

describe('order history: both systems, newest first, 180 days', () => {
  it("merges a learner's legacy and new orders newest first and leaves out orders older than 180 days", async () => {
    const before = legacyCalls();
    const flow = await historyOf({}, hedyToken);

    expect(flow.status).toBe('COMPLETED');
    expect(flow.output!.username).toBe('hedy');
    expect(flow.output!.history.map((e) => [e.orderNumber, e.system])).toEqual([
      ['2U-3100000001', 'COORDINATOR'],
      ['EDX-310002', 'LEGACY'],
      ['2U-3100000003', 'COORDINATOR'],
      ['EDX-310170', 'LEGACY'],
      ['2U-3100000179', 'COORDINATOR'],
    ]);
    expect(flow.output!.count).toBe(5);
    const placed = flow.output!.history.map((e) => Date.parse(e.placedAt));
    expect(placed).toEqual([...placed].sort((a, b) => b - a));
    // The cut is 180 days back from the request.
    expect(Date.now() - Date.parse(flow.output!.since)).toBeGreaterThanOrEqual(180 * DAY_MS);
    expect(Date.now() - Date.parse(flow.output!.since)).toBeLessThan(180 * DAY_MS + 60_000);
    // Both systems' amounts in minor units: the legacy decimal strings, the new orders' line sums.
    const byNumber = new Map(flow.output!.history.map((e) => [e.orderNumber, e]));
    expect(byNumber.get('EDX-310002')).toMatchObject({
      totalCents: 1_234,
      currency: 'USD',
      lines: [{ title: 'Legacy Two', quantity: 2, priceCents: 1_234 }],
    });
    expect(byNumber.get('2U-3100000179')).toMatchObject({
      totalCents: 4_000,
      lines: [
        { title: 'Course H179a', quantity: 1, priceCents: 1_500 },
        { title: 'Course H179b', quantity: 1, priceCents: 2_500 },
      ],
    });
    // Each system was asked once, by the Implementation the flow record names.
    expect(flow.steps.map((s) => [s.action, s.status, s.implementation])).toEqual([
      ['orderHistoryRequest', 'COMPLETED', 'frontend-apps'],
      ['learner', 'COMPLETED', 'lms'],
      ['ordersForLearner', 'COMPLETED', 'order-management'],
      ['legacyOrders', 'COMPLETED', 'legacy-ecommerce'],
      ['mergeOrderHistory', 'COMPLETED', 'frontend-apps'],
    ]);
    expect(legacyCalls()).toBe(before + 1);
  });

  it("shows the demo learner's four recent orders but not her legacy order of 400 days ago", async () => {
    const flow = await historyOf({}, cc.tokens.ada);
    const numbers = flow.output!.history.map((e) => e.orderNumber);
    expect(numbers).toEqual([
      DEMO.orders.adaUnpaid.orderNumber, // 5 days
      DEMO.orders.adaPayPal.orderNumber, // 10 days
      DEMO.orders.adaStripe.orderNumber, // 20 days
      DEMO.legacyOrders.adaRecent, // 60 days
    ]);
    expect(numbers).not.toContain(DEMO.legacyOrders.adaOld);
    // Nobody else's orders.
    expect(numbers).not.toContain(DEMO.orders.bobPlaced.orderNumber);
  });

  it('still shows the new orders when the legacy service fails on every attempt; the legacy step is skipped and a PARTIAL_RESULT error says so', async () => {
    const before = legacyCalls();
    // The filter tries a step twice (connections.yaml: retry maximumAttempts 2): fail both.
    cc.services.legacyEcommerce.failNext(2, 503, '/api/v2/orders/');

    const res = await history({}, hedyToken);
    const flow = await flowById(res.data!.orderHistory.flow.id);

    expect(flow.status).toBe('COMPLETED');
    expect(flow.error).toBeNull();
    // The answer says it is partial: an error beside the data names the skipped step.
    expect(res.errors).toEqual([
      expect.objectContaining({
        path: ['orderHistory'],
        extensions: expect.objectContaining({
          code: 'PARTIAL_RESULT',
          flowId: flow.id,
          action: 'legacyOrders',
          stepIndex: step(flow, 'legacyOrders').index,
        }),
      }),
    ]);
    expect(res.data!.orderHistory.history).toEqual(flow.output!.history);
    expect(flow.output!.history.map((e) => [e.orderNumber, e.system])).toEqual([
      ['2U-3100000001', 'COORDINATOR'],
      ['2U-3100000003', 'COORDINATOR'],
      ['2U-3100000179', 'COORDINATOR'],
    ]);
    const legacy = step(flow, 'legacyOrders');
    expect(legacy).toMatchObject({ status: 'SKIPPED', implementation: 'legacy-ecommerce', attempt: 2 });
    expect(legacy.error!.message).toContain('503');
    expect(step(flow, 'mergeOrderHistory').status).toBe('COMPLETED');
    // Both attempts reached the legacy service, and no more.
    expect(legacyCalls()).toBe(before + 2);

    // The outage was the service's, not the flow's: the next request shows both systems again.
    const next = await historyOf({}, hedyToken);
    expect(next.output!.history.filter((e) => e.system === 'LEGACY').map((e) => e.orderNumber)).toEqual([
      'EDX-310002',
      'EDX-310170',
    ]);
  });
});

describe('order history: whose history', () => {
  it("lets staff read a learner's history by username", async () => {
    const flow = await historyOf({ username: 'hedy' }, cc.tokens.staff);
    expect(flow.status).toBe('COMPLETED');
    expect(flow.startedBy).toMatchObject({ kind: 'staff', username: DEMO.staff.username });
    expect(flow.output!.username).toBe('hedy');
    expect(flow.output!.history.map((e) => e.orderNumber)).toEqual([
      '2U-3100000001',
      'EDX-310002',
      '2U-3100000003',
      'EDX-310170',
      '2U-3100000179',
    ]);

    const bob = await historyOf({ username: DEMO.learners.bob.username }, cc.tokens.staff);
    expect(bob.output!.history.map((e) => e.orderNumber)).toEqual([
      DEMO.orders.bobPlaced.orderNumber,
      DEMO.orders.bobSanctioned.orderNumber,
    ]);
  });

  it('lets a learner name themself', async () => {
    const flow = await historyOf({ username: 'hedy' }, hedyToken);
    expect(flow.output!.history).toHaveLength(5);
  });

  it("refuses a learner another learner's history (FORBIDDEN) before asking any Service", async () => {
    const before = legacyCalls();
    const res = await history({ username: 'hedy' }, cc.tokens.ada);

    expect(res.data ?? null).toBeNull();
    expect(res.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const flow = await recordedFlow(res.errors?.[0]);
    expect(flow.status).toBe('FAILED');
    expect(flow.steps.map((s) => [s.action, s.status])).toEqual([['orderHistoryRequest', 'FAILED']]);
    expect(legacyCalls()).toBe(before);
  });

  it('refuses an anonymous caller (UNAUTHENTICATED) and a Service (FORBIDDEN)', async () => {
    const before = legacyCalls();
    const anonymous = await history({});
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    // Refused before any flow is recorded: a flow's steps act for its caller, and there is none.
    expect(anonymous.errors?.[0]?.extensions?.flowId).toBeUndefined();

    const byUsername = await history({ username: 'hedy' });
    expect(byUsername.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');

    const service = await history({ username: 'hedy' }, cc.tokens.lms);
    expect(service.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(legacyCalls()).toBe(before);

    // A token that does not verify is refused by the gateway itself.
    const forged = await history({}, `${cc.tokens.ada.slice(0, -4)}AAAA`);
    expect(forged.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});

describe('order history: the typed result, and the flow record beside it', () => {
  it('gives the caller the merged history only; the learner’s account and raw orders stay on the record', async () => {
    const res = await cc.graphql<{ orderHistory: Record<string, unknown> }>(
      `{ orderHistory(input: {}) { __typename history { orderNumber system } count flow { status } } }`,
      {},
      hedyToken,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data!.orderHistory).toEqual({
      __typename: 'OrderHistoryResult',
      history: expect.arrayContaining([{ orderNumber: 'EDX-310002', system: 'LEGACY' }]),
      count: 5,
      flow: { status: 'COMPLETED' },
    });
    // Only what connections.yaml declares is a field of the result: not the email, not the raw orders.
    const undeclared = await cc.graphql(`{ orderHistory(input: {}) { legacyOrders email } }`, {}, hedyToken);
    expect(undeclared.errors?.map((e) => e.extensions?.code)).toEqual([
      'GRAPHQL_VALIDATION_FAILED',
      'GRAPHQL_VALIDATION_FAILED',
    ]);
  });

  it("refuses a learner the flow record's data (FORBIDDEN), which staff read", async () => {
    const query = `{ orderHistory(input: {}) {
      count flow { id status input output steps { action status input output } }
    } }`;
    const learner = await cc.graphql<{ orderHistory: { count: number; flow: Record<string, unknown> } }>(
      query,
      {},
      hedyToken,
    );
    const forbidden = learner.errors!.map((e) => [e.path?.slice(2).join('.'), e.extensions?.code]);
    expect(forbidden).toEqual(
      expect.arrayContaining([
        ['input', 'FORBIDDEN'],
        ['output', 'FORBIDDEN'],
        ['steps.0.input', 'FORBIDDEN'],
        ['steps.4.output', 'FORBIDDEN'],
      ]),
    );
    expect(forbidden.every(([, code]) => code === 'FORBIDDEN')).toBe(true);
    // The result and the record's status and steps are still answered, without any data.
    expect(learner.data!.orderHistory.count).toBe(5);
    expect(learner.data!.orderHistory.flow).toMatchObject({ status: 'COMPLETED', input: null, output: null });
    expect(JSON.stringify(learner.data)).not.toContain(hedy.email);

    const staff = await cc.graphql<{ orderHistory: { flow: FlowRun } }>(
      `{ orderHistory(input: { username: "hedy" }) { flow { output steps { status output } } } }`,
      {},
      cc.tokens.staff,
    );
    expect(staff.errors).toBeUndefined();
    expect(staff.data!.orderHistory.flow.output!.username).toBe('hedy');
    expect(staff.data!.orderHistory.flow.steps.map((s) => s.status)).toEqual([
      'COMPLETED',
      'COMPLETED',
      'COMPLETED',
      'COMPLETED',
      'COMPLETED',
    ]);
  });
});
