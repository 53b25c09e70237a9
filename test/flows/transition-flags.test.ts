import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { token } from '../support/coordinator.js';
import { waitFor } from '../support/wait.js';

/**
 * The Transitions, flipped with LaunchDarkly TestData on one running Coordinator (no restart between
 * flips), through the gateway against the Service stand-ins:
 * - Transition-to-Coordinator `transition.order-history.coordinator`: off → only the legacy orders; on →
 *   the Coordinator's orders merged in; per learner (LMS user id as the `user` context key) and as a
 *   percentage rollout; the decision recorded on the step that evaluated it.
 * - Transition-to-Plugin `transition.refunds.stripe-v2`: the progressive `@override` of
 *   `refundStripePayment` from `stripe` to `stripe-v2`; the refund step names the Implementation that
 *   served it and the decision; each refunds exactly once at Stripe, even when the flag flips between
 *   two attempts of the step.
 */

const HISTORY_FLAG = 'transition.order-history.coordinator';
const REFUND_FLAG = 'transition.refunds.stripe-v2';
const DAY_MS = 86_400_000;
const daysAgo = (days: number) => new Date(Date.now() - days * DAY_MS).toISOString();

interface Decision {
  flag: string;
  value: boolean;
  reason: string;
}
interface FlowStep {
  index: number;
  action: string;
  status: string;
  implementation: string | null;
  attempt: number;
  flagDecisions: Decision[];
  error: { code: string; message: string } | null;
}
interface FlowRun {
  id: string;
  status: string;
  output: Record<string, unknown> | null;
  error: { code: string; message: string } | null;
  steps: FlowStep[];
}

const FLOW = `id status output error { code message }
  steps { index action status implementation attempt flagDecisions { flag value reason } error { code message } }`;
/** What a learner may read of a flow they ran: not its data. */
const LEARNER_FLOW = `id status`;

let cc: CommerceCoordinator;
const { ada, bob } = DEMO.learners;

beforeAll(async () => {
  cc = await startCommerceCoordinator('flow-transition-flags');
  // Bob gets a legacy order, so that "only legacy orders" is a list with something in it for him too.
  cc.services.legacyEcommerce.seed({
    orders: [
      {
        number: 'EDX-400004',
        username: bob.username,
        datePlaced: daysAgo(30),
        lines: [{ title: 'Legacy for Bob', linePriceExclTax: '25.00' }],
      },
    ],
  });
});

afterAll(async () => {
  await cc?.stop();
});

const step = (flow: FlowRun, action: string) => flow.steps.find((s) => s.action === action)!;
const decisionOf = (s: FlowStep, flag: string) => s.flagDecisions.find((d) => d.flag === flag);

async function historyOf(bearer: string): Promise<FlowRun> {
  const res = await cc.graphql<{ orderHistory: { history: unknown[]; flow: FlowRun } }>(
    `query { orderHistory(input: {}) { history { orderNumber system } flow { ${LEARNER_FLOW} } } }`,
    {},
    bearer,
  );
  expect(res.errors).toBeUndefined();
  expect(res.data!.orderHistory.flow.status).toBe('COMPLETED');
  // The typed history is the flow's; its record (with the flag decisions) is read back as staff.
  const read = await cc.graphql<{ flow: FlowRun }>(
    `query($id: ID!) { flow(id: $id) { ${FLOW} } }`,
    { id: res.data!.orderHistory.flow.id },
    cc.tokens.staff,
  );
  expect(read.errors).toBeUndefined();
  const flow = read.data!.flow;
  expect(res.data!.orderHistory.history).toEqual(
    (flow.output!.history as Array<{ orderNumber: string; system: string }>).map(
      ({ orderNumber, system }) => ({
        orderNumber,
        system,
      }),
    ),
  );
  return flow;
}

const numbers = (flow: FlowRun) =>
  (flow.output!.history as Array<{ orderNumber: string; system: string }>).map((e) => e.orderNumber);
const ordersReads = () =>
  cc.services.orderManagement.calls('GET', `/${cc.services.orderManagement.projectKey}/orders`);

