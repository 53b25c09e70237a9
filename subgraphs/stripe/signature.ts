import Stripe from 'stripe';

/**
 * Stripe's webhook signature: `Stripe-Signature: t=<unix seconds>,v1=<HMAC-SHA256 of "<t>.<body>">`
 * with the endpoint's signing secret. The SDK checks the HMAC and refuses an old timestamp, but takes
 * any timestamp ahead of the clock: a signature made for later (a leaked secret, a skewed signer)
 * would stay valid until then. Here a timestamp is refused either way beyond the tolerance.
 */

/** Stripe's own default tolerance (`Stripe.webhooks.DEFAULT_TOLERANCE`). */
export const STRIPE_SIGNATURE_TOLERANCE_SECONDS = 300;

/**
 * Why a webhook call's `Stripe-Signature` does not vouch for its body, or undefined when it does.
 * `nowMs` is the time of receipt.
 */
export function stripeSignatureProblem(
  rawBody: Buffer,
  header: string | undefined,
  secret: string,
  nowMs: number = Date.now(),
): string | undefined {
  if (!header) return 'The Stripe-Signature header is missing';
  const timestamps = header
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.startsWith('t='))
    .map((item) => item.slice(2));
  // The SDK signs over the last t= it finds; with several, which one Stripe meant is ambiguous.
  if (timestamps.length !== 1 || !/^\d{1,12}$/.test(timestamps[0]!))
    return 'The Stripe-Signature has no single t=<unix seconds> timestamp';
  const skew = Math.floor(nowMs / 1000) - Number(timestamps[0]);
  if (Math.abs(skew) > STRIPE_SIGNATURE_TOLERANCE_SECONDS)
    return `The Stripe-Signature timestamp is ${Math.abs(skew)} s ${skew > 0 ? 'old' : 'ahead'}, beyond the ${STRIPE_SIGNATURE_TOLERANCE_SECONDS} s tolerance`;
  const signature = Stripe.webhooks.signature;
  if (!signature) throw new Error('The stripe SDK has no webhook signature helper');
  try {
    signature.verifyHeader(rawBody, header, secret, STRIPE_SIGNATURE_TOLERANCE_SECONDS, undefined, nowMs);
    return undefined;
  } catch (error) {
    if (error instanceof Stripe.errors.StripeSignatureVerificationError)
      return 'The Stripe-Signature does not match the body';
    throw error;
  }
}
