import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { adminRedis } from '../support/redis.js';
import { seedPaidOrder, type DemoLearner, type PaidOrder, type Psp } from '../support/orders.js';
import { waitFor } from '../support/wait.js';

/**
 * The refund Purchase Flow end to end, through the gateway: `requestRefund` (staff, the LMS's service
 * token, learners) and the LMS event bus → createReturn → refundStripePayment | refundPayPalPayment →
 * recordRefundTransaction → signal order.refunded.v1 → LMS revokeLineItems, asserted on the flow records
 * and on the Service stand-ins' own state (order management store, PSP refunds, LMS enrollments).
 */

let cc: CommerceCoordinator;

beforeAll(async () => {
  cc = await startCommerceCoordinator('refund-flow');
});

afterAll(async () => {
  await cc?.stop();
});

// ---- Orders of this file's own, consistent across the Services ------------------------------------

type SeededOrder = PaidOrder;

/**
 * An order paid at `psp`, every line fulfilled: the payment exists at the PSP, the order (with its
 * Charge transaction) in the order management Service, an active enrollment per line in the LMS.
 * Each order has course runs of its own, so revocations of one test never show in another.
 */
const seedOrder = (
  psp: Psp,
  options: { learner?: DemoLearner; prices?: number[]; paidCents?: number } = {},
): SeededOrder => seedPaidOrder(cc, psp, { prices: [14_900, 14_900], ...options });

// ---- The stand-ins' own state ----------------------------------------------------------------------

const storedOrder = (o: SeededOrder) => cc.services.orderManagement.store.orders.get(o.orderId)!;
const storedPayment = (o: SeededOrder) =>
  cc.services.orderManagement.store.payments.get(storedOrder(o).paymentInfo!.payments[0]!.id)!;
const refundTransactions = (o: SeededOrder) =>
  storedPayment(o).transactions.filter((t) => t.type === 'Refund');
const returnItems = (o: SeededOrder) => storedOrder(o).returnInfo.flatMap((r) => r.items);

/** The refunds the PSP made of the order's payment, newest first, as { id, cents }. */
function pspRefunds(o: SeededOrder): Array<{ id: string; cents: number }> {
  if (o.psp === 'STRIPE')
    return cc.services.stripe.refunds(o.pspPaymentId).map((r) => ({ id: r.id, cents: r.amount as number }));
  return cc.services.paypal.refunds(o.pspPaymentId).map((r) => ({
    id: r.id,
    cents: Math.round(Number((r.amount as { value: string }).value) * 100),
  }));
}

/** The return each of the order's PSP refunds names (Stripe's metadata, PayPal's custom_id), by refund id. */
function returnsNamedAtPsp(o: SeededOrder): Record<string, string | undefined> {
  const refunds =
    o.psp === 'STRIPE'
      ? cc.services.stripe
          .refunds(o.pspPaymentId)
          .map((r) => [r.id, (r.metadata as Record<string, string>).return_id] as const)
      : cc.services.paypal.refunds(o.pspPaymentId).map((r) => [r.id, r.custom_id as string] as const);
  return Object.fromEntries(refunds);
}

/**
 * Refund requests the order's PSP received (replays included): PayPal's for the order's capture;
 * Stripe's all (its refund URL does not name the payment), so compare before and after a request.
 */
function pspRefundCalls(o: SeededOrder): number {
  return o.psp === 'STRIPE'
    ? cc.services.stripe.calls('/v1/refunds').filter((c) => c.method === 'POST').length
    : cc.services.paypal.calls(`/v2/payments/captures/${o.pspPaymentId}/refund`).length;
}

const enrollment = (o: SeededOrder, line: number) =>
  cc.services.lms
    .state()
    .enrollments.find((e) => e.username === o.learner.username && e.courseId === o.courseRunKeys[line]);

// ---- Through the gateway ---------------------------------------------------------------------------

const FLOW = /* GraphQL */ `
  id
  kind
  name
  receiver
  status
  idempotencyKey
  startedBy
  orderId
  input
  output
  error {
    code
    message
    details
  }
  steps {
    index
    action
    status
    implementation
    attempt
    input
    output
    error {
      code
      message
    }
  }
`;

interface FlowStep {
  index: number;
  action: string;
  status: string;
  implementation: string | null;
  attempt: number;
  input: Record<string, unknown> | null;
  output: Record<string, unknown> | null;
  error: { code: string; message: string } | null;
}
interface FlowRun {
  id: string;
  kind: 'FILTER' | 'RECEIVER';
  name: string;
  receiver: string | null;
  status: string;
  idempotencyKey: string | null;
  startedBy: Record<string, unknown> | null;
  orderId: string | null;
  input: Record<string, unknown>;
  output: Record<string, unknown> | null;
  error: { code: string; message: string; details: Record<string, unknown> | null } | null;
  steps: FlowStep[];
}

