import { z } from 'zod';
import {
  describeIssues,
  readWebhookEnvelope,
  type PspRefund,
} from '../../schema/contracts/refund-payment.js';
import { captureOfLinks, fromPayPalValue, refundStatusOf } from './client.js';

/**
 * The PayPal events the paypal Plugin reads, parsed at the boundary, before PayPal is asked whether it
 * sent them: a body that is not one costs no verify call. Only the fields the Plugin uses are checked.
 */

const envelope = z.object({
  id: z.string().min(1).max(255),
  event_type: z.string().min(1).max(255),
  resource: z.unknown(),
});

/**
 * `PAYMENT.CAPTURE.REFUNDED`: its resource is one refund (Payments v2), the capture it refunds named by
 * its `up` link. PayPal announces each refund in an event of its own.
 */
const refund = z
  .object({
    id: z.string().min(1).max(255),
    status: z.string().optional(),
    amount: z.object({
      currency_code: z.string().regex(/^[A-Z]{3}$/, 'expected an ISO 4217 code'),
      value: z.string(),
    }),
    create_time: z.iso.datetime({ offset: true }),
    links: z.array(z.object({ rel: z.string(), href: z.string() })),
  })
  .transform((resource, ctx): PspRefund => {
    const captureId = captureOfLinks(resource.links);
    if (!captureId)
      ctx.addIssue({ code: 'custom', path: ['links'], message: 'no link up to the refunded capture' });
    const cents = fromPayPalValue(resource.amount.value, resource.amount.currency_code);
    if (cents === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['amount', 'value'],
        message: `'${resource.amount.value}' is not an amount in ${resource.amount.currency_code}`,
      });
    return {
      pspPaymentId: captureId ?? '',
      pspRefundId: resource.id,
      refundedAmountCents: cents ?? 0,
      currency: resource.amount.currency_code,
      refundStatus: refundStatusOf(resource.status),
      refundCreatedAt: new Date(resource.create_time).toISOString(),
    };
  });

/** The merchant's invoice id a refund carries (PayPal copies the capture's): our order number. */
const invoice = z.object({ invoice_id: z.string().max(127).optional() });

export type PayPalEvent =
  | { kind: 'refunded'; id: string; type: string; refund: PspRefund; invoiceId?: string }
  /** A type the Plugin does not handle. */
  | { kind: 'other'; id: string; type: string }
  | { kind: 'malformed'; message: string };

/** The event a webhook body holds, or why it is not one the Plugin can read. */
export function readPayPalEvent(rawBody: Buffer): PayPalEvent {
  const read = readWebhookEnvelope(rawBody, envelope, 'PayPal');
  if ('malformed' in read) return { kind: 'malformed', message: read.malformed };
  const { id, event_type: type, resource } = read.event;
  if (type !== 'PAYMENT.CAPTURE.REFUNDED') return { kind: 'other', id, type };
  const parsed = refund.safeParse(resource);
  if (!parsed.success)
    return {
      kind: 'malformed',
      message: `The ${type} event ${id} is malformed: ${describeIssues(parsed.error, ['resource'])}`,
    };
  const invoiceId = invoice.safeParse(resource).data?.invoice_id;
  return { kind: 'refunded', id, type, refund: parsed.data, ...(invoiceId ? { invoiceId } : {}) };
}
