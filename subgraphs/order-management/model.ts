import type { CtLineItem, CtOrder, CtPayment, CtReturnInfo, CtReturnItem, UpdateAction } from './client.js';

/**
 * How the Plugin reads commercetools orders: the States and custom fields provisioned in the project
 * (reference §6.2), the GraphQL view of an order, each line's share of the payment and the refund
 * amount of a return.
 */

export type LineItemState = 'INITIAL' | 'PENDING' | 'PROCESSING' | 'SUCCESS' | 'FAILURE';
export type Psp = 'STRIPE' | 'PAYPAL' | 'IOS_IAP' | 'ANDROID_IAP';

/** The payment interfaces of mobile in-app purchases: the store (Apple, Google) refunds them, not us. */
export const STORE_PSPS: ReadonlySet<Psp> = new Set(['IOS_IAP', 'ANDROID_IAP']);

/** The keys of the line item States provisioned in the project. */
export const LINE_STATE_KEYS: Record<LineItemState, string> = {
  INITIAL: 'Initial',
  PENDING: '2u-fulfillment-pending-state',
  PROCESSING: '2u-fulfillment-processing-state',
  SUCCESS: '2u-fulfillment-success-state',
  FAILURE: '2u-fulfillment-failure-state',
};
const STATE_BY_KEY = new Map(
  Object.entries(LINE_STATE_KEYS).map(([state, key]) => [key, state as LineItemState]),
);

/** The order workflow State set by the checkout side when a sanctions check flags the buyer. */
export const SANCTIONED_STATE_KEY = '2u-sdn-order-state';

/**
 * The transitions the provisioned States allow. SUCCESS is final: a fulfilled line is never moved back
 * (the reference learned this the hard way, commit 325d4d66).
 */
const TRANSITIONS: Record<LineItemState, LineItemState[]> = {
  INITIAL: ['PENDING', 'FAILURE'],
  PENDING: ['PROCESSING', 'FAILURE'],
  PROCESSING: ['SUCCESS', 'FAILURE'],
  SUCCESS: [],
  FAILURE: ['PENDING', 'SUCCESS'],
};

/** The states a line passes through from `from` to `to` (excluding `from`); [] when already there. */
export function transitionPath(from: LineItemState, to: LineItemState): LineItemState[] {
  const previous = new Map<LineItemState, LineItemState>();
  const queue: LineItemState[] = [from];
  while (queue.length) {
    const state = queue.shift()!;
    if (state === to) break;
    for (const next of TRANSITIONS[state]) {
      if (next !== from && !previous.has(next)) {
        previous.set(next, state);
        queue.push(next);
      }
    }
  }
  if (from === to) return [];
  if (!previous.has(to)) throw new Error(`A line item cannot move from ${from} to ${to}`);
  const path: LineItemState[] = [];
  for (let state = to; state !== from; state = previous.get(state)!) path.unshift(state);
  return path;
}

/** The update actions that move `line` to `to` through the allowed transitions (one per hop). */
export function moveLine(line: CtLineItem, to: LineItemState): UpdateAction[] {
  const from = lineState(line);
  const quantity = line.state.find((s) => s.quantity > 0)?.quantity ?? line.quantity;
  const hops = transitionPath(from, to);
  return hops.map((state, i) => ({
    action: 'transitionLineItemState',
    lineItemId: line.id,
    quantity,
    fromState: { typeId: 'state', key: LINE_STATE_KEYS[i === 0 ? from : hops[i - 1]!] },
    toState: { typeId: 'state', key: LINE_STATE_KEYS[state] },
  }));
}

/** A line's current state: the state holding its quantity (read with `lineItems[*].state[*].state`). */
export function lineState(line: CtLineItem): LineItemState {
  const current = line.state.find((s) => s.quantity > 0) ?? line.state[0];
  if (!current) return 'INITIAL';
  const key = current.state.obj?.key;
  const state = key ? STATE_BY_KEY.get(key) : undefined;
  if (!state) throw new Error(`Line item ${line.id} is in an unknown State (${key ?? current.state.id})`);
  return state;
}

