import { DomainError, ErrorCode, type ActionContext } from '@commerce-coordinator/plugin-sdk';
import {
  orderManagementClient,
  OrderManagementError,
  type CtPayment,
  type CtTransaction,
  type UpdateAction,
} from './client.js';
import { ORDER_REFUNDED_SIGNAL, refundedCents, revokeSignalOf } from './model.js';
import { settleStoreRefundReturns, storeRefundOf } from './returns.js';

/**
 * Refunds made by the mobile app stores (reference §5.12): Apple's App Store Server Notifications
 * (REFUND) and Google Play's voided purchases, announced by the app-store and google-play Plugins'
 * webhooks as the signal `mobile.payment.refunded.v1`. Its receiver records the refund on the order's
 * mobile payment once, settles the order's returns with it (a staff refund's return awaiting it is
 * Refunded against it, a return already refunded in the Merchant Center linked to it), and has the
 * order's lines revoked (`order.refunded.v1`); a refund of a payment the Service does not hold is
 * handed to legacy ecommerce when the Transition-to-Coordinator flag said so when it arrived.
 */

/** The payment interfaces of mobile in-app purchases (the reference's `<processor>_edx`). */
export const MOBILE_PAYMENT_INTERFACES = ['ios_iap_edx', 'android_iap_edx'] as const;
export type MobilePaymentInterface = (typeof MOBILE_PAYMENT_INTERFACES)[number];

/** What `mobile.payment.refunded.v1` carries (schema.graphql's MobilePaymentRefundedSignal). */
export interface MobileRefundInput {
  paymentInterface: string;
  /** The store's ids of the refunded purchase the payment may be known by (interfaceId or Charge). */
  transactionIds: string[];
  /** The refund's id at the store: the Refund transaction's interactionId, recorded once. */
  refundId: string;
  /** In minor units of `currency`; absent (Google) → the payment's amountPlanned. */
  refundedAmountCents?: number | null;
  currency?: string | null;
  /** ISO 8601. */
  refundCreatedAt: string;
  /** The Transition-to-Coordinator flag's decision when the store's notification arrived. */
  forwardToLegacy: boolean;
  /** The store's notification exactly as received, for legacy ecommerce (iOS, flag on). */
  legacyPayload?: string | null;
}

const badInput = (message: string) => new DomainError(ErrorCode.BAD_USER_INPUT, message);

/** The signal a refund unknown to the order management Service is forwarded to legacy ecommerce by. */
export const UNMATCHED_IOS_REFUND_SIGNAL = 'mobile.ios-refund.unmatched.v1';

function check(input: MobileRefundInput) {
  if (!(MOBILE_PAYMENT_INTERFACES as readonly string[]).includes(input.paymentInterface))
    throw badInput(
      `paymentInterface '${input.paymentInterface}' is not one of ${MOBILE_PAYMENT_INTERFACES.join(', ')}`,
    );
  const ids = [...new Set(input.transactionIds.map((id) => id.trim()).filter(Boolean))];
  if (!ids.length) throw badInput('transactionIds is empty: name the refunded purchase');
  if (ids.some((id) => id.length > 200)) throw badInput('a transaction id is longer than 200 characters');
  if (!input.refundId.trim() || input.refundId.length > 200)
    throw badInput('refundId must be 1 to 200 characters');
  const amount = input.refundedAmountCents;
  if (amount != null && (!Number.isSafeInteger(amount) || amount < 0))
    throw badInput('refundedAmountCents must be a non-negative integer');
  if ((amount == null) !== (input.currency == null))
    throw badInput('refundedAmountCents and currency go together: give both or neither');
  if (input.currency != null && !/^[A-Za-z]{3}$/.test(input.currency))
    throw badInput(`currency '${input.currency}' is not an ISO 4217 code`);
  const timestamp = new Date(input.refundCreatedAt);
  if (Number.isNaN(timestamp.getTime()))
    throw badInput(`refundCreatedAt '${input.refundCreatedAt}' is not an ISO 8601 date`);
  return { ids, timestamp };
}

/** The Service's refusal of our own change (400) is a conflict; its outages stay transient (retried). */
async function service<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof OrderManagementError && error.status === 400)
      throw new DomainError(
        ErrorCode.CONFLICT,
        `The order management Service refused the change: ${error.message}`,
        { serviceCode: error.code },
      );
    throw error;
  }
}

/**
 * The mobile payment of the refunded purchase: by its interfaceId or its Charge (the reference looks by
 * the Charge's interactionId; the create-order flow writes the transaction id to both), of the store
 * the refund came from, that succeeded.
 */
