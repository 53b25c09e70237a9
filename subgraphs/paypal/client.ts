import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import {
  ApiError,
  Client,
  Environment,
  OrdersController,
  PaymentsController,
  type Refund,
} from '@paypal/paypal-server-sdk';
import { DomainError, ErrorCode } from '@commerce-coordinator/plugin-sdk';
import {
  PAYPAL_LIVE,
  PAYPAL_SANDBOX,
  payPalActivityUrlBase,
  payPalApiConfig,
  payPalWebhookId,
  type PayPalApiConfig,
} from './config.js';
import {
  refundAnsweringReturn,
  refundedForOtherReturns,
  refundMade,
  standingRefundOfReturn,
  type PspRefund,
} from '../../schema/contracts/refund-payment.js';

/**
 * The paypal Plugin's one client of PayPal, through the official SDK (`@paypal/paypal-server-sdk`). What
 * PayPal answers is mapped here to what the Plugin's Actions promise: a refund in the contract's shape,
 * a rejection as a DomainError, anything transient (network, 5xx, 409, 429, auth) as the SDK's own
 * error so the flow engine retries the step with the same PayPal-Request-Id.
 */

/**
 * The SDK knows only PayPal's two hosts (its `Environment`). Any other base URL — the stand-in, a
 * recording proxy — is reached with the SDK's `httpsAgent` option: an agent whose connections go to
 * that base instead of to PayPal, so the SDK's requests, paths and auth are unchanged.
 */
class BaseUrlAgent extends https.Agent {
  constructor(private readonly base: URL) {
    super({ keepAlive: true });
  }

  override createConnection(): Duplex {
    const host = this.base.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(this.base.port || (this.base.protocol === 'https:' ? 443 : 80));
    return this.base.protocol === 'https:'
      ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host })
      : net.connect({ host, port });
  }
}

export interface PayPal {
  client: Client;
  payments: PaymentsController;
  orders: OrdersController;
}

/** The SDK's client and controllers for a configuration (exported for the stand-in's tests). */
export function connectPayPal(config: PayPalApiConfig): PayPal {
  const origin = config.apiBase.origin;
  const known = origin === PAYPAL_LIVE || origin === PAYPAL_SANDBOX;
  const client = new Client({
    environment: origin === PAYPAL_LIVE ? Environment.Production : Environment.Sandbox,
    clientCredentialsAuthCredentials: {
      oAuthClientId: config.clientId,
      oAuthClientSecret: config.clientSecret,
    },
    timeout: 20_000,
    httpClientOptions: known ? {} : { httpsAgent: new BaseUrlAgent(config.apiBase) },
  });
  return { client, payments: new PaymentsController(client), orders: new OrdersController(client) };
}

/** One SDK client per configuration (it caches the OAuth token): built at first use, rebuilt if the environment changed. */
const instances = new Map<string, PayPal>();

function paypal(): PayPal {
  const config = payPalApiConfig();
  const key = `${config.apiBase.origin}\n${config.clientId}\n${config.clientSecret}`;
  let instance = instances.get(key);
  if (!instance) {
    instance = connectPayPal(config);
    instances.clear();
    instances.set(key, instance);
  }
  return instance;
}

