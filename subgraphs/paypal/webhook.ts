import { createHash } from 'node:crypto';
import {
  ConfigError,
  ErrorCode,
  type PluginRuntime,
  type RouteRequest,
  type RouteResponse,
} from '@commerce-coordinator/plugin-sdk';
import { foreignOrderReason } from '../../schema/contracts/order-source.js';
import { publishPaymentRefunds, refuseWebhook } from '../../schema/contracts/refund-payment.js';
import { verifyWebhookSignature, type Transmission } from './client.js';
import { payPalApiBase, payPalWebhookId, payPalWebhookLimits } from './config.js';
import { readPayPalEvent } from './events.js';
import { PAYPAL_TRANSMISSION_TOLERANCE_SECONDS, readTransmission } from './transmission.js';
import { VerificationGate } from './verification.js';

/**
 * `POST /paypal/webhook/`: refunds made at PayPal (`PAYMENT.CAPTURE.REFUNDED`) become
 * `payment.refunded.v1`, one signal per refund and status.
 *
 * Only PayPal can tell whether it signed a call (verify-webhook-signature), and each question is an API
 * call; so what can be refused locally is, first:
 * - transmission headers missing or malformed, a certificate off PayPal's hosts, a transmission time
 *   more than 300 s away: 403 INVALID_SIGNATURE;
 * - a body that is not JSON or not a PayPal event, a refund event without a readable refund: 400
 *   BAD_REQUEST;
 * - an event type not handled: 200 and ignored, without asking PayPal, since nothing is done with it.
 * Then PayPal is asked, through a VerificationGate: beyond PAYPAL_WEBHOOK_MAX_VERIFICATIONS calls in
 * flight 429 TOO_MANY_REQUESTS with Retry-After (PayPal retries any non-2xx); a transmission already
 * asked about gets the same answer without a call. Not verified: 403 INVALID_SIGNATURE. PayPal
 * unreachable: 503 SERVICE_UNAVAILABLE.
 * A verified refund of a legacy ecommerce order (its `invoice_id` is `EDX-…`) is answered 200 and
 * logged, with no signal: that service records its own refunds.
 */
export async function handlePayPalWebhook(
  request: RouteRequest,
  runtime: PluginRuntime,
): Promise<RouteResponse> {
  const read = readTransmission(request.headers, { apiBase: payPalApiBase() });
  if ('problem' in read) return refuseWebhook(ErrorCode.INVALID_SIGNATURE, read.problem);
  const { transmission } = read;

  const event = readPayPalEvent(request.rawBody);
  if (event.kind === 'malformed') return refuseWebhook(ErrorCode.BAD_REQUEST, event.message);
  if (event.kind === 'other') {
    runtime.logger.info(
      { eventId: event.id, type: event.type },
      'paypal webhook: event type not handled, ignored (not verified)',
    );
    return { status: 200, body: { received: true, ignored: event.type } };
  }

  const webhookId = payPalWebhookId();
  const raw = request.rawBody.toString('utf8');
  let verified: Promise<boolean> | 'busy';
  try {
    verified = gateOf(runtime).verdict(
      transmissionKey(webhookId, transmission, request.rawBody),
      Date.parse(transmission.transmissionTime) + PAYPAL_TRANSMISSION_TOLERANCE_SECONDS * 1000,
      () => verifyWebhookSignature(transmission, raw),
    );
    if (verified === 'busy')
      return refuseWebhook(
        ErrorCode.TOO_MANY_REQUESTS,
        'Too many webhook calls are being verified with PayPal; retry later',
        { 'retry-after': String(RETRY_AFTER_SECONDS) },
      );
    if (!(await verified)) {
      runtime.logger.warn({ eventId: event.id }, 'paypal webhook: PayPal did not verify the signature');
      return refuseWebhook(ErrorCode.INVALID_SIGNATURE, 'PayPal did not verify the signature');
    }
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    runtime.logger.warn({ err: error, eventId: event.id }, 'paypal webhook: verification unavailable');
    return refuseWebhook(
      ErrorCode.SERVICE_UNAVAILABLE,
      'PayPal could not verify the signature now; retry later',
    );
  }
  // PayPal payments carry no source system: only the order number tells whose they are.
  const foreign = foreignOrderReason({ orderNumber: event.invoiceId }, '');
  if (foreign) {
    runtime.logger.info(
      { eventId: event.id, pspPaymentId: event.refund.pspPaymentId, reason: foreign },
      'paypal webhook: refund of a payment that is not the Coordinator’s, acknowledged without effect',
    );
    return { status: 200, body: { received: true, ignored: event.type, reason: foreign } };
  }
  return { status: 200, body: await publishPaymentRefunds(runtime, 'PAYPAL', [event.refund]) };
}

/** What a 429 asks the caller to wait; PayPal itself retries on its own schedule. */
const RETRY_AFTER_SECONDS = 10;

/** One gate per Coordinator (its PluginRuntime), built when its first webhook call needs it. */
const gates = new WeakMap<PluginRuntime, VerificationGate>();

function gateOf(runtime: PluginRuntime): VerificationGate {
  let gate = gates.get(runtime);
  if (!gate) {
    gate = new VerificationGate({ maxInFlight: payPalWebhookLimits().maxVerifications });
    gates.set(runtime, gate);
  }
  return gate;
}

/** A digest of everything PayPal's verdict covers: the webhook, the transmission headers, the body. */
function transmissionKey(webhookId: string, transmission: Transmission, rawBody: Buffer): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        webhookId,
        transmission.authAlgo,
        transmission.certUrl,
        transmission.transmissionId,
        transmission.transmissionSig,
        transmission.transmissionTime,
      ]),
    )
    .update(rawBody)
    .digest('base64url');
}
