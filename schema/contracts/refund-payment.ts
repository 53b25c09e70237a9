import type { z } from 'zod';
import {
  DomainError,
  ErrorCode,
  httpStatusOf,
  type ActionContext,
  type PluginRuntime,
  type RouteResponse,
} from '@commerce-coordinator/plugin-sdk';

/**
 * The "refund a payment" Action contract, shared by its Implementations (stripe, paypal, stripe-v2):
 * the input they take (`RefundPaymentInput` in their SDL), what they return (`PaymentRefund`), and the
 * checks every Implementation makes before money moves.
 */
export interface RefundPaymentInput {
  pspPaymentId: string;
  /** 0: nothing left to refund, answered with the existing refund of a fully refunded payment. */
  refundAmountCents: number;
  currency: string;
  orderNumber?: string | null;
  /** The return the refund is for (createReturn's): the refund names it at the PSP. */
  returnId?: string | null;
}

export interface PaymentRefund {
  pspRefundId: string;
  refundedAmountCents: number;
  refundStatus: 'succeeded' | 'pending' | 'failed';
  /** ISO 8601. */
  refundCreatedAt: string;
}

/**
 * Checks a refund request and returns the idempotency key to send to the PSP. Without an idempotency
 * key (a step's) a retry could refund twice, so there is no refund.
 */
export function checkRefundRequest(action: string, input: RefundPaymentInput, ctx: ActionContext): string {
  if (!input.pspPaymentId.trim()) throw new DomainError(ErrorCode.BAD_USER_INPUT, 'pspPaymentId is empty');
  if (input.refundAmountCents < 0)
    throw new DomainError(
      ErrorCode.BAD_USER_INPUT,
      `refundAmountCents must not be negative, not ${input.refundAmountCents}`,
    );
  try {
    new Intl.NumberFormat('en-US', { style: 'currency', currency: input.currency });
  } catch {
    throw new DomainError(
      ErrorCode.BAD_USER_INPUT,
      `currency must be an ISO 4217 code, not '${input.currency}'`,
    );
  }
  if (!ctx.idempotencyKey)
    throw new DomainError(
      ErrorCode.BAD_USER_INPUT,
      `${action} needs an idempotency key (it runs as a step of a Purchase Flow), so that a retry never refunds twice`,
    );
  return ctx.idempotencyKey;
}

/**
 * A refund the PSP answered as failed moved no money (PayPal's `FAILED`: it could not process it): a
 * CONFLICT, so that the flow stops before it records and announces a refund (`order.refunded.v1`
 * revokes the learner's access), and the return's compensation frees its lines to be refunded again.
 * A pending refund goes on: its money is on the way, and a later failure arrives by webhook.
 */
export function refundMade<T extends PaymentRefund>(psp: 'stripe' | 'paypal', refund: T): T {
  if (refund.refundStatus !== 'failed') return refund;
  throw new DomainError(
    ErrorCode.CONFLICT,
    `${psp === 'stripe' ? 'Stripe' : 'PayPal'} answered refund ${refund.pspRefundId} as failed: nothing was refunded`,
    { psp, pspRefundId: refund.pspRefundId, refundStatus: refund.refundStatus },
  );
}

/**
 * The refund a PSP already holds for this return and has not failed or cancelled, among the payment's
 * refunds: looked for before a refund is made, because a PSP keeps idempotency keys only for a while
 * (Stripe 24 hours). A step retried after that (an operator's `retryFlow` of a refund whose answer was
 * lost) would otherwise refund the return a second time under the very key that made the first.
 */
export function standingRefundOfReturn<T>(
  refunds: readonly T[],
  returnId: string,
  returnOf: (refund: T) => string | undefined,
  statusOf: (refund: T) => PspRefund['refundStatus'],
): T | undefined {
  return refunds.find((refund) => returnOf(refund) === returnId && statusOf(refund) !== 'failed');
}

/**
 * Which refund answers a return's refund request to a payment the PSP says is fully refunded, among
 * the payment's refunds (newest first), each naming the return it was made for or none: the one made
 * for this return (an earlier attempt whose idempotency key the PSP no longer keeps), else the latest
 * made outside any return (in the PSP's dashboard), which took the money back. Never one made for
 * another return: recording it here would give one refund to two returns while nothing moved for this
 * one. Undefined when no refund qualifies (see `refundedForOtherReturns`).
 */
export function refundAnsweringReturn<T>(
  refunds: readonly T[],
  returnId: string | null | undefined,
  returnOf: (refund: T) => string | undefined,
): T | undefined {
  const own = returnId ? refunds.find((refund) => returnOf(refund) === returnId) : undefined;
  return own ?? refunds.find((refund) => !returnOf(refund));
}

/**
 * The CONFLICT of a return's refund request to a payment other returns' refunds fully refunded: nothing
 * was refunded for this return, and no refund is its own; staff decide (the lines may be returned again,
 * the compensation having marked this return NotRefunded).
 */