interface GraphQLError {
  message: string;
  extensions?: Record<string, unknown>;
}

async function requestRefund(
  o: SeededOrder,
  lineItemIds: string[],
  options: { token?: string | null; key?: string } = {},
): Promise<{ flow?: FlowRun; error?: GraphQLError }> {
  const token = options.token === undefined ? cc.tokens.staff : (options.token ?? undefined);
  const result = await cc.graphql<{ requestRefund: { flow: FlowRun } }>(
    `mutation Refund($input: RefundRequestInput!, $key: String) {
      requestRefund(input: $input, idempotencyKey: $key) { flow { ${FLOW} } }
    }`,
    { input: { orderId: o.orderId, lineItemIds }, key: options.key },
    token,
  );
  return { flow: result.data?.requestRefund.flow ?? undefined, error: result.errors?.[0] };
}

/** Every flow record of the order, oldest first: the refund flows and the receivers of their signals. */
async function flowsOf(o: SeededOrder): Promise<FlowRun[]> {
  const result = await cc.graphql<{ flows: FlowRun[] }>(
    `query Flows($orderId: String) { flows(orderId: $orderId, limit: 50) { ${FLOW} } }`,
    { orderId: o.orderId },
    cc.tokens.staff,
  );
  expect(result.errors).toBeUndefined();
  return [...result.data!.flows].reverse();
}

const refundFlows = async (o: SeededOrder) =>
  (await flowsOf(o)).filter((f) => f.name === 'order.refund.requested.v1');
const revocations = async (o: SeededOrder) =>
  (await flowsOf(o)).filter(
    (f) => f.name === 'order.refunded.v1' && f.receiver === 'revoke-returned-line-items',
  );

const step = (flow: FlowRun, action: string) => {
  const found = flow.steps.find((s) => s.action === action);
  if (!found) throw new Error(`flow ${flow.id} has no step ${action}`);
  return found;
};

/** The refund flow's record: the Implementation of the PSP that took the payment ran, the other skipped. */
function expectRefundSteps(flow: FlowRun, o: SeededOrder, refundCents: number) {
  const [ran, skipped] =
    o.psp === 'STRIPE'
      ? (['refundStripePayment', 'refundPayPalPayment'] as const)
      : (['refundPayPalPayment', 'refundStripePayment'] as const);
  expect(flow.steps.map((s) => [s.action, s.status])).toEqual([
    ['refundLines', 'COMPLETED'],
    ['createReturn', 'COMPLETED'],
    // A PSP refunds this return: the step settling returns no PSP refunds does not run.
    ['settleReturn', 'SKIPPED'],
    ['refundStripePayment', o.psp === 'STRIPE' ? 'COMPLETED' : 'SKIPPED'],
    ['refundPayPalPayment', o.psp === 'PAYPAL' ? 'COMPLETED' : 'SKIPPED'],
    ['recordRefundTransaction', 'COMPLETED'],
  ]);
  expect(step(flow, 'createReturn')).toMatchObject({
    implementation: 'order-management',
    output: { psp: o.psp, pspPaymentId: o.pspPaymentId, refundAmountCents: refundCents, currency: 'USD' },
  });
  expect(step(flow, ran)).toMatchObject({
    implementation: o.psp === 'STRIPE' ? 'stripe' : 'paypal',
    input: { pspPaymentId: o.pspPaymentId, refundAmountCents: refundCents, orderNumber: o.orderNumber },
    output: { refundedAmountCents: refundCents, refundStatus: 'succeeded' },
  });
  expect(step(flow, skipped)).toMatchObject({ implementation: null, attempt: 0, output: null });
  expect(step(flow, 'recordRefundTransaction')).toMatchObject({
    implementation: 'order-management',
    input: { pspPaymentId: o.pspPaymentId, refundedAmountCents: refundCents, returnId: expect.any(String) },
    output: { recorded: true, orderId: o.orderId },
  });
}

// ---- The flow end to end ---------------------------------------------------------------------------

