import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { seedPaidOrder, type PaidOrder } from '../support/orders.js';
import { waitFor } from '../support/wait.js';

/**
 * The refund flow's exact semantics (reference §5.6, §5.7), end to end through the gateway: lines
 * already returned are answered, not refunded again; a request naming returned and new lines refunds
 * the new ones; a return of an order nothing was paid for ends NotRefunded with no PSP call and no
 * revoke; a mobile store's refund settles its return without a PSP call; and a return made in the order
 * management Service (its ReturnInfoAdded event) is refunded once, as that return.
 */

let cc: CommerceCoordinator;

beforeAll(async () => {
  cc = await startCommerceCoordinator('refund-semantics');
});

afterAll(async () => {
  await cc?.stop();
});

// ---- The stand-ins' own state ------------------------------------------------------------------------

const store = () => cc.services.orderManagement.store;
const storedOrder = (orderId: string) => store().orders.get(orderId)!;
const storedPayment = (orderId: string) =>
  store().payments.get(storedOrder(orderId).paymentInfo!.payments[0]!.id)!;
const refundTransactions = (orderId: string) =>
  storedPayment(orderId).transactions.filter((t) => t.type === 'Refund');
const returnItems = (orderId: string) => storedOrder(orderId).returnInfo.flatMap((r) => r.items);

/** Refunds the PSPs made of the order's payment, as cents. */
function pspRefunds(o: PaidOrder): number[] {
  if (o.psp === 'STRIPE') return cc.services.stripe.refunds(o.pspPaymentId).map((r) => r.amount as number);
  return cc.services.paypal
    .refunds(o.pspPaymentId)
    .map((r) => Math.round(Number((r.amount as { value: string }).value) * 100));
}

/** Every refund request either PSP received. */
const pspRefundCalls = () =>
  cc.services.stripe.calls('/v1/refunds').filter((c) => c.method === 'POST').length +
  cc.services.paypal.calls('/v2/payments/captures/').filter((c) => c.method === 'POST').length;

const enrolled = (username: string, courseId: string) =>
  cc.services.lms.state().enrollments.find((e) => e.username === username && e.courseId === courseId)
    ?.isActive;

// ---- Through the gateway -----------------------------------------------------------------------------

interface RefundAnswer {
  returnId: string | null;
  refundAmountCents: number | null;
  pspRefundId: string | null;
  refundStatus: string | null;
  alreadyRefunded: boolean | null;
  alreadyReturnedItems: Array<{
    lineItemId: string;
    returnId: string;
    paymentState: string;
    transactionId: string | null;
  }> | null;
  transactionId: string | null;
  flow: {
    id: string;
    status: string;
    output: Record<string, unknown> | null;
    steps: Array<{ action: string; status: string }>;
  };
}

async function requestRefund(
  orderId: string,
  lineItemIds: string[],
  options: { key?: string; returnId?: string } = {},
): Promise<{ answer?: RefundAnswer; error?: { message: string; extensions?: Record<string, unknown> } }> {
  const result = await cc.graphql<{ requestRefund: RefundAnswer }>(
    `mutation Refund($input: RefundRequestInput!, $key: String) {
      requestRefund(input: $input, idempotencyKey: $key) {
        returnId refundAmountCents pspRefundId refundStatus alreadyRefunded transactionId
        alreadyReturnedItems { lineItemId returnId paymentState transactionId }
        flow { id status output steps { action status } }
      }
    }`,
    {
      input: { orderId, lineItemIds, ...(options.returnId ? { returnId: options.returnId } : {}) },
      key: options.key,
    },
    cc.tokens.staff,
  );
  return { answer: result.data?.requestRefund ?? undefined, error: result.errors?.[0] };
}

interface FlowRecord {
  id: string;
  name: string;
  receiver: string | null;
  status: string;
  input: { returnedItems?: Array<{ lineItemId: string }> };
}

