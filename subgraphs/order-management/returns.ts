import { DomainError, ErrorCode, type ActionContext } from '@commerce-coordinator/plugin-sdk';
import {
  orderManagementClient,
  OrderManagementError,
  type CtOrder,
  type CtPayment,
  type CtReturnInfo,
  type CtReturnItem,
  type UpdateAction,
} from './client.js';
import { requireOrderAccess } from './actions.js';
import { lineShares, lmsUserIdOf, pspOf, returnIdOf, STORE_PSPS, successfulPayment } from './model.js';

/**
 * How a refund request meets the returns an order already has (reference §5.6, §5.7): lines already
 * returned are answered, not returned again; a return made in the order management Service itself (the
 * Merchant Center) is adopted, not doubled; and a return no PSP refunds is settled without one.
 */

/** The returns createReturn itself adds are tracked by ids it derives; others were made elsewhere. */
export const COORDINATOR_RETURN_PREFIX = 'ret-';

/**
 * How a return is settled: PSP_REFUND — at Stripe or PayPal by the flow's next steps; STORE_REFUND — a
 * mobile store refunded it (its refund notification records the transaction); NO_PAYMENT — nothing was
 * paid (a zero total, an enrollment code), so nothing is refunded; ALREADY_RETURNED — every line asked
 * for was returned before, nothing new to refund.
 */
export type ReturnSettlement = 'PSP_REFUND' | 'STORE_REFUND' | 'NO_PAYMENT' | 'ALREADY_RETURNED';

/** A line asked for that an earlier return holds, as the answer names it. */
export interface AlreadyReturnedItem {
  lineItemId: string;
  returnId: string;
  paymentState: 'INITIAL' | 'REFUNDED' | 'NON_REFUNDABLE';
  transactionId: string | null;
}

const STATE_NAMES = { Initial: 'INITIAL', Refunded: 'REFUNDED', NonRefundable: 'NON_REFUNDABLE' } as const;
export const transactionIdOf = (item: CtReturnItem) =>
  (item.custom?.fields.transactionId as string | undefined) ?? null;

export interface ReturnPlan {
  /** The return this request's new lines are in: a new one, or the adopted one. */
  returnId: string | undefined;
  /** The lines this request returns now (to refund). */
  newLineItemIds: string[];
  alreadyReturned: AlreadyReturnedItem[];
  actions: UpdateAction[];
}

/**
 * Plans createReturn's update on the order as it is now (re-planned after a concurrent change). A
 * line counts as returned when another return holds it in any state but NotRefunded (in flight or
 * refunded: the money is, or is being, given back). With `adopt`, the named return — made elsewhere —
 * is the request's: its open items whose lines another return refunded are settled with that refund's
 * transaction, the rest are refunded by this flow. A return the Coordinator made is never adopted: its
 * own flow refunds it, so its lines count as returned.
 */
