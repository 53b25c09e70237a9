import { z } from 'zod';
import { describeIssues, readWebhookEnvelope } from '../../schema/contracts/refund-payment.js';

/**
 * The Stripe events the stripe Plugin reads, parsed at the boundary: a signed body is still data from
 * outside, and one the Plugin cannot read is refused (400) before anything depends on it. Only the
 * fields the Plugin uses are checked; Stripe adds fields freely, so unknown ones are kept and ignored.
 */

const id = z.string().min(1).max(255);

/** An expandable reference: the id, or the object it names when expanded. */
const reference = z.union([id, z.object({ id })]).nullish();

/** Every event, whatever its type (snapshot events; thin `v2.core.event` notifications are not). */
const envelope = z.object({
  id,
  object: z.literal('event'),
  type: z.string().min(1).max(255),
  data: z.object({ object: z.record(z.string(), z.unknown()) }),
});

/** `charge.refunded`: the Charge. Since API version 2022-11-15 it no longer embeds its refunds. */
const charge = z.object({
  id,
  object: z.literal('charge'),
  payment_intent: reference,
});

/**
 * The events about one Refund (the older `charge.refund.updated` and the newer `refund.*`). Only its id
 * is used: the webhook reads the refund back from Stripe. The rest is checked as Stripe sends it, so a
 * body that is not a refund is still refused (400).
 */
const refund = z.object({
  id,
  object: z.literal('refund'),
  /** In the currency's minor unit. */
  amount: z.number().int().nonnegative(),
  currency: z.string().regex(/^[a-z]{3}$/i, 'expected an ISO 4217 code'),
  status: z.string().nullish(),
  /** Unix seconds. */
  created: z.number().int().nonnegative(),
  payment_intent: reference,
  charge: reference,
});

export type StripeChargeEvent = z.infer<typeof charge>;
export type StripeRefundEvent = z.infer<typeof refund>;

/** Event types whose object is a Refund: an endpoint subscribed to several gets each refund from each. */
export const REFUND_EVENT_TYPES: ReadonlySet<string> = new Set([
  'charge.refund.updated',
  'refund.created',
  'refund.updated',
  'refund.failed',
]);

export type StripeEvent =
  | { kind: 'charge.refunded'; id: string; type: string; charge: StripeChargeEvent }
  | { kind: 'refund'; id: string; type: string; refund: StripeRefundEvent }
  /** A type the Plugin does not handle. */
  | { kind: 'other'; id: string; type: string }
  | { kind: 'malformed'; message: string };

/** The event a verified webhook body holds, or why it is not one the Plugin can read. */
export function readStripeEvent(rawBody: Buffer): StripeEvent {
  const read = readWebhookEnvelope(rawBody, envelope, 'Stripe');
  if ('malformed' in read) return { kind: 'malformed', message: read.malformed };
  const { id: eventId, type, data } = read.event;
  const malformed = (error: z.ZodError): StripeEvent => ({
    kind: 'malformed',
    message: `The ${type} event ${eventId} is malformed: ${describeIssues(error, ['data', 'object'])}`,
  });
  if (type === 'charge.refunded') {
    const parsed = charge.safeParse(data.object);
    return parsed.success
      ? { kind: 'charge.refunded', id: eventId, type, charge: parsed.data }
      : malformed(parsed.error);
  }
  if (REFUND_EVENT_TYPES.has(type)) {
    const parsed = refund.safeParse(data.object);
    return parsed.success
      ? { kind: 'refund', id: eventId, type, refund: parsed.data }
      : malformed(parsed.error);
  }
  return { kind: 'other', id: eventId, type };
}
