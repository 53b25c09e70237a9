import { createHash, randomUUID } from 'node:crypto';
import {
  DomainError,
  ErrorCode,
  requireLearnerOrStaff,
  requirePrincipal,
  type ActionContext,
} from '@commerce-coordinator/plugin-sdk';
import {
  orderManagementClient,
  OrderManagementError,
  type CtOrder,
  type CtPayment,
  type CtTransaction,
  type UpdateAction,
} from './client.js';
import { readRetirementSalt } from './config.js';
import {
  claimedLineIds,
  lineState,
  lineView,
  lmsUserIdOf,
  moveLine,
  ORDER_REFUNDED_SIGNAL,
  orderView,
  pspOf,
  refundAmountCents,
  refundedCents,
  refundedLineIds,
  returnIdOf,
  revokeSignalOf,
  successfulPayment,
  type LineItemState,
} from './model.js';
import {
  COORDINATOR_RETURN_PREFIX,
  planReturn,
  settledStatusOf,
  settlementOf,
  storeRefundOf,
  settleStoreRefundReturns,
  isStorePayment,
  transactionIdOf,
  storeRefundShareCents,
  type ReturnPlan,
} from './returns.js';

/**
 * The order-management Plugin's Actions (mutations). Each is safe to retry: a retried step re-reads
 * the order and finds its own earlier effect (a return with its tracking id, a refund transaction with
 * the PSP refund id, lines already in their target state) instead of doing it twice.
 */

/** The order's learner, staff, a Service, or a flow step without a caller. */
export function requireOrderAccess(ctx: ActionContext, lmsUserId: number): void {
  if (ctx.principal) requireLearnerOrStaff(ctx.principal, lmsUserId);
  else if (ctx.flowId === undefined) requirePrincipal(undefined);
}

const badInput = (message: string) => new DomainError(ErrorCode.BAD_USER_INPUT, message);
const notFound = (message: string) => new DomainError(ErrorCode.NOT_FOUND, message);

async function readOrder(orderId: string): Promise<CtOrder> {
  const order = await orderManagementClient().getOrder(orderId);
  if (!order) throw notFound(`No order ${orderId}`);
  return order;
}

/** Turns the Service's answers to our own mistakes (a 400) into domain errors; the rest stay transient. */
async function service<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof OrderManagementError && error.status === 404) throw notFound(error.message);
    if (error instanceof OrderManagementError && error.status === 400)
      throw new DomainError(
        ErrorCode.CONFLICT,
        `The order management Service refused the change: ${error.message}`,
        {
          serviceCode: error.code,
        },
      );
    throw error;
  }
}

// ---- Refunds ------------------------------------------------------------------------------------