async function findPayment(paymentInterface: string, ids: string[]): Promise<CtPayment | undefined> {
  const found = await orderManagementClient().query(
    'payments',
    'interfaceId in :ids or transactions(type = "Charge" and interactionId in :ids)',
    { ids },
    { limit: 20 },
  );
  const mine = found.filter((p) => p.paymentMethodInfo.paymentInterface === paymentInterface);
  return mine.find((p) => p.paymentStatus.interfaceCode === 'succeeded') ?? mine[0];
}

/**
 * The refund in the payment's currency. Google announces no amount: the payment's amountPlanned (a
 * voided purchase is refunded in full). Apple's is in the storefront's currency; the payment holds the
 * USD price charged, so an Apple refund in another currency is recorded as the full amountPlanned (Apple
 * refunds an in-app purchase whole), and a same-currency one as Apple says. Either way at most what the
 * refunds already recorded left of the payment: the record never says more went back than was paid.
 */
function refundAmount(input: MobileRefundInput, payment: CtPayment): number {
  const planned = payment.amountPlanned;
  const left = Math.max(0, planned.centAmount - refundedCents(payment));
  if (input.refundedAmountCents == null || input.currency == null) return left;
  if (input.currency.toUpperCase() !== planned.currencyCode) return left;
  return Math.min(input.refundedAmountCents, left);
}

export async function recordMobileRefund(input: MobileRefundInput, ctx: ActionContext) {
  const { ids, timestamp } = check(input);
  const client = orderManagementClient();
  const notFound = () => {
    const forward = input.paymentInterface === 'ios_iap_edx' && input.forwardToLegacy;
    if (forward && !input.legacyPayload)
      throw badInput('forwardToLegacy needs legacyPayload: the notification to forward');
    if (forward)
      ctx.emit(UNMATCHED_IOS_REFUND_SIGNAL, {
        refundId: input.refundId,
        transactionIds: ids,
        legacyPayload: input.legacyPayload!,
      });
    return {
      found: false,
      orderId: null,
      transactionId: null,
      recorded: false,
      linkedReturnItems: 0,
      revoked: false,
      forwardedToLegacy: forward,
    };
  };

  const payment = await findPayment(input.paymentInterface, ids);
  // Not ours (bought before the Coordinator, or another app): nothing to record here.
  if (!payment) return notFound();
  const [order] = await client.query(
    'orders',
    'paymentInfo(payments(id = :payment))',
    { payment: payment.id },
    { limit: 1 },
  );
  if (!order) return notFound();

  const isThisRefund = (t: CtTransaction) => t.type === 'Refund' && t.interactionId === input.refundId;
  let recorded = false;
  const updated = await service(() =>
    client.updateWithRetry(
      'payments',
      payment.id,
      (current): UpdateAction[] => {
        recorded = false;
        // The same refund (a redelivery, a second notification of it) is recorded once; a payment
        // refunded in full already (by the Coordinator's own refund, say) is not refunded twice.
        if (current.transactions.some(isThisRefund)) return [];
        if (refundedCents(current) >= current.amountPlanned.centAmount) return [];
        recorded = true;
        return [
          {
            action: 'addTransaction',
            transaction: {
              type: 'Refund',
              amount: {
                centAmount: refundAmount(input, current),
                currencyCode: current.amountPlanned.currencyCode,
              },
              timestamp: timestamp.toISOString(),
              interactionId: input.refundId,
              state: 'Success',
            },
          },
        ];
      },
      { current: payment, correlationId: ctx.idempotencyKey },
    ),
  );
  const transaction = updated.transactions.find(isThisRefund);
  // The order's returns awaiting the store's refund (a staff refund answered awaiting_store_refund)
  // are settled by it, and those refunded in the Merchant Center linked to it; on a payment refunded in
  // full by an earlier refund, by that one. Also on a redelivery: what is settled stays as it is.
  const settledBy = transaction ?? storeRefundOf(updated);
  const linkedReturnItems = settledBy ? await settleStoreRefundReturns(order.id, settledBy.id, ctx) : 0;

  // The lines are revoked whenever this refund is on the payment, also when an earlier attempt wrote
  // it and failed after: the LMS's revoke is idempotent, a lost revoke is not.
  if (transaction)
    ctx.emit(
      ORDER_REFUNDED_SIGNAL,
      revokeSignalOf(
        order,
        order.lineItems.map((line) => line.id),
      ),
    );
  return {
    found: true,
    orderId: order.id,
    transactionId: transaction?.id ?? null,
    recorded,
    linkedReturnItems,
    revoked: Boolean(transaction),
    forwardedToLegacy: false,
  };
}