const field = (line: CtLineItem, name: string): string | undefined => {
  const value = line.custom?.fields[name];
  return typeof value === 'string' && value ? value : undefined;
};

/** A variant attribute's text value; null when absent or empty. */
const variantText = (line: CtLineItem, name: string): string | null => {
  const value = line.variant.attributes?.find((a) => a.name === name)?.value;
  return typeof value === 'string' && value ? value : null;
};

export function lineView(line: CtLineItem) {
  const bundleKey = field(line, 'bundleKey');
  // The custom field `kind` says it; older lines without it are bundles when they carry a bundle key.
  const kind: 'COURSE' | 'BUNDLE' =
    (field(line, 'kind') ?? (bundleKey ? 'BUNDLE' : 'COURSE')) === 'BUNDLE' ? 'BUNDLE' : 'COURSE';
  return {
    id: line.id,
    kind,
    // A course line's variant SKU is its course run key.
    courseRunKey: field(line, 'courseRunKey') ?? (kind === 'COURSE' ? line.variant.sku : undefined) ?? null,
    bundleKey: bundleKey ?? null,
    title: line.name['en-US'] ?? Object.values(line.name)[0] ?? '',
    priceCents: line.totalPrice.centAmount,
    currency: line.totalPrice.currencyCode,
    state: lineState(line),
    entitlementUuid: field(line, 'entitlementUuid') ?? null,
    mode: String(line.variant.attributes?.find((a) => a.name === 'mode')?.value ?? 'verified'),
    // The line of business the Order Fulfillment service fulfills it for (the reference's default: edx).
    lob: String(line.variant.attributes?.find((a) => a.name === 'lob')?.value ?? 'edx'),
    creditProvider: variantText(line, 'credit-provider'),
  };
}

/** The payment that succeeded at the PSP (the reference's rule: `paymentStatus.interfaceCode` succeeded). */
export function successfulPayment(order: CtOrder): CtPayment | undefined {
  return order.paymentInfo?.payments
    .map((ref) => ref.obj)
    .find((payment) => payment?.paymentStatus.interfaceCode === 'succeeded');
}

/**
 * The PSP and its payment id: Stripe's PaymentIntent (interfaceId), PayPal's capture (the Charge), a
 * mobile store's transaction (interfaceId: Apple's transactionId, Google's orderId).
 */
export function pspOf(payment: CtPayment): { psp: Psp; pspPaymentId: string } | undefined {
  switch (payment.paymentMethodInfo.paymentInterface) {
    case 'stripe_edx':
      return payment.interfaceId ? { psp: 'STRIPE', pspPaymentId: payment.interfaceId } : undefined;
    case 'paypal_edx': {
      const charge = payment.transactions.find((t) => t.type === 'Charge' && t.state === 'Success');
      return charge?.interactionId ? { psp: 'PAYPAL', pspPaymentId: charge.interactionId } : undefined;
    }
    case 'ios_iap_edx':
      return payment.interfaceId ? { psp: 'IOS_IAP', pspPaymentId: payment.interfaceId } : undefined;
    case 'android_iap_edx':
      return payment.interfaceId ? { psp: 'ANDROID_IAP', pspPaymentId: payment.interfaceId } : undefined;
    default:
      // Other processors are not refunded through the Coordinator.
      return undefined;
  }
}

/** Refunds recorded on the payment that took (or are taking) money back. */
export function refundedCents(payment: CtPayment): number {
  return payment.transactions
    .filter((t) => t.type === 'Refund' && (t.state === 'Success' || t.state === 'Pending'))
    .reduce((sum, t) => sum + t.amount.centAmount, 0);
}

/** The id a return is known by: its tracking id (set by createReturn), else its first item's id. */
export const returnIdOf = (info: CtReturnInfo) => info.returnTrackingId ?? info.items[0]?.id ?? '';

/**
 * Each line's share of what was paid, in minor units, by line id: pro rata to the line totals (a
 * discount spread evenly), the cents left over by rounding down going to the largest remainders (the
 * first line of equal ones), so the shares add up to the payment exactly. It depends on the order's
 * lines and payment only, never on its returns: a line's share is the same whichever return comes first.
 */
