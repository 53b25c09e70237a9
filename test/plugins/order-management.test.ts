import type { ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import { executeOrderManagement, useOrderManagementStandIn } from '../support/order-management.js';
import { domainCodeOf } from '../../gateway/errors.js';
import { silentLogger } from '../../gateway/log.js';
import type { FilterResult, PluginRuntime, Principal, RouteRequest } from '@commerce-coordinator/plugin-sdk';
import type { SeedOrder } from '../../services/order-management/server.js';
import plugin from '../../subgraphs/order-management/index.js';

// The plugin's schema executed as the gateway executes it, against the stand-in over real HTTP.

const standIn = useOrderManagementStandIn();

const service: Principal = { kind: 'service', subject: 'lms-client', service: 'lms' };
const staff: Principal = { kind: 'staff', subject: 'staff-1', username: 'grace' };
const learner = (lmsUserId: number): Principal => ({
  kind: 'learner',
  subject: `learner-${lmsUserId}`,
  lmsUserId,
  username: `learner${lmsUserId}`,
});

interface CallOptions {
  principal?: Principal | null;
  key?: string;
  flowId?: string;
}

let keys = 0;
async function run<T = Record<string, unknown>>(
  document: string,
  variables: Record<string, unknown>,
  options: CallOptions = {},
): Promise<ExecutionResult<T>> {
  const principal = options.principal === undefined ? service : options.principal;
  const identity = {
    principal: principal ?? undefined,
    idempotencyKey: options.key ?? `test-key-${++keys}`,
    flowId: options.flowId,
  };
  return executeOrderManagement<T>(document, variables, identity);
}

const codeOf = (result: ExecutionResult) => result.errors?.[0]?.extensions?.code;

let learnerIds = 5000;
let orderNumbers = 0;
function seedOrder(overrides: Partial<SeedOrder> = {}) {
  const lmsUserId = overrides.customer?.lmsUserId ?? ++learnerIds;
  const [order] = standIn.om.seed({
    orders: [
      {
        orderNumber: `2U-2026${String(++orderNumbers).padStart(6, '0')}`,
        customer: {
          lmsUserId,
          username: `learner${lmsUserId}`,
          email: `learner${lmsUserId}@example.com`,
          firstName: 'Ada',
          lastName: 'Lovelace',
        },
        lineItems: [{ title: 'Python 101', priceCents: 4900, courseRunKey: 'course-v1:edX+PY101+2026' }],
        payment: { psp: 'STRIPE', pspPaymentId: `pi_${orderNumbers}` },
        ...overrides,
      },
    ],
  }).orders;
  return order!;
}
const lineIds = (order: { lineItems: Array<{ id: string }> }) => order.lineItems.map((l) => l.id);
const stored = (id: string) => standIn.om.store.orders.get(id)!;
const storedState = (orderId: string, lineId: string) =>
  standIn.om.store.states.get(stored(orderId).lineItems.find((l) => l.id === lineId)!.state[0]!.state.id)!
    .key;

const CREATE_RETURN = /* GraphQL */ `
  mutation ($input: CreateReturnInput!) {
    createReturn(input: $input) {
      returnId
      orderNumber
      lmsUserId
      username
      psp
      pspPaymentId
      refundAmountCents
      currency
      returnedItems {
        lineItemId
        kind
        courseRunKey
        bundleKey
        entitlementUuid
      }
    }
  }
`;
type CreateReturn = {
  createReturn: {
    returnId: string;
    refundAmountCents: number;
    psp: string | null;
    pspPaymentId: string | null;
  } & Record<string, unknown>;
};
const RECORD_REFUND = /* GraphQL */ `
  mutation ($input: RecordRefundTransactionInput!) {
    recordRefundTransaction(input: $input) {
      transactionId
      orderId
      recorded
    }
  }
`;
type RecordRefund = {
  recordRefundTransaction: { transactionId: string; orderId: string; recorded: boolean };
};
const refundInput = (
  pspPaymentId: string,
  pspRefundId: string,
  cents: number,
  extra: Record<string, unknown> = {},
) => ({
  pspPaymentId,
  pspRefundId,
  refundedAmountCents: cents,
  currency: 'USD',
  refundStatus: 'succeeded',
  refundCreatedAt: '2026-03-01T10:00:00.000Z',
  ...extra,
});
const MARK_NOT_REFUNDED = /* GraphQL */ `
  mutation ($input: MarkReturnNotRefundedInput!) {
    markReturnNotRefunded(input: $input) {
      returnId
    }
  }
`;
const START = /* GraphQL */ `
  mutation ($input: StartFulfillmentInput!) {
    startFulfillment(input: $input) {
      orderNumber
      lmsUserId
      username
      email
      lineItems {
        lineItemId
        kind
        courseRunKey
        bundleKey
        mode
      }
    }
  }
`;
const FAIL = /* GraphQL */ `
  mutation ($input: FailFulfillmentInput!) {
    failFulfillment(input: $input) {
      orderId
      lineItemStates {
        lineItemId
        state
      }
    }
  }
`;
const COMPLETE = /* GraphQL */ `
  mutation ($input: CompleteFulfillmentInput!) {
    completeFulfillment(input: $input) {
      orderId
      lineItemStates {
        lineItemId
        state
      }
    }
  }
`;
type States = { lineItemStates: Array<{ lineItemId: string; state: string }> };
const ANONYMIZE = /* GraphQL */ `
  mutation ($input: AnonymizeCustomerInput!) {
    anonymizeCustomer(input: $input) {
      customersRetired
    }
  }
`;
const ORDER = /* GraphQL */ `
  query ($id: ID!) {
    order(id: $id) {
      id
      orderNumber
      lmsUserId
      username
      email
      createdAt
      state
      lineItems {
        id
        kind
        courseRunKey
        bundleKey
        title
        priceCents
        currency
        state
        entitlementUuid
      }
      payment {
        psp
        pspPaymentId
        amountCents
        currency
        refundedAmountCents
      }
      returns {
        id
        items {
          lineItemId
          paymentState
          transactionId
        }
      }
    }
  }
`;
type OrderResult = {
  order: {
    id: string;
    state: string;
    lineItems: Array<Record<string, unknown>>;
    payment: Record<string, unknown> | null;
    returns: Array<{
      id: string;
      items: Array<{ lineItemId: string; paymentState: string; transactionId: string | null }>;
    }>;
  } & Record<string, unknown>;
};

describe('order-management plugin: createReturn', () => {
  it('returns a line of a one-line order: the whole payment is refunded', async () => {
    const order = seedOrder();
    const result = await run<CreateReturn>(CREATE_RETURN, {
      input: { orderId: order.id, lineItemIds: lineIds(order) },
    });
    expect(result.errors).toBeUndefined();
    expect(result.data!.createReturn).toEqual({
      returnId: expect.stringMatching(/^ret-/),
      orderNumber: order.orderNumber,
      lmsUserId: learnerIds,
      username: `learner${learnerIds}`,
      psp: 'STRIPE',
      pspPaymentId: `pi_${orderNumbers}`,
      refundAmountCents: 4900,
      currency: 'USD',
      returnedItems: [
        {
          lineItemId: order.lineItems[0]!.id,
          kind: 'COURSE',
          courseRunKey: 'course-v1:edX+PY101+2026',
          bundleKey: null,
          entitlementUuid: null,
        },
      ],
    });
    expect(stored(order.id).returnInfo).toMatchObject([
      {
        returnTrackingId: result.data!.createReturn.returnId,
        items: [{ paymentState: 'Initial', shipmentState: 'Returned' }],
      },
    ]);
  });

  it('is safe to retry: the same idempotency key finds the return it made', async () => {
    const order = seedOrder();
    const input = { orderId: order.id, lineItemIds: lineIds(order) };
    const first = await run<CreateReturn>(CREATE_RETURN, { input }, { key: 'refund-flow-1:step-0' });
    const again = await run<CreateReturn>(CREATE_RETURN, { input }, { key: 'refund-flow-1:step-0' });
    expect(again.errors).toBeUndefined();
    expect(again.data).toEqual(first.data);
    expect(stored(order.id).returnInfo).toHaveLength(1);
  });

  /** An order of lines at these prices paid `paidCents` (less than their total: a discount), at Stripe. */
  let shareOrders = 0;
  const orderPaid = (prices: number[], paidCents: number) => {
    const pspPaymentId = `pi_shares_${++shareOrders}`;
    const order = seedOrder({
      lineItems: prices.map((priceCents, i) => ({
        title: `Line ${i}`,
        priceCents,
        courseRunKey: `course-v1:edX+S${shareOrders}L${i}+2026`,
      })),
      payment: { psp: 'STRIPE', pspPaymentId, amountCents: paidCents },
    });
    return { order, pspPaymentId, lines: lineIds(order) };
  };
  const returnLines = async (orderId: string, lineItemIds: string[]) => {
    const result = await run<CreateReturn>(CREATE_RETURN, { input: { orderId, lineItemIds } });
    expect(result.errors).toBeUndefined();
    return result.data!.createReturn;
  };
  /** Each line's refund when each is returned on its own, in `order` (indexes), none refunded yet. */
  const refundsByLine = async (orderId: string, lines: string[], order = lines.map((_, i) => i)) => {
    const amounts: number[] = [];
    for (const i of order) amounts[i] = (await returnLines(orderId, [lines[i]!])).refundAmountCents;
    return amounts;
  };

  it('gives two returns open at once their own lines’ shares, whichever was created first', async () => {
    // 248.00 of courses paid 198.40 (20% off): shares of 79.20 and 119.20.
    for (const order of [
      [0, 1],
      [1, 0],
    ]) {
      const { order: o, lines } = orderPaid([9_900, 14_900], 19_840);
      expect(await refundsByLine(o.id, lines, order)).toEqual([7_920, 11_920]);
      expect(stored(o.id).returnInfo.map((r) => r.items.map((i) => i.paymentState))).toEqual([
        ['Initial'],
        ['Initial'],
      ]);
    }
    // Created at the same moment (the second one re-planned after the Service's version conflict).
    const { order: o, lines } = orderPaid([9_900, 14_900], 19_840);
    const [first, second] = await Promise.all(lines.map((line) => returnLines(o.id, [line])));
    expect([first!.refundAmountCents, second!.refundAmountCents]).toEqual([7_920, 11_920]);
  });

  it('allocates the payment by largest remainder: the shares add up to it exactly, in any order', async () => {
    // 100.00 of courses paid 70.01: 2_333.63…, 2_333.63… and 2_334.13… cents; the cent left over goes
    // to the largest remainder, the first of the two equal ones.
    const prices = [3_333, 3_333, 3_334];
    const shares = [2_334, 2_333, 2_334];
    const atOnce = orderPaid(prices, 7_001);
    const amounts = await Promise.all(
      atOnce.lines.map(async (line) => (await returnLines(atOnce.order.id, [line])).refundAmountCents),
    );
    expect(amounts).toEqual(shares);
    expect(amounts.reduce((x, y) => x + y)).toBe(7_001);
    const reversed = orderPaid(prices, 7_001);
    expect(await refundsByLine(reversed.order.id, reversed.lines, [2, 1, 0])).toEqual(shares);
    const whole = orderPaid(prices, 7_001);
    expect((await returnLines(whole.order.id, whole.lines)).refundAmountCents).toBe(7_001);
    // Two lines in one return: the sum of their shares.
    const pair = orderPaid(prices, 7_001);
    expect((await returnLines(pair.order.id, pair.lines.slice(1))).refundAmountCents).toBe(4_667);
  });

  it('gives a zero-price line no share: the other lines share the whole payment', async () => {
    // 100.00 of courses, one free, paid 89.99: 4_409.51… → 4_410 (the cent left over), 0, 4_589.49… → 4_589.
    const { order, lines } = orderPaid([4_900, 0, 5_100], 8_999);
    expect(await refundsByLine(order.id, lines, [1, 0, 2])).toEqual([4_410, 0, 4_589]);
  });

  it('refunds returns one after another by the same shares, adding up to the payment', async () => {
    // Three lines of $10 paid $10 in all (a discount): shares of 333.33… cents, the cent left to the first.
    const { order, pspPaymentId, lines } = orderPaid([1000, 1000, 1000], 1000);
    const amounts: number[] = [];
    for (const [i, line] of lines.entries()) {
      const { returnId, refundAmountCents } = await returnLines(order.id, [line]);
      amounts.push(refundAmountCents);
      const recorded = await run<RecordRefund>(RECORD_REFUND, {
        input: refundInput(pspPaymentId, `re_partial_${i}`, refundAmountCents, { returnId }),
      });
      expect(recorded.errors).toBeUndefined();
    }
    expect(amounts).toEqual([334, 333, 333]);

    const view = await run<OrderResult>(ORDER, { id: order.id });
    expect(view.data!.order.payment).toMatchObject({ amountCents: 1000, refundedAmountCents: 1000 });
    expect(view.data!.order.returns.flatMap((r) => r.items.map((i) => i.paymentState))).toEqual([
      'REFUNDED',
      'REFUNDED',
      'REFUNDED',
    ]);
  });

  it('takes refunds made outside a return (the PSP’s dashboard) off what is left to refund', async () => {
    const { order, pspPaymentId, lines } = orderPaid([5_000, 5_000], 10_000);
    // 30.00 refunded in the dashboard, recorded from the PSP's webhook: no return of its own.
    await run(RECORD_REFUND, { input: refundInput(pspPaymentId, 're_dashboard_part', 3_000) });
    const first = await returnLines(order.id, [lines[0]!]);
    expect(first.refundAmountCents).toBe(5_000);
    await run(RECORD_REFUND, {
      input: refundInput(pspPaymentId, 're_first_line', 5_000, { returnId: first.returnId }),
    });
    // 100.00 paid, 80.00 refunded: 20.00 is left of the second line's 50.00.
    expect((await returnLines(order.id, [lines[1]!])).refundAmountCents).toBe(2_000);

    const refundedInFull = orderPaid([5_000, 5_000], 10_000);
    await run(RECORD_REFUND, {
      input: refundInput(refundedInFull.pspPaymentId, 're_dashboard_full', 10_000),
    });
    expect((await returnLines(refundedInFull.order.id, [refundedInFull.lines[0]!])).refundAmountCents).toBe(
      0,
    );
  });

  it('refunds the returned lines’ prices when the payment equals the order total', async () => {
    const order = seedOrder({
      lineItems: [
        { title: 'A', priceCents: 4900, courseRunKey: 'course-v1:edX+A+2' },
        { title: 'B', priceCents: 14900, bundleKey: 'bundle-b' },
      ],
    });
    const result = await run<CreateReturn>(CREATE_RETURN, {
      input: { orderId: order.id, lineItemIds: [order.lineItems[1]!.id] },
    });
    expect(result.data!.createReturn).toMatchObject({
      refundAmountCents: 14900,
      returnedItems: [{ kind: 'BUNDLE', bundleKey: 'bundle-b', courseRunKey: null }],
    });
  });

  it('gives the PayPal capture id of a PayPal order, and no PSP for an order without payment', async () => {
    const paypal = seedOrder({ payment: { psp: 'PAYPAL', pspPaymentId: 'CAPTURE-1' } });
    const viaPaypal = await run<CreateReturn>(CREATE_RETURN, {
      input: { orderId: paypal.id, lineItemIds: lineIds(paypal) },
    });
    expect(viaPaypal.data!.createReturn).toMatchObject({
      psp: 'PAYPAL',
      pspPaymentId: 'CAPTURE-1',
      refundAmountCents: 4900,
    });

    const free = seedOrder({ payment: undefined });
    const unpaid = await run<CreateReturn>(CREATE_RETURN, {
      input: { orderId: free.id, lineItemIds: lineIds(free) },
    });
    expect(unpaid.data!.createReturn).toMatchObject({ psp: null, pspPaymentId: null, refundAmountCents: 0 });
  });

  it('answers BAD_USER_INPUT for unknown, duplicate or no line ids, NOT_FOUND for an unknown order', async () => {
    const order = seedOrder();
    const [line] = lineIds(order) as [string];
    const attempt = (lineItemIds: string[], orderId = order.id) =>
      run(CREATE_RETURN, { input: { orderId, lineItemIds } });
    const unknown = await attempt([line, 'no-such-line']);
    expect(codeOf(unknown)).toBe('BAD_USER_INPUT');
    expect(unknown.errors![0]!.message).toContain('no-such-line');
    expect(codeOf(await attempt([line, line]))).toBe('BAD_USER_INPUT');
    expect(codeOf(await attempt([]))).toBe('BAD_USER_INPUT');
    expect(codeOf(await attempt([line], '7c4a3b1e-0000-4000-8000-000000000000'))).toBe('NOT_FOUND');
    expect(stored(order.id).returnInfo).toHaveLength(0);
  });

  it('answers lines already returned as such, adding no second return (the refund flow settles it)', async () => {
    const order = seedOrder();
    const input = { orderId: order.id, lineItemIds: lineIds(order) };
    expect((await run(CREATE_RETURN, { input })).errors).toBeUndefined();
    const again = await run(
      CREATE_RETURN.replace(
        'returnId\n',
        'returnId\n      settlement\n      alreadyReturnedItems { lineItemId }\n',
      ),
      { input },
    );
    expect(again.errors).toBeUndefined();
    const answer = (again.data as { createReturn: { settlement: string; alreadyReturnedItems: unknown[] } })
      .createReturn;
    expect(answer.settlement).toBe('ALREADY_RETURNED');
    expect(answer.alreadyReturnedItems).toEqual(lineIds(order).map((lineItemId) => ({ lineItemId })));
    expect(stored(order.id).returnInfo).toHaveLength(1);
  });

  it('is a step of the refund flow: never called by a learner directly, not even on their own order', async () => {
    const order = seedOrder();
    const input = { orderId: order.id, lineItemIds: lineIds(order) };
    const own = learner(learnerIds);
    expect(codeOf(await run(CREATE_RETURN, { input }, { principal: own }))).toBe('FORBIDDEN');
    expect(codeOf(await run(CREATE_RETURN, { input }, { principal: learner(1) }))).toBe('FORBIDDEN');
    expect(codeOf(await run(CREATE_RETURN, { input }, { principal: null }))).toBe('UNAUTHENTICATED');
    // Nothing was returned by the refused calls.
    expect(stored(order.id).returnInfo ?? []).toEqual([]);
    // In a flow that admitted a learner, the order must still be theirs.
    const step = { flowId: 'flow-om-test' };
    expect(codeOf(await run(CREATE_RETURN, { input }, { principal: learner(1), ...step }))).toBe('FORBIDDEN');
    expect((await run(CREATE_RETURN, { input }, { principal: own, ...step })).errors).toBeUndefined();
    const another = seedOrder();
    const byStaff = { orderId: another.id, lineItemIds: lineIds(another) };
    expect((await run(CREATE_RETURN, { input: byStaff }, { principal: staff })).errors).toBeUndefined();
  });
});

describe('order-management plugin: markReturnNotRefunded', () => {
  it('marks the return’s items NotRefunded, and the lines may then be returned again', async () => {
    const order = seedOrder();
    const input = { orderId: order.id, lineItemIds: lineIds(order) };
    const created = await run<CreateReturn>(CREATE_RETURN, { input });
    const { returnId } = created.data!.createReturn;
    const marked = await run(MARK_NOT_REFUNDED, { input: { orderId: order.id, returnId } });
    expect(marked.errors).toBeUndefined();
    expect(marked.data).toEqual({ markReturnNotRefunded: { returnId } });
    expect(stored(order.id).returnInfo[0]!.items[0]!.paymentState).toBe('NotRefunded');
    // Compensating twice changes nothing more.
    const version = stored(order.id).version;
    expect((await run(MARK_NOT_REFUNDED, { input: { orderId: order.id, returnId } })).errors).toBeUndefined();
    expect(stored(order.id).version).toBe(version);

    const retried = await run<CreateReturn>(CREATE_RETURN, { input });
    expect(retried.errors).toBeUndefined();
    expect(retried.data!.createReturn.refundAmountCents).toBe(4900);
  });

  it('answers NOT_FOUND for an unknown return and FORBIDDEN for a learner', async () => {
    const order = seedOrder();
    expect(
      codeOf(await run(MARK_NOT_REFUNDED, { input: { orderId: order.id, returnId: 'ret-unknown' } })),
    ).toBe('NOT_FOUND');
    expect(
      codeOf(
        await run(
          MARK_NOT_REFUNDED,
          { input: { orderId: order.id, returnId: 'x' } },
          { principal: learner(learnerIds) },
        ),
      ),
    ).toBe('FORBIDDEN');
  });
});

describe('order-management plugin: recordRefundTransaction', () => {
  it('records the refund on the payment and marks the return Refunded; a repeat records nothing', async () => {
    const order = seedOrder();
    const { returnId } = (
      await run<CreateReturn>(CREATE_RETURN, { input: { orderId: order.id, lineItemIds: lineIds(order) } })
    ).data!.createReturn;
    const input = refundInput(`pi_${orderNumbers}`, 're_100', 4900, { returnId });
    const first = await run<RecordRefund>(RECORD_REFUND, { input });
    expect(first.errors).toBeUndefined();
    expect(first.data!.recordRefundTransaction).toEqual({
      transactionId: expect.any(String),
      orderId: order.id,
      recorded: true,
    });
    const again = await run<RecordRefund>(RECORD_REFUND, { input });
    expect(again.data!.recordRefundTransaction).toEqual({
      ...first.data!.recordRefundTransaction,
      recorded: false,
    });

    const payment = standIn.om.store.payments.get(stored(order.id).paymentInfo!.payments[0]!.id)!;
    expect(payment.transactions.filter((t) => t.type === 'Refund')).toEqual([
      expect.objectContaining({
        id: first.data!.recordRefundTransaction.transactionId,
        interactionId: 're_100',
        amount: expect.objectContaining({ centAmount: 4900, currencyCode: 'USD' }),
        state: 'Success',
        timestamp: '2026-03-01T10:00:00.000Z',
      }),
    ]);
    expect(stored(order.id).returnInfo[0]!.items[0]).toMatchObject({
      paymentState: 'Refunded',
      custom: { fields: { transactionId: first.data!.recordRefundTransaction.transactionId } },
    });
  });

  it('records a PSP-dashboard refund (no return) found by the PayPal capture id', async () => {
    const order = seedOrder({ payment: { psp: 'PAYPAL', pspPaymentId: 'CAPTURE-DASH' } });
    const result = await run<RecordRefund>(RECORD_REFUND, {
      input: refundInput('CAPTURE-DASH', 'PAYPAL-REFUND-1', 1000),
    });
    expect(result.data!.recordRefundTransaction).toMatchObject({ orderId: order.id, recorded: true });
    const view = await run<OrderResult>(ORDER, { id: order.id });
    expect(view.data!.order.payment).toEqual({
      psp: 'PAYPAL',
      pspPaymentId: 'CAPTURE-DASH',
      amountCents: 4900,
      currency: 'USD',
      refundedAmountCents: 1000,
    });
  });

  it('settles a pending refund when it succeeds, and never un-settles it', async () => {
    const order = seedOrder();
    const pi = `pi_${orderNumbers}`;
    const refundState = () =>
      standIn.om.store.payments
        .get(stored(order.id).paymentInfo!.payments[0]!.id)!
        .transactions.find((t) => t.interactionId === 're_p')!.state;
    await run(RECORD_REFUND, { input: refundInput(pi, 're_p', 4900, { refundStatus: 'pending' }) });
    expect(refundState()).toBe('Pending');
    const settled = await run<RecordRefund>(RECORD_REFUND, { input: refundInput(pi, 're_p', 4900) });
    expect(settled.data!.recordRefundTransaction.recorded).toBe(false);
    expect(refundState()).toBe('Success');
    await run(RECORD_REFUND, { input: refundInput(pi, 're_p', 4900, { refundStatus: 'pending' }) });
    expect(refundState()).toBe('Success');
  });

  it('marks the return NotRefunded when the refund failed', async () => {
    const order = seedOrder();
    const { returnId } = (
      await run<CreateReturn>(CREATE_RETURN, { input: { orderId: order.id, lineItemIds: lineIds(order) } })
    ).data!.createReturn;
    await run(RECORD_REFUND, {
      input: refundInput(`pi_${orderNumbers}`, 're_failed', 4900, { refundStatus: 'failed', returnId }),
    });
    expect(stored(order.id).returnInfo[0]!.items[0]!.paymentState).toBe('NotRefunded');
  });

  it('records one transaction when the webhook and the flow record the same refund at once', async () => {
    seedOrder();
    const input = refundInput(`pi_${orderNumbers}`, 're_race', 4900);
    const results = await Promise.all([
      run<RecordRefund>(RECORD_REFUND, { input }),
      run<RecordRefund>(RECORD_REFUND, { input }),
    ]);
    expect(results.map((r) => r.errors)).toEqual([undefined, undefined]);
    expect(results.map((r) => r.data!.recordRefundTransaction.recorded).sort()).toEqual([false, true]);
    const payment = [...standIn.om.store.payments.values()].find(
      (p) => p.interfaceId === `pi_${orderNumbers}`,
    )!;
    expect(payment.transactions.filter((t) => t.interactionId === 're_race')).toHaveLength(1);
  });

  it('answers NOT_FOUND for an unknown payment or return, BAD_USER_INPUT for bad values', async () => {
    seedOrder();
    const pi = `pi_${orderNumbers}`;
    expect(codeOf(await run(RECORD_REFUND, { input: refundInput('pi_unknown', 're_x', 1) }))).toBe(
      'NOT_FOUND',
    );
    expect(
      codeOf(await run(RECORD_REFUND, { input: refundInput(pi, 're_x', 1, { returnId: 'ret-nope' }) })),
    ).toBe('NOT_FOUND');
    expect(
      codeOf(await run(RECORD_REFUND, { input: refundInput(pi, 're_x', 1, { refundStatus: 'maybe' }) })),
    ).toBe('BAD_USER_INPUT');
    expect(
      codeOf(
        await run(RECORD_REFUND, { input: refundInput(pi, 're_x', 1, { refundCreatedAt: 'yesterday' }) }),
      ),
    ).toBe('BAD_USER_INPUT');
    expect(codeOf(await run(RECORD_REFUND, { input: refundInput(pi, 're_x', 1, { currency: 'EUR' }) }))).toBe(
      'BAD_USER_INPUT',
    );
    expect(
      codeOf(
        await run(RECORD_REFUND, { input: refundInput(pi, 're_x', 1) }, { principal: learner(learnerIds) }),
      ),
    ).toBe('FORBIDDEN');
  });

  it('runs without a caller inside a flow (a webhook’s signal), never outside one', async () => {
    seedOrder();
    const input = refundInput(`pi_${orderNumbers}`, 're_signal', 100);
    expect(codeOf(await run(RECORD_REFUND, { input }, { principal: null }))).toBe('UNAUTHENTICATED');
    const inFlow = await run<RecordRefund>(RECORD_REFUND, { input }, { principal: null, flowId: 'flow-1' });
    expect(inFlow.data!.recordRefundTransaction.recorded).toBe(true);
  });
});

describe('order-management plugin: fulfillment', () => {
  const fourLines = () =>
    seedOrder({
      lineItems: [
        { title: 'New', priceCents: 1000, courseRunKey: 'course-v1:edX+N+1', state: 'INITIAL' },
        {
          title: 'Placed',
          priceCents: 1000,
          courseRunKey: 'course-v1:edX+P+1',
          state: 'PENDING',
          mode: 'professional',
        },
        { title: 'Failed before', priceCents: 1000, bundleKey: 'bundle-f', state: 'FAILURE' },
        { title: 'Done', priceCents: 1000, courseRunKey: 'course-v1:edX+D+1', state: 'SUCCESS' },
      ],
    });

  it('startFulfillment moves every line not yet SUCCESS to PROCESSING in one update', async () => {
    const order = fourLines();
    const [n, p, f, d] = lineIds(order) as [string, string, string, string];
    const updates = () => standIn.om.calls('POST', `/${standIn.om.projectKey}/orders/${order.id}`);
    const result = await run<{ startFulfillment: Record<string, unknown> }>(START, {
      input: { orderId: order.id },
    });
    expect(result.errors).toBeUndefined();
    expect(result.data!.startFulfillment).toEqual({
      orderNumber: order.orderNumber,
      lmsUserId: learnerIds,
      username: `learner${learnerIds}`,
      email: `learner${learnerIds}@example.com`,
      lineItems: [
        {
          lineItemId: n,
          kind: 'COURSE',
          courseRunKey: 'course-v1:edX+N+1',
          bundleKey: null,
          mode: 'verified',
        },
        {
          lineItemId: p,
          kind: 'COURSE',
          courseRunKey: 'course-v1:edX+P+1',
          bundleKey: null,
          mode: 'professional',
        },
        { lineItemId: f, kind: 'BUNDLE', courseRunKey: null, bundleKey: 'bundle-f', mode: 'verified' },
      ],
    });
    expect(updates()).toBe(1);
    expect([n, p, f, d].map((id) => storedState(order.id, id))).toEqual([
      '2u-fulfillment-processing-state',
      '2u-fulfillment-processing-state',
      '2u-fulfillment-processing-state',
      '2u-fulfillment-success-state',
    ]);
    // A retried step finds the lines already PROCESSING and writes nothing.
    const again = await run(START, { input: { orderId: order.id } });
    expect(again.data).toEqual(result.data);
    expect(updates()).toBe(1);
  });

  it('startFulfillment re-reads and retries when the order changed meanwhile (409)', async () => {
    const order = fourLines();
    standIn.om.failNext(2, 409, `/${standIn.om.projectKey}/orders/${order.id}`, 'POST');
    const before = standIn.om.responses(409);
    const result = await run(START, { input: { orderId: order.id } });
    expect(result.errors).toBeUndefined();
    expect(standIn.om.responses(409) - before).toBe(2);
    expect(storedState(order.id, order.lineItems[0]!.id)).toBe('2u-fulfillment-processing-state');
  });

  it('startFulfillment answers NOT_FOUND for an unknown order and FORBIDDEN to learners', async () => {
    expect(codeOf(await run(START, { input: { orderId: 'no-such-order' } }))).toBe('NOT_FOUND');
    const order = seedOrder();
    expect(
      codeOf(await run(START, { input: { orderId: order.id } }, { principal: learner(learnerIds) })),
    ).toBe('FORBIDDEN');
  });

  it('failFulfillment moves every line not SUCCESS to FAILURE', async () => {
    const order = fourLines();
    await run(START, { input: { orderId: order.id } });
    const result = await run<{ failFulfillment: States }>(FAIL, { input: { orderId: order.id } });
    expect(result.errors).toBeUndefined();
    expect(result.data!.failFulfillment.lineItemStates.map((l) => l.state)).toEqual([
      'FAILURE',
      'FAILURE',
      'FAILURE',
      'SUCCESS',
    ]);
    // From INITIAL too, and again without effect.
    const fresh = fourLines();
    const direct = await run<{ failFulfillment: States }>(FAIL, { input: { orderId: fresh.id } });
    expect(direct.data!.failFulfillment.lineItemStates.map((l) => l.state)).toEqual([
      'FAILURE',
      'FAILURE',
      'FAILURE',
      'SUCCESS',
    ]);
    expect((await run(FAIL, { input: { orderId: fresh.id } })).errors).toBeUndefined();
  });

  it('completeFulfillment sets SUCCESS/FAILURE and the entitlement, and never moves a SUCCESS line', async () => {
    const order = fourLines();
    const [n, p, f, d] = lineIds(order) as [string, string, string, string];
    await run(START, { input: { orderId: order.id } });
    const result = await run<{ completeFulfillment: States }>(COMPLETE, {
      input: {
        orderId: order.id,
        fulfillments: [
          { lineItemId: n, fulfilled: true, entitlementUuid: null, error: null },
          { lineItemId: p, fulfilled: false, entitlementUuid: null, error: 'course mode is expired' },
          { lineItemId: f, fulfilled: true, entitlementUuid: 'ent-uuid-1', error: null },
          { lineItemId: d, fulfilled: false, entitlementUuid: null, error: 'late failure' },
        ],
      },
    });
    expect(result.errors).toBeUndefined();
    expect(result.data!.completeFulfillment).toEqual({
      orderId: order.id,
      lineItemStates: [
        { lineItemId: n, state: 'SUCCESS' },
        { lineItemId: p, state: 'FAILURE' },
        { lineItemId: f, state: 'SUCCESS' },
        { lineItemId: d, state: 'SUCCESS' },
      ],
    });
    expect(stored(order.id).lineItems[2]!.custom!.fields.entitlementUuid).toBe('ent-uuid-1');
    // A retry of a FAILURE line after the LMS recovered: FAILURE → SUCCESS.
    const retried = await run<{ completeFulfillment: States }>(COMPLETE, {
      input: { orderId: order.id, fulfillments: [{ lineItemId: p, fulfilled: true }] },
    });
    expect(retried.data!.completeFulfillment.lineItemStates[1]).toEqual({ lineItemId: p, state: 'SUCCESS' });
  });

  it('two completeFulfillment calls on one order at once both apply, without a failure', async () => {
    const order = seedOrder({
      lineItems: [
        { title: 'A', priceCents: 1000, courseRunKey: 'course-v1:edX+A+9', state: 'PROCESSING' },
        { title: 'B', priceCents: 1000, courseRunKey: 'course-v1:edX+B+9', state: 'PROCESSING' },
      ],
    });
    const [a, b] = lineIds(order) as [string, string];
    const before = standIn.om.responses(409);
    const results = await Promise.all([
      run(COMPLETE, { input: { orderId: order.id, fulfillments: [{ lineItemId: a, fulfilled: true }] } }),
      run(COMPLETE, { input: { orderId: order.id, fulfillments: [{ lineItemId: b, fulfilled: false }] } }),
    ]);
    expect(results.map((r) => r.errors)).toEqual([undefined, undefined]);
    expect([storedState(order.id, a), storedState(order.id, b)]).toEqual([
      '2u-fulfillment-success-state',
      '2u-fulfillment-failure-state',
    ]);
    // They did collide: one of them met a version conflict and re-applied on the re-read order.
    expect(standIn.om.responses(409) - before).toBeGreaterThanOrEqual(1);
  });

  it('completeFulfillment answers BAD_USER_INPUT for unknown or repeated lines', async () => {
    const order = seedOrder();
    const [line] = lineIds(order) as [string];
    const complete = (fulfillments: unknown[]) =>
      run(COMPLETE, { input: { orderId: order.id, fulfillments } });
    expect(codeOf(await complete([{ lineItemId: 'nope', fulfilled: true }]))).toBe('BAD_USER_INPUT');
    expect(
      codeOf(
        await complete([
          { lineItemId: line, fulfilled: true },
          { lineItemId: line, fulfilled: false },
        ]),
      ),
    ).toBe('BAD_USER_INPUT');
  });

  it('an unavailable Service or endless conflicts are transient errors (no domain code: the engine retries)', async () => {
    const order = seedOrder({
      lineItems: [{ title: 'A', priceCents: 1, courseRunKey: 'c', state: 'PROCESSING' }],
    });
    standIn.om.failNext(1, 503, `/${standIn.om.projectKey}/orders/${order.id}`);
    const input = { orderId: order.id, fulfillments: [{ lineItemId: lineIds(order)[0], fulfilled: true }] };
    const unavailable = await run(COMPLETE, { input });
    expect(unavailable.errors).toHaveLength(1);
    expect(domainCodeOf(unavailable.errors![0])).toBeUndefined();
    expect(unavailable.errors![0]!.message).toContain('503');

    const before = standIn.om.responses(409);
    standIn.om.failNext(6, 409, `/${standIn.om.projectKey}/orders/${order.id}`, 'POST');
    const conflicts = await run(COMPLETE, { input });
    expect(standIn.om.responses(409) - before).toBe(6);
    expect(domainCodeOf(conflicts.errors?.[0])).toBeUndefined();
    expect(conflicts.errors![0]!.message).toContain('409');
  });
});

describe('order-management plugin: anonymizeCustomer', () => {
  it('replaces name, email and username with salted hashes, on the customer and their orders; a retry changes nothing', async () => {
    const order = seedOrder();
    const lmsUserId = learnerIds;
    const result = await run(ANONYMIZE, { input: { lmsUserId } }, { principal: staff });
    expect(result.errors).toBeUndefined();
    expect(result.data).toEqual({ anonymizeCustomer: { customersRetired: 1 } });
    const customer = [...standIn.om.store.customers.values()].find(
      (c) => c.custom?.fields.lmsUserId === lmsUserId,
    )!;
    const hashed = /^retired_user_[0-9a-f]{64}$/;
    expect(customer).toMatchObject({
      firstName: expect.stringMatching(hashed),
      lastName: expect.stringMatching(hashed),
      email: expect.stringMatching(hashed),
      custom: { fields: { lmsUserId, lmsUsername: expect.stringMatching(hashed) } },
    });
    expect(stored(order.id).customerEmail).toMatch(hashed);
    expect(stored(order.id).custom!.fields.lmsUsername).toMatch(hashed);

    const snapshot = structuredClone(customer);
    expect((await run(ANONYMIZE, { input: { lmsUserId } }, { principal: staff })).data).toEqual({
      anonymizeCustomer: { customersRetired: 1 },
    });
    const after = standIn.om.store.customers.get(customer.id)!;
    expect({ ...after, version: 0, lastModifiedAt: '' }).toEqual({
      ...snapshot,
      version: 0,
      lastModifiedAt: '',
    });
  });

  it('retires no one for an unknown learner, and refuses learners', async () => {
    expect((await run(ANONYMIZE, { input: { lmsUserId: 999_999 } }, { principal: staff })).data).toEqual({
      anonymizeCustomer: { customersRetired: 0 },
    });
    expect(codeOf(await run(ANONYMIZE, { input: { lmsUserId: 1 } }, { principal: learner(1) }))).toBe(
      'FORBIDDEN',
    );
  });

  it('names RETIREMENT_SALT when it is not set', async () => {
    const salt = process.env.RETIREMENT_SALT;
    delete process.env.RETIREMENT_SALT;
    try {
      const result = await run(ANONYMIZE, { input: { lmsUserId: 1 } }, { principal: staff });
      expect(result.errors![0]!.message).toContain('RETIREMENT_SALT is not set');
    } finally {
      process.env.RETIREMENT_SALT = salt;
    }
  });
});

describe('order-management plugin: queries and the Order entity', () => {
  it('order(id) gives the learner their order, with lines, payment and returns', async () => {
    const order = seedOrder({
      lineItems: [
        { title: 'Python 101', priceCents: 4900, courseRunKey: 'course-v1:edX+PY101+2026', state: 'SUCCESS' },
        {
          title: 'Data',
          priceCents: 9900,
          bundleKey: 'bundle-data',
          state: 'SUCCESS',
          entitlementUuid: 'ent-9',
        },
      ],
    });
    const result = await run<OrderResult>(ORDER, { id: order.id }, { principal: learner(learnerIds) });
    expect(result.errors).toBeUndefined();
    expect(result.data!.order).toEqual({
      id: order.id,
      orderNumber: order.orderNumber,
      lmsUserId: learnerIds,
      username: `learner${learnerIds}`,
      email: `learner${learnerIds}@example.com`,
      createdAt: order.createdAt,
      state: 'COMPLETE',
      lineItems: [
        {
          id: order.lineItems[0]!.id,
          kind: 'COURSE',
          courseRunKey: 'course-v1:edX+PY101+2026',
          bundleKey: null,
          title: 'Python 101',
          priceCents: 4900,
          currency: 'USD',
          state: 'SUCCESS',
          entitlementUuid: null,
        },
        {
          id: order.lineItems[1]!.id,
          kind: 'BUNDLE',
          courseRunKey: null,
          bundleKey: 'bundle-data',
          title: 'Data',
          priceCents: 9900,
          currency: 'USD',
          state: 'SUCCESS',
          entitlementUuid: 'ent-9',
        },
      ],
      payment: {
        psp: 'STRIPE',
        pspPaymentId: `pi_${orderNumbers}`,
        amountCents: 14800,
        currency: 'USD',
        refundedAmountCents: 0,
      },
      returns: [],
    });
  });

  it('a learner reading another learner’s order gets FORBIDDEN; staff may; an unknown order is null', async () => {
    const order = seedOrder();
    const other = await run<OrderResult>(ORDER, { id: order.id }, { principal: learner(1) });
    expect(codeOf(other)).toBe('FORBIDDEN');
    expect(other.data?.order ?? null).toBeNull();
    expect((await run<OrderResult>(ORDER, { id: order.id }, { principal: staff })).data!.order.id).toBe(
      order.id,
    );
    expect((await run<OrderResult>(ORDER, { id: 'unknown-order' }, { principal: staff })).data).toEqual({
      order: null,
    });
    expect(codeOf(await run(ORDER, { id: order.id }, { principal: null }))).toBe('UNAUTHENTICATED');
  });

  it('shows a sanctioned order as SANCTIONED', async () => {
    const order = seedOrder({ sanctioned: true });
    expect((await run<OrderResult>(ORDER, { id: order.id }, { principal: staff })).data!.order.state).toBe(
      'SANCTIONED',
    );
  });

  it('ordersForLearner lists the learner’s orders newest first, since a date', async () => {
    const lmsUserId = ++learnerIds;
    const customer = { lmsUserId, username: `learner${lmsUserId}`, email: `l${lmsUserId}@example.com` };
    const ids = ['2026-01-01', '2026-02-01', '2026-03-01'].map(
      (day) => seedOrder({ customer, createdAt: `${day}T00:00:00.000Z` }).id,
    );
    const QUERY =
      'query ($id: Int!, $since: String) { ordersForLearner(lmsUserId: $id, since: $since) { id createdAt } }';
    type Orders = { ordersForLearner: Array<{ id: string }> };
    const all = await run<Orders>(QUERY, { id: lmsUserId }, { principal: learner(lmsUserId) });
    expect(all.data!.ordersForLearner.map((o) => o.id)).toEqual([...ids].reverse());
    const recent = await run<Orders>(
      QUERY,
      { id: lmsUserId, since: '2026-01-15' },
      { principal: learner(lmsUserId) },
    );
    expect(recent.data!.ordersForLearner.map((o) => o.id)).toEqual([ids[2], ids[1]]);
    expect(codeOf(await run(QUERY, { id: lmsUserId }, { principal: learner(1) }))).toBe('FORBIDDEN');
    expect(codeOf(await run(QUERY, { id: lmsUserId, since: 'last week' }, { principal: staff }))).toBe(
      'BAD_USER_INPUT',
    );
  });

  it('resolves 50 Order references with one Service call', async () => {
    const lmsUserId = ++learnerIds;
    const customer = { lmsUserId, username: `learner${lmsUserId}`, email: `l${lmsUserId}@example.com` };
    const ids = Array.from({ length: 50 }, () => seedOrder({ customer }).id);
    await run(ORDER, { id: ids[0] }, { principal: staff }); // a token, so only order calls are counted below
    const queries = () => standIn.om.calls('GET', `/${standIn.om.projectKey}/orders`);
    const before = queries();
    const readsById = () =>
      ids.reduce((sum, id) => sum + standIn.om.calls('GET', `/${standIn.om.projectKey}/orders/${id}`), 0);
    const byIdBefore = readsById();
    const result = await run<{ _entities: Array<{ id: string; orderNumber: string; lmsUserId: number }> }>(
      'query ($r: [_Any!]!) { _entities(representations: $r) { ... on Order { id orderNumber lmsUserId lineItems { state } } } }',
      { r: ids.map((id) => ({ __typename: 'Order', id })) },
      { principal: learner(lmsUserId) },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data!._entities.map((o) => o.id)).toEqual(ids);
    expect(result.data!._entities.every((o) => o.lmsUserId === lmsUserId)).toBe(true);
    expect(queries() - before).toBe(1);
    expect(readsById() - byIdBefore).toBe(0);
  });

  it('refuses a learner another learner’s Order entity', async () => {
    const order = seedOrder();
    const result = await run(
      'query ($r: [_Any!]!) { _entities(representations: $r) { ... on Order { id email } } }',
      { r: [{ __typename: 'Order', id: order.id }] },
      { principal: learner(1) },
    );
    expect(codeOf(result)).toBe('FORBIDDEN');
  });

  it('resolves OrderPayment entities by their PSP id, in two Service calls, for whoever may read the order', async () => {
    const lmsUserId = ++learnerIds;
    const customer = { lmsUserId, username: `learner${lmsUserId}`, email: `l${lmsUserId}@example.com` };
    const stripeId = `pi_entity_${lmsUserId}`;
    const payPalId = `CAPTUREENTITY${lmsUserId}`;
    const stripePaid = seedOrder({ customer, payment: { psp: 'STRIPE', pspPaymentId: stripeId } });
    seedOrder({ customer, payment: { psp: 'PAYPAL', pspPaymentId: payPalId, pspOrderId: 'PAYPALORDER1' } });
    const PAYMENTS =
      'query ($r: [_Any!]!) { _entities(representations: $r) { ... on OrderPayment { psp pspPaymentId amountCents } } }';
    const refs = [stripeId, payPalId, 'pi_unknown'].map((pspPaymentId) => ({
      __typename: 'OrderPayment',
      pspPaymentId,
    }));
    await run(ORDER, { id: stripePaid.id }, { principal: staff }); // a token, so only reads are counted below
    const reads = () =>
      standIn.om.calls('GET', `/${standIn.om.projectKey}/payments`) +
      standIn.om.calls('GET', `/${standIn.om.projectKey}/orders`);
    const before = reads();
    const result = await run<{ _entities: Array<Record<string, unknown> | null> }>(
      PAYMENTS,
      { r: refs },
      { principal: learner(lmsUserId) },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data!._entities).toEqual([
      { psp: 'STRIPE', pspPaymentId: stripeId, amountCents: 4900 },
      { psp: 'PAYPAL', pspPaymentId: payPalId, amountCents: 4900 },
      null,
    ]);
    expect(reads() - before).toBe(2);
    const other = await run(PAYMENTS, { r: refs.slice(0, 1) }, { principal: learner(1) });
    expect(codeOf(other)).toBe('FORBIDDEN');
  });

  it('gets a new token when the Service no longer accepts the cached one', async () => {
    const order = seedOrder();
    standIn.om.expireTokens();
    const result = await run<OrderResult>(ORDER, { id: order.id }, { principal: staff });
    expect(result.errors).toBeUndefined();
    expect(result.data!.order.id).toBe(order.id);
  });

  it('names the missing variable when the Service is not configured', async () => {
    const url = process.env.ORDER_MANAGEMENT_URL;
    delete process.env.ORDER_MANAGEMENT_URL;
    try {
      const result = await run(ORDER, { id: 'any' }, { principal: staff });
      expect(result.errors![0]!.message).toContain('ORDER_MANAGEMENT_URL is not set');
    } finally {
      process.env.ORDER_MANAGEMENT_URL = url;
    }
  });
});

describe('order-management plugin: routes', () => {
  const published: Array<{ signal: string; payload: Record<string, unknown>; id: string }> = [];
  const filters: Array<{ name: string; input: Record<string, unknown>; options: unknown }> = [];
  // The Coordinator's side of a route, recorded: what the route asks of it is what these tests check.
  const runtime: PluginRuntime = {
    logger: silentLogger,
    async publish(signal, payload, { id }) {
      const duplicate = published.some((p) => p.id === id);
      if (!duplicate) published.push({ signal, payload, id });
      return { duplicate };
    },
    async runFilter(name, input, options): Promise<FilterResult> {
      filters.push({ name, input, options });
      return { flowId: `flow-${filters.length}`, status: 'COMPLETED', output: {} };
    },
    variation: async (_flag, _principal, defaultValue) => defaultValue,
  };
  const route = (path: string) => plugin.routes!.find((r) => r.path === path)!;
  const request = (path: string, body: unknown, principal?: Principal): RouteRequest => ({
    method: 'POST',
    path,
    headers: { 'content-type': 'application/json' },
    query: new URLSearchParams(),
    rawQuery: '',
    rawBody: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
    ...(principal ? { principal } : {}),
  });

  it('POST /order-management/fulfill runs the fulfillment filter, keyed by the event id', async () => {
    const fulfill = route('/order-management/fulfill');
    expect(fulfill.method).toBe('POST');
    const envelope = { id: 'evt-1', 'detail-type': 'LineItemStateTransition', detail: { id: 'order-1' } };
    const response = await fulfill.handle(request(fulfill.path, envelope, service), runtime);
    expect(response).toEqual({ status: 200, body: { flowId: 'flow-1', status: 'COMPLETED' } });
    expect(filters.at(-1)).toEqual({
      name: 'order.fulfillment.requested.v1',
      input: { orderId: 'order-1' },
      options: { idempotencyKey: 'fulfill:evt-1', principal: service },
    });
    // A commercetools message names the order as its resource.
    await fulfill.handle(
      request(
        fulfill.path,
        { id: 'evt-2', detail: { id: 'message-9', resource: { typeId: 'order', id: 'order-2' } } },
        staff,
      ),
      runtime,
    );
    expect(filters.at(-1)!.input).toEqual({ orderId: 'order-2' });
  });

  it('refuses callers without a JWT (401), learners (403) and malformed envelopes (400)', async () => {
    for (const path of ['/order-management/fulfill', '/order-management/sanctioned']) {
      const r = route(path);
      const envelope = { id: 'evt', detail: { id: 'order' } };
      expect(await r.handle(request(path, envelope), runtime)).toMatchObject({
        status: 401,
        body: { code: 'UNAUTHENTICATED' },
      });
      expect(await r.handle(request(path, envelope, learner(1)), runtime)).toMatchObject({
        status: 403,
        body: { code: 'FORBIDDEN' },
      });
      const missing = await r.handle(request(path, { id: 'evt', detail: {} }, service), runtime);
      expect(missing).toEqual({
        status: 400,
        body: {
          code: 'BAD_USER_INPUT',
          message: expect.stringContaining('detail.id'),
        },
      });
      expect(await r.handle(request(path, '{not json', service), runtime)).toEqual({
        status: 400,
        body: { code: 'BAD_USER_INPUT', message: 'The body is not JSON' },
      });
    }
  });

  it('POST /order-management/sanctioned signals a sanctioned order once per event', async () => {
    const sanctioned = route('/order-management/sanctioned');
    const order = seedOrder({ sanctioned: true });
    const envelope = { id: 'evt-sdn-1', detail: { id: order.id } };
    expect(await sanctioned.handle(request(sanctioned.path, envelope, service), runtime)).toEqual({
      status: 200,
      body: { published: true, duplicate: false },
    });
    expect(published.at(-1)).toEqual({
      signal: 'order.sanctioned.v1',
      payload: { orderId: order.id, lmsUserId: learnerIds, username: `learner${learnerIds}` },
      id: 'evt-sdn-1',
    });
    expect(await sanctioned.handle(request(sanctioned.path, envelope, service), runtime)).toEqual({
      status: 200,
      body: { published: true, duplicate: true },
    });
  });

  it('POST /order-management/sanctioned ignores an order that is not sanctioned, 404s an unknown one', async () => {
    const sanctioned = route('/order-management/sanctioned');
    const order = seedOrder();
    const count = published.length;
    expect(
      await sanctioned.handle(
        request(sanctioned.path, { id: 'evt-x', detail: { id: order.id } }, service),
        runtime,
      ),
    ).toEqual({
      status: 200,
      body: { published: false, state: 'COMPLETE' },
    });
    expect(published).toHaveLength(count);
    expect(
      await sanctioned.handle(
        request(sanctioned.path, { id: 'evt-y', detail: { id: 'unknown-order' } }, service),
        runtime,
      ),
    ).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
  });
});

// Whichever path asks (a PSP webhook's signal, the refund flow, staff), a refund that would push the
// payment's recorded refunds (Success and Pending) past its amount is refused with CONFLICT.
describe('recordRefundTransaction: the recorded refunds stay within the payment', () => {
  /** A paid order of one 19,999-cent line (the tester's), paid with its own PaymentIntent. */
  const paidOrder = () => {
    const order = seedOrder({
      lineItems: [{ title: 'Capped course', priceCents: 19_999, courseRunKey: 'course-v1:Cap+C1+2026' }],
    });
    return { order, pspPaymentId: `pi_${orderNumbers}` };
  };
  const record = (
    pspPaymentId: string,
    pspRefundId: string,
    cents: number,
    extra: Record<string, unknown> = {},
  ) => run<RecordRefund>(RECORD_REFUND, { input: refundInput(pspPaymentId, pspRefundId, cents, extra) });
  const refunds = (orderId: string) =>
    standIn.om.store.payments
      .get(standIn.om.store.orders.get(orderId)!.paymentInfo!.payments[0]!.id)!
      .transactions.filter((t) => t.type === 'Refund')
      .map((t) => [t.interactionId, t.amount.centAmount, t.state]);
  const errorOf = (result: ExecutionResult) => ({
    code: result.errors?.[0]?.extensions?.code,
    message: result.errors?.[0]?.message,
  });

  it('refuses a refund larger than the payment with CONFLICT, recording nothing (the tester’s re_huge_1)', async () => {
    const { order, pspPaymentId } = paidOrder();

    const result = await record(pspPaymentId, 're_huge_1', 99_999_999);

    expect(errorOf(result)).toEqual({
      code: 'CONFLICT',
      message: `Refund re_huge_1 of 99999999 would bring the refunds recorded on payment ${pspPaymentId} to 99999999, more than its 19999: it is not recorded`,
    });
    expect(result.errors?.[0]?.extensions).toMatchObject({
      pspRefundId: 're_huge_1',
      refundedAmountCents: 99_999_999,
      recordedRefundCents: 0,
      paymentAmountCents: 19_999,
    });
    expect(refunds(order.id)).toEqual([]);
    // What is left can still be recorded.
    expect((await record(pspPaymentId, 're_real', 19_999)).errors).toBeUndefined();
    expect(refunds(order.id)).toEqual([['re_real', 19_999, 'Success']]);
  });

  it('counts Success and Pending refunds, not Failure ones: up to the payment exactly, not one cent more', async () => {
    const { order, pspPaymentId } = paidOrder();
    expect((await record(pspPaymentId, 're_a', 10_000)).errors).toBeUndefined();
    expect((await record(pspPaymentId, 're_b', 5_000, { refundStatus: 'pending' })).errors).toBeUndefined();
    // A failed refund took nothing back: it is recorded and counts for nothing.
    expect((await record(pspPaymentId, 're_c', 9_000, { refundStatus: 'failed' })).errors).toBeUndefined();

    const over = await record(pspPaymentId, 're_d', 5_000);
    expect(errorOf(over).code).toBe('CONFLICT');
    expect(over.errors?.[0]?.extensions).toMatchObject({ recordedRefundCents: 15_000 });

    expect((await record(pspPaymentId, 're_e', 4_999)).errors).toBeUndefined();
    expect(errorOf(await record(pspPaymentId, 're_f', 1)).code).toBe('CONFLICT');
    expect(refunds(order.id)).toEqual([
      ['re_a', 10_000, 'Success'],
      ['re_b', 5_000, 'Pending'],
      ['re_c', 9_000, 'Failure'],
      ['re_e', 4_999, 'Success'],
    ]);
    // A refund already recorded is answered as before (a retry, a redelivery), the payment full or not,
    // and a pending one still settles.
    const again = await record(pspPaymentId, 're_a', 10_000);
    expect(again.errors).toBeUndefined();
    expect(again.data!.recordRefundTransaction.recorded).toBe(false);
    expect((await record(pspPaymentId, 're_b', 5_000)).errors).toBeUndefined();
    expect(refunds(order.id)).toContainEqual(['re_b', 5_000, 'Success']);
  });

  it('refuses a refund of a return that would over-record, leaving the return Initial', async () => {
    const { order, pspPaymentId } = paidOrder();
    expect((await record(pspPaymentId, 're_dashboard', 19_999)).errors).toBeUndefined();
    const created = await run<{ createReturn: { returnId: string } }>(CREATE_RETURN, {
      input: { orderId: order.id, lineItemIds: [order.lineItems[0]!.id] },
    });
    expect(created.errors).toBeUndefined();
    const { returnId } = created.data!.createReturn;

    const result = await record(pspPaymentId, 're_return', 19_999, { returnId });

    expect(errorOf(result).code).toBe('CONFLICT');
    expect(refunds(order.id)).toEqual([['re_dashboard', 19_999, 'Success']]);
    expect(standIn.om.store.orders.get(order.id)!.returnInfo[0]!.items.map((i) => i.paymentState)).toEqual([
      'Initial',
    ]);
  });

  it('records one of two refunds recorded at once that each fit but not together', async () => {
    const { order, pspPaymentId } = paidOrder();
    const results = await Promise.all([
      record(pspPaymentId, 're_one', 15_000),
      record(pspPaymentId, 're_two', 15_000),
    ]);
    expect(results.map((r) => errorOf(r).code ?? 'ok').sort()).toEqual(['CONFLICT', 'ok']);
    expect(refunds(order.id)).toHaveLength(1);
  });
});
