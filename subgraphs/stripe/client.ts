import Stripe from 'stripe';
import { DomainError, ErrorCode } from '@commerce-coordinator/plugin-sdk';
import { stripeApiConfig } from './config.js';
import {
  refundAnsweringReturn,
  refundedForOtherReturns,
  refundMade,
  standingRefundOfReturn,
  type PspRefund,
} from '../../schema/contracts/refund-payment.js';

/**
 * The stripe Plugin's one client of Stripe, through the official SDK. What Stripe answers is mapped
 * here to what the Plugin's Actions promise: a refund in the contract's shape, a rejection as a
 * DomainError, anything transient (network, 5xx, 409, 429, auth) as the SDK's own error so the flow
 * engine retries the step with the same idempotency key.
 */

/** One SDK instance per configuration: built at first use, rebuilt if the environment changed. */
const instances = new Map<string, Stripe>();

function stripe(): Stripe {
  const { apiBase, secretKey } = stripeApiConfig();
  const key = `${apiBase.origin}\n${secretKey}`;
  let instance = instances.get(key);
  if (!instance) {
    instance = new Stripe(secretKey, {
      host: apiBase.hostname,
      port: apiBase.port || (apiBase.protocol === 'https:' ? 443 : 80),
      protocol: apiBase.protocol === 'https:' ? 'https' : 'http',
      // Safe with our idempotency keys: a retried POST is replayed by Stripe, never done twice.
      maxNetworkRetries: 2,
      timeout: 20_000,
      telemetry: false,
      appInfo: { name: 'commerce-coordinator' },
    });
    instances.clear();
    instances.set(key, instance);
  }
  return instance;
}

const statusOf = (status: string | null | undefined): PspRefund['refundStatus'] =>
  status === 'succeeded'
    ? 'succeeded'
    : status === 'pending' || status === 'requires_action'
      ? 'pending'
      : 'failed';

/** The fields of a Refund the Plugin reads, from the SDK (never from a webhook event's body). */
interface StripeRefundFields {
  id: string;
  amount: number;
  currency: string;
  status?: string | null;
  /** Unix seconds. */
  created: number;
  payment_intent?: string | { id: string } | null;
}

function toResult(refund: StripeRefundFields): PspRefund {
  const paymentIntent = refund.payment_intent;
  return {
    pspPaymentId: typeof paymentIntent === 'string' ? paymentIntent : (paymentIntent?.id ?? ''),
    pspRefundId: refund.id,
    refundedAmountCents: refund.amount,
    currency: refund.currency.toUpperCase(),
    refundStatus: statusOf(refund.status),
    refundCreatedAt: new Date(refund.created * 1000).toISOString(),
  };
}

/**
 * A Stripe error as the Action's caller should see it: a rejection of the request (invalid, declined,
 * unknown payment) is a DomainError with Stripe's code as `pspCode`; anything else is returned
 * unchanged, to be retried.
 */
function asDomainError(error: unknown): unknown {
  if (!(error instanceof Stripe.errors.StripeError)) return error;
  const pspCode = error.code ?? error.decline_code ?? error.rawType ?? error.type;
  const details = { psp: 'stripe', pspCode, ...(error.param ? { pspParam: error.param } : {}) };
  if (error.statusCode === 400 && error.rawType === 'idempotency_error')
    return new DomainError(ErrorCode.IDEMPOTENCY_KEY_REUSED, `Stripe: ${error.message}`, details);
  if (error.code === 'resource_missing')
    return new DomainError(ErrorCode.NOT_FOUND, `Stripe: ${error.message}`, details);
  if (error.statusCode === 400 || error.statusCode === 402 || error.statusCode === 404)
    return new DomainError(ErrorCode.CONFLICT, `Stripe refused: ${error.message}`, details);
  return error;
}

/** The return a refund was made for, as its metadata names it; none for one made in the dashboard. */
const returnOfRefund = (refund: Stripe.Refund): string | undefined => refund.metadata?.return_id || undefined;

/**
 * Refunds `amountCents` of a PaymentIntent, once: `idempotencyKey` makes a retry get the same refund
 * back, and the refund names its order and its return in its metadata (`order_number`, `return_id`).
 * A refund Stripe already holds for the return is answered, not made again, once Stripe no longer
 * keeps the key (`standingRefundOfReturn`).
 * A PaymentIntent Stripe says is already fully refunded (`charge_already_refunded`) answers the refund
 * that took this return's money back (`refundAnsweringReturn`), never another return's: when every
 * refund is another return's, a CONFLICT.
 */