describe.each(['STRIPE', 'PAYPAL'] as const)('the refund flow of a %s-paid order', (psp) => {
  it.each([
    ['staff', () => cc.tokens.staff, { kind: 'staff', username: DEMO.staff.username }],
    ['the LMS (service token)', () => cc.tokens.lms, { kind: 'service', service: 'lms' }],
  ] as const)(
    'requested by %s: refunds the returned line at the PSP, records it and revokes it',
    async (_, token, startedBy) => {
      const order = seedOrder(psp);
      const lineItemIds = [order.lineItemIds[0]!];
      const callsBefore = pspRefundCalls(order);

      const { flow, error } = await requestRefund(order, lineItemIds, { token: token() });

      expect(error).toBeUndefined();
      expect(flow).toMatchObject({ status: 'COMPLETED', orderId: order.orderId, startedBy });
      expectRefundSteps(flow!, order, 14_900);
      // Exactly one refund at the PSP, for the returned line's share.
      const refunds = pspRefunds(order);
      expect(refunds).toEqual([{ id: flow!.output!.pspRefundId, cents: 14_900 }]);
      expect(pspRefundCalls(order) - callsBefore).toBe(1);
      // The refund transaction on the order's payment, and the return's item Refunded, pointing at it.
      const transactions = refundTransactions(order);
      expect(transactions).toEqual([
        expect.objectContaining({
          id: flow!.output!.transactionId,
          interactionId: refunds[0]!.id,
          amount: expect.objectContaining({ centAmount: 14_900, currencyCode: 'USD' }),
          state: 'Success',
        }),
      ]);
      expect(storedOrder(order).returnInfo).toEqual([
        expect.objectContaining({
          returnTrackingId: flow!.output!.returnId,
          items: [
            expect.objectContaining({
              lineItemId: lineItemIds[0],
              paymentState: 'Refunded',
              custom: expect.objectContaining({ fields: { transactionId: transactions[0]!.id } }),
            }),
          ],
        }),
      ]);
      // The signal's receiver unenrolls the returned course run, and only that one.
      await waitFor(() => expect(enrollment(order, 0)?.isActive).toBe(false), {
        what: 'returned run revoked',
      });
      expect(enrollment(order, 1)?.isActive).toBe(true);
      const [revocation] = await waitFor(async () => {
        const runs = await revocations(order);
        expect(runs.map((r) => r.status)).toEqual(['COMPLETED']);
        return runs;
      });
      expect(revocation).toMatchObject({
        kind: 'RECEIVER',
        receiver: 'revoke-returned-line-items',
        input: {
          orderId: order.orderId,
          lmsUserId: order.learner.lmsUserId,
          username: order.learner.username,
          returnedItems: [
            expect.objectContaining({ lineItemId: lineItemIds[0], courseRunKey: order.courseRunKeys[0] }),
          ],
        },
        steps: [
          expect.objectContaining({ action: 'revokeLineItems', implementation: 'lms', status: 'COMPLETED' }),
        ],
      });
    },
  );

  it('refunds partial returns by the lines’ share of what was paid, never more than was paid', async () => {
    // 150.01 of courses bought for 120.00: the discount is spread over the lines pro rata.
    const order = seedOrder(psp, { prices: [10_000, 5_001], paidCents: 12_000 });

    const first = await requestRefund(order, [order.lineItemIds[1]!]);
    expect(first.flow?.status).toBe('COMPLETED');
    // 12_000 × 5_001 / 15_001 = 4_000.53…, rounded half up.
    expect(step(first.flow!, 'createReturn').output?.refundAmountCents).toBe(4_001);
    expect(pspRefunds(order).map((r) => r.cents)).toEqual([4_001]);

    const second = await requestRefund(order, [order.lineItemIds[0]!]);
    expect(second.flow?.status).toBe('COMPLETED');
    // The return that completes the order gets exactly what is left.
    expect(step(second.flow!, 'createReturn').output?.refundAmountCents).toBe(7_999);

    expect(pspRefunds(order).map((r) => r.cents)).toEqual([7_999, 4_001]);
    expect(refundTransactions(order).map((t) => t.amount.centAmount)).toEqual([4_001, 7_999]);
    const total = refundTransactions(order).reduce((sum, t) => sum + t.amount.centAmount, 0);
    expect(total).toBe(order.paidCents);
    expect(returnItems(order).map((i) => i.paymentState)).toEqual(['Refunded', 'Refunded']);
    await waitFor(() => {
      expect(enrollment(order, 0)?.isActive).toBe(false);
      expect(enrollment(order, 1)?.isActive).toBe(false);
    });
    // Nothing is left to refund: another request for a line is answered as already refunded (the
    // reference's "Refund already created", a success since issue 11) before any PSP call.
    const calls = pspRefundCalls(order);
    const third = await requestRefund(order, [order.lineItemIds[0]!]);
    expect(third.error).toBeUndefined();
    expect(third.flow?.status).toBe('HALTED');
    expect(third.flow?.output).toMatchObject({ alreadyRefunded: true, refundStatus: 'already_refunded' });
    expect(pspRefundCalls(order)).toBe(calls);
    expect(pspRefunds(order)).toHaveLength(2);
  });
});

