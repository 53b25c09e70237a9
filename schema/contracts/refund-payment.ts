import { DomainError, ErrorCode } from '../../gateway/errors.js';
import type { ActionContext, PluginRuntime } from '../../gateway/sdk/plugin.js';

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

/** A refund as a PSP reports it (its API or its webhook); the `payment.refunded.v1` signal carries it. */
export interface PspRefund extends PaymentRefund {
  pspPaymentId: string;
  /** Upper-case ISO code. */
  currency: string;
}

/**
 * Commits `payment.refunded.v1` for a refund a PSP's webhook announced, once per PSP event id (a
 * redelivered event is a duplicate); its receiver records the refund transaction once per refund id.
 */
export async function publishPaymentRefunded(
  runtime: PluginRuntime,
  psp: 'STRIPE' | 'PAYPAL',
  refund: PspRefund,
  eventId: string,
): Promise<{ duplicate: boolean }> {
  return runtime.publish(
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
    { id: eventId },
  );
}
