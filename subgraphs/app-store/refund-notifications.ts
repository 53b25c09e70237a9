import {
  ConfigError,
  domainCodeOf,
  ErrorCode,
  type PluginRuntime,
  type RouteRequest,
  type RouteResponse,
} from '@commerce-coordinator/plugin-sdk';
import { z } from 'zod';
import { describeIssues, refuseWebhook } from '../../schema/contracts/refund-payment.js';
import {
  AppStoreNotificationError,
  readAppStoreNotificationBody,
  verifyAppStoreNotification,
  type AppStoreNotification,
} from './notifications.js';

/**
 * `POST /iap/ios/refund/`: App Store Server Notifications V2, where Apple announces refunds (reference
 * §2.9, §5.12). A REFUND becomes the signal `mobile.payment.refunded.v1`, once per notificationUUID;
 * every other notification type is answered 200 and ignored.
 *
 * - Not JSON or no `signedPayload`: 400 BAD_REQUEST. A signedPayload (or the transaction it carries)
 *   that does not verify against the configured Apple roots, or is of another app or environment: 403
 *   INVALID_SIGNATURE, nothing published. Apple never sends either, so no retry of Apple's is lost by
 *   refusing them, and a forger learns nothing by the answer.
 * - Once it verifies, Apple is answered 200 whatever our processing does: the signal is committed to
 *   the outbox first, and its receiver is retried with backoff and dead-lettered (then replayable) by
 *   the Coordinator, never left to Apple's five retries. The only failure answered otherwise is the
 *   outbox itself (the database unreachable): 503, so that Apple's retry brings it again rather than
 *   the notification being lost.
 * - The Transition-to-Coordinator flag `transition.ios-refunds.legacy` is evaluated here, when the
 *   notification arrives (as the reference captured `redirect_to_legacy_enabled` at ingress), and
 *   carried in the signal: a redelivered or replayed signal keeps that decision.
 */

export const MOBILE_PAYMENT_REFUNDED_SIGNAL = 'mobile.payment.refunded.v1';
export const IOS_REFUND_LEGACY_FLAG = 'transition.ios-refunds.legacy';

/** What a REFUND must carry to be recorded: its id, the refunded transaction and its price. */
const refundSchema = z.object({
  transaction: z.object({
    transactionId: z.string().min(1).max(200),
    originalTransactionId: z.string().min(1).max(200).optional(),
    price: z.number().int().nonnegative().optional(),
    currency: z
      .string()
      .regex(/^[A-Za-z]{3}$/)
      .optional(),
    revocationDate: z.number().int().positive().max(8.64e15).optional(),
  }),
  signedDate: z.number().int().positive().max(8.64e15).optional(),
});

/** The digits of a currency's minor unit (2 for USD, 0 for JPY, 3 for BHD); 2 when unknown. */
export function minorUnitDigits(currency: string): number {
  try {
    return (
      new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ??
      2
    );
  } catch {
    return 2;
  }
}

/**
 * Apple's price is in milli-units of the currency (49990 = 49.99): in minor units, rounded half up
 * (exact integers; a price has at most three decimals, so only a zero-digit currency rounds).
 */
export function milliUnitsToMinor(price: number, currency: string): number {
  const scale = 10n ** BigInt(minorUnitDigits(currency));
  const scaled = BigInt(price) * scale;
  return Number((scaled * 2n + 1000n) / 2000n);
}

export async function handleAppleRefundNotification(
  request: RouteRequest,
  runtime: PluginRuntime,
): Promise<RouteResponse> {
  let notification: AppStoreNotification;
  try {
    notification = await verifyAppStoreNotification(readAppStoreNotificationBody(request.rawBody));
  } catch (error) {
    // Not configured here (no Apple roots): Apple's retries may find it configured, a 500 would not say why.
    if (error instanceof ConfigError)
      return refuseWebhook(ErrorCode.SERVICE_UNAVAILABLE, 'App Store notifications are not configured');
    if (!(error instanceof AppStoreNotificationError)) throw error;
    runtime.logger.warn({ reason: error.reason }, 'app store notification: refused');
    return refuseWebhook(error.extensions.code as ErrorCode, error.message);
  }
  const { notificationType: type, notificationUUID } = notification;
  if (type !== 'REFUND') {
    runtime.logger.info({ notificationUUID, type }, 'app store notification: not a refund, ignored');
    return { status: 200, body: { received: true, ignored: type } };
  }
  const refund = refundSchema.safeParse({
    transaction: notification.transaction,
    signedDate: notification.signedDate,
  });
  if (!refund.success) {
    // Signed by Apple but not a refund we can record: a retry will not change it, so 200, logged loudly.
    const problem = describeIssues(refund.error);
    runtime.logger.error(
      { notificationUUID, problem },
      'app store notification: a REFUND that cannot be read',
    );
    return { status: 200, body: { received: true, ignored: 'REFUND', problem } };
  }
  const { transaction: t, signedDate } = refund.data;
  const original = t.originalTransactionId ?? t.transactionId;
  const forwardToLegacy = await runtime.variation(IOS_REFUND_LEGACY_FLAG, undefined, false);
  const amount =
    t.price !== undefined && t.currency
      ? { refundedAmountCents: milliUnitsToMinor(t.price, t.currency), currency: t.currency.toUpperCase() }
      : {};
  try {
    const { duplicate } = await runtime.publish(
      MOBILE_PAYMENT_REFUNDED_SIGNAL,
      {
        paymentInterface: 'ios_iap_edx',
        // The create-order flow writes the purchase's transaction id; a consumable's original is itself.
        transactionIds: [...new Set([original, t.transactionId])],
        // The reference's refund id: the original transaction id.
        refundId: original,
        ...amount,
        refundCreatedAt: new Date(t.revocationDate ?? signedDate ?? Date.now()).toISOString(),
        forwardToLegacy,
        // Only what a forward needs: the notification as Apple sent it, byte for byte.
        ...(forwardToLegacy ? { legacyPayload: request.rawBody.toString('utf8') } : {}),
      },
      { id: `ios:${notificationUUID}` },
    );
    return { status: 200, body: { received: true, duplicate } };
  } catch (error) {
    if (domainCodeOf(error) === ErrorCode.BAD_USER_INPUT)
      return refuseWebhook(ErrorCode.BAD_REQUEST, (error as Error).message);
    runtime.logger.error({ err: error, notificationUUID }, 'app store notification: not committed');
    return refuseWebhook(ErrorCode.SERVICE_UNAVAILABLE, 'The refund could not be committed; retry later');
  }
}