describe('an already refunded payment is never refunded twice', () => {
  it('the same request with the same idempotency key returns the recorded flow', async () => {
    const order = seedOrder('STRIPE');
    const callsBefore = pspRefundCalls(order);
    const first = await requestRefund(order, [order.lineItemIds[0]!], {
      key: `refund-once-${order.orderId}`,
    });
    expect(first.flow?.status).toBe('COMPLETED');

    const again = await requestRefund(order, [order.lineItemIds[0]!], {
      key: `refund-once-${order.orderId}`,
    });

    expect(again.flow).toEqual(first.flow);
    expect(pspRefunds(order)).toHaveLength(1);
    expect(pspRefundCalls(order) - callsBefore).toBe(1);
    expect(refundTransactions(order)).toHaveLength(1);
    expect(await refundFlows(order)).toHaveLength(1);
  });

  // Was a CONFLICT before issue 11: a retried request (the LMS asking again) is the reference's
  // idempotent "Refund already created". test/flows/refund-semantics.test.ts asserts the answer.
  it('a new request for lines already returned is answered as already refunded, with no PSP call', async () => {
    const order = seedOrder('PAYPAL');
    expect((await requestRefund(order, [order.lineItemIds[0]!])).flow?.status).toBe('COMPLETED');

    const again = await requestRefund(order, [order.lineItemIds[0]!]);

    expect(again.error).toBeUndefined();
    expect(again.flow?.output).toMatchObject({ alreadyRefunded: true, refundStatus: 'already_refunded' });
    const flows = await refundFlows(order);
    expect(flows.map((f) => f.status)).toEqual(['COMPLETED', 'HALTED']);
    expect(flows[1]!.steps.map((s) => [s.action, s.status])).toEqual([
      ['refundLines', 'COMPLETED'],
      ['createReturn', 'COMPLETED'],
      ['settleReturn', 'HALTED'],
    ]);
    expect(pspRefundCalls(order)).toBe(1);
    expect(pspRefunds(order)).toHaveLength(1);
    expect(refundTransactions(order)).toHaveLength(1);
    expect(storedOrder(order).returnInfo).toHaveLength(1);
  });
});

/**
 * Refunds the payment in the PSP's dashboard (all that is left, or `cents`); with `notify: false` its
 * webhook is not delivered.
 */
async function refundInDashboard(
  o: SeededOrder,
  options: { notify?: boolean; cents?: number } = {},
): Promise<string> {
  const { stripe, paypal } = cc.services;
  if (options.notify === false) (o.psp === 'STRIPE' ? stripe : paypal).setWebhook(undefined);
  try {
    return o.psp === 'STRIPE'
      ? (await stripe.refundFromDashboard(o.pspPaymentId, options.cents)).refund.id
      : (await paypal.refundFromDashboard(o.pspPaymentId, options.cents)).refund.id;
  } finally {
    cc.services.connectWebhooks(cc.url);
  }
}

describe('a payment already fully refunded at the PSP', () => {
  it.each(['STRIPE', 'PAYPAL'] as const)(
    '%s, its dashboard refund recorded first: the flow gets that refund, and makes none',
    async (psp) => {
      const order = seedOrder(psp);
      const dashboardRefundId = await refundInDashboard(order);
      await waitFor(() => expect(refundTransactions(order)).toHaveLength(1), {
        what: 'dashboard refund recorded from the webhook',
      });

      const { flow, error } = await requestRefund(order, [order.lineItemIds[0]!]);

      expect(error).toBeUndefined();
      expect(flow?.status).toBe('COMPLETED');
      // Nothing was left to refund: the refund step answers the refund that took the money back.
      expect(step(flow!, 'createReturn').output?.refundAmountCents).toBe(0);
      expect(flow?.output).toMatchObject({ pspRefundId: dashboardRefundId, recorded: false });
      expect(pspRefunds(order)).toEqual([{ id: dashboardRefundId, cents: order.paidCents }]);
      expect(refundTransactions(order)).toEqual([
        expect.objectContaining({
          interactionId: dashboardRefundId,
          amount: expect.objectContaining({ centAmount: order.paidCents }),
        }),
      ]);
      expect(returnItems(order)).toEqual([
        expect.objectContaining({
          paymentState: 'Refunded',
          custom: expect.objectContaining({ fields: { transactionId: refundTransactions(order)[0]!.id } }),
        }),
      ]);
      await waitFor(() => expect(enrollment(order, 0)?.isActive).toBe(false), {
        what: 'returned run revoked',
      });
    },
  );

  it.each(['STRIPE', 'PAYPAL'] as const)(
    '%s, its webhook not processed yet: the PSP answers the existing refund, recorded once',
    async (psp) => {
      const order = seedOrder(psp);
      const dashboardRefundId = await refundInDashboard(order, { notify: false });

      const { flow, error } = await requestRefund(order, [order.lineItemIds[0]!]);

      expect(error).toBeUndefined();
      expect(flow?.status).toBe('COMPLETED');
      expect(step(flow!, 'createReturn').output?.refundAmountCents).toBe(14_900);
      expect(flow?.output).toMatchObject({ pspRefundId: dashboardRefundId, recorded: true });
      expect(pspRefunds(order)).toEqual([{ id: dashboardRefundId, cents: order.paidCents }]);
      expect(refundTransactions(order)).toEqual([
        expect.objectContaining({
          interactionId: dashboardRefundId,
          amount: expect.objectContaining({ centAmount: order.paidCents }),
        }),
      ]);
      expect(returnItems(order).map((i) => i.paymentState)).toEqual(['Refunded']);
    },
  );
});