export function refundedForOtherReturns(failure: {
  psp: 'stripe' | 'paypal';
  /** The PSP's code for a fully refunded payment. */
  pspCode: string;
  /** What the payment is at the PSP and its id, e.g. "PaymentIntent pi_…". */
  payment: string;
  returnId: string | null | undefined;
  refunds: ReadonlyArray<{ pspRefundId: string; returnId: string | undefined }>;
}): DomainError {
  const listed = failure.refunds.map((r) => `${r.pspRefundId} for return ${r.returnId ?? '?'}`).join(', ');
  return new DomainError(
    ErrorCode.CONFLICT,
    `${failure.payment} is fully refunded, by refunds of other returns (${listed}): none is for ${
      failure.returnId ? `return ${failure.returnId}` : 'this refund'
    }, so nothing was refunded for it`,
    {
      psp: failure.psp,
      pspCode: failure.pspCode,
      pspRefundIds: failure.refunds.map((r) => r.pspRefundId),
    },
  );
}

/** A refund as a PSP reports it (its API or its webhook); the `payment.refunded.v1` signal carries it. */
export interface PspRefund extends PaymentRefund {
  pspPaymentId: string;
  /** Upper-case ISO code. */
  currency: string;
}

export type Psp = 'STRIPE' | 'PAYPAL';

/** What a PSP webhook answers when it took the event: each refund it announced, and whether it was new. */
export interface PaymentRefundsPublished {
  received: true;
  /** Every refund was already published, with this status: nothing new was committed. */
  duplicate: boolean;
  refunds: Array<{ pspRefundId: string; refundStatus: PspRefund['refundStatus']; duplicate: boolean }>;
}

/**
 * The signal id of a refund in one status. A PSP announces a refund in several events (Stripe's
 * `charge.refunded` lists every refund of the charge, and a refund has events of its own) and
 * redelivers each until answered: keyed by the refund, each is committed once; keyed by its status
 * too, a pending refund that settles is committed again, for its receiver to record the new state.
 */
export const paymentRefundedId = (psp: Psp, refund: Pick<PspRefund, 'pspRefundId' | 'refundStatus'>) =>
  `${psp}:${refund.pspRefundId}:${refund.refundStatus}`;

/**
 * Commits `payment.refunded.v1` for each refund a PSP's webhook announced, in the order given, once per
 * refund and status (`paymentRefundedId`); its receiver records the refund transaction once per refund
 * id and moves a pending one to its settled state.
 */
export async function publishPaymentRefunds(
  runtime: PluginRuntime,
  psp: Psp,
  refunds: readonly PspRefund[],
): Promise<PaymentRefundsPublished> {
  const published: PaymentRefundsPublished['refunds'] = [];
  for (const refund of refunds) {
    const { duplicate } = await runtime.publish(
      'payment.refunded.v1',
      {
        psp,
        pspPaymentId: refund.pspPaymentId,
        pspRefundId: refund.pspRefundId,
        refundedAmountCents: refund.refundedAmountCents,
        currency: refund.currency,
        refundStatus: refund.refundStatus,
        refundCreatedAt: refund.refundCreatedAt,
      },
      { id: paymentRefundedId(psp, refund) },
    );
    published.push({ pspRefundId: refund.pspRefundId, refundStatus: refund.refundStatus, duplicate });
  }
  return { received: true, duplicate: published.every((r) => r.duplicate), refunds: published };
}

/**
 * A webhook call refused, in the REST error shape (`{ code, message }`) with the code's HTTP status.
 * The PSPs retry every non-2xx answer, so only what a retry cannot fix should be refused.
 */
export function refuseWebhook(
  code: ErrorCode,
  message: string,
  headers?: Record<string, string>,
): RouteResponse {
  return { status: httpStatusOf(code), body: { code, message }, ...(headers ? { headers } : {}) };
}

/**
 * A webhook's body read as the PSP's event envelope, or why it is not one (not JSON, or not an event):
 * the message a `BAD_REQUEST` answer gives.
 */
export function readWebhookEnvelope<T>(
  rawBody: Buffer,
  envelope: z.ZodType<T>,
  psp: string,
): { event: T } | { malformed: string } {
  let json: unknown;
  try {
    json = JSON.parse(rawBody.toString('utf8'));
  } catch {
    return { malformed: 'The body is not JSON' };
  }
  const event = envelope.safeParse(json);
  return event.success
    ? { event: event.data }
    : { malformed: `The body is not a ${psp} event: ${describeIssues(event.error)}` };
}

/** Up to three of a payload's issues, each with its path under `at`: what is needed to find the problem. */
export function describeIssues(error: z.ZodError, at: readonly string[] = []): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${[...at, ...issue.path.map(String)].join('.') || '(the body)'}: ${issue.message}`)
    .join('; ');
}
