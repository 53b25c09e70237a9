import {
  definePlugin,
  type ActionContext,
  type PluginRuntime,
  type RouteRequest,
  type RouteResponse,
} from '../../gateway/sdk/plugin.js';
import {
  checkRefundRequest,
  publishPaymentRefunded,
  type RefundPaymentInput,
} from '../../schema/contracts/refund-payment.js';
import {
  authorizePaymentDetails,
  isStripePaymentIntentId,
  readEach,
  type OrderPaymentReference,
} from '../../schema/contracts/order-payment.js';
import {
  isSignatureError,
  paymentIntentDetails,
  receiptUrl,
  refundOfRefundedCharge,
  refundPaymentIntent,
  verifyWebhook,
  type StripePaymentDetails,
  type WebhookEvent,
} from './client.js';

/**
 * The stripe Plugin: Stripe as a Service. Actions `refundStripePayment` (a step of the refund flow) and
 * `stripeReceiptUrl`; `OrderPayment.stripe`, the PaymentIntent of an order's payment; the webhook
 * `POST /stripe/webhook/` turns dashboard refunds (`charge.refunded`) into the signal `payment.refunded.v1`.
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

/**
 * Stripe's webhook. A bad signature is 403 and a signed body that is not JSON 400, as in the reference
 * system. Event types other than `charge.refunded` are answered 200 and ignored, where the reference
 * answered 422: Stripe retries every non-2xx delivery for three days and then disables the endpoint, and
 * an event we do not handle will not become handleable by being retried.
 */
async function handleWebhook(request: RouteRequest, runtime: PluginRuntime): Promise<RouteResponse> {
  const signature = request.headers['stripe-signature'];
  let event: WebhookEvent;
  try {
    event = verifyWebhook(request.rawBody, typeof signature === 'string' ? signature : '');
  } catch (error) {
    if (isSignatureError(error))
      return {
        status: 403,
        body: { code: 'invalid_signature', message: 'The Stripe-Signature does not match' },
      };
    if (error instanceof SyntaxError)
      return { status: 400, body: { code: 'invalid_payload', message: 'The body is not a JSON event' } };
    throw error;
  }
  if (event.type !== 'charge.refunded') {
    runtime.logger.info(
      { eventId: event.id, type: event.type },
      'stripe webhook: event type not handled, ignored',
    );
    return { status: 200, body: { received: true, ignored: event.type } };
  }
  const charge = event.data.object;
  const refund = await refundOfRefundedCharge(charge);
  if (!refund?.pspPaymentId) {
    runtime.logger.warn(
      { eventId: event.id, charge: charge.id },
      'stripe webhook: refunded charge without a refund or PaymentIntent, ignored',
    );
    return { status: 200, body: { received: true, ignored: event.type } };
  }
  const { duplicate } = await publishPaymentRefunded(runtime, 'STRIPE', refund, event.id);
  return { status: 200, body: { received: true, duplicate } };
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
  routes: [{ method: 'POST', path: '/stripe/webhook/', handle: handleWebhook }],
});