export async function createReturn(
  input: { orderId: string; lineItemIds: string[]; returnId?: string | null },
  ctx: ActionContext,
) {
  const { orderId, lineItemIds } = input;
  if (!lineItemIds.length) throw badInput('lineItemIds is empty: name the lines to return');
  const duplicates = lineItemIds.filter((id, i) => lineItemIds.indexOf(id) !== i);
  if (duplicates.length)
    throw badInput(`lineItemIds lists ${[...new Set(duplicates)].join(', ')} more than once`);
  const order = await readOrder(orderId);
  requireOrderAccess(ctx, lmsUserIdOf(order));
  const unknown = lineItemIds.filter((id) => !order.lineItems.some((l) => l.id === id));
  if (unknown.length)
    throw badInput(`Order ${order.orderNumber ?? orderId} has no line item ${unknown.join(', ')}`);

  // The return's id comes from the step's idempotency key, so a retried step finds the return it made.
  const newReturnId = ctx.idempotencyKey
    ? `${COORDINATOR_RETURN_PREFIX}${createHash('sha256').update(`${orderId}:${ctx.idempotencyKey}`).digest('hex').slice(0, 32)}`
    : randomUUID();
  // Lines already returned are answered, not returned again (the reference's "Refund already
  // created"): a retried or duplicate request is a success that refunds nothing twice.
  let plan: ReturnPlan | undefined;
  const updated = await service(() =>
    orderManagementClient().updateWithRetry(
      'orders',
      orderId,
      (current) => {
        plan = planReturn(current, { lineItemIds, newReturnId, adopt: input.returnId });
        return plan.actions;
      },
      { current: order, correlationId: ctx.idempotencyKey },
    ),
  );
  const { returnId, newLineItemIds, alreadyReturned } = plan!;

  const view = orderView(updated);
  const payment = successfulPayment(updated);
  const psp = payment && pspOf(payment);
  const settlement = settlementOf(updated, newLineItemIds);
  const storeRefund = settlement === 'STORE_REFUND' && payment ? storeRefundOf(payment) : undefined;
  return {
    // Nothing new returned: the return that holds the first line asked for.
    returnId: returnId ?? alreadyReturned[0]?.returnId ?? input.returnId ?? newReturnId,
    orderNumber: view.orderNumber,
    lmsUserId: view.lmsUserId,
    username: view.username,
    psp: psp?.psp ?? null,
    pspPaymentId: psp?.pspPaymentId ?? null,
    refundAmountCents:
      !payment || !psp || !returnId
        ? 0
        : settlement === 'STORE_REFUND'
          ? storeRefundShareCents(updated, payment, newLineItemIds)
          : refundAmountCents(updated, payment, returnId),
    currency: payment?.amountPlanned.currencyCode ?? updated.totalPrice.currencyCode,
    settlement,
    alreadyRefunded: newLineItemIds.length === 0,
    alreadyReturnedItems: alreadyReturned,
    refundStatus: settledStatusOf(settlement, updated, alreadyReturned),
    // Already returned: the first line's refund; a mobile store's refund: its transaction.
    transactionId: storeRefund?.id ?? (returnId ? null : (alreadyReturned[0]?.transactionId ?? null)),
    // Only the lines returned now: the lines returned before were revoked by their own flow.
    returnedItems: view.lineItems
      .filter((line) => newLineItemIds.includes(line.id))
      .map((line) => ({
        lineItemId: line.id,
        kind: line.kind,
        courseRunKey: line.courseRunKey,
        bundleKey: line.bundleKey,
        entitlementUuid: line.entitlementUuid,
        mode: line.mode,
        lob: line.lob,
      })),
  };
}

export async function markReturnNotRefunded(
  input: { orderId: string; returnId: string; pspRefundId?: string | null },
  ctx: ActionContext,
) {
  // The flow compensates createReturn whichever later step failed. After the PSP refund the money went
  // back: NotRefunded would be untrue, and would let the same lines be returned and refunded again. The
  // return stays Initial (its lines stay taken) and the flow ends FAILED for staff to finish recording.
  if (input.pspRefundId)
    throw new DomainError(
      ErrorCode.CONFLICT,
      `Return ${input.returnId} was refunded at the PSP (refund ${input.pspRefundId}): it is not marked NotRefunded`,
      { returnId: input.returnId, pspRefundId: input.pspRefundId },
    );
  const order = await readOrder(input.orderId);
  await service(() =>
    orderManagementClient().updateWithRetry(
      'orders',
      input.orderId,
      (current) => {
        const info = current.returnInfo?.find((r) => returnIdOf(r) === input.returnId);
        if (!info) throw notFound(`Order ${current.orderNumber} has no return ${input.returnId}`);
        // Items already Refunded stay so: that money did go back.
        return info.items
          .filter((item) => item.paymentState === 'Initial')
          .map((item) => ({
            action: 'setReturnPaymentState',
            returnItemId: item.id,
            paymentState: 'NotRefunded',
          }));
      },
      { current: order, correlationId: ctx.idempotencyKey },
    ),
  );
  return { returnId: input.returnId };
}

const TRANSACTION_STATES: Record<string, CtTransaction['state']> = {
  succeeded: 'Success',
  completed: 'Success',
  pending: 'Pending',
  requires_action: 'Pending',
  failed: 'Failure',
  canceled: 'Failure',
  cancelled: 'Failure',
};