async function flowsOf(orderId: string): Promise<FlowRecord[]> {
  const result = await cc.graphql<{ flows: FlowRecord[] }>(
    'query ($orderId: String) { flows(orderId: $orderId, limit: 50) { id name receiver status input } }',
    { orderId },
    cc.tokens.staff,
  );
  expect(result.errors).toBeUndefined();
  return [...result.data!.flows].reverse();
}
const revocations = async (orderId: string) =>
  (await flowsOf(orderId)).filter((f) => f.receiver === 'revoke-returned-line-items');

const stepsOf = (answer: RefundAnswer) => answer.flow.steps.map((s) => [s.action, s.status]);

/** The steps of a flow that settled its return itself and halted before any PSP step. */
const SETTLED_STEPS = [
  ['refundLines', 'COMPLETED'],
  ['createReturn', 'COMPLETED'],
  ['settleReturn', 'HALTED'],
];

// ---- 1. Lines already returned ---------------------------------------------------------------------------

describe('a refund request for lines already returned', () => {
  it.each(['STRIPE', 'PAYPAL'] as const)(
    '%s, refunded: a success that says so, naming the return and its transaction, no PSP call',
    async (psp) => {
      const order = seedPaidOrder(cc, psp);
      const first = await requestRefund(order.orderId, [order.lineItemIds[0]!]);
      expect(first.answer?.flow.status).toBe('COMPLETED');
      await waitFor(async () => expect(await revocations(order.orderId)).toHaveLength(1));
      const calls = pspRefundCalls();

      // A retry with a new idempotency key (the LMS asked again).
      const { answer, error } = await requestRefund(order.orderId, [order.lineItemIds[0]!], {
        key: `again-${randomUUID()}`,
      });

      expect(error).toBeUndefined();
      const [transaction] = refundTransactions(order.orderId);
      expect(answer).toMatchObject({
        alreadyRefunded: true,
        refundStatus: 'already_refunded',
        refundAmountCents: 0,
        pspRefundId: null,
        returnId: first.answer!.returnId,
        transactionId: transaction!.id,
        alreadyReturnedItems: [
          {
            lineItemId: order.lineItemIds[0],
            returnId: first.answer!.returnId,
            paymentState: 'REFUNDED',
            transactionId: transaction!.id,
          },
        ],
      });
      expect(answer!.flow.status).toBe('HALTED');
      expect(stepsOf(answer!)).toEqual(SETTLED_STEPS);
      expect(pspRefundCalls()).toBe(calls);
      expect(pspRefunds(order)).toEqual([14_900]);
      expect(refundTransactions(order.orderId)).toHaveLength(1);
      expect(storedOrder(order.orderId).returnInfo).toHaveLength(1);
      // No second order.refunded.v1: the line was revoked once, by the flow that refunded it.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await revocations(order.orderId)).toHaveLength(1);
    },
  );

  it('two concurrent requests for the same line: exactly one PSP refund, both succeed', async () => {
    const order = seedPaidOrder(cc, 'STRIPE');
    const calls = pspRefundCalls();

    const results = await Promise.all(
      ['a', 'b'].map((k) =>
        requestRefund(order.orderId, [order.lineItemIds[1]!], { key: `${k}-${order.orderId}` }),
      ),
    );

    expect(results.map((r) => r.error)).toEqual([undefined, undefined]);
    const statuses = results.map((r) => r.answer!.flow.status).sort();
    expect(statuses).toEqual(['COMPLETED', 'HALTED']);
    const refunded = results.find((r) => r.answer!.flow.status === 'COMPLETED')!.answer!;
    const answered = results.find((r) => r.answer!.flow.status === 'HALTED')!.answer!;
    expect(answered).toMatchObject({
      alreadyRefunded: true,
      refundStatus: 'already_refunded',
      returnId: refunded.returnId,
      transactionId: refunded.transactionId,
    });
    expect(pspRefundCalls() - calls).toBe(1);
    expect(pspRefunds(order)).toEqual([9_900]);
    expect(refundTransactions(order.orderId)).toHaveLength(1);
    expect(returnItems(order.orderId)).toHaveLength(1);
  });

  it('in flight (refunded at the PSP, not yet recorded): answered as already returned, no second refund', async () => {
    const order = seedPaidOrder(cc, 'PAYPAL');
    // The order management Service refuses the refund transaction: the flow FAILs after the money moved.
    cc.services.orderManagement.failNext(1, 400, '/edx-commerce/payments', 'POST');
    const failed = await requestRefund(order.orderId, [order.lineItemIds[0]!]);
    expect(failed.error?.extensions).toMatchObject({ code: 'CONFLICT', flowStatus: 'FAILED' });
    const calls = pspRefundCalls();

    const { answer, error } = await requestRefund(order.orderId, [order.lineItemIds[0]!]);

    expect(error).toBeUndefined();
    expect(answer).toMatchObject({
      alreadyRefunded: true,
      refundStatus: 'already_returned',
      transactionId: null,
      alreadyReturnedItems: [
        { lineItemId: order.lineItemIds[0], paymentState: 'INITIAL', transactionId: null },
      ],
    });
    expect(pspRefundCalls()).toBe(calls);
    expect(pspRefunds(order)).toEqual([14_900]);
    expect(returnItems(order.orderId).map((i) => i.paymentState)).toEqual(['Initial']);
  });
});

