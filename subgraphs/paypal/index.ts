import { definePlugin, DomainError, ErrorCode, type ActionContext } from '@commerce-coordinator/plugin-sdk';
import { checkRefundRequest, type RefundPaymentInput } from '../../schema/contracts/refund-payment.js';
import {
  authorizePaymentDetails,
  isStripeId,
  readEach,
  type OrderPaymentReference,
} from '../../schema/contracts/order-payment.js';
import {
  activityUrl,
  captureDetails,
  checkPayPal,
  refundCapture,
  type PayPalCaptureDetails,
} from './client.js';
import { payPalActivityUrlBase, payPalApiConfig, payPalWebhookId, payPalWebhookLimits } from './config.js';
import { handlePayPalWebhook } from './webhook.js';

/**
 * The paypal Plugin: PayPal as a Service. Actions `refundPayPalPayment` (a step of the refund flow) and
 * `payPalReceiptUrl`; `OrderPayment.paypal`, the capture of an order's payment; the webhook
 * `POST /paypal/webhook/` (./webhook.ts) turns refunds made on paypal.com (`PAYMENT.CAPTURE.REFUNDED`)
 * into the signal `payment.refunded.v1`.
 */

async function refundPayPalPayment(_: unknown, { input }: { input: RefundPaymentInput }, ctx: ActionContext) {
  const idempotencyKey = checkRefundRequest('refundPayPalPayment', input, ctx);
  // A PspRefund: GraphQL answers its PaymentRefund fields.
  return refundCapture({
    captureId: input.pspPaymentId,
    amountCents: input.refundAmountCents,
    currency: input.currency,
    returnId: input.returnId ?? undefined,
    idempotencyKey,
  });
}

/**
 * The request's captures with their refunds: one PayPal call per distinct capture. The key is the
 * capture id with its PayPal order id (JSON), the order being where PayPal lists both.
 */
const captures = (ctx: ActionContext) =>
  ctx.loader<string, PayPalCaptureDetails>('paypal:captures', (keys) =>
    readEach(keys, (key) => {
      const [captureId, orderId] = JSON.parse(key) as [string, string | null];
      return captureDetails(captureId, orderId);
    }),
  );

/**
 * `OrderPayment.paypal`: the payment at PayPal, for staff, Services and the learner whose order it paid
 * (`authorizePaymentDetails`). A flow step that reads an order does not select it: a step selects only
 * its own Action's fields.
 */
async function orderPaymentAtPayPal(payment: OrderPaymentReference, _: unknown, ctx: ActionContext) {
  authorizePaymentDetails(ctx, payment);
  // A payment of another PSP (psp from the order management Plugin; an id such as pi_… when absent).
  if (isStripeId(payment.pspPaymentId) || (payment.psp && payment.psp !== 'PAYPAL')) return null;
  const details = await captures(ctx).load(
    JSON.stringify([payment.pspPaymentId, payment.pspOrderId ?? null]),
  );
  return { ...details, activityUrl: activityUrl(payment.pspPaymentId) };
}

function payPalReceiptUrl(_: unknown, { pspPaymentId }: { pspPaymentId: string }) {
  if (!pspPaymentId.trim()) throw new DomainError(ErrorCode.BAD_USER_INPUT, 'pspPaymentId is empty');
  return { url: activityUrl(pspPaymentId) };
}

export default definePlugin({
  name: 'paypal',
  schemaFile: new URL('./schema.graphql', import.meta.url),
  // Steps of the refund and receipt flows.
  access: {
    Query: { payPalReceiptUrl: ['staff', 'service'] },
    Mutation: { refundPayPalPayment: ['staff', 'service'] },
  },
  resolvers: {
    OrderPayment: { paypal: orderPaymentAtPayPal },
    Query: { payPalReceiptUrl },
    Mutation: { refundPayPalPayment },
  },
  routes: [{ method: 'POST', path: '/paypal/webhook/', handle: handlePayPalWebhook }],
  config: [payPalApiConfig, payPalWebhookId, payPalWebhookLimits, payPalActivityUrlBase],
  health: { service: 'paypal', check: checkPayPal },
});
