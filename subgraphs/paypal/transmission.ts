import type { IncomingHttpHeaders } from 'node:http';
import { z } from 'zod';
import { describeIssues } from '../../schema/contracts/refund-payment.js';
import type { Transmission } from './client.js';

/**
 * The transmission headers PayPal signs a webhook call with, checked before PayPal is asked about
 * them: each check here refuses a forgery without a verify-webhook-signature call.
 */

/** How far a transmission time may be from now, either way. */
export const PAYPAL_TRANSMISSION_TOLERANCE_SECONDS = 300;

/** Where PayPal serves the certificates it signs webhooks with (live, sandbox). */
export const PAYPAL_CERT_HOSTS: ReadonlySet<string> = new Set(['api.paypal.com', 'api.sandbox.paypal.com']);

const headers = z.object({
  'paypal-auth-algo': z.string().regex(/^SHA(?:1|224|256|384|512)withRSA$/, 'expected e.g. SHA256withRSA'),
  'paypal-cert-url': z.url({ protocol: /^https?$/ }),
  // PayPal's are UUIDs (v1): the format is checked, not the version.
  'paypal-transmission-id': z.guid(),
  // An RSA signature: 1024 to 8192 bits (PayPal's keys are 2048), base64.
  'paypal-transmission-sig': z
    .string()
    .regex(/^[A-Za-z0-9+/]{170,1400}={0,2}$/, 'expected an RSA signature in base64'),
  'paypal-transmission-time': z.iso.datetime({ offset: true }),
});

/** A certificate PayPal could have signed with: https on PayPal's hosts, or on the configured API's origin. */
function isPayPalCertUrl(url: URL, apiBase: URL): boolean {
  if (url.origin === apiBase.origin) return true;
  return (
    url.protocol === 'https:' &&
    !url.port &&
    !url.username &&
    !url.password &&
    PAYPAL_CERT_HOSTS.has(url.hostname)
  );
}

/**
 * The transmission of a webhook call, or why it cannot be PayPal's: a header missing or malformed, a
 * certificate off PayPal's hosts, a transmission time more than 300 s from `nowMs`.
 */
export function readTransmission(
  received: IncomingHttpHeaders,
  options: { apiBase: URL; nowMs?: number },
): { transmission: Transmission } | { problem: string } {
  const parsed = headers.safeParse(received);
  if (!parsed.success) return { problem: `PayPal transmission headers: ${describeIssues(parsed.error)}` };
  const values = parsed.data;
  const certUrl = new URL(values['paypal-cert-url']);
  if (!isPayPalCertUrl(certUrl, options.apiBase))
    return { problem: `paypal-cert-url is not on PayPal's hosts: ${certUrl.origin}` };
  const skew = Math.round(
    ((options.nowMs ?? Date.now()) - Date.parse(values['paypal-transmission-time'])) / 1000,
  );
  if (Math.abs(skew) > PAYPAL_TRANSMISSION_TOLERANCE_SECONDS)
    return {
      problem: `paypal-transmission-time is ${Math.abs(skew)} s ${skew > 0 ? 'old' : 'ahead'}, beyond the ${PAYPAL_TRANSMISSION_TOLERANCE_SECONDS} s tolerance`,
    };
  return {
    transmission: {
      authAlgo: values['paypal-auth-algo'],
      certUrl: values['paypal-cert-url'],
      transmissionId: values['paypal-transmission-id'],
      transmissionSig: values['paypal-transmission-sig'],
      transmissionTime: values['paypal-transmission-time'],
    },
  };
}