/**
 * Why a refund new to the payment cannot be recorded, if it cannot: the refunds that took money back
 * (Success, Pending) would add up to more than was paid, or the refund alone is more than the payment
 * (a failed one took nothing back, but no PSP makes it either). The record and the PSP then disagree —
 * an event naming a refund the PSP does not hold, a refund recorded by hand — and recording it would
 * leave the order unrefundable (refundAmountCents 0 for ever): CONFLICT, for staff to resolve.
 */
function overRecorded(
  payment: CtPayment,
  refund: { pspPaymentId: string; pspRefundId: string; refundedAmountCents: number },
  state: CtTransaction['state'],
): DomainError | undefined {
  const paid = payment.amountPlanned.centAmount;
  const recorded = refundedCents(payment);
  const total = state === 'Failure' ? recorded : recorded + refund.refundedAmountCents;
  if (refund.refundedAmountCents <= paid && total <= paid) return undefined;
  const { pspPaymentId, pspRefundId, refundedAmountCents } = refund;
  return new DomainError(
    ErrorCode.CONFLICT,
    total > paid
      ? `Refund ${pspRefundId} of ${refundedAmountCents} would bring the refunds recorded on payment ${pspPaymentId} to ${total}, more than its ${paid}: it is not recorded`
      : `Refund ${pspRefundId} of ${refundedAmountCents} is more than payment ${pspPaymentId}'s ${paid}: it is not recorded`,
    { pspRefundId, refundedAmountCents, recordedRefundCents: recorded, paymentAmountCents: paid },
  );
}

/**
 * What settles an order's returns with a refund transaction: the return it was made for (`returnId`)
 * Refunded and linked to it, or, when it `failed`, every return settled with it NotRefunded.
 */
function returnsSettledBy(
  order: CtOrder,
  transactionId: string,
  returnId: string | null | undefined,
  failed: boolean,
): UpdateAction[] {
  const own = new Set(
    order.returnInfo?.find((r) => returnIdOf(r) === returnId)?.items.map((item) => item.id),
  );
  const target = failed ? 'NotRefunded' : 'Refunded';
  return (order.returnInfo ?? [])
    .flatMap((info) => info.items)
    .flatMap((item): UpdateAction[] => {
      // A failed refund gave nothing back: the returns settled with it are not refunded, and their
      // lines may be asked for again (left Refunded, they would be taken for ever).
      if (item.paymentState === 'Refunded')
        return failed && transactionIdOf(item) === transactionId
          ? [{ action: 'setReturnPaymentState', returnItemId: item.id, paymentState: 'NotRefunded' }]
          : [];
      // The return the refund was made for is settled with it.
      if (!own.has(item.id) || item.paymentState === target) return [];
      return [
        { action: 'setReturnPaymentState', returnItemId: item.id, paymentState: target },
        {
          action: 'setReturnItemCustomType',
          returnItemId: item.id,
          type: { typeId: 'type', key: 'returnItemCustomType' },
          fields: { transactionId },
        },
      ];
    });
}

/** A refund transaction's state as the payment holds it now. */
async function refundStateOnPayment(paymentId: string, transactionId: string) {
  const payment = await service(() => orderManagementClient().get('payments', paymentId));
  return payment?.transactions.find((t) => t.id === transactionId)?.state;
}

/**
 * Records a PSP refund on the order's payment, once per refund (`pspRefundId`), and settles its return.
 * A refund new to the payment that would bring its recorded refunds past what was paid is refused
 * with CONFLICT and nothing is recorded (`overRecorded`): whoever asks (a PSP webhook's signal, the
 * refund flow, staff), the record never says more went back than was paid.
 */
