import { DomainError, ErrorCode } from '../../gateway/errors.js';
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
  isStripeId,
  readEach,
  type OrderPaymentReference,
} from '../../schema/contracts/order-payment.js';
import {
  activityUrl,
  captureDetails,
  refundCapture,
  refundOfWebhookResource,
  verifyWebhookSignature,
  type PayPalCaptureDetails,
} from './client.js';

/**
 * The paypal Plugin: PayPal as a Service. Actions `refundPayPalPayment` (a step of the refund flow) and
 * `payPalReceiptUrl`; `OrderPayment.paypal`, the capture of an order's payment; the webhook
 * `POST /paypal/webhook/` turns refunds made on paypal.com (`PAYMENT.CAPTURE.REFUNDED`) into the signal
 * `payment.refunded.v1`.
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
  if (isStripeId(payment.pspPaymentId)) return null;
  const details = await captures(ctx).load(
    JSON.stringify([payment.pspPaymentId, payment.pspOrderId ?? null]),
  );
  return { ...details, activityUrl: activityUrl(payment.pspPaymentId) };
}

function payPalReceiptUrl(_: unknown, { pspPaymentId }: { pspPaymentId: string }) {
  if (!pspPaymentId.trim()) throw new DomainError(ErrorCode.BAD_USER_INPUT, 'pspPaymentId is empty');
  return { url: activityUrl(pspPaymentId) };
}

const TRANSMISSION_HEADERS = {
  authAlgo: 'paypal-auth-algo',
  certUrl: 'paypal-cert-url',
  transmissionId: 'paypal-transmission-id',
  transmissionSig: 'paypal-transmission-sig',
  transmissionTime: 'paypal-transmission-time',
} as const;

/**
 * PayPal's webhook. The call is verified by PayPal itself (verify-webhook-signature); an unsigned or
 * unverified call is 400, as in the reference system. Event types other than
 * `PAYMENT.CAPTURE.REFUNDED` are answered 200 and ignored (PayPal retries any non-2xx).
 */
async function handleWebhook(request: RouteRequest, runtime: PluginRuntime): Promise<RouteResponse> {
  const transmission = Object.fromEntries(
    Object.entries(TRANSMISSION_HEADERS).map(([field, header]) => {
      const value = request.headers[header];
      return [field, typeof value === 'string' ? value : ''];
    }),
  ) as Record<keyof typeof TRANSMISSION_HEADERS, string>;
  const missing = Object.entries(transmission).find(([, value]) => !value);
  if (missing)
    return {
      status: 400,
      body: {
        code: 'invalid_signature',
        message: `Missing ${TRANSMISSION_HEADERS[missing[0] as keyof typeof TRANSMISSION_HEADERS]}`,
      },
    };
  const raw = request.rawBody.toString('utf8');
  let event: { id?: unknown; event_type?: unknown; resource?: unknown };
  try {
    event = JSON.parse(raw) as typeof event;
  } catch {
    return { status: 400, body: { code: 'invalid_payload', message: 'The body is not JSON' } };
  }
  if (typeof event !== 'object' || event === null || typeof event.id !== 'string')
    return { status: 400, body: { code: 'invalid_payload', message: 'The body is not a PayPal event' } };
  if (!(await verifyWebhookSignature(transmission, raw))) {
    runtime.logger.warn({ eventId: event.id }, 'paypal webhook: PayPal did not verify the signature');
    return {
      status: 400,
      body: { code: 'invalid_signature', message: 'PayPal did not verify the signature' },
    };
  }
  if (event.event_type !== 'PAYMENT.CAPTURE.REFUNDED') {
    runtime.logger.info(
      { eventId: event.id, type: event.event_type },
      'paypal webhook: event type not handled, ignored',
    );
    return { status: 200, body: { received: true, ignored: event.event_type } };
  }
  const refund = refundOfWebhookResource(event.resource);
  if (!refund)
    return {
      status: 400,
      body: { code: 'invalid_payload', message: 'The event has no refund with a capture link' },
    };
  const { duplicate } = await publishPaymentRefunded(runtime, 'PAYPAL', refund, event.id);
  return { status: 200, body: { received: true, duplicate } };
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
  routes: [{ method: 'POST', path: '/paypal/webhook/', handle: handleWebhook }],
});