// ---- 2. Returned and new lines together ------------------------------------------------------------------

describe('a request naming a refunded line and new ones', () => {
  it.each(['STRIPE', 'PAYPAL'] as const)(
    '%s: refunds only the new lines’ share, keeps the old line’s transaction, answers both',
    async (psp) => {
      const order = seedPaidOrder(cc, psp, { prices: [10_000, 5_000, 5_000], paidCents: 16_000 });
      const first = await requestRefund(order.orderId, [order.lineItemIds[0]!]);
      expect(first.answer?.flow.status).toBe('COMPLETED');
      const [oldTransaction] = refundTransactions(order.orderId);

      const { answer, error } = await requestRefund(order.orderId, order.lineItemIds);

      expect(error).toBeUndefined();
      expect(answer?.flow.status).toBe('COMPLETED');
      // 16_000 × 5_000 / 20_000 = 4_000 a line.
      expect(answer).toMatchObject({
        alreadyRefunded: false,
        refundAmountCents: 8_000,
        refundStatus: 'succeeded',
        alreadyReturnedItems: [
          {
            lineItemId: order.lineItemIds[0],
            returnId: first.answer!.returnId,
            paymentState: 'REFUNDED',
            transactionId: oldTransaction!.id,
          },
        ],
      });
      expect(answer!.returnId).not.toBe(first.answer!.returnId);
      expect(pspRefunds(order).sort()).toEqual([8_000, 8_000]);
      const returns = storedOrder(order.orderId).returnInfo;
      expect(returns).toHaveLength(2);
      expect(
        returns[0]!.items.map((i) => [i.lineItemId, i.paymentState, i.custom?.fields.transactionId]),
      ).toEqual([[order.lineItemIds[0], 'Refunded', oldTransaction!.id]]);
      const newTransaction = refundTransactions(order.orderId).find((t) => t.id !== oldTransaction!.id)!;
      expect(newTransaction.amount.centAmount).toBe(8_000);
      expect(
        returns[1]!.items.map((i) => [i.lineItemId, i.paymentState, i.custom?.fields.transactionId]),
      ).toEqual([
        [order.lineItemIds[1], 'Refunded', newTransaction.id],
        [order.lineItemIds[2], 'Refunded', newTransaction.id],
      ]);
      // The new flow revokes the new lines only.
      const runs = await waitFor(async () => {
        const found = await revocations(order.orderId);
        expect(found.map((f) => f.status)).toEqual(['COMPLETED', 'COMPLETED']);
        return found;
      });
      expect(runs[1]!.input.returnedItems?.map((i) => i.lineItemId)).toEqual(order.lineItemIds.slice(1));
    },
  );
});

// ---- 3. Nothing paid ---------------------------------------------------------------------------------