export function planReturn(
  order: CtOrder,
  request: { lineItemIds: string[]; newReturnId: string; adopt?: string | null },
): ReturnPlan {
  const returns = order.returnInfo ?? [];
  const adopted = request.adopt ? returns.find((r) => returnIdOf(r) === request.adopt) : undefined;
  if (request.adopt && !adopted)
    throw new DomainError(
      ErrorCode.NOT_FOUND,
      `Order ${order.orderNumber ?? order.id} has no return ${request.adopt}`,
    );
  if (adopted) {
    const outside = request.lineItemIds.filter((id) => !adopted.items.some((i) => i.lineItemId === id));
    if (outside.length)
      throw new DomainError(
        ErrorCode.BAD_USER_INPUT,
        `Return ${request.adopt} has no item for line ${outside.join(', ')}`,
      );
  }
  const ownReturn = adopted ?? returns.find((r) => r.returnTrackingId === request.newReturnId);
  const ownIsCoordinators = adopted?.returnTrackingId?.startsWith(COORDINATOR_RETURN_PREFIX) ?? false;

  /** The item of another return holding the line (refunded ones first: they name the transaction). */
  const heldElsewhere = (lineItemId: string, except: CtReturnInfo | undefined) => {
    const held = returns
      .filter((r) => r !== except)
      .flatMap((r) => r.items.map((item) => ({ info: r, item })))
      .filter(({ item }) => item.lineItemId === lineItemId && item.paymentState !== 'NotRefunded');
    return held.find(({ item }) => item.paymentState === 'Refunded') ?? held[0];
  };
  const answer = (info: CtReturnInfo, item: CtReturnItem, lineItemId: string): AlreadyReturnedItem => ({
    lineItemId,
    returnId: returnIdOf(info),
    paymentState: STATE_NAMES[item.paymentState as keyof typeof STATE_NAMES],
    transactionId: transactionIdOf(item),
  });

  // The Coordinator's own return, announced back by the Service's event: its flow refunds it.
  if (adopted && ownIsCoordinators) {
    const alreadyReturned = adopted.items
      .filter((i) => i.lineItemId && request.lineItemIds.includes(i.lineItemId))
      .filter((i) => i.paymentState !== 'NotRefunded')
      .map((i) => answer(adopted, i, i.lineItemId!));
    return { returnId: undefined, newLineItemIds: [], alreadyReturned, actions: [] };
  }

  const alreadyReturned: AlreadyReturnedItem[] = [];
  const newLineItemIds: string[] = [];
  const actions: UpdateAction[] = [];
  for (const lineItemId of request.lineItemIds) {
    const elsewhere = heldElsewhere(lineItemId, ownReturn);
    const ownItem = ownReturn?.items.find((i) => i.lineItemId === lineItemId);
    if (adopted && ownItem && ownItem.paymentState !== 'Initial') {
      // Settled already (by an earlier run of this adoption, or by staff): nothing to refund.
      if (ownItem.paymentState !== 'NotRefunded') alreadyReturned.push(answer(adopted, ownItem, lineItemId));
      continue;
    }
    if (elsewhere) {
      alreadyReturned.push(answer(elsewhere.info, elsewhere.item, lineItemId));
      // An adopted item for a line refunded by another return: the same refund pays for it.
      if (adopted && ownItem && elsewhere.item.paymentState === 'Refunded')
        actions.push(
          { action: 'setReturnPaymentState', returnItemId: ownItem.id, paymentState: 'Refunded' },
          {
            action: 'setReturnItemCustomType',
            returnItemId: ownItem.id,
            type: { typeId: 'type', key: 'returnItemCustomType' },
            fields: { transactionId: transactionIdOf(elsewhere.item) },
          },
        );
      continue;
    }
    newLineItemIds.push(lineItemId);
  }
  if (!ownReturn && newLineItemIds.length)
    actions.push({
      action: 'addReturnInfo',
      returnTrackingId: request.newReturnId,
      returnDate: new Date().toISOString(),
      items: newLineItemIds.map((lineItemId) => ({
        quantity: 1,
        lineItemId,
        shipmentState: 'Returned',
        comment: 'Refund requested through the Commerce Coordinator',
      })),
    });
  const returnId = newLineItemIds.length ? (adopted ? returnIdOf(adopted) : request.newReturnId) : undefined;
  return { returnId, newLineItemIds, alreadyReturned, actions };
}

/** The Refund transaction a mobile store's refund notification recorded on the payment, if any yet. */
export function storeRefundOf(payment: CtPayment) {
  return payment.transactions.find(
    (t) => t.type === 'Refund' && (t.state === 'Success' || t.state === 'Pending'),
  );
}

/**
 * What a mobile store's refund gave back for these lines: their shares of the payment, whatever else
 * was refunded (the store refunds whole purchases; the PSP cap of refundAmountCents does not apply).
 */