describe('a payment fully refunded at the PSP by another return and the dashboard', () => {
  it.each(['STRIPE', 'PAYPAL'] as const)(
    '%s: the flow gets the dashboard’s refund, never the other return’s',
    async (psp) => {
      const order = seedOrder(psp);
      // Half the payment refunded in the dashboard, its webhook not processed yet; then the first
      // line's return refunds the other half, its own.
      const dashboardRefundId = await refundInDashboard(order, { notify: false, cents: 14_900 });
      const first = await requestRefund(order, [order.lineItemIds[0]!]);
      expect(first.flow?.status).toBe('COMPLETED');
      const firstRefundId = first.flow!.output!.pspRefundId;
      expect(firstRefundId).not.toBe(dashboardRefundId);

      const { flow, error } = await requestRefund(order, [order.lineItemIds[1]!]);

      expect(error).toBeUndefined();
      expect(flow?.status).toBe('COMPLETED');
      expect(flow?.output).toMatchObject({ pspRefundId: dashboardRefundId, recorded: true });
      expect(pspRefunds(order)).toHaveLength(2);
      const transactionOf = (refundId: unknown) =>
        refundTransactions(order).find((t) => t.interactionId === refundId)!.id;
      expect(storedOrder(order).returnInfo.map((r) => r.items[0]!.custom?.fields.transactionId)).toEqual([
        transactionOf(firstRefundId),
        transactionOf(dashboardRefundId),
      ]);
    },
  );

  it.each(['STRIPE', 'PAYPAL'] as const)(
    '%s, a free line returned after the paid one: nothing was paid for it, so no PSP call and no CONFLICT',
    async (psp) => {
      // Every refund of the payment is the paid line's return's; the free line has no share of it.
      // (The PSP Plugins' CONFLICT for a return every refund of which is another's: test/plugins/psp.test.ts.)
      const order = seedOrder(psp, { prices: [14_900, 0] });
      const paid = await requestRefund(order, [order.lineItemIds[0]!]);
      expect(paid.flow?.status).toBe('COMPLETED');
      const paidRefundId = paid.flow!.output!.pspRefundId;

      const { flow, error } = await requestRefund(order, [order.lineItemIds[1]!]);

      expect(error).toBeUndefined();
      expect(flow?.status).toBe('HALTED');
      expect(step(flow!, 'createReturn').output).toMatchObject({
        settlement: 'NO_PAYMENT',
        refundAmountCents: 0,
      });
      expect(pspRefunds(order)).toHaveLength(1);
      expect(refundTransactions(order).map((t) => t.interactionId)).toEqual([paidRefundId]);
      expect(returnItems(order).map((i) => [i.paymentState, i.custom?.fields.transactionId])).toEqual([
        ['Refunded', refundTransactions(order)[0]!.id],
        ['NotRefunded', undefined],
      ]);
    },
  );
});