/** An order with no payment (an enrollment code, a zero total), its line fulfilled and enrolled. */
function seedUnpaidOrder(prices: number[]) {
  const learner = DEMO.learners.bob;
  const courseRunKeys = prices.map(() => `course-v1:FreeX+${randomUUID().slice(0, 8)}+2026`);
  cc.services.lms.seed({
    courses: courseRunKeys.map((courseId) => ({ courseId, name: courseId })),
    enrollments: courseRunKeys.map((courseId) => ({
      username: learner.username,
      courseId,
      mode: 'verified',
      isActive: true,
    })),
  });
  const [order] = cc.services.orderManagement.seed({
    orders: [
      {
        orderNumber: `2U-2026${String(Math.floor(Math.random() * 900_000) + 100_000)}`,
        customer: { lmsUserId: learner.lmsUserId, username: learner.username, email: learner.email },
        lineItems: prices.map((priceCents, i) => ({
          title: `Free ${i}`,
          priceCents,
          courseRunKey: courseRunKeys[i],
          state: 'SUCCESS' as const,
        })),
      },
    ],
  }).orders;
  return { order: order!, learner, courseRunKeys };
}

describe('a return of an order with no PSP payment', () => {
  it.each([
    ['a zero total', [0]],
    ['an enrollment code', [14_900]],
  ])('%s: the return ends NotRefunded, no PSP call, nothing revoked', async (_, prices) => {
    const { order, learner, courseRunKeys } = seedUnpaidOrder(prices);
    const calls = pspRefundCalls();

    const { answer, error } = await requestRefund(order.id, [order.lineItems[0]!.id]);

    expect(error).toBeUndefined();
    expect(answer).toMatchObject({
      alreadyRefunded: false,
      refundStatus: 'not_refunded',
      refundAmountCents: 0,
      pspRefundId: null,
      alreadyReturnedItems: [],
    });
    expect(answer!.flow.status).toBe('HALTED');
    expect(stepsOf(answer!)).toEqual(SETTLED_STEPS);
    expect(storedOrder(order.id).returnInfo).toEqual([
      expect.objectContaining({
        returnTrackingId: answer!.returnId,
        items: [expect.objectContaining({ lineItemId: order.lineItems[0]!.id, paymentState: 'NotRefunded' })],
      }),
    ]);
    expect(pspRefundCalls()).toBe(calls);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await revocations(order.id)).toEqual([]);
    expect(enrolled(learner.username, courseRunKeys[0]!)).toBe(true);
  });
});

// ---- 4. Mobile in-app purchases ------------------------------------------------------------------------

/**
 * An order paid in a mobile store, as the mobile create-order flow writes it (common format): payment
 * interface ios_iap_edx / android_iap_edx, interfaceId the store's transaction id, a Charge for it,
 * the order's custom field mobileOrder; with `storeRefund`, the Refund transaction a store refund
 * notification recorded.
 */
function seedMobileOrder(psp: 'IOS_IAP' | 'ANDROID_IAP', options: { storeRefund?: boolean } = {}) {
  const order = seedPaidOrder(cc, 'STRIPE', { prices: [4_999] });
  const transactionId = psp === 'IOS_IAP' ? `2000000${Date.now()}` : `GPA.3398-${randomUUID().slice(0, 8)}`;
  const payment = storedPayment(order.orderId);
  payment.interfaceId = transactionId;
  payment.key = transactionId.replace(/[^A-Za-z0-9_-]/g, '_');
  payment.paymentMethodInfo = {
    ...payment.paymentMethodInfo,
    method: psp === 'IOS_IAP' ? 'ios_iap' : 'android_iap',
    paymentInterface: psp === 'IOS_IAP' ? 'ios_iap_edx' : 'android_iap_edx',
  } as typeof payment.paymentMethodInfo;
  payment.transactions[0]!.interactionId = transactionId;
  storedOrder(order.orderId).custom!.fields.mobileOrder = true;
  if (options.storeRefund)
    store().update('payments', payment.id, payment.version, [
      {
        action: 'addTransaction',
        transaction: {
          type: 'Refund',
          amount: { centAmount: 4_999, currencyCode: 'USD' },
          interactionId: transactionId,
          state: 'Success',
          timestamp: new Date().toISOString(),
        },
      },
    ]);
  return { ...order, transactionId };
}