export function storeRefundShareCents(order: CtOrder, payment: CtPayment, lineItemIds: string[]): number {
  const shares = lineShares(order.lineItems, payment.amountPlanned.centAmount);
  return lineItemIds.reduce((sum, id) => sum + (shares.get(id) ?? 0), 0);
}

/** Whether a mobile store took the payment (and refunds it). */
export function isStorePayment(payment: CtPayment): boolean {
  const psp = pspOf(payment);
  return psp !== undefined && STORE_PSPS.has(psp.psp);
}

/**
 * The updates that settle the order's returns with a mobile store's refund, its Refund transaction:
 * the store refunds the whole purchase, so every item awaiting it (Initial: a staff refund answered
 * `awaiting_store_refund`) is Refunded against it, and an item refunded in the Merchant Center without a
 * transaction is linked to it (reference §5.12 step 4). Planned on the order as it is now: an item
 * settled or linked before is left alone, so planning again (a redelivery) changes nothing.
 */
export function awaitingStoreRefund(order: CtOrder, transactionId: string): UpdateAction[] {
  const linkTo = (item: CtReturnItem): UpdateAction => ({
    action: 'setReturnItemCustomType',
    returnItemId: item.id,
    type: { typeId: 'type', key: 'returnItemCustomType' },
    fields: { ...(item.custom?.fields ?? {}), transactionId },
  });
  return (order.returnInfo ?? [])
    .flatMap((info) => info.items)
    .flatMap((item): UpdateAction[] => {
      if (item.paymentState === 'Initial')
        return [
          { action: 'setReturnPaymentState', returnItemId: item.id, paymentState: 'Refunded' },
          linkTo(item),
        ];
      if (item.paymentState === 'Refunded' && !transactionIdOf(item)) return [linkTo(item)];
      return [];
    });
}

/**
 * Settles the order's returns with a mobile store's refund (see {@link awaitingStoreRefund}): the one
 * place every path that records a store's refund on a payment calls once it is recorded (the receiver of
 * `mobile.payment.refunded.v1`, recordRefundTransaction), while settleReturn settles a return made after
 * it. The order is read after the refund was recorded, never before: a return a staff refund adds
 * meanwhile is either seen here, or its settleReturn sees the refund (it reads the payment after adding
 * the return), so whichever comes first the return ends Refunded. Idempotent: a redelivery settles
 * nothing twice. Answers how many return items were settled or linked.
 */
export async function settleStoreRefundReturns(
  orderId: string,
  transactionId: string,
  ctx: ActionContext,
): Promise<number> {
  let settled = 0;
  try {
    await orderManagementClient().updateWithRetry(
      'orders',
      orderId,
      (current) => {
        const actions = awaitingStoreRefund(current, transactionId);
        settled = new Set(actions.map((a) => a.returnItemId)).size;
        return actions;
      },
      { correlationId: ctx.idempotencyKey },
    );
  } catch (error) {
    if (error instanceof OrderManagementError && error.status === 400)
      throw new DomainError(ErrorCode.CONFLICT, `The order management Service refused: ${error.message}`);
    throw error;
  }
  return settled;
}

/** How the return of `order`'s new lines is settled (see ReturnSettlement). */
export function settlementOf(order: CtOrder, newLineItemIds: readonly string[]): ReturnSettlement {
  if (!newLineItemIds.length) return 'ALREADY_RETURNED';
  const payment = successfulPayment(order);
  const psp = payment && pspOf(payment);
  if (!payment || !psp || payment.amountPlanned.centAmount === 0) return 'NO_PAYMENT';
  if (STORE_PSPS.has(psp.psp)) return 'STORE_REFUND';
  // Free lines of a paid order (a course given with another) have no share of the payment: nothing
  // was paid for them, and a PSP refunds no amount of 0.
  const shares = lineShares(order.lineItems, payment.amountPlanned.centAmount);
  return newLineItemIds.some((id) => (shares.get(id) ?? 0) > 0) ? 'PSP_REFUND' : 'NO_PAYMENT';
}