export async function recordRefundTransaction(
  input: {
    pspPaymentId: string;
    pspRefundId: string;
    refundedAmountCents: number;
    currency: string;
    refundStatus: string;
    refundCreatedAt: string;
    returnId?: string | null;
  },
  ctx: ActionContext,
) {
  const state = TRANSACTION_STATES[input.refundStatus.toLowerCase()];
  if (!state)
    throw badInput(
      `refundStatus '${input.refundStatus}' is not one of ${Object.keys(TRANSACTION_STATES).join(', ')}`,
    );
  if (input.refundedAmountCents < 0) throw badInput('refundedAmountCents must not be negative');
  const timestamp = new Date(input.refundCreatedAt);
  if (Number.isNaN(timestamp.getTime()))
    throw badInput(`refundCreatedAt '${input.refundCreatedAt}' is not an ISO 8601 date`);

  const client = orderManagementClient();
  // Stripe payments are found by their PaymentIntent (interfaceId), PayPal ones by the capture (Charge).
  const [payment] = await client.query(
    'payments',
    'interfaceId = :psp or transactions(type = "Charge" and interactionId = :psp)',
    { psp: input.pspPaymentId },
    { limit: 1 },
  );
  if (!payment) throw notFound(`No payment ${input.pspPaymentId} in the order management Service`);
  const [order] = await client.query(
    'orders',
    'paymentInfo(payments(id = :payment))',
    { payment: payment.id },
    { limit: 1 },
  );
  if (!order) throw notFound(`No order holds payment ${input.pspPaymentId}`);
  if (input.currency.toUpperCase() !== payment.amountPlanned.currencyCode)
    throw badInput(
      `The refund is in ${input.currency}, the payment in ${payment.amountPlanned.currencyCode}`,
    );
  if (input.returnId && !order.returnInfo?.some((r) => returnIdOf(r) === input.returnId))
    throw notFound(`Order ${order.orderNumber} has no return ${input.returnId}`);

  let recorded = false;
  const isThisRefund = (t: CtTransaction) => t.type === 'Refund' && t.interactionId === input.pspRefundId;
  const updatedPayment = await service(() =>
    client.updateWithRetry(
      'payments',
      payment.id,
      (current): UpdateAction[] => {
        const existing = current.transactions.find(isThisRefund);
        recorded = !existing;
        if (!existing) {
          // Checked on the payment as now stored: two refunds recorded at once are checked in turn.
          const refused = overRecorded(current, input, state);
          if (refused) throw refused;
          return [
            {
              action: 'addTransaction',
              transaction: {
                type: 'Refund',
                amount: {
                  centAmount: input.refundedAmountCents,
                  currencyCode: payment.amountPlanned.currencyCode,
                },
                timestamp: timestamp.toISOString(),
                interactionId: input.pspRefundId,
                state,
              },
            },
          ];
        }
        // A later event may settle a pending refund; a failed one never changes, nor does a succeeded one,
        // except to fail: a card refund Stripe reported succeeded can fail later (a closed card), and the
        // money is then back with us (events arrive out of order, but nothing follows a failure).
        const settled = existing.state === 'Failure' || (existing.state === 'Success' && state !== 'Failure');
        return settled || existing.state === state
          ? []
          : [{ action: 'changeTransactionState', transactionId: existing.id, state }];
      },
      { current: payment, correlationId: ctx.idempotencyKey },
    ),
  );
  const transaction = updatedPayment.transactions.find(isThisRefund)!;

  /** The refund's state as the order (read with its payment) holds it now: a later event may have failed it. */
  const stateNow = (current: CtOrder) =>
    current.paymentInfo?.payments
      .flatMap((ref) => ref.obj?.transactions ?? [])
      .find((t) => t.id === transaction.id)?.state ?? transaction.state;
  if (input.returnId || transaction.state === 'Failure') {
    let failed = false;
    const settleReturns = () =>
      service(() =>
        client.updateWithRetry(
          'orders',
          order.id,
          (current) => {
            failed = stateNow(current) === 'Failure';
            return returnsSettledBy(current, transaction.id, input.returnId, failed);
          },
          { correlationId: ctx.idempotencyKey },
        ),
      );
    await settleReturns();
    // The payment and the order are versioned apart: a failure recorded on the payment after this
    // update read the order (a webhook's) found no return settled with the refund yet, so it undid
    // none. Read the refund again once the return is settled: if it failed, undo it here (once: a
    // failure is final).
    if (!failed && (await refundStateOnPayment(payment.id, transaction.id)) === 'Failure')
      await settleReturns();
  } else if (isStorePayment(payment)) {
    // A mobile store's refund: the store refunds the whole purchase, so the returns of the order
    // awaiting it (settleReturn left them Initial) are refunded by it.
    await settleStoreRefundReturns(order.id, transaction.id, ctx);
  }
  return { transactionId: transaction.id, orderId: order.id, recorded };
}