describe('a refund request on a mobile order', () => {
  it.each(['IOS_IAP', 'ANDROID_IAP'] as const)(
    '%s, refunded by the store: the return is Refunded against that refund transaction, no PSP call',
    async (psp) => {
      const order = seedMobileOrder(psp, { storeRefund: true });
      const [storeRefund] = refundTransactions(order.orderId);
      const calls = pspRefundCalls();

      const { answer, error } = await requestRefund(order.orderId, [order.lineItemIds[0]!]);

      expect(error).toBeUndefined();
      expect(answer).toMatchObject({
        alreadyRefunded: false,
        refundStatus: 'refunded_by_store',
        transactionId: storeRefund!.id,
        refundAmountCents: 4_999,
        pspRefundId: null,
      });
      expect(answer!.flow.status).toBe('HALTED');
      expect(stepsOf(answer!)).toEqual(SETTLED_STEPS);
      expect(answer!.flow.output).toMatchObject({ psp, pspPaymentId: order.transactionId });
      expect(returnItems(order.orderId)).toEqual([
        expect.objectContaining({
          paymentState: 'Refunded',
          custom: expect.objectContaining({ fields: { transactionId: storeRefund!.id } }),
        }),
      ]);
      expect(refundTransactions(order.orderId)).toHaveLength(1);
      expect(pspRefundCalls()).toBe(calls);
      // Revoked by the store's refund notification, not here.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await revocations(order.orderId)).toEqual([]);

      // The order's payment reads as the store's, without an error from a PSP.
      const read = await cc.graphql<{ order: { payment: { psp: string; pspPaymentId: string } } }>(
        'query ($id: ID!) { order(id: $id) { payment { psp pspPaymentId paypal { status } stripe { status } } } }',
        { id: order.orderId },
        cc.tokens.staff,
      );
      expect(read.errors).toBeUndefined();
      // Neither PSP Plugin asks its PSP about a store's transaction.
      expect(read.data?.order.payment).toEqual({
        psp,
        pspPaymentId: order.transactionId,
        paypal: null,
        stripe: null,
      });
    },
  );

  it('not refunded by the store yet: the return stays Initial until the store’s refund is recorded; no PSP call', async () => {
    const order = seedMobileOrder('ANDROID_IAP');
    const calls = pspRefundCalls();

    const { answer, error } = await requestRefund(order.orderId, [order.lineItemIds[0]!]);

    expect(error).toBeUndefined();
    expect(answer).toMatchObject({ refundStatus: 'awaiting_store_refund', transactionId: null });
    expect(answer!.flow.status).toBe('HALTED');
    expect(returnItems(order.orderId).map((i) => i.paymentState)).toEqual(['Initial']);
    expect(refundTransactions(order.orderId)).toEqual([]);
    expect(pspRefundCalls()).toBe(calls);
    // The line is taken: asking again is answered, not returned twice.
    const again = await requestRefund(order.orderId, [order.lineItemIds[0]!]);
    expect(again.answer).toMatchObject({ alreadyRefunded: true, refundStatus: 'already_returned' });
    expect(returnItems(order.orderId)).toHaveLength(1);

    // The store's refund notification records the refund (the payment.refunded.v1 receiver's Action):
    // the return awaiting it is Refunded against it.
    const recorded = await cc.graphql<{
      recordRefundTransaction: { transactionId: string; recorded: boolean };
    }>(
      `mutation ($input: RecordRefundTransactionInput!) {
        recordRefundTransaction(input: $input) { transactionId recorded }
      }`,
      {
        input: {
          pspPaymentId: order.transactionId,
          pspRefundId: order.transactionId,
          refundedAmountCents: 4_999,
          currency: 'USD',
          refundStatus: 'succeeded',
          refundCreatedAt: new Date().toISOString(),
        },
      },
      cc.tokens.staff,
    );
    expect(recorded.errors).toBeUndefined();
    const { transactionId } = recorded.data!.recordRefundTransaction;
    expect(returnItems(order.orderId)).toEqual([
      expect.objectContaining({
        paymentState: 'Refunded',
        custom: expect.objectContaining({ fields: { transactionId } }),
      }),
    ]);
  });
});

