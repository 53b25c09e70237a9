import { definePlugin, type ActionContext } from '@commerce-coordinator/plugin-sdk';
import { checkRefundRequest, type RefundPaymentInput } from '../../schema/contracts/refund-payment.js';
import {
  authorizePaymentDetails,
  isStripePaymentIntentId,
  readEach,
  type OrderPaymentReference,
} from '../../schema/contracts/order-payment.js';
import {
  checkStripe,
  paymentIntentDetails,
  receiptUrl,
  refundPaymentIntent,
  type StripePaymentDetails,
} from './client.js';
import { handleStripeWebhook } from './webhook.js';
import { stripeApiConfig, stripeWebhookSecret } from './config.js';

/**
 * The stripe Plugin: Stripe as a Service. Actions `refundStripePayment` (a step of the refund flow) and
 * `stripeReceiptUrl`; `OrderPayment.stripe`, the PaymentIntent of an order's payment; the webhook
 * `POST /stripe/webhook/` (./webhook.ts) turns refunds made at Stripe into the signal `payment.refunded.v1`.
 */

async function refundStripePayment(_: unknown, { input }: { input: RefundPaymentInput }, ctx: ActionContext) {
  const idempotencyKey = checkRefundRequest('refundStripePayment', input, ctx);
  // A PspRefund: GraphQL answers its PaymentRefund fields.
  return refundPaymentIntent({
    paymentIntentId: input.pspPaymentId,
    amountCents: input.refundAmountCents,
    orderNumber: input.orderNumber ?? undefined,
    returnId: input.returnId ?? undefined,
    idempotencyKey,
  });
}

/** The request's PaymentIntents with their latest charge and refunds: one Stripe call per distinct id. */
const paymentIntents = (ctx: ActionContext) =>
  ctx.loader<string, StripePaymentDetails>('stripe:payment-intents', (ids) =>
    readEach(ids, paymentIntentDetails),
  );

/**
 * `OrderPayment.stripe`: the payment at Stripe, for staff, Services and the learner whose order it paid
 * (`authorizePaymentDetails`). A flow step that reads an order does not select it: a step selects only
 * its own Action's fields.
 */
async function orderPaymentAtStripe(payment: OrderPaymentReference, _: unknown, ctx: ActionContext) {
  authorizePaymentDetails(ctx, payment);
  if (!isStripePaymentIntentId(payment.pspPaymentId)) return null;
  return paymentIntents(ctx).load(payment.pspPaymentId);
}

async function stripeReceiptUrl(_: unknown, { pspPaymentId }: { pspPaymentId: string }) {
  const url = await receiptUrl(pspPaymentId);
  return url ? { url } : null;
}

export default definePlugin({
  name: 'stripe',
  schemaFile: new URL('./schema.graphql', import.meta.url),
  // Steps of the refund and receipt flows.
  access: {
    Query: { stripeReceiptUrl: ['staff', 'service'] },
    Mutation: { refundStripePayment: ['staff', 'service'] },
  },
  resolvers: {
    OrderPayment: { stripe: orderPaymentAtStripe },
    Query: { stripeReceiptUrl },
    Mutation: { refundStripePayment },
  },
  routes: [{ method: 'POST', path: '/stripe/webhook/', handle: handleStripeWebhook }],
  config: [stripeApiConfig, stripeWebhookSecret],
  health: { service: 'stripe', check: checkStripe },
});