describe('two lines of one order refunded at once', () => {
  /**
   * Both flows completed, each with its own return and its own PSP refund of its line's share; the
   * refunds add up to the payment, each names its return at the PSP, each return points at its own.
   */
  function expectOwnShares(o: SeededOrder, flows: FlowRun[], shares: number[]) {
    expect(flows.map((f) => f.status)).toEqual(['COMPLETED', 'COMPLETED']);
    const refunds = pspRefunds(o);
    const named = returnsNamedAtPsp(o);
    for (const [line, flow] of flows.entries()) {
      expect(flow.input.lineItemIds).toEqual([o.lineItemIds[line]]);
      expectRefundSteps(flow, o, shares[line]!);
      const { pspRefundId, returnId, transactionId } = flow.output as Record<string, string>;
      expect(refunds).toContainEqual({ id: pspRefundId, cents: shares[line] });
      expect(named[pspRefundId!]).toBe(returnId);
      const ownReturn = storedOrder(o).returnInfo.find((r) => r.returnTrackingId === returnId)!;
      expect(ownReturn.items).toEqual([
        expect.objectContaining({
          lineItemId: o.lineItemIds[line],
          paymentState: 'Refunded',
          custom: expect.objectContaining({ fields: { transactionId } }),
        }),
      ]);
    }
    expect(refunds).toHaveLength(2);
    expect(new Set(flows.map((f) => f.output!.pspRefundId)).size).toBe(2);
    expect(refunds.reduce((sum, r) => sum + r.cents, 0)).toBe(o.paidCents);
    expect(refundTransactions(o).reduce((sum, t) => sum + t.amount.centAmount, 0)).toBe(o.paidCents);
  }

  const refundEachLineAtOnce = async (o: SeededOrder) => {
    const results = await Promise.all(o.lineItemIds.map((line) => requestRefund(o, [line])));
    expect(results.map((r) => r.error)).toEqual([undefined, undefined]);
    return results.map((r) => r.flow!);
  };

  it('the demo order, by two concurrent requests: both COMPLETED, each refunding its line’s share', async () => {
    const { adaStripe } = DEMO.orders;
    const demo: SeededOrder = {
      orderId: adaStripe.id,
      orderNumber: adaStripe.orderNumber,
      psp: 'STRIPE',
      pspPaymentId: 'pi_demo_ada_0001',
      learner: DEMO.learners.ada,
      lineItemIds: ['li-ada-1-demo', 'li-ada-1-cs50'],
      courseRunKeys: [DEMO.courses.demo.courseId, DEMO.courses.cs50.courseId],
      paidCents: 29_800,
    };

    const flows = await refundEachLineAtOnce(demo);

    expectOwnShares(demo, flows, [14_900, 14_900]);
    await waitFor(() => {
      expect(enrollment(demo, 0)?.isActive).toBe(false);
      expect(enrollment(demo, 1)?.isActive).toBe(false);
    });
  });

  it.each([
    [
      'STRIPE',
      // A 503 in front of Stripe's API, which tells the SDK not to retry: the step's own retry does.
      () =>
        cc.services.stripe.failNext({ method: 'POST', path: '/v1/refunds', status: 503, shouldRetry: false }),
    ],
    [
      'PAYPAL',
      () => cc.services.paypal.failNext({ method: 'POST', path: '/v2/payments/captures/', status: 503 }),
    ],
  ] as const)('%s, the first refund call failing transiently: the same outcome', async (psp, fail) => {
    // 248.00 paid for a 99.00 and a 149.00 course.
    const order = seedOrder(psp, { prices: [9_900, 14_900] });
    fail();

    const flows = await refundEachLineAtOnce(order);

    expectOwnShares(order, flows, [9_900, 14_900]);
    const refundStep = psp === 'STRIPE' ? 'refundStripePayment' : 'refundPayPalPayment';
    expect(flows.map((f) => step(f, refundStep).attempt).sort()).toEqual([1, 2]);
  });
});

// ---- Failures -------------------------------------------------------------------------------------

describe('a PSP rejection', () => {
  it.each([
    [
      'STRIPE',
      'a declined refund',
      'card_declined',
      () => cc.services.stripe.failNext({ method: 'POST', path: '/v1/refunds', status: 402 }),
    ],
    [
      'PAYPAL',
      'an amount over what is left',
      'REFUND_AMOUNT_EXCEEDED',
      () =>
        cc.services.paypal.failNext({
          method: 'POST',
          path: '/v2/payments/captures/',
          status: 422,
          issue: 'REFUND_AMOUNT_EXCEEDED',
        }),
    ],
  ] as const)(
    '%s, %s: CONFLICT, the return NotRefunded, nothing revoked',
    async (psp, _, pspCode, reject) => {
      const order = seedOrder(psp);
      reject();

      const { flow, error } = await requestRefund(order, [order.lineItemIds[0]!]);

      expect(flow).toBeUndefined();
      expect(error?.extensions).toMatchObject({ code: 'CONFLICT', pspCode, flowStatus: 'COMPENSATED' });
      const [record, ...others] = await flowsOf(order);
      expect(others).toEqual([]);
      expect(record).toMatchObject({
        id: error?.extensions?.flowId,
        status: 'COMPENSATED',
        error: { code: 'CONFLICT' },
      });
      const refundStep = psp === 'STRIPE' ? 'refundStripePayment' : 'refundPayPalPayment';
      expect(record!.steps.map((s) => [s.action, s.status])).toEqual([
        ['refundLines', 'COMPLETED'],
        ['createReturn', 'COMPENSATED'],
        ['settleReturn', 'SKIPPED'],
        ...(psp === 'PAYPAL' ? [['refundStripePayment', 'SKIPPED']] : []),
        [refundStep, 'FAILED'],
        ['markReturnNotRefunded', 'COMPLETED'],
      ]);
      expect(step(record!, refundStep).error?.code).toBe('CONFLICT');
      expect(pspRefunds(order)).toEqual([]);
      expect(refundTransactions(order)).toEqual([]);
      expect(returnItems(order).map((i) => i.paymentState)).toEqual(['NotRefunded']);
      // No order.refunded.v1: the course stays. The returned line may be asked for again.
      expect(enrollment(order, 0)?.isActive).toBe(true);
      const retried = await requestRefund(order, [order.lineItemIds[0]!]);
      expect(retried.flow?.status).toBe('COMPLETED');
      expect(pspRefunds(order)).toHaveLength(1);
    },
  );
});