/** What LaunchDarkly computes for a percentage rollout: the context's bucket in [0, 1). */
function bucket(flag: string, salt: string, key: string): number {
  const hash = createHash('sha1').update(`${flag}.${salt}.${key}`).digest('hex');
  // 15 hex digits over 0xFFFFFFFFFFFFFFF, which as a double is 2^60 (the SDK divides by 1152921504606847e3).
  return parseInt(hash.slice(0, 15), 16) / 2 ** 60;
}

/** A boolean flag (variations [true, false]) served to `percent` of the contexts of `contextKind`. */
function rollout(key: string, salt: string, contextKind: string, percent: number) {
  const weight = Math.round(percent * 1_000);
  return cc.testData.usePreconfiguredFlag({
    key,
    version: 1,
    on: true,
    salt,
    variations: [true, false],
    offVariation: 1,
    targets: [],
    contextTargets: [],
    rules: [],
    prerequisites: [],
    fallthrough: {
      rollout: {
        contextKind,
        variations: [
          { variation: 0, weight },
          { variation: 1, weight: 100_000 - weight },
        ],
      },
    },
  });
}

describe('Transition-to-Coordinator: transition.order-history.coordinator', () => {
  const adaLegacyOnly = [DEMO.legacyOrders.adaRecent];
  const adaMerged = [
    DEMO.orders.adaUnpaid.orderNumber,
    DEMO.orders.adaPayPal.orderNumber,
    DEMO.orders.adaStripe.orderNumber,
    DEMO.legacyOrders.adaRecent,
  ];

  it('shows only legacy orders while nobody created the flag (the fallback is the old path)', async () => {
    const reads = ordersReads();
    const flow = await historyOf(cc.tokens.ada);
    expect(numbers(flow)).toEqual(adaLegacyOnly);
    expect(step(flow, 'ordersForLearner')).toMatchObject({ status: 'SKIPPED', implementation: null });
    expect(decisionOf(step(flow, 'orderHistoryRequest'), HISTORY_FLAG)).toEqual({
      flag: HISTORY_FLAG,
      value: false,
      reason: 'ERROR:FLAG_NOT_FOUND',
    });
    // The order management Service was not asked.
    expect(ordersReads()).toBe(reads);
  });

  it('flips per learner (user = LMS user id) and back, on the running Coordinator', async () => {
    await cc.testData.update(cc.testData.flag(HISTORY_FLAG).variationForAll(false));
    let flow = await historyOf(cc.tokens.ada);
    expect(numbers(flow)).toEqual(adaLegacyOnly);
    expect(decisionOf(step(flow, 'orderHistoryRequest'), HISTORY_FLAG)).toEqual({
      flag: HISTORY_FLAG,
      value: false,
      reason: 'FALLTHROUGH',
    });

    // On for Ada only.
    await cc.testData.update(
      cc.testData
        .flag(HISTORY_FLAG)
        .fallthroughVariation(false)
        .variationForContext('user', String(ada.lmsUserId), true),
    );
    const reads = ordersReads();
    flow = await historyOf(cc.tokens.ada);
    expect(numbers(flow)).toEqual(adaMerged);
    expect(step(flow, 'ordersForLearner')).toMatchObject({
      status: 'COMPLETED',
      implementation: 'order-management',
    });
    expect(decisionOf(step(flow, 'orderHistoryRequest'), HISTORY_FLAG)).toEqual({
      flag: HISTORY_FLAG,
      value: true,
      reason: 'TARGET_MATCH',
    });
    expect(ordersReads()).toBe(reads + 1);

    // Bob, at the same moment, still has the old history: his legacy order only.
    const bobFlow = await historyOf(cc.tokens.bob);
    expect(numbers(bobFlow)).toEqual(['EDX-400004']);
    expect(decisionOf(step(bobFlow, 'orderHistoryRequest'), HISTORY_FLAG)).toMatchObject({
      value: false,
      reason: 'FALLTHROUGH',
    });

    // Off again: Ada is back on the legacy history at once.
    await cc.testData.update(cc.testData.flag(HISTORY_FLAG).variationForAll(false));
    flow = await historyOf(cc.tokens.ada);
    expect(numbers(flow)).toEqual(adaLegacyOnly);
    expect(decisionOf(step(flow, 'orderHistoryRequest'), HISTORY_FLAG)).toMatchObject({ value: false });
  });

  it('rolls out by percentage of learners (TestData has no rollout builder: a preconfigured flag)', async () => {
    // Sixteen learners of this test's own, each with one new order and one legacy order.
    const learners = Array.from({ length: 16 }, (_, i) => ({
      lmsUserId: 501 + i,
      username: `rollout${501 + i}`,
      email: `rollout${501 + i}@example.com`,
    }));
    cc.services.lms.seed({
      users: learners.map((l) => ({ id: l.lmsUserId, username: l.username, email: l.email })),
    });
    cc.services.orderManagement.seed({
      orders: learners.map((l) => ({
        orderNumber: `2U-5000000${l.lmsUserId}`,
        createdAt: daysAgo(2),
        customer: l,
        lineItems: [{ title: 'Rollout Course', priceCents: 5_000, state: 'SUCCESS' as const }],
      })),
    });
    cc.services.legacyEcommerce.seed({
      orders: learners.map((l) => ({
        number: `EDX-500${l.lmsUserId}`,
        username: l.username,
        datePlaced: daysAgo(40),
        lines: [{ title: 'Rollout Legacy', linePriceExclTax: '10.00' }],
      })),
    });
    const tokens = await Promise.all(
      learners.map((l) => token({ kind: 'learner', lmsUserId: l.lmsUserId, username: l.username })),
    );
    const salt = 'order-history-rollout';

    const served = async (percent: number) => {
      await rollout(HISTORY_FLAG, salt, 'user', percent);
      const flows = await Promise.all(tokens.map((t) => historyOf(t)));
      return flows.map((flow, i) => {
        const l = learners[i]!;
        const decision = decisionOf(step(flow, 'orderHistoryRequest'), HISTORY_FLAG)!;
        // The decision and the history agree: merged when on, legacy only when off.
        expect(numbers(flow)).toEqual(
          decision.value ? [`2U-5000000${l.lmsUserId}`, `EDX-500${l.lmsUserId}`] : [`EDX-500${l.lmsUserId}`],
        );
        expect(decision.reason).toBe('FALLTHROUGH');
        return decision.value;
      });
    };
    const expected = (percent: number) =>
      learners.map((l) => bucket(HISTORY_FLAG, salt, String(l.lmsUserId)) < percent / 100);

    const at25 = await served(25);
    const at50 = await served(50);
    const at75 = await served(75);
    // Each learner is where LaunchDarkly's bucketing of their LMS user id puts them…
    expect(at25).toEqual(expected(25));
    expect(at50).toEqual(expected(50));
    expect(at75).toEqual(expected(75));
    // …the rollout splits the learners (neither none nor all at 50%)…
    expect(at50.filter(Boolean).length).toBeGreaterThan(0);
    expect(at50.filter(Boolean).length).toBeLessThan(learners.length);
    // …and widening it never takes the new history away from a learner who had it.
    at25.forEach((on, i) => on && expect(at50[i]).toBe(true));
    at50.forEach((on, i) => on && expect(at75[i]).toBe(true));
    expect(await served(100)).toEqual(learners.map(() => true));
    expect(await served(0)).toEqual(learners.map(() => false));
  });
});

