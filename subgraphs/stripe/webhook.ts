import {
  ConfigError,
  domainCodeOf,
  ErrorCode,
  type PluginRuntime,
  type RouteRequest,
  type RouteResponse,
} from '@commerce-coordinator/plugin-sdk';
import {
  publishPaymentRefunds,
  refuseWebhook,
  type PspRefund,
} from '../../schema/contracts/refund-payment.js';
import { foreignOrderReason } from '../../schema/contracts/order-source.js';
import { paymentIntentMetadata, refundById, refundsOfCharge } from './client.js';
import { stripeSourceSystem, stripeWebhookSecret } from './config.js';
import { readStripeEvent, type StripeChargeEvent, type StripeRefundEvent } from './events.js';
import { stripeSignatureProblem } from './signature.js';

/**
 * `POST /stripe/webhook/`: refunds made at Stripe (its dashboard, its API) become `payment.refunded.v1`,
 * one signal per refund and status.
 *
 * - A signature that does not vouch for the body, or is more than 300 s away from now either way, is
 *   403 INVALID_SIGNATURE.
 * - A signed body that is not an event the Plugin can read is 400 BAD_REQUEST.
 * - Event types not handled are answered 200 and ignored, where the reference answered 422: Stripe
 *   retries every non-2xx delivery for three days and then disables the endpoint, and an event we do
 *   not handle will not become handleable by being retried.
 * - A refund of a payment that is not the Coordinator's (its PaymentIntent's metadata names a legacy
 *   `EDX-…` order, or another `source_system` than STRIPE_SOURCE_SYSTEM) is answered 200 and logged,
 *   with no signal: the account is shared with those systems, which record their own refunds.
 * - Refunds are read from Stripe, never from the event's body: `charge.refunded` lists its charge's
 *   refunds, the refund events read their refund by id. A refund (or PaymentIntent) Stripe does not
 *   have is 404 NOT_FOUND and publishes nothing.
 * - Stripe unreachable while reading refunds or a PaymentIntent is 503 SERVICE_UNAVAILABLE: Stripe
 *   retries.
 */
export async function handleStripeWebhook(
  request: RouteRequest,
  runtime: PluginRuntime,
): Promise<RouteResponse> {
  const header = request.headers['stripe-signature'];
  const problem = stripeSignatureProblem(
    request.rawBody,
    typeof header === 'string' ? header : undefined,
    stripeWebhookSecret(),
  );
  if (problem) return refuseWebhook(ErrorCode.INVALID_SIGNATURE, problem);

  const event = readStripeEvent(request.rawBody);
  if (event.kind === 'malformed') {
    runtime.logger.warn({ problem: event.message }, 'stripe webhook: signed body refused');
    return refuseWebhook(ErrorCode.BAD_REQUEST, event.message);
  }
  if (event.kind === 'other') {
    runtime.logger.info(
      { eventId: event.id, type: event.type },
      'stripe webhook: event type not handled, ignored',
    );
    return { status: 200, body: { received: true, ignored: event.type } };
  }

  let refunds: PspRefund[];
  let foreign: Map<string, string>;
  try {
    refunds =
      event.kind === 'charge.refunded'
        ? await refundsOfRefundedCharge(event.charge)
        : await refundOfEvent(event.refund);
    foreign = await foreignPayments(refunds);
  } catch (error) {
    if (domainCodeOf(error) || error instanceof ConfigError) throw error;
    runtime.logger.warn({ err: error, eventId: event.id }, 'stripe webhook: Stripe unavailable');
    return refuseWebhook(ErrorCode.SERVICE_UNAVAILABLE, 'Stripe could not be reached; retry later');
  }
  for (const [pspPaymentId, reason] of foreign)
    runtime.logger.info(
      { eventId: event.id, type: event.type, pspPaymentId, reason },
      'stripe webhook: refund of a payment that is not the Coordinator’s, acknowledged without effect',
    );
  if (foreign.size && refunds.every((refund) => foreign.has(refund.pspPaymentId)))
    return { status: 200, body: { received: true, ignored: event.type, reason: [...foreign.values()][0] } };
  refunds = refunds.filter((refund) => !foreign.has(refund.pspPaymentId));
  const announced = refunds.filter((refund) => refund.pspPaymentId);
  if (announced.length < refunds.length)
    runtime.logger.warn(
      { eventId: event.id, refunds: refunds.filter((r) => !r.pspPaymentId).map((r) => r.pspRefundId) },
      'stripe webhook: refund without a PaymentIntent, ignored',
    );
  if (!announced.length) return { status: 200, body: { received: true, ignored: event.type } };
  return { status: 200, body: await publishPaymentRefunds(runtime, 'STRIPE', announced) };
}

/**
 * The PaymentIntents among the refunds' that are not the Coordinator's, each with why: what the checkout
 * that created it wrote in its metadata (the event's objects do not carry it). One read per PaymentIntent.
 */
async function foreignPayments(refunds: readonly PspRefund[]): Promise<Map<string, string>> {
  const foreign = new Map<string, string>();
  const ours = stripeSourceSystem();
  for (const pspPaymentId of new Set(refunds.map((refund) => refund.pspPaymentId).filter(Boolean))) {
    const metadata = await paymentIntentMetadata(pspPaymentId);
    const reason = foreignOrderReason(
      { orderNumber: metadata.order_number, sourceSystem: metadata.source_system },
      ours,
    );
    if (reason) foreign.set(pspPaymentId, reason);
  }
  return foreign;
}

const idOf = (reference: string | { id: string } | null | undefined) =>
  typeof reference === 'string' ? reference : reference?.id;

/**
 * Every refund of the charge, as Stripe lists them now. The event does not say which of them it is
 * about (its Charge no longer embeds its refunds), and it may arrive late, after refunds its own event
 * announces too, or after a pending one settled: each is published under its own id and status, so
 * what is already committed is dropped and nothing is missed.
 */
function refundsOfRefundedCharge(charge: StripeChargeEvent): Promise<PspRefund[]> {
  return refundsOfCharge(charge.id, idOf(charge.payment_intent));
}

/**
 * The refund a refund event names, as Stripe holds it now. The body is signed with the endpoint's
 * secret, and the secret vouches only that the body came from someone holding it: the amount, status
 * and PaymentIntent it states are not taken. One read; a refund Stripe does not have is NOT_FOUND (404,
 * as a refund of a PaymentIntent Stripe does not have), nothing published. A later status than the
 * event's is published under its own id, so the event announcing it is answered as a duplicate.
 */
async function refundOfEvent(refund: StripeRefundEvent): Promise<PspRefund[]> {
  return [await refundById(refund.id)];
}