describe('a failure after the money moved', () => {
  it('a transient one of the record step is retried to completion: one refund, one transaction', async () => {
    const order = seedOrder('STRIPE');
    // The order management Service is unavailable for the record step's first three attempts.
    cc.services.orderManagement.failNext(3, 503, '/edx-commerce/payments');

    const { flow, error } = await requestRefund(order, [order.lineItemIds[0]!]);

    expect(error).toBeUndefined();
    expect(flow?.status).toBe('COMPLETED');
    expect(step(flow!, 'refundStripePayment').attempt).toBe(1);
    expect(step(flow!, 'recordRefundTransaction')).toMatchObject({ status: 'COMPLETED', attempt: 4 });
    expect(pspRefunds(order)).toHaveLength(1);
    expect(refundTransactions(order)).toHaveLength(1);
    expect(returnItems(order).map((i) => i.paymentState)).toEqual(['Refunded']);
    await waitFor(() => expect(enrollment(order, 0)?.isActive).toBe(false));
  });

  it('a lasting one: FAILED with the refund step completed, the return not marked NotRefunded', async () => {
    const order = seedOrder('PAYPAL');
    // The order management Service refuses the refund transaction (400: not worth retrying).
    cc.services.orderManagement.failNext(1, 400, '/edx-commerce/payments', 'POST');

    const { error } = await requestRefund(order, [order.lineItemIds[0]!]);

    expect(error?.extensions).toMatchObject({ code: 'CONFLICT', flowStatus: 'FAILED' });
    const [record] = await refundFlows(order);
    expect(record!.status).toBe('FAILED');
    expect(record!.steps.map((s) => [s.action, s.status])).toEqual([
      ['refundLines', 'COMPLETED'],
      ['createReturn', 'COMPLETED'],
      ['settleReturn', 'SKIPPED'],
      ['refundStripePayment', 'SKIPPED'],
      ['refundPayPalPayment', 'COMPLETED'],
      ['recordRefundTransaction', 'FAILED'],
      ['markReturnNotRefunded', 'FAILED'],
    ]);
    const [refund] = pspRefunds(order);
    expect(step(record!, 'markReturnNotRefunded')).toMatchObject({
      input: expect.objectContaining({ pspRefundId: refund!.id }),
      error: { code: 'CONFLICT', message: expect.stringContaining(refund!.id) },
    });
    // The money moved once; the return stays Initial (never NotRefunded, which would allow a second
    // refund of the same lines), and nothing is revoked.
    expect(pspRefunds(order)).toHaveLength(1);
    expect(refundTransactions(order)).toEqual([]);
    expect(returnItems(order).map((i) => i.paymentState)).toEqual(['Initial']);
    // Asked again, the line is answered as already returned (in flight): no second refund.
    const again = await requestRefund(order, [order.lineItemIds[0]!]);
    expect(again.error).toBeUndefined();
    expect(again.flow?.output).toMatchObject({ alreadyRefunded: true, refundStatus: 'already_returned' });
    expect(pspRefunds(order)).toHaveLength(1);
    expect(enrollment(order, 0)?.isActive).toBe(true);
    expect(await revocations(order)).toEqual([]);

    // PayPal announces the refund (as it does every refund): its transaction is then recorded, once.
    const { delivery } = await cc.services.paypal.sendEvent({
      event_type: 'PAYMENT.CAPTURE.REFUNDED',
      resource_type: 'refund',
      resource: cc.services.paypal.refunds(order.pspPaymentId)[0]!,
    });
    expect(delivery.status).toBe(200);
    await waitFor(() => expect(refundTransactions(order).map((t) => t.interactionId)).toEqual([refund!.id]), {
      what: 'the refund recorded from the webhook',
    });
    // The return is left for staff: it stays Initial, its course stays.
    expect(returnItems(order).map((i) => i.paymentState)).toEqual(['Initial']);
  });
});

