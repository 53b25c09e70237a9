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
import { PubSubPushError, verifyPubSubPush } from './notifications.js';

/**
 * `POST /iap/android/refund/`: Google Play's real-time developer notifications, pushed by Cloud Pub/Sub
 * (reference §2.9, §5.12). A full refund of a voided purchase becomes the signal
 * `mobile.payment.refunded.v1`, once per Pub/Sub messageId.
 *
 * - The push's `Authorization: Bearer <Google OIDC JWT>` must verify (Google's keys, the configured
 *   audience, not expired, the push service account): else 403 INVALID_SIGNATURE, as the reference's
 *   authentication answered 403, nothing read from the body. So is a push while the audience, the push
 *   service account or the refund subscription is not configured (all three are required).
 * - Answered 200 and ignored: another subscription's push, a notification that is not a
 *   voidedPurchaseNotification, a partial refund (`refundType` other than 1, FULL_REFUND).
 * - A verified body that is not a Pub/Sub push of a developer notification: 400 BAD_REQUEST.
 * - Google sends no amount: the receiver records the payment's amountPlanned.
 * - The outbox unreachable: 503, so that Pub/Sub pushes the message again; any later failure is the
 *   Coordinator's to retry (the receiver's retries and dead letters), the push is answered 200.
 */

export const MOBILE_PAYMENT_REFUNDED_SIGNAL = 'mobile.payment.refunded.v1';

/** Google Play's `VoidedPurchaseNotification.refundType`: 1 FULL_REFUND, 2 QUANTITY_BASED_PARTIAL_REFUND. */
const FULL_REFUND = 1;

/** What a voided purchase must carry to be recorded. */
const voidedSchema = z.object({
  eventTimeMillis: z
    .string()
    .regex(/^\d{1,15}$/)
    .refine((v) => Number(v) <= 8.64e15, { message: 'not a date' })
    .optional(),
  orderId: z.string().min(1).max(200),
});

const ignored = (why: string, messageId: string): RouteResponse => ({
  status: 200,
  body: { received: true, ignored: why, messageId },
});

export async function handleVoidedPurchasePush(
  request: RouteRequest,
  runtime: PluginRuntime,
): Promise<RouteResponse> {
  const header = request.headers.authorization;
  let push: Awaited<ReturnType<typeof verifyPubSubPush>>;
  try {
    push = await verifyPubSubPush(typeof header === 'string' ? header : undefined, request.rawBody);
  } catch (error) {
    // Not configured here (no audience, service account or subscription): nothing tells our push from
    // another project's, so it is not verified. Pub/Sub pushes again on any status but 2xx/102, so a
    // genuine push still arrives once the settings are there; the operator is told what is missing.
    if (error instanceof ConfigError) {
      runtime.logger.error({ problems: error.problems }, 'google play push: not configured, refused');
      return refuseWebhook(
        ErrorCode.INVALID_SIGNATURE,
        'The push cannot be verified: Google Play notifications are not configured',
      );
    }
    if (!(error instanceof PubSubPushError)) throw error;
    runtime.logger.warn({ reason: error.reason }, 'google play push: refused');
    return refuseWebhook(error.extensions.code as ErrorCode, error.message);
  }
  const { messageId, notification } = push;
  if (!push.isRefundSubscription) {
    runtime.logger.warn(
      { messageId, subscription: push.subscription },
      'google play push: another subscription, ignored',
    );
    return ignored('subscription', messageId);
  }
  const voided = notification.voidedPurchaseNotification;
  if (!voided) return ignored('not a voided purchase', messageId);
  if (voided.refundType !== FULL_REFUND) return ignored('partial refund', messageId);
  const read = voidedSchema.safeParse({
    eventTimeMillis: notification.eventTimeMillis,
    orderId: voided.orderId,
  });
  if (!read.success)
    return refuseWebhook(
      ErrorCode.BAD_REQUEST,
      `The voided purchase cannot be read: ${describeIssues(read.error, ['message', 'data'])}`,
    );
  const { orderId, eventTimeMillis } = read.data;
  try {
    const { duplicate } = await runtime.publish(
      MOBILE_PAYMENT_REFUNDED_SIGNAL,
      {
        paymentInterface: 'android_iap_edx',
        transactionIds: [orderId],
        refundId: orderId,
        refundCreatedAt: new Date(eventTimeMillis ? Number(eventTimeMillis) : Date.now()).toISOString(),
        forwardToLegacy: false,
      },
      { id: `android:${messageId}` },
    );
    return { status: 200, body: { received: true, duplicate, messageId } };
  } catch (error) {
    if (domainCodeOf(error) === ErrorCode.BAD_USER_INPUT)
      return refuseWebhook(ErrorCode.BAD_REQUEST, (error as Error).message);
    runtime.logger.error({ err: error, messageId }, 'google play push: not committed');
    return refuseWebhook(ErrorCode.SERVICE_UNAVAILABLE, 'The refund could not be committed; retry later');
  }
}