export async function refundPaymentIntent(request: {
  paymentIntentId: string;
  amountCents: number;
  orderNumber?: string;
  returnId?: string;
  idempotencyKey: string;
}): Promise<PspRefund> {
  if (request.amountCents === 0) return refundOfFullyRefunded(request.paymentIntentId, request.returnId);
  if (request.returnId) {
    const standing = standingRefundOfReturn(
      await refundsOf(request.paymentIntentId),
      request.returnId,
      returnOfRefund,
      (refund) => statusOf(refund.status),
    );
    if (standing) return toResult(standing);
  }
  const metadata = {
    ...(request.orderNumber ? { order_number: request.orderNumber } : {}),
    ...(request.returnId ? { return_id: request.returnId } : {}),
  };
  try {
    const refund = await stripe().refunds.create(
      {
        payment_intent: request.paymentIntentId,
        amount: request.amountCents,
        ...(Object.keys(metadata).length ? { metadata } : {}),
      },
      { idempotencyKey: request.idempotencyKey },
    );
    return refundMade('stripe', toResult(refund));
  } catch (error) {
    if (error instanceof Stripe.errors.StripeError && error.code === 'charge_already_refunded')
      return refundOfReturn(request.paymentIntentId, request.returnId);
    throw asDomainError(error);
  }
}

/** A PaymentIntent's refunds, newest first, every page: a refund per return at most, and a few from the dashboard. */
async function refundsOf(paymentIntentId: string): Promise<Stripe.Refund[]> {
  try {
    return await stripe()
      .refunds.list({ payment_intent: paymentIntentId, limit: 100 })
      .autoPagingToArray({ limit: 10_000 });
  } catch (error) {
    throw asDomainError(error);
  }
}

/** The refund of a fully refunded PaymentIntent that answers the return's request (see refundPaymentIntent). */
async function refundOfReturn(paymentIntentId: string, returnId: string | undefined): Promise<PspRefund> {
  const refunds = await refundsOf(paymentIntentId);
  const refund = refundAnsweringReturn(refunds, returnId, returnOfRefund);
  if (refund) return toResult(refund);
  throw refundedForOtherReturns({
    psp: 'stripe',
    pspCode: 'charge_already_refunded',
    payment: `PaymentIntent ${paymentIntentId}`,
    returnId,
    refunds: refunds.map((r) => ({ pspRefundId: r.id, returnId: returnOfRefund(r) })),
  });
}

/**
 * Nothing is left to refund (the refunds recorded on the order add up to the payment, e.g. one made in
 * the dashboard): a PaymentIntent Stripe fully refunded answers as a refund request would
 * (`charge_already_refunded`); any other is a CONFLICT: the record and Stripe disagree (and Stripe
 * refunds no amount of 0).
 */
async function refundOfFullyRefunded(
  paymentIntentId: string,
  returnId: string | undefined,
): Promise<PspRefund> {
  let refunded: boolean;
  try {
    const intent = await stripe().paymentIntents.retrieve(paymentIntentId, { expand: ['latest_charge'] });
    const charge = intent.latest_charge;
    refunded = typeof charge === 'object' && charge?.refunded === true;
  } catch (error) {
    throw asDomainError(error);
  }
  if (refunded) return refundOfReturn(paymentIntentId, returnId);
  // The record says all was refunded, Stripe does not: they disagree, for staff to resolve.
  throw new DomainError(
    ErrorCode.CONFLICT,
    `refundAmountCents is 0 but Stripe has not fully refunded PaymentIntent ${paymentIntentId}: there is nothing to refund`,
    { psp: 'stripe' },
  );
}

/** The receipt URL of the PaymentIntent's charge, or null when it has no charge (yet). */
export async function receiptUrl(paymentIntentId: string): Promise<string | null> {
  try {
    const intent = await stripe().paymentIntents.retrieve(paymentIntentId, { expand: ['latest_charge'] });
    const charge = intent.latest_charge;
    return typeof charge === 'object' && charge ? (charge.receipt_url ?? null) : null;
  } catch (error) {
    throw asDomainError(error);
  }
}