describe('Transition-to-Plugin: refundStripePayment from stripe to stripe-v2', () => {
  const grace = { lmsUserId: 61, username: 'grace', email: 'grace@example.com' };
  let seq = 0;

  beforeAll(() => {
    cc.services.lms.seed({
      users: [{ id: grace.lmsUserId, username: grace.username, email: grace.email }],
      enrollments: [DEMO.courses.demo.courseId, DEMO.courses.cs50.courseId].map((courseId) => ({
        username: grace.username,
        courseId,
        mode: 'verified',
        isActive: true,
      })),
    });
  });

  /** An order of Grace's paid with Stripe, consistent across the Services: refund its first line. */
  function stripeOrder() {
    const n = ++seq;
    const orderNumber = `2U-60000000${String(n).padStart(2, '0')}`;
    const [intent] = cc.services.stripe.seed({
      paymentIntents: [{ amount: 20_000, metadata: { order_number: orderNumber } }],
    });
    // Fixed ids, so that the rollout's split of these orders is the same on every run.
    const id = `6a1f0c7e-0000-4000-8000-${String(n).padStart(12, '0')}`;
    const lineItemIds = [`li-grace-${n}-demo`, `li-grace-${n}-cs50`];
    cc.services.orderManagement.seed({
      orders: [
        {
          id,
          orderNumber,
          createdAt: daysAgo(3),
          customer: grace,
          lineItems: [
            {
              id: lineItemIds[0],
              title: DEMO.courses.demo.name,
              priceCents: 12_000,
              courseRunKey: DEMO.courses.demo.courseId,
              state: 'SUCCESS',
            },
            {
              id: lineItemIds[1],
              title: DEMO.courses.cs50.name,
              priceCents: 8_000,
              courseRunKey: DEMO.courses.cs50.courseId,
              state: 'SUCCESS',
            },
          ],
          payment: { psp: 'STRIPE', pspPaymentId: String(intent!.id) },
        },
      ],
    });
    return { id, orderNumber, paymentIntentId: String(intent!.id), lineItemIds };
  }

  /** The LMS asks for a refund of the order's first line (the flow's caller is the LMS Service). */
  async function refund(order: ReturnType<typeof stripeOrder>): Promise<FlowRun> {
    const res = await cc.graphql<{ requestRefund: { flow: FlowRun } }>(
      `mutation($input: RefundRequestInput!) { requestRefund(input: $input) { flow { ${FLOW} } } }`,
      { input: { orderId: order.id, lineItemIds: [order.lineItemIds[0]] } },
      cc.tokens.lms,
    );
    expect(res.errors).toBeUndefined();
    return res.data!.requestRefund.flow;
  }

  /** Exactly one refund of the first line's 120.00 at Stripe, made with the step's idempotency key. */
  function expectRefundedOnce(order: ReturnType<typeof stripeOrder>, flow: FlowRun) {
    const refunds = cc.services.stripe.refunds(order.paymentIntentId);
    expect(refunds).toHaveLength(1);
    expect(refunds[0]).toMatchObject({
      amount: 12_000,
      status: 'succeeded',
      metadata: { order_number: order.orderNumber },
    });
    const refundStep = step(flow, 'refundStripePayment');
    const posts = cc.services.stripe
      .calls('/v1/refunds')
      .filter((c) => c.method === 'POST' && c.idempotencyKey === `${flow.id}:${refundStep.index}`);
    // Of the calls with this key, one made the refund (a dropped answer still made it); any other replayed.
    expect(posts.filter((c) => !c.replayed && (c.status === 200 || c.status === -1))).toHaveLength(1);
    expect(flow.output).toMatchObject({ pspRefundId: refunds[0]!.id, refundedAmountCents: 12_000 });
    expect(step(flow, 'recordRefundTransaction').status).toBe('COMPLETED');
  }

  it('is served by stripe while the flag is off for the order', async () => {
    const other = stripeOrder();
    // On for another order only.
    await cc.testData.update(
      cc.testData.flag(REFUND_FLAG).fallthroughVariation(false).variationForContext('order', other.id, true),
    );
    const order = stripeOrder();
    const flow = await refund(order);
    expect(flow.status).toBe('COMPLETED');
    const refundStep = step(flow, 'refundStripePayment');
    expect(refundStep).toMatchObject({ status: 'COMPLETED', implementation: 'stripe', attempt: 1 });
    expect(decisionOf(refundStep, REFUND_FLAG)).toEqual({
      flag: REFUND_FLAG,
      value: false,
      reason: 'FALLTHROUGH',
    });
    expectRefundedOnce(order, flow);
    expect(cc.services.stripe.refunds(other.paymentIntentId)).toEqual([]);
  });

  it('is served by stripe-v2 where the flag is on for the order, with no restart', async () => {
    const order = stripeOrder();
    await cc.testData.update(
      cc.testData.flag(REFUND_FLAG).fallthroughVariation(false).variationForContext('order', order.id, true),
    );
    const flow = await refund(order);
    expect(flow.status).toBe('COMPLETED');
    const refundStep = step(flow, 'refundStripePayment');
    expect(refundStep).toMatchObject({ status: 'COMPLETED', implementation: 'stripe-v2', attempt: 1 });
    expect(decisionOf(refundStep, REFUND_FLAG)).toEqual({
      flag: REFUND_FLAG,
      value: true,
      reason: 'TARGET_MATCH',
    });
    expectRefundedOnce(order, flow);
    // The other steps stay with their own Plugins.
    expect(step(flow, 'createReturn').implementation).toBe('order-management');
    expect(step(flow, 'recordRefundTransaction').implementation).toBe('order-management');

    // The next order, flag off for it: back to stripe.
    const next = stripeOrder();
    const nextFlow = await refund(next);
    expect(step(nextFlow, 'refundStripePayment').implementation).toBe('stripe');
    expectRefundedOnce(next, nextFlow);
  });

  it('rolls out by percentage of orders', async () => {
    const salt = 'stripe-v2-rollout';
    const orders = Array.from({ length: 6 }, () => stripeOrder());
    await rollout(REFUND_FLAG, salt, 'order', 50);
    const v2 = (order: { id: string }) => bucket(REFUND_FLAG, salt, order.id) < 0.5;
    // These fixed order ids fall on both sides of 50%.
    expect(orders.map(v2)).toContain(true);
    expect(orders.map(v2)).toContain(false);
    for (const order of orders) {
      const flow = await refund(order);
      const refundStep = step(flow, 'refundStripePayment');
      const on = v2(order);
      expect(refundStep.implementation).toBe(on ? 'stripe-v2' : 'stripe');
      expect(decisionOf(refundStep, REFUND_FLAG)).toEqual({
        flag: REFUND_FLAG,
        value: on,
        reason: 'FALLTHROUGH',
      });
      expectRefundedOnce(order, flow);
    }
  });

  it('refunds once when the flag flips between two attempts of the refund step', async () => {
    await cc.testData.update(cc.testData.flag(REFUND_FLAG).variationForAll(false));
    const order = stripeOrder();
    const dropped = () =>
      cc.services.stripe.calls('/v1/refunds').filter((c) => c.method === 'POST' && c.status === -1).length;
    const droppedBefore = dropped();
    // Attempt 1 (stripe): Stripe makes the refund but the answer is lost, and the SDK's own two retries
    // get 500s, so the step fails without knowing whether the money moved.
    cc.services.stripe.failNext({ method: 'POST', path: '/v1/refunds', dropResponse: true });
    cc.services.stripe.failNext({ method: 'POST', path: '/v1/refunds', status: 500, times: 2 });
    const running = refund(order);
    await waitFor(() => dropped() === droppedBefore + 1, { what: 'the refund reached Stripe' });
    // Attempt 1 already chose stripe; attempt 2 will see the flag on.
    await cc.testData.update(cc.testData.flag(REFUND_FLAG).variationForAll(true));
    const flow = await running;

    expect(flow.status).toBe('COMPLETED');
    const refundStep = step(flow, 'refundStripePayment');
    expect(refundStep).toMatchObject({ status: 'COMPLETED', implementation: 'stripe-v2', attempt: 2 });
    expect(decisionOf(refundStep, REFUND_FLAG)).toMatchObject({ value: true });
    // stripe-v2 looked among the payment's refunds for the return's first, and found attempt 1's: it
    // answered that one, and sent no refund request of its own.
    const posts = cc.services.stripe
      .calls('/v1/refunds')
      .filter((c) => c.method === 'POST' && c.idempotencyKey === `${flow.id}:${refundStep.index}`);
    expect(posts.map((c) => [c.status, c.replayed])).toEqual([
      [-1, false],
      [500, false],
      [500, false],
    ]);
    expectRefundedOnce(order, flow);
  });

  it('also decides calls outside a flow, which only stripe answers for (stripe-v2 refuses them)', async () => {
    const order = stripeOrder();
    const direct = () =>
      cc.graphql(
        `mutation($input: RefundPaymentInput!) { refundStripePayment(input: $input) { pspRefundId } }`,
        { input: { pspPaymentId: order.paymentIntentId, refundAmountCents: 100, currency: 'USD' } },
        cc.tokens.staff,
      );
    await cc.testData.update(cc.testData.flag(REFUND_FLAG).variationForAll(false));
    const v1 = await direct();
    expect(v1.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', serviceName: 'stripe' } });
    await cc.testData.update(cc.testData.flag(REFUND_FLAG).variationForAll(true));
    const v2 = await direct();
    expect(v2.errors?.[0]).toMatchObject({
      extensions: { code: 'BAD_USER_INPUT', serviceName: 'stripe-v2' },
    });
    expect(v2.errors?.[0]?.message).toContain('only as a step of a Purchase Flow');
    expect(cc.services.stripe.refunds(order.paymentIntentId)).toEqual([]);
  });
});