// ---- Fulfillment ---------------------------------------------------------------------------------

const lineStates = (order: CtOrder) =>
  order.lineItems.map((line) => ({ lineItemId: line.id, state: lineState(line) }));

export async function startFulfillment(input: { orderId: string }, ctx: ActionContext) {
  const order = await readOrder(input.orderId);
  // Every line not yet fulfilled moves to PROCESSING in one update (the reference's commit 41c5ca3b),
  // but one a return holds (its money refunded or being refunded): a new message for an order whose
  // failed line was refunded meanwhile must not give the learner both the course and the refund.
  let returned = claimedLineIds(order);
  const updated = await service(() =>
    orderManagementClient().updateWithRetry(
      'orders',
      input.orderId,
      (current) => {
        returned = claimedLineIds(current);
        return current.lineItems.flatMap((line) =>
          lineState(line) === 'SUCCESS' || lineState(line) === 'PROCESSING' || returned.has(line.id)
            ? []
            : moveLine(line, 'PROCESSING'),
        );
      },
      { current: order, correlationId: ctx.idempotencyKey },
    ),
  );
  const view = orderView(updated);
  return {
    orderNumber: view.orderNumber,
    datePlaced: view.createdAt,
    lmsUserId: view.lmsUserId,
    username: view.username,
    email: view.email,
    order: view,
    lineItems: updated.lineItems
      .map(lineView)
      .filter((line) => line.state !== 'SUCCESS' && !returned.has(line.id))
      .map((line) => ({
        lineItemId: line.id,
        kind: line.kind,
        courseRunKey: line.courseRunKey,
        bundleKey: line.bundleKey,
        mode: line.mode,
        lob: line.lob,
        creditProvider: line.creditProvider,
      })),
  };
}

export async function failFulfillment(input: { orderId: string }, ctx: ActionContext) {
  const order = await readOrder(input.orderId);
  const updated = await service(() =>
    orderManagementClient().updateWithRetry(
      'orders',
      input.orderId,
      (current) =>
        current.lineItems.flatMap((line) =>
          lineState(line) === 'SUCCESS' || lineState(line) === 'FAILURE' ? [] : moveLine(line, 'FAILURE'),
        ),
      { current: order, correlationId: ctx.idempotencyKey },
    ),
  );
  return { orderId: updated.id, lineItemStates: lineStates(updated) };
}