const exponentOf = (currency: string) =>
  new Intl.NumberFormat('en-US', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ??
  2;

/** Minor units as PayPal's decimal string: 1050 USD → "10.50", 1050 JPY → "1050". */
export function toPayPalValue(cents: number, currency: string): string {
  const exponent = exponentOf(currency);
  return exponent === 0 ? String(cents) : (cents / 10 ** exponent).toFixed(exponent);
}

/** PayPal's decimal string as minor units, exactly; undefined if it is not one. */
export function fromPayPalValue(value: string, currency: string): number | undefined {
  const exponent = exponentOf(currency);
  const match = /^(\d{1,12})(?:\.(\d+))?$/.exec(value);
  if (!match || (match[2]?.length ?? 0) > exponent) return undefined;
  return Number(match[1]) * 10 ** exponent + Number((match[2] ?? '').padEnd(exponent, '0') || 0);
}

/** A PayPal refund's status as the contract says it. */
export const refundStatusOf = (status: string | undefined): PspRefund['refundStatus'] =>
  status === 'COMPLETED' ? 'succeeded' : status === 'FAILED' || status === 'CANCELLED' ? 'failed' : 'pending';

const lastSegment = (href: string | undefined) => href?.split('?')[0]!.split('/').filter(Boolean).pop();

/** The capture a refund belongs to: the last segment of its `up` link (as the reference system read it). */
export const captureOfLinks = (links: readonly { rel: string; href: string }[] | undefined) =>
  lastSegment(links?.find((l) => l.rel === 'up' && l.href.includes('/captures/'))?.href);

function toResult(refund: Refund, captureId: string, fallbackCents?: number): PspRefund {
  const currency = (refund.amount?.currencyCode ?? 'USD').toUpperCase();
  const cents = refund.amount ? fromPayPalValue(refund.amount.value, currency) : undefined;
  return {
    pspPaymentId: captureOfLinks(refund.links) ?? captureId,
    pspRefundId: refund.id ?? '',
    refundedAmountCents: cents ?? fallbackCents ?? 0,
    currency,
    refundStatus: refundStatusOf(refund.status),
    refundCreatedAt: refund.createTime ? new Date(refund.createTime).toISOString() : new Date().toISOString(),
  };
}

interface PayPalErrorBody {
  name?: string;
  message?: string;
  details?: { issue?: string; description?: string }[];
  error?: string;
}

/** The error's JSON body: the SDK parses it only for the errors it declares (CustomError). */
function errorBody(error: ApiError): PayPalErrorBody {
  if (typeof error.result === 'object' && error.result) return error.result as PayPalErrorBody;
  try {
    const parsed: unknown = typeof error.body === 'string' ? JSON.parse(error.body) : undefined;
    return typeof parsed === 'object' && parsed ? (parsed as PayPalErrorBody) : {};
  } catch {
    return {};
  }
}

/** A PayPal answer worth retrying (5xx, 409, 429, auth), with what PayPal said in its message. */
export class PayPalUnavailableError extends Error {
  override readonly name = 'PayPalUnavailableError';
  constructor(
    readonly statusCode: number,
    message: string,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

/** PayPal's fine-grained code of an error answer (`details[0].issue`, else its `name`). */
function issueOf(error: unknown): string | undefined {
  if (!(error instanceof ApiError)) return undefined;
  const body = errorBody(error);
  return body.details?.[0]?.issue ?? body.name ?? body.error;
}

/**
 * A PayPal error as the Action's caller should see it: a rejection (invalid request, business
 * validation, unknown capture) is a DomainError with PayPal's issue as `pspCode`; anything else is
 * returned unchanged, to be retried.
 */
function asDomainError(error: unknown): unknown {
  if (!(error instanceof ApiError)) return error;
  const body = errorBody(error);
  const pspCode = issueOf(error) ?? String(error.statusCode);
  const description = body.details?.[0]?.description ?? body.message ?? error.message;
  const details = { psp: 'paypal', pspCode };
  if (pspCode === 'PAYPAL_REQUEST_ID_PREVIOUSLY_USED')
    return new DomainError(ErrorCode.IDEMPOTENCY_KEY_REUSED, `PayPal: ${description}`, details);
  if (error.statusCode === 404)
    return new DomainError(ErrorCode.NOT_FOUND, `PayPal: ${description}`, details);
  if (error.statusCode === 400 || error.statusCode === 422)
    return new DomainError(ErrorCode.CONFLICT, `PayPal refused: ${description}`, details);
  return new PayPalUnavailableError(
    error.statusCode,
    `PayPal answered ${error.statusCode} ${pspCode}: ${description}`,
    {
      cause: error,
    },
  );
}

/** A capture's refunds, newest first: PayPal lists them on its order (the capture's `up` link). */
async function refundsOfCapture(captureId: string): Promise<Refund[]> {
  const { payments, orders } = paypal();
  const { result: capture } = await payments.getCapturedPayment({ captureId });
  const orderId = lastSegment(
    capture.links?.find((l) => l.rel === 'up' && l.href.includes('/orders/'))?.href,
  );
  if (!orderId) return [];
  const { result: order } = await orders.getOrder({ id: orderId });
  return (
    (order.purchaseUnits ?? [])
      .flatMap((unit) => unit.payments?.refunds ?? [])
      .filter((refund) => captureOfLinks(refund.links) === captureId)
      // The order lists them oldest first; PayPal's times are to the second, so ties keep that order, reversed.
      .reverse()
      .sort((a, b) => (b.createTime ?? '').localeCompare(a.createTime ?? ''))
  );
}

/** The return a refund was made for, as its `custom_id` names it; none for one made on paypal.com. */
const returnOfRefund = (refund: Refund): string | undefined => refund.customId || undefined;

/**
 * Refunds `amountCents` of a capture, once: `idempotencyKey` is sent as PayPal-Request-Id, so a retry
 * gets the same refund back, and the refund names its return (`custom_id`); a refund PayPal already
 * holds for the return is answered, not made again, once PayPal no longer keeps the id
 * (`standingRefundOfReturn`). A capture PayPal says is already fully refunded (`CAPTURE_FULLY_REFUNDED`)
 * answers the refund that took this return's money back (`refundAnsweringReturn`), never another
 * return's: when every refund is another return's, a CONFLICT.
 */
export async function refundCapture(request: {
  captureId: string;
  amountCents: number;
  currency: string;
  returnId?: string;
  idempotencyKey: string;
}): Promise<PspRefund> {
  const currency = request.currency.toUpperCase();
  if (request.amountCents === 0) return refundOfFullyRefunded(request.captureId, request.returnId);
  if (request.returnId) {
    const standing = standingRefundOfReturn(
      await currentRefundsOf(request.captureId),
      request.returnId,
      returnOfRefund,
      (refund) => refundStatusOf(refund.status),
    );
    if (standing?.id) return toResult(standing, request.captureId);
  }
  try {
    const { result } = await paypal().payments.refundCapturedPayment({
      captureId: request.captureId,
      paypalRequestId: request.idempotencyKey,
      prefer: 'return=representation',
      body: {
        amount: { currencyCode: currency, value: toPayPalValue(request.amountCents, currency) },
        ...(request.returnId ? { customId: request.returnId } : {}),
      },
    });
    return refundMade('paypal', toResult(result, request.captureId, request.amountCents));
  } catch (error) {
    if (issueOf(error) === 'CAPTURE_FULLY_REFUNDED')
      return refundOfReturn(request.captureId, request.returnId);
    throw asDomainError(error);
  }
}

/**
 * A capture's refunds as they are now, newest first. The order lists refunds as they were, perhaps not
 * all their fields: each refund resource has its current status and its custom_id. A payment has a
 * refund per return at most, and a few from paypal.com.
 */
async function currentRefundsOf(captureId: string): Promise<Refund[]> {
  try {
    const listed = await refundsOfCapture(captureId);
    return await Promise.all(
      listed.map(async (r) => (r.id ? (await paypal().payments.getRefund({ refundId: r.id })).result : r)),
    );
  } catch (error) {
    throw asDomainError(error);
  }
}

/** The refund of a fully refunded capture that answers the return's request (see refundCapture). */
async function refundOfReturn(captureId: string, returnId: string | undefined): Promise<PspRefund> {
  const refunds = await currentRefundsOf(captureId);
  const refund = refundAnsweringReturn(refunds, returnId, returnOfRefund);
  if (refund?.id) return toResult(refund, captureId);
  throw refundedForOtherReturns({
    psp: 'paypal',
    pspCode: 'CAPTURE_FULLY_REFUNDED',
    payment: `Capture ${captureId}`,
    returnId,
    refunds: refunds.map((r) => ({ pspRefundId: r.id ?? '', returnId: returnOfRefund(r) })),
  });
}

/**
 * Nothing is left to refund (the refunds recorded on the order add up to the payment, e.g. one made on
 * paypal.com): a capture PayPal fully refunded answers as a refund request would
 * (`CAPTURE_FULLY_REFUNDED`); any other is refused, since PayPal refunds no amount of 0.
 */
async function refundOfFullyRefunded(captureId: string, returnId: string | undefined): Promise<PspRefund> {
  let refunded: boolean;
  try {
    const { result: capture } = await paypal().payments.getCapturedPayment({ captureId });
    refunded = capture.status === 'REFUNDED';
  } catch (error) {
    throw asDomainError(error);
  }
  if (refunded) return refundOfReturn(captureId, returnId);
  // The record says all was refunded, PayPal does not: they disagree, for staff to resolve.
  throw new DomainError(
    ErrorCode.CONFLICT,
    `refundAmountCents is 0 but PayPal has not fully refunded capture ${captureId}: there is nothing to refund`,
    { psp: 'paypal' },
  );
}

/** A capture with its refunds (newest first). */
export interface PayPalCaptureDetails {
  /** COMPLETED, PARTIALLY_REFUNDED, REFUNDED, PENDING, DECLINED or FAILED. */
  status: string;
  amountCents: number;
  /** Upper-case ISO code. */
  currency: string;
  /** ISO 8601, when PayPal gives it. */
  createdAt: string | null;
  refunds: PspRefund[];
}

type PayPalOrder = Awaited<ReturnType<OrdersController['getOrder']>>['result'];
type PayPalCapture = Awaited<ReturnType<PaymentsController['getCapturedPayment']>>['result'];

function captureDetailsOf(
  capture: PayPalCapture,
  captureId: string,
  order?: PayPalOrder,
): PayPalCaptureDetails {
  const currency = (capture.amount?.currencyCode ?? 'USD').toUpperCase();
  const amountCents = capture.amount ? fromPayPalValue(capture.amount.value, currency) : undefined;
  if (amountCents === undefined)
    throw new Error(`PayPal answered capture ${captureId} without an amount in ${currency} minor units`);
  const refunds = (order?.purchaseUnits ?? [])
    .flatMap((unit) => unit.payments?.refunds ?? [])
    .filter((refund) => captureOfLinks(refund.links) === captureId)
    .map((refund) => toResult(refund, captureId))
    // The order lists them oldest first; PayPal's times are to the second, so ties keep that order, reversed.
    .reverse()
    .sort((a, b) => b.refundCreatedAt.localeCompare(a.refundCreatedAt));
  return {
    status: capture.status ?? 'PENDING',
    amountCents,
    currency,
    createdAt: capture.createTime ? new Date(capture.createTime).toISOString() : null,
    refunds,
  };
}

const isNotFound = (error: unknown) => error instanceof ApiError && error.statusCode === 404;

/**
 * A capture with its refunds. PayPal lists a capture's refunds only on its order (GET
 * /v2/checkout/orders/{id}), which holds the capture too, as GET /v2/payments/captures/{id} gives it: so,
 * with the order's id (the order management Service keeps it), one call. Without it, or when that
 * order does not hold the capture, the capture is read first for its order (its `up` link): two calls.
 * PayPal has no read of several captures or orders by id, so a page of payments is one call each. The
 * refunds' statuses are as the order lists them (the refund Action reads a refund itself for its
 * current one).
 */
export async function captureDetails(
  captureId: string,
  orderId?: string | null,
): Promise<PayPalCaptureDetails> {
  const { payments, orders } = paypal();
  try {
    if (orderId) {
      const order = await orders.getOrder({ id: orderId }).then(
        ({ result }) => result,
        (error: unknown) => {
          if (isNotFound(error)) return undefined;
          throw error;
        },
      );
      const capture = order?.purchaseUnits
        ?.flatMap((unit) => unit.payments?.captures ?? [])
        .find((c) => c.id === captureId);
      if (capture) return captureDetailsOf(capture, captureId, order);
    }
    const { result: capture } = await payments.getCapturedPayment({ captureId });
    const upOrder = lastSegment(
      capture.links?.find((l) => l.rel === 'up' && l.href.includes('/orders/'))?.href,
    );
    const order = upOrder ? (await orders.getOrder({ id: upOrder })).result : undefined;
    return captureDetailsOf(capture, captureId, order);
  } catch (error) {
    throw asDomainError(error);
  }
}

/** The buyer's activity page of a payment on paypal.com (no API call: PayPal has no receipt resource). */
export function activityUrl(captureId: string): string {
  const base = payPalActivityUrlBase();
  return `${base}${base.endsWith('/') ? '' : '/'}${encodeURIComponent(captureId)}`;
}

/** The transmission headers PayPal signs a webhook call with. */
export interface Transmission {
  authAlgo: string;
  certUrl: string;
  transmissionId: string;
  transmissionSig: string;
  transmissionTime: string;
}

/**
 * Whether PayPal vouches for a webhook call: PayPal's own `POST /v1/notifications/verify-webhook-signature`
 * checks the signature with its certificate and our webhook id. The event goes back byte for byte as
 * received (spliced into the request, not re-serialised), since the signature covers the body's CRC32.
 * `rawEvent` must be valid JSON.
 */
export async function verifyWebhookSignature(transmission: Transmission, rawEvent: string): Promise<boolean> {
  const webhookId = payPalWebhookId();
  const fields = {
    auth_algo: transmission.authAlgo,
    cert_url: transmission.certUrl,
    transmission_id: transmission.transmissionId,
    transmission_sig: transmission.transmissionSig,
    transmission_time: transmission.transmissionTime,
    webhook_id: webhookId,
  };
  const body = `${JSON.stringify(fields).slice(0, -1)},"webhook_event":${rawEvent}}`;
  const request = paypal().client.getRequestBuilderFactory()(
    'POST',
    '/v1/notifications/verify-webhook-signature',
  );
  request.baseUrl('default');
  request.header('Content-Type', 'application/json');
  request.text(body);
  request.authenticate([{ oauth2: true }]);
  const { result } = await request.callAsText();
  const answer = JSON.parse(result) as { verification_status?: string };
  return answer.verification_status === 'SUCCESS';
}

/**
 * Whether PayPal answers the app's credentials: a fresh OAuth token (client credentials), the cheapest
 * authenticated call, which the stand-in answers as PayPal does. For /readyz.
 */
export async function checkPayPal(): Promise<void> {
  await paypal().client.clientCredentialsAuthManager.fetchToken();
}
