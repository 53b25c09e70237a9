import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The Order Fulfillment service's webhook signature, the reference's `HMACSignatureWebhookAuthentication`:
 * `X-Fulfillment-Webhook-Timestamp: <unix seconds>` and `X-Fulfillment-Webhook-Signature: <base64
 * HMAC-SHA256 of "<timestamp>.<raw body>">` with the shared secret. The timestamp is signed with the
 * body, so an old delivery cannot be replayed with a fresh timestamp; one within the window is a
 * duplicate, which the completion flow's idempotency key absorbs.
 */

export const SIGNATURE_HEADER = 'x-fulfillment-webhook-signature';
export const TIMESTAMP_HEADER = 'x-fulfillment-webhook-timestamp';

/** The reference's window (`MAX_TOLERANCE_SECONDS`), either way: a timestamp ahead is refused too. */
export const SIGNATURE_TOLERANCE_SECONDS = 120;

export function fulfillmentSignature(secret: string, timestamp: string, rawBody: Buffer): Buffer {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest();
}

/** Why the headers do not vouch for the body, or undefined when they do. `nowMs`: time of receipt. */
export function signatureProblem(
  rawBody: Buffer,
  headers: { timestamp?: string | string[]; signature?: string | string[] },
  secret: string,
  nowMs: number = Date.now(),
): string | undefined {
  const { timestamp, signature } = headers;
  if (typeof timestamp !== 'string' || typeof signature !== 'string' || !timestamp || !signature)
    return 'Missing required signature headers (X-Fulfillment-Webhook-Timestamp, X-Fulfillment-Webhook-Signature)';
  if (!/^\d{1,12}$/.test(timestamp)) return 'The X-Fulfillment-Webhook-Timestamp is not unix seconds';
  const skew = Math.floor(nowMs / 1000) - Number(timestamp);
  if (Math.abs(skew) > SIGNATURE_TOLERANCE_SECONDS)
    return `The signature timestamp is ${Math.abs(skew)} s ${skew > 0 ? 'old' : 'ahead'}, beyond the ${SIGNATURE_TOLERANCE_SECONDS} s tolerance`;
  // Base64 only, so a look-alike encoding of the same bytes is not another valid signature.
  if (!/^[A-Za-z0-9+/]{43}=$/.test(signature)) return 'The signature does not match the body';
  const given = Buffer.from(signature, 'base64');
  const expected = fulfillmentSignature(secret, timestamp, rawBody);
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return 'The signature does not match the body';
  return undefined;
}