export function lineShares(lines: readonly CtLineItem[], paidCents: number): Map<string, number> {
  const paid = BigInt(Math.max(0, paidCents));
  const prices = lines.map((line) => BigInt(Math.max(0, line.totalPrice.centAmount)));
  const priced = prices.some((price) => price > 0n);
  // No line has a price (yet something was paid): the payment is shared equally.
  const weights = priced ? prices : prices.map(() => 1n);
  const total = weights.reduce((sum, weight) => sum + weight, 0n);
  if (total === 0n) return new Map(lines.map((line) => [line.id, 0]));
  // Exact integers: paid × price overflows a double's 2^53 long before it overflows a bigint.
  const parts = weights.map((weight, index) => ({
    index,
    share: (paid * weight) / total,
    remainder: (paid * weight) % total,
  }));
  let left = paid - parts.reduce((sum, part) => sum + part.share, 0n);
  const byRemainder = [...parts].sort((a, b) =>
    a.remainder === b.remainder ? a.index - b.index : a.remainder > b.remainder ? -1 : 1,
  );
  for (const part of byRemainder) {
    if (left === 0n) break;
    part.share += 1n;
    left -= 1n;
  }
  return new Map(lines.map((line, i) => [line.id, Number(parts[i]!.share)]));
}

/** Return item payment states whose lines' money is being or was refunded. */
const CLAIMING: ReadonlySet<CtReturnItem['paymentState']> = new Set(['Initial', 'Refunded']);

/** The lines of `order` a return holds whose money is being or was refunded. */
export const claimedLineIds = (order: CtOrder): Set<string> =>
  new Set(
    (order.returnInfo ?? [])
      .flatMap((info) => info.items)
      .filter((item) => CLAIMING.has(item.paymentState) && item.lineItemId)
      .map((item) => item.lineItemId!),
  );

/** The lines of `order` whose money a return gave back (Refunded: not in flight, not awaiting a store). */
export const refundedLineIds = (order: CtOrder): Set<string> =>
  new Set(
    (order.returnInfo ?? [])
      .flatMap((info) => info.items)
      .filter((item) => item.paymentState === 'Refunded' && item.lineItemId)
      .map((item) => item.lineItemId!),
  );

/**
 * The refund of a return, in minor units: the sum of its lines' shares (`lineShares`), capped by what
 * is left to refund — the payment less what the other returns claim (their lines' shares) or what was
 * already refunded (theirs, and refunds made outside any return, in the PSP's dashboard), whichever is
 * more. Other returns refund at most their shares, so without dashboard refunds the cap never takes
 * anything from this return, however many are open; a dashboard refund is taken off once the returns
 * in flight are recorded (until then their shares count instead, and the PSP refuses what is not there).
 */
export function refundAmountCents(order: CtOrder, payment: CtPayment, returnId: string): number {
  const paid = payment.amountPlanned.centAmount;
  const shares = lineShares(order.lineItems, paid);
  const shareOf = (lineItemIds: Iterable<string>) =>
    [...new Set(lineItemIds)].reduce((sum, id) => sum + (shares.get(id) ?? 0), 0);
  const returns = order.returnInfo ?? [];
  const thisReturn = returns.find((r) => returnIdOf(r) === returnId);
  // Items of this return already settled (a line refunded by an earlier return) are not refunded again.
  const own = shareOf(
    thisReturn?.items.flatMap((i) => (i.lineItemId && i.paymentState === 'Initial' ? [i.lineItemId] : [])) ??
      [],
  );
  const claimedByOthers = shareOf(
    returns
      .filter((r) => r !== thisReturn)
      .flatMap((r) => r.items)
      .filter((i) => CLAIMING.has(i.paymentState) && i.lineItemId)
      .map((i) => i.lineItemId!),
  );
  // This return's own refund, once recorded, is not what others took.
  const ownTransactions = new Set(thisReturn?.items.map((i) => i.custom?.fields.transactionId) ?? []);
  const refundedBefore = payment.transactions
    .filter((t) => t.type === 'Refund' && (t.state === 'Success' || t.state === 'Pending'))
    .filter((t) => !ownTransactions.has(t.id))
    .reduce((sum, t) => sum + t.amount.centAmount, 0);
  const left = paid - Math.max(claimedByOthers, refundedBefore);
  return Math.max(0, Math.min(own, left));
}