/** A PaymentIntent with its latest charge and that charge's refunds (newest first). */
export interface StripePaymentDetails {
  status: string;
  amountCents: number;
  /** The latest charge's amount_refunded; 0 without a charge. */
  amountRefundedCents: number;
  /** Upper-case ISO code. */
  currency: string;
  /** ISO 8601. */
  createdAt: string;
  receiptUrl: string | null;
  refunds: PspRefund[];
}

/**
 * A PaymentIntent with its latest charge and that charge's refunds, in one call: since API version
 * 2022-11-15 a Charge lists its refunds only when expanded, hence `expand[]=latest_charge.refunds`.
 * Stripe has no read of several PaymentIntents by id (list filters by customer or date, search is
 * eventually consistent), so a page of payments is one such call each. An expanded list holds its first
 * page (10 refunds): a charge with more is paged through, one call per 100 more.
 */
export async function paymentIntentDetails(paymentIntentId: string): Promise<StripePaymentDetails> {
  try {
    const intent = await stripe().paymentIntents.retrieve(paymentIntentId, {
      expand: ['latest_charge.refunds'],
    });
    const charge = typeof intent.latest_charge === 'object' ? intent.latest_charge : null;
    const refunds = [...(charge?.refunds?.data ?? [])];
    if (charge?.refunds?.has_more) {
      let page: Stripe.ApiList<Stripe.Refund>;
      do {
        page = await stripe().refunds.list({
          charge: charge.id,
          limit: 100,
          starting_after: refunds.at(-1)!.id,
        });
        refunds.push(...page.data);
      } while (page.has_more && page.data.length);
    }
    return {
      status: intent.status,
      amountCents: intent.amount,
      amountRefundedCents: charge?.amount_refunded ?? 0,
      currency: intent.currency.toUpperCase(),
      createdAt: new Date(intent.created * 1000).toISOString(),
      receiptUrl: charge?.receipt_url ?? null,
      refunds: refunds.map((refund) => {
        const result = toResult(refund);
        return result.pspPaymentId ? result : { ...result, pspPaymentId: intent.id };
      }),
    };
  } catch (error) {
    throw asDomainError(error);
  }
}

/**
 * A refund in the contract's shape, as the API answers it. A refund without its PaymentIntent (of a
 * charge made without one, or not expanded) gets `paymentIntentId`.
 */
function pspRefundOf(refund: StripeRefundFields, paymentIntentId?: string): PspRefund {
  const result = toResult(refund);
  return result.pspPaymentId || !paymentIntentId ? result : { ...result, pspPaymentId: paymentIntentId };
}

/**
 * A refund as Stripe holds it now, read back by id: a webhook event names the refund, and only Stripe
 * says what it is (its amount, status and PaymentIntent). One Stripe does not have (`resource_missing`)
 * is NOT_FOUND.
 */
export async function refundById(refundId: string): Promise<PspRefund> {
  try {
    return pspRefundOf(await stripe().refunds.retrieve(refundId));
  } catch (error) {
    throw asDomainError(error);
  }
}

/** Every refund of a charge, oldest first, as Stripe has them now (current statuses): one call per 100. */
export async function refundsOfCharge(chargeId: string, paymentIntentId?: string): Promise<PspRefund[]> {
  const refunds: PspRefund[] = [];
  try {
    for await (const refund of stripe().refunds.list({ charge: chargeId, limit: 100 }))
      refunds.push(pspRefundOf(refund, paymentIntentId));
  } catch (error) {
    throw asDomainError(error);
  }
  // Stripe lists newest first.
  return refunds.reverse();
}

/** A PaymentIntent's metadata: what the checkout that created it wrote (order number, source system). */
export async function paymentIntentMetadata(paymentIntentId: string): Promise<Record<string, string>> {
  try {
    return (await stripe().paymentIntents.retrieve(paymentIntentId)).metadata ?? {};
  } catch (error) {
    throw asDomainError(error);
  }
}

/**
 * Whether Stripe answers this account's key: the cheapest authenticated read (one refund), which the
 * stand-in answers as Stripe does. For /readyz.
 */
export async function checkStripe(): Promise<void> {
  await stripe().refunds.list({ limit: 1 }, { maxNetworkRetries: 0 });
}