// ---- The LMS event bus ------------------------------------------------------------------------------

describe('a refund request on the LMS event bus', () => {
  it('runs one refund flow per event, keyed by the event id, even when delivered twice', async () => {
    const order = seedOrder('STRIPE');
    const eventId = randomUUID();
    const request = {
      orderId: order.orderId,
      lineItemIds: [order.lineItemIds[1]!],
      username: order.learner.username,
      eventId,
      reason: 'changed my mind',
    };

    await cc.services.lms.emitRefundRequested(request);
    const [flow] = await waitFor(async () => {
      const flows = await refundFlows(order);
      expect(flows.map((f) => f.status)).toEqual(['COMPLETED']);
      return flows;
    });
    expect(flow).toMatchObject({
      idempotencyKey: `lms-refund:${eventId}`,
      startedBy: { kind: 'service', service: 'lms' },
      input: { orderId: order.orderId, lineItemIds: [order.lineItemIds[1]] },
    });
    expectRefundSteps(flow!, order, 14_900);
    await waitFor(() => expect(enrollment(order, 1)?.isActive).toBe(false), { what: 'returned run revoked' });
    expect(enrollment(order, 0)?.isActive).toBe(true);

    // The same event again (the LMS's producer retried): the consumer finds the recorded flow.
    const { messageId } = await cc.services.lms.emitRefundRequested(request);
    await waitFor(async () => expect(await pendingOrUnread(messageId)).toBe(false), {
      what: 'the redelivered event consumed',
    });
    expect(await refundFlows(order)).toHaveLength(1);
    expect(pspRefunds(order)).toHaveLength(1);
    expect(refundTransactions(order)).toHaveLength(1);
    expect(returnItems(order)).toHaveLength(1);
  });
});

/** The consumer group the lms plugin reads the event bus with (LMS_EVENT_BUS_GROUP's default). */
const CONSUMER_GROUP = 'commerce-coordinator';

const streamIdAtLeast = (id: string, than: string) => {
  const [ms, seqNo] = id.split('-').map(BigInt) as [bigint, bigint];
  const [thanMs, thanSeq] = than.split('-').map(BigInt) as [bigint, bigint];
  return ms > thanMs || (ms === thanMs && seqNo >= thanSeq);
};

/** Whether the consumer group has yet to read or acknowledge the stream entry `messageId`. */
async function pendingOrUnread(messageId: string): Promise<boolean> {
  const redis = await adminRedis(cc.redisUrl);
  try {
    const groups = (await redis.call('XINFO', 'GROUPS', cc.eventStream)) as unknown[][];
    const group = groups
      .map((fields) => Object.fromEntries(fields.flatMap((v, i) => (i % 2 ? [] : [[v, fields[i + 1]]]))))
      .find((g) => g.name === CONSUMER_GROUP);
    if (!group || !streamIdAtLeast(String(group['last-delivered-id']), messageId)) return true;
    const pending = (await redis.call('XPENDING', cc.eventStream, CONSUMER_GROUP, '-', '+', 100)) as Array<
      [string]
    >;
    return pending.some(([id]) => id === messageId);
  } finally {
    await redis.close();
  }
}

// ---- Authorisation -----------------------------------------------------------------------------

describe('who may ask for a refund', () => {
  it('a learner, for another learner’s order: FORBIDDEN, and nothing changes', async () => {
    const order = seedOrder('STRIPE', { learner: 'bob' });

    const { flow, error } = await requestRefund(order, [order.lineItemIds[0]!], { token: cc.tokens.ada });

    expect(flow).toBeUndefined();
    expect(error?.extensions?.code).toBe('FORBIDDEN');
    expect(storedOrder(order).returnInfo).toEqual([]);
    expect(storedOrder(order).version).toBe(1);
    expect(pspRefunds(order)).toEqual([]);
    expect(enrollment(order, 0)?.isActive).toBe(true);
  });

  it('anonymous: UNAUTHENTICATED, and nothing changes', async () => {
    const order = seedOrder('PAYPAL');

    const { flow, error } = await requestRefund(order, [order.lineItemIds[0]!], { token: null });

    expect(flow).toBeUndefined();
    expect(error?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(storedOrder(order).returnInfo).toEqual([]);
    expect(pspRefunds(order)).toEqual([]);
    expect(enrollment(order, 0)?.isActive).toBe(true);
  });
});
