import { definePlugin, DomainError, ErrorCode, type ActionContext } from '@commerce-coordinator/plugin-sdk';
import type { RefundPaymentInput } from '../../schema/contracts/refund-payment.js';
import { refundPaymentIntent } from '../stripe/client.js';

/**
 * stripe-v2: the next Implementation of the Stripe refund Action, a Transition-to-Plugin. It takes
 * `refundStripePayment` over from the stripe Plugin with a progressive override, label
 * `transition.refunds.stripe-v2`: the gateway evaluates the label as a flag per request (the flow's
 * caller as `user`, its order as `order`, the calling Service as `service`) and records the decision on
 * the step. It talks to Stripe through the stripe Plugin's client (and so its configuration, SDK
 * instance, API version, idempotency and error mapping).
 *
 * What changes: v2 refunds only as a step of a Purchase Flow and only for a named order, so every refund
 * it makes carries `metadata.order_number` in Stripe (v1 leaves it out when the order number is missing,
 * and accepts staff calls outside a flow that it then refuses for want of an idempotency key).
 *
 * What must not change: the request Stripe receives for the same flow data. A step retried after the
 * flag flipped is served by the other Implementation with the same idempotency key; Stripe replays the
 * first refund only if the parameters are the same (otherwise it answers `idempotency_error`). So v2
 * sends exactly what v1 sends for a flow step: no extra metadata, no other API version.
 */

async function refundStripePayment(_: unknown, { input }: { input: RefundPaymentInput }, ctx: ActionContext) {
  if (ctx.flowId === undefined || !ctx.idempotencyKey)
    throw new DomainError(
      ErrorCode.BAD_USER_INPUT,
      'refundStripePayment (stripe-v2) runs only as a step of a Purchase Flow, whose idempotency key makes a retry never refund twice',
    );
  const { orderNumber } = input;
  if (!orderNumber?.trim())
    throw new DomainError(
      ErrorCode.BAD_USER_INPUT,
      'refundStripePayment (stripe-v2) needs the order number: every refund it makes names its order in Stripe',
    );
  // The amount and the PaymentIntent are checked by the shared client and by Stripe (refusals are domain errors).
  // A PspRefund: GraphQL answers its PaymentRefund fields.
  return refundPaymentIntent({
    paymentIntentId: input.pspPaymentId,
    amountCents: input.refundAmountCents,
    orderNumber,
    returnId: input.returnId ?? undefined,
    idempotencyKey: ctx.idempotencyKey,
  });
}

export default definePlugin({
  name: 'stripe-v2',
  schemaFile: new URL('./schema.graphql', import.meta.url),
  access: { Mutation: { refundStripePayment: ['staff', 'service'] } },
  resolvers: {
    Mutation: { refundStripePayment },
  },
});