// ---- 5. The order management Service's ReturnInfoAdded event ----------------------------------------------

interface RouteAnswer {
  status: number;
  body: { flowId?: string; status?: string; code?: string; message?: string };
}

async function postReturned(
  body: unknown,
  token: string | null = cc.tokens.orderManagement,
): Promise<RouteAnswer> {
  const res = await cc.request('/order-management/returned', {
    method: 'POST',
    ...(token ? { token } : {}),
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as RouteAnswer['body'] };
}

/** The ReturnInfoAdded message of the order's return `returnIndex`, as commercetools' subscription sends it. */
function returnInfoAdded(orderId: string, returnIndex: number, id: string = randomUUID()) {
  const info = storedOrder(orderId).returnInfo[returnIndex]!;
  return {
    id,
    'detail-type': 'ReturnInfoAdded',
    source: 'commercetools',
    detail: {
      id: randomUUID(),
      type: 'ReturnInfoAdded',
      resource: { typeId: 'order', id: orderId },
      returnInfo: info,
    },
  };
}

/** A return staff add in the Merchant Center: no tracking id of the Coordinator's. */
function returnInMerchantCenter(orderId: string, lineItemIds: string[]) {
  const order = storedOrder(orderId);
  store().update('orders', orderId, order.version, [
    {
      action: 'addReturnInfo',
      returnDate: new Date().toISOString(),
      items: lineItemIds.map((lineItemId) => ({ quantity: 1, lineItemId, shipmentState: 'Returned' })),
    },
  ]);
  return storedOrder(orderId).returnInfo.length - 1;
}

describe('POST /order-management/returned (ReturnInfoAdded)', () => {
  it('a Merchant Center return is refunded as that return, once, however often it is announced', async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [9_900, 14_900] });
    const index = returnInMerchantCenter(order.orderId, [order.lineItemIds[1]!]);
    const event = returnInfoAdded(order.orderId, index);

    const first = await postReturned(event);

    expect(first.status).toBe(200);
    expect(first.body.status).toBe('COMPLETED');
    expect(pspRefunds(order)).toEqual([14_900]);
    const [transaction] = refundTransactions(order.orderId);
    // The Merchant Center's return, adopted: no second return.
    expect(storedOrder(order.orderId).returnInfo).toEqual([
      expect.objectContaining({
        items: [
          expect.objectContaining({
            lineItemId: order.lineItemIds[1],
            paymentState: 'Refunded',
            custom: expect.objectContaining({ fields: { transactionId: transaction!.id } }),
          }),
        ],
      }),
    ]);
    await waitFor(() => expect(enrolled(order.learner.username, order.courseRunKeys[1]!)).toBe(false));
    expect(enrolled(order.learner.username, order.courseRunKeys[0]!)).toBe(true);

    // Redelivered, and announced again under another event id: the same flow, nothing refunded again.
    const redelivered = await postReturned(event);
    const another = await postReturned(returnInfoAdded(order.orderId, index));
    expect([redelivered.status, another.status]).toEqual([200, 200]);
    expect([redelivered.body.flowId, another.body.flowId]).toEqual([first.body.flowId, first.body.flowId]);
    expect(pspRefunds(order)).toEqual([14_900]);
    expect(refundTransactions(order.orderId)).toHaveLength(1);
    expect((await flowsOf(order.orderId)).filter((f) => f.name === 'order.refund.requested.v1')).toHaveLength(
      1,
    );
  });

  it('the same return announced by two events at once: one flow, one PSP refund', async () => {
    const order = seedPaidOrder(cc, 'PAYPAL');
    const index = returnInMerchantCenter(order.orderId, [order.lineItemIds[0]!]);

    const answers = await Promise.all([
      postReturned(returnInfoAdded(order.orderId, index)),
      postReturned(returnInfoAdded(order.orderId, index)),
    ]);

    // One ran it; the other found it running (202) or answered its record.
    for (const answer of answers) expect([200, 202]).toContain(answer.status);
    expect(answers.some((a) => a.status === 200 && a.body.status === 'COMPLETED')).toBe(true);
    await waitFor(async () => {
      const flows = (await flowsOf(order.orderId)).filter((f) => f.name === 'order.refund.requested.v1');
      expect(flows.map((f) => f.status)).toEqual(['COMPLETED']);
    });
    expect(pspRefunds(order)).toEqual([14_900]);
    expect(refundTransactions(order.orderId)).toHaveLength(1);
    expect(returnItems(order.orderId).map((i) => i.paymentState)).toEqual(['Refunded']);
  });

  it('a Merchant Center return of a line another return refunded reuses that refund, no PSP call', async () => {
    const order = seedPaidOrder(cc, 'PAYPAL');
    const refunded = await requestRefund(order.orderId, [order.lineItemIds[0]!]);
    expect(refunded.answer?.flow.status).toBe('COMPLETED');
    const index = returnInMerchantCenter(order.orderId, [order.lineItemIds[0]!]);
    const calls = pspRefundCalls();

    const { status, body } = await postReturned(returnInfoAdded(order.orderId, index));

    expect(status).toBe(200);
    expect(body.status).toBe('HALTED');
    expect(pspRefundCalls()).toBe(calls);
    const [transaction] = refundTransactions(order.orderId);
    expect(returnItems(order.orderId).map((i) => [i.paymentState, i.custom?.fields.transactionId])).toEqual([
      ['Refunded', transaction!.id],
      ['Refunded', transaction!.id],
    ]);
  });

  it('the Coordinator’s own return announced back: answered, never refunded a second time', async () => {
    const order = seedPaidOrder(cc, 'STRIPE');
    const refunded = await requestRefund(order.orderId, [order.lineItemIds[0]!]);
    expect(refunded.answer?.flow.status).toBe('COMPLETED');
    const calls = pspRefundCalls();

    const { status, body } = await postReturned(returnInfoAdded(order.orderId, 0));

    expect(status).toBe(200);
    expect(body.status).toBe('HALTED');
    expect(pspRefundCalls()).toBe(calls);
    expect(pspRefunds(order)).toEqual([14_900]);
    expect(storedOrder(order.orderId).returnInfo).toHaveLength(1);
  });

  it.each([
    ['not JSON', '{'],
    ['no returnInfo', { id: 'evt-1', detail: { id: 'm-1', resource: { typeId: 'order', id: 'o-1' } } }],
    [
      'no return items',
      {
        id: 'evt-2',
        detail: { id: 'm-2', resource: { typeId: 'order', id: 'o-1' }, returnInfo: { items: [] } },
      },
    ],
    ['no event id', { detail: { id: 'm-3', returnInfo: { items: [{ id: 'ri', lineItemId: 'li' }] } } }],
  ])('400 on a bad envelope: %s, nothing run', async (_, body) => {
    const { status, body: answer } = await postReturned(body);
    expect(status).toBe(400);
    expect(answer.code).toBe('BAD_USER_INPUT');
  });

  it('Services and staff only: 401 anonymous, 403 a learner; nothing refunded', async () => {
    const order = seedPaidOrder(cc, 'STRIPE');
    const index = returnInMerchantCenter(order.orderId, [order.lineItemIds[0]!]);
    const event = returnInfoAdded(order.orderId, index);
    expect((await postReturned(event, null)).status).toBe(401);
    expect((await postReturned(event, cc.tokens.ada)).status).toBe(403);
    expect(pspRefunds(order)).toEqual([]);
    expect(returnItems(order.orderId).map((i) => i.paymentState)).toEqual(['Initial']);
  });

  it('an unknown order: 404, nothing run', async () => {
    const { status, body } = await postReturned({
      id: randomUUID(),
      detail: {
        id: randomUUID(),
        resource: { typeId: 'order', id: randomUUID() },
        returnInfo: { items: [{ id: randomUUID(), lineItemId: 'li-x' }] },
      },
    });
    expect(status).toBe(404);
    expect(body.code).toBe('NOT_FOUND');
  });
});