export async function completeFulfillment(
  input: {
    orderId: string;
    fulfillments: Array<{ lineItemId: string; fulfilled: boolean; entitlementUuid?: string | null }>;
  },
  ctx: ActionContext,
) {
  const ids = input.fulfillments.map((f) => f.lineItemId);
  const duplicates = ids.filter((id, i) => ids.indexOf(id) !== i);
  if (duplicates.length)
    throw badInput(`fulfillments lists ${[...new Set(duplicates)].join(', ')} more than once`);
  const order = await readOrder(input.orderId);
  const unknown = ids.filter((id) => !order.lineItems.some((l) => l.id === id));
  if (unknown.length)
    throw badInput(`Order ${order.orderNumber ?? order.id} has no line item ${unknown.join(', ')}`);

  // Completions of one order may arrive together (one per line): each plan applies to the order as
  // re-read after a conflict, and a SUCCESS line is never moved back.
  const updated = await service(() =>
    orderManagementClient().updateWithRetry(
      'orders',
      input.orderId,
      (current) =>
        input.fulfillments.flatMap((f) => {
          const line = current.lineItems.find((l) => l.id === f.lineItemId)!;
          const from: LineItemState = lineState(line);
          const actions: UpdateAction[] = [];
          const uuid = line.custom?.fields.entitlementUuid;
          if (f.entitlementUuid && line.custom && !uuid)
            actions.push({
              action: 'setLineItemCustomField',
              lineItemId: line.id,
              name: 'entitlementUuid',
              value: f.entitlementUuid,
            });
          if (from !== 'SUCCESS') actions.push(...moveLine(line, f.fulfilled ? 'SUCCESS' : 'FAILURE'));
          return actions;
        }),
      { current: order, correlationId: ctx.idempotencyKey },
    ),
  );
  // A line refunded while it was being fulfilled (the Order Fulfillment service works after the flow
  // that forwarded it, and the refund's revoke, sent at once, found nothing to end) was fulfilled
  // anyway: it is revoked now, or the learner keeps the course and the money. Only once the money is
  // back (Refunded): a refund still open (awaiting a store's refund, an outcome unknown) revokes its
  // lines itself when it is recorded. Sent on every report of it, a redelivery or a retried step
  // included: a revoke is idempotent, a lost one is not.
  const refundedLines = refundedLineIds(updated);
  const refunded = input.fulfillments.filter((f) => f.fulfilled && refundedLines.has(f.lineItemId));
  if (refunded.length)
    ctx.emit(
      ORDER_REFUNDED_SIGNAL,
      revokeSignalOf(
        updated,
        refunded.map((f) => f.lineItemId),
        new Map(refunded.flatMap((f) => (f.entitlementUuid ? [[f.lineItemId, f.entitlementUuid]] : []))),
      ),
    );
  return { orderId: updated.id, lineItemStates: lineStates(updated) };
}

// ---- Retirement ----------------------------------------------------------------------------------

const RETIRED_PREFIX = 'retired_user_';

export async function anonymizeCustomer(input: { lmsUserId: number }, ctx: ActionContext) {
  const salt = readRetirementSalt();
  // The reference's hash: 'retired_user_' + sha256(salt + lower(value)). An already retired value is
  // left alone, so a retried step does not hash the hash.
  const retire = (value: string | undefined) =>
    value && !value.startsWith(RETIRED_PREFIX)
      ? `${RETIRED_PREFIX}${createHash('sha256')
          .update(salt + value.toLowerCase())
          .digest('hex')}`
      : undefined;
  const client = orderManagementClient();
  const byLearner = 'custom(fields(lmsUserId = :lmsUserId))';
  const customers = await client.query('customers', byLearner, { lmsUserId: input.lmsUserId });
  for (const customer of customers) {
    await service(() =>
      client.updateWithRetry(
        'customers',
        customer.id,
        (current) => {
          const actions: UpdateAction[] = [];
          const firstName = retire(current.firstName);
          const lastName = retire(current.lastName);
          const email = retire(current.email);
          const username = retire(current.custom?.fields.lmsUsername as string | undefined);
          if (firstName) actions.push({ action: 'setFirstName', firstName });
          if (lastName) actions.push({ action: 'setLastName', lastName });
          if (email) actions.push({ action: 'changeEmail', email });
          if (username) actions.push({ action: 'setCustomField', name: 'lmsUsername', value: username });
          return actions;
        },
        { current: customer, correlationId: ctx.idempotencyKey },
      ),
    );
  }
  // Orders keep a copy of the learner's email and username: retire those too.
  const orders = await client.query('orders', byLearner, { lmsUserId: input.lmsUserId });
  for (const order of orders) {
    await service(() =>
      client.updateWithRetry(
        'orders',
        order.id,
        (current) => {
          const actions: UpdateAction[] = [];
          const email = retire(current.customerEmail);
          const username = retire(current.custom?.fields.lmsUsername as string | undefined);
          if (email) actions.push({ action: 'setCustomerEmail', email });
          if (username) actions.push({ action: 'setCustomField', name: 'lmsUsername', value: username });
          return actions;
        },
        { current: order, correlationId: ctx.idempotencyKey },
      ),
    );
  }
  return { customersRetired: customers.length };
}