const ORDER_STATES = {
  Open: 'OPEN',
  Confirmed: 'CONFIRMED',
  Complete: 'COMPLETE',
  Cancelled: 'CANCELLED',
} as const;
const RETURN_PAYMENT_STATES = {
  Initial: 'INITIAL',
  Refunded: 'REFUNDED',
  NotRefunded: 'NOT_REFUNDED',
  NonRefundable: 'NON_REFUNDABLE',
} as const;

/** The signal whose receivers revoke an order's returned lines (connections.yaml). */
export const ORDER_REFUNDED_SIGNAL = 'order.refunded.v1';

/**
 * The `order.refunded.v1` payload that revokes `lineItemIds` of `order` and reports no refund: it names
 * no PSP refund, so analytics tracks nothing (the refund that gave the money back was tracked by its own
 * flow, or is a store's). `entitlementUuids` are those known newer than the order as read.
 */
export function revokeSignalOf(
  order: CtOrder,
  lineItemIds: readonly string[],
  entitlementUuids: ReadonlyMap<string, string> = new Map(),
) {
  return {
    orderId: order.id,
    lmsUserId: lmsUserIdOf(order),
    username: String(order.custom?.fields.lmsUsername ?? ''),
    returnedItems: order.lineItems
      .filter((line) => lineItemIds.includes(line.id))
      .map(lineView)
      .map((line) => ({
        lineItemId: line.id,
        kind: line.kind,
        courseRunKey: line.courseRunKey,
        bundleKey: line.bundleKey,
        entitlementUuid: entitlementUuids.get(line.id) ?? line.entitlementUuid,
        mode: line.mode,
        lob: line.lob,
      })),
  };
}

/** The learner an order belongs to (order custom fields written at checkout). */
export function lmsUserIdOf(order: CtOrder): number {
  const id = Number(order.custom?.fields.lmsUserId);
  if (!Number.isInteger(id)) throw new Error(`Order ${order.id} has no lmsUserId: it is not an edX order`);
  return id;
}

export type OrderView = ReturnType<typeof orderView>;

/** The GraphQL `Order` of a commercetools order read with ORDER_EXPAND. */
export function orderView(order: CtOrder) {
  const payment = successfulPayment(order);
  const psp = payment && pspOf(payment);
  const lmsUserId = lmsUserIdOf(order);
  return {
    id: order.id,
    orderNumber: order.orderNumber ?? order.id,
    lmsUserId,
    username: String(order.custom?.fields.lmsUsername ?? ''),
    email: order.customerEmail ?? '',
    createdAt: order.createdAt,
    totalCents: order.totalPrice.centAmount,
    currency: order.totalPrice.currencyCode,
    // Written by the mobile checkout (the reference's custom field): an in-app purchase.
    mobileOrder: order.custom?.fields.mobileOrder === true,
    state: order.state?.obj?.key === SANCTIONED_STATE_KEY ? 'SANCTIONED' : ORDER_STATES[order.orderState],
    lineItems: order.lineItems.map(lineView),
    payment:
      payment && psp
        ? {
            ...psp,
            amountCents: payment.amountPlanned.centAmount,
            currency: payment.amountPlanned.currencyCode,
            refundedAmountCents: refundedCents(payment),
            // For the PSP Plugins' @requires: whose payment it is, and PayPal's order of the capture.
            lmsUserId,
            pspOrderId: psp.psp === 'PAYPAL' ? (payment.interfaceId ?? null) : null,
          }
        : null,
    returns: (order.returnInfo ?? []).map((info) => ({
      id: returnIdOf(info),
      createdAt: info.returnDate ?? info.items[0]?.createdAt ?? order.createdAt,
      items: info.items.map((item) => ({
        id: item.id,
        lineItemId: item.lineItemId ?? '',
        paymentState: RETURN_PAYMENT_STATES[item.paymentState],
        transactionId: (item.custom?.fields.transactionId as string | undefined) ?? null,
      })),
    })),
  };
}