/** What the caller is told of a return that no PSP refund step follows (the PSP's status otherwise). */
export function settledStatusOf(
  settlement: ReturnSettlement,
  order: CtOrder,
  alreadyReturned: AlreadyReturnedItem[],
): string | null {
  switch (settlement) {
    case 'ALREADY_RETURNED':
      return alreadyReturned.length && alreadyReturned.every((i) => i.paymentState === 'REFUNDED')
        ? 'already_refunded'
        : 'already_returned';
    case 'NO_PAYMENT':
      return 'not_refunded';
    case 'STORE_REFUND': {
      const payment = successfulPayment(order);
      return payment && storeRefundOf(payment) ? 'refunded_by_store' : 'awaiting_store_refund';
    }
    case 'PSP_REFUND':
      return null;
  }
}

// ---- The Action ----------------------------------------------------------------------------------

/**
 * Settles a return no PSP refund step follows, then halts the flow (answers null): the order is not
 * refunded by this flow, so it emits no `order.refunded.v1` and nothing is revoked (the reference sends
 * no revoke for these either; a mobile purchase is revoked by the store's refund notification).
 * NO_PAYMENT: its items end NotRefunded. STORE_REFUND: they end Refunded against the payment's Refund
 * transaction, or, while the store's refund is not recorded yet, stay Initial for the notification to
 * settle. ALREADY_RETURNED: nothing changes.
 */
export async function settleReturn(
  input: { orderId: string; returnId?: string | null; settlement: ReturnSettlement },
  ctx: ActionContext,
): Promise<null> {
  if (input.settlement === 'PSP_REFUND')
    throw new DomainError(
      ErrorCode.BAD_USER_INPUT,
      'A PSP_REFUND return is settled by the PSP refund and recordRefundTransaction',
    );
  if (input.settlement === 'ALREADY_RETURNED' || !input.returnId) return null;
  const client = orderManagementClient();
  const order = await client.getOrder(input.orderId);
  if (!order) throw new DomainError(ErrorCode.NOT_FOUND, `No order ${input.orderId}`);
  requireOrderAccess(ctx, lmsUserIdOf(order));
  const held = order.returnInfo?.find((r) => returnIdOf(r) === input.returnId);
  if (!held)
    throw new DomainError(ErrorCode.NOT_FOUND, `Order ${order.orderNumber} has no return ${input.returnId}`);
  const actual = settlementOf(
    order,
    held.items.flatMap((item) => (item.lineItemId ? [item.lineItemId] : [])),
  );
  if (actual !== input.settlement)
    throw new DomainError(
      ErrorCode.CONFLICT,
      `Order ${order.orderNumber ?? order.id} is settled by ${actual}, not ${input.settlement}`,
    );
  try {
    await client.updateWithRetry(
      'orders',
      input.orderId,
      (current) => {
        const info = current.returnInfo?.find((r) => returnIdOf(r) === input.returnId);
        if (!info)
          throw new DomainError(
            ErrorCode.NOT_FOUND,
            `Order ${current.orderNumber} has no return ${input.returnId}`,
          );
        const open = info.items.filter((item) => item.paymentState === 'Initial');
        if (input.settlement === 'NO_PAYMENT')
          return open.map((item) => ({
            action: 'setReturnPaymentState',
            returnItemId: item.id,
            paymentState: 'NotRefunded',
          }));
        const payment = successfulPayment(current);
        const refund = payment && storeRefundOf(payment);
        if (!refund) return [];
        return awaitingStoreRefund({ ...current, returnInfo: [info] }, refund.id);
      },
      { current: order, correlationId: ctx.idempotencyKey },
    );
  } catch (error) {
    if (error instanceof OrderManagementError && error.status === 400)
      throw new DomainError(ErrorCode.CONFLICT, `The order management Service refused: ${error.message}`);
    throw error;
  }
  return null;
}
