import { createSign, createVerify, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';
import { z } from 'zod';
import { createAdmin, readRequestBody, type Admin } from '../admin.js';
import { createHolds, type Hold } from '../holds.js';

/**
 * A stand-in for the part of PayPal's REST API the paypal Plugin uses, in PayPal's wire format so the
 * official `@paypal/paypal-server-sdk` talks to it unchanged: OAuth2 client credentials, the Payments v2
 * captures and refunds (PayPal-Request-Id idempotency, `UNPROCESSABLE_ENTITY` error bodies with
 * `details[].issue`), the Orders v2 order a capture belongs to (where a capture's refunds are listed),
 * and webhooks signed as PayPal signs them, checked by `POST /v1/notifications/verify-webhook-signature`.
 *
 * Webhook signatures: RSA-SHA256 over `<transmission id>|<transmission time>|<webhook id>|<crc32 of the
 * body>`, base64, with a key the stand-in generates at start; `paypal-cert-url` points at the stand-in,
 * which serves the public key there as PEM (PayPal serves an X.509 certificate).
 */

export interface PayPalStandInOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** The REST app credentials callers must present. @default 'standin-client-id' / 'standin-client-secret' */
  clientId?: string;
  clientSecret?: string;
  /** Lifetime of access tokens. @default 32400 (PayPal's nine hours) */
  tokenTtlSeconds?: number;
  /** Where `refundFromDashboard` delivers `PAYMENT.CAPTURE.REFUNDED`, and the webhook's id at PayPal. */
  webhook?: PayPalWebhookEndpoint;
}

export interface PayPalWebhookEndpoint {
  url: string;
  webhookId: string;
}

/** A payment to create as if a buyer had paid: a COMPLETED order with one COMPLETED capture. */
export interface CaptureSeed {
  id?: string;
  /** The PayPal order of the capture (the order management Service keeps it). @default a new id */
  orderId?: string;
  /** In the currency's minor unit. */
  amountCents: number;
  /** @default 'USD' */
  currency?: string;
  /** The merchant's invoice id (our order number). */
  invoiceId?: string;
}

/** `POST /_admin/seed`: completed captures, as if customers had paid. */
export const PayPalSeedSchema = z
  .object({
    captures: z
      .array(
        z
          .object({
            id: z.string().min(1).optional(),
            orderId: z.string().min(1).optional(),
            amountCents: z.number().int().positive(),
            currency: z.string().length(3).optional(),
            invoiceId: z.string().min(1).optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict() satisfies z.ZodType<{ captures?: CaptureSeed[] }>;

/**
 * An answer to inject instead of (or after) the real one, for the next `times` matching calls. Two
 * transient failures of a real PayPal: a 5xx (`status: 503`), the call not performed and its
 * PayPal-Request-Id not kept, so a retry with it is performed (the SDK does not retry: the caller's own
 * retry, a flow step's, does); and a timeout (`dropResponse`), the call performed and the connection
 * dropped unanswered, so a retry with the same PayPal-Request-Id gets what that call did.
 */
export interface PayPalFault {
  method?: string;
  /** Matches calls whose path starts with this. */
  path?: string;
  /** @default 500 */
  status?: number;
  /** The error body's `details[0].issue` (and `name` from the status). */
  issue?: string;
  /** @default 1 */
  times?: number;
  delayMs?: number;
  /** Performs the call, then drops the connection without answering. */
  dropResponse?: boolean;
}

export interface PayPalCall {
  method: string;
  path: string;
  requestId?: string;
  status: number;
  replayed: boolean;
  /** Calls to the same path in flight when this one arrived, itself included. */
  inFlight: number;
}

/** Calls held back by `hold` until released. */
export type PayPalHold = Hold;

export type PayPalObject = Record<string, unknown> & { id: string };

export interface WebhookDelivery {
  status: number;
  body: string;
  /** What was sent: the transmission headers and the body, to send the same transmission again. */
  request: { headers: Record<string, string>; body: string };
}

export interface PayPalDashboardRefund {
  refund: PayPalObject;
  event: PayPalObject;
  /** The webhook endpoint's answer, when one is configured and the event was delivered. */
  delivery?: WebhookDelivery;
}

export interface PayPalDashboardRefundOptions {
  /** false: the event is created but not sent (the endpoint was down); `redeliver` sends it later. @default true */
  deliver?: boolean;
}

export interface PayPalStandIn {
  url: string;
  clientId: string;
  clientSecret: string;
  /** The URL of the certificate the stand-in signs webhooks with (what `paypal-cert-url` names). */
  certUrl: string;
  close(): Promise<void>;
  /** The admin API's state: the journal and faults of `/_admin/` (services/README.md). */
  admin: Admin;
  /** Calls received, oldest first; only those whose path starts with `path` when given. */
  calls(path?: string): PayPalCall[];
  failNext(fault: PayPalFault): void;
  /** Drops the faults not used yet. */
  clearFaults(): void;
  /**
   * The next refund PayPal makes is answered `FAILED` (PayPal could not process it, e.g. the merchant's
   * balance could not cover it): it exists, names what was asked, and refunds nothing.
   */
  failNextRefund(): void;
  /** Holds every call whose path starts with `path` (before it is answered) until released. */
  hold(path: string): PayPalHold;
  seed(data: { captures?: CaptureSeed[] }): PayPalObject[];
  createCapture(seed: CaptureSeed): PayPalObject;
  /** A capture as GET /v2/payments/captures/{id} answers it now. */
  capture(captureId: string): PayPalObject | undefined;
  /** The refunds of a capture (or all), newest first. */
  refunds(captureId?: string): PayPalObject[];
  /**
   * PayPal keeps a PayPal-Request-Id's answer for a limited time (hours to days by API), then forgets
   * it: a request with the id after that is performed again. This forgets every id now.
   */
  forgetRequestIds(): void;
  /** Makes every issued access token expire now. */
  expireTokens(): void;
  /** A refund made by a person on paypal.com, followed by its signed `PAYMENT.CAPTURE.REFUNDED` event. */
  refundFromDashboard(
    captureId: string,
    amountCents?: number,
    options?: PayPalDashboardRefundOptions,
  ): Promise<PayPalDashboardRefund>;
  /** Signs and delivers any event (`id`, `create_time`… filled in), e.g. a type the endpoint does not handle. */
  sendEvent(event: {
    event_type: string;
    resource: Record<string, unknown>;
    resource_type?: string;
  }): Promise<{ event: PayPalObject; delivery: WebhookDelivery }>;
  /**
   * Sends an earlier event (again, or for the first time when it was held back) with fresh transmission
   * headers, as PayPal does when retrying.
   */
  redeliver(eventId: string): Promise<WebhookDelivery>;
  setWebhook(webhook: PayPalWebhookEndpoint | undefined): void;
}

interface Capture {
  id: string;
  orderId: string;
  amountCents: number;
  currency: string;
  invoiceId?: string;
  refundedCents: number;
  createTime: string;
  updateTime: string;
}

interface Refund {
  id: string;
  captureId: string;
  amountCents: number;
  currency: string;
  invoiceId?: string;
  /** The caller's own reference (`custom_id`), e.g. what the refund is for. */
  customId?: string;
  noteToPayer?: string;
  /** COMPLETED, or FAILED for a refund PayPal could not process (it refunded nothing). */
  status: 'COMPLETED' | 'FAILED';
  createTime: string;
}

interface Saved {
  path: string;
  body: string;
  refundId: string;
  status: number;
}

class PayPalApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message ?? body.error_description));
  }
}

const ERROR_NAMES: Record<number, [string, string]> = {
  400: ['INVALID_REQUEST', 'Request is not well-formed, syntactically incorrect, or violates schema.'],
  403: ['NOT_AUTHORIZED', 'Authorization failed due to insufficient permissions.'],
  404: ['RESOURCE_NOT_FOUND', 'The specified resource does not exist.'],
  409: ['RESOURCE_CONFLICT', 'The server has detected a conflict while processing this request.'],
  422: [
    'UNPROCESSABLE_ENTITY',
    'The requested action could not be performed, semantically incorrect, or failed business validation.',
  ],
  500: ['INTERNAL_SERVER_ERROR', 'An internal server error has occurred.'],
  503: ['SERVICE_UNAVAILABLE', 'Service Unavailable.'],
};

const debugId = () => randomBytes(7).toString('hex').slice(0, 13);

/** PayPal's error body: `name`, `message`, `debug_id`, `details[{ issue, description }]`, `links`. */
function apiError(status: number, issue?: string, description?: string, extra: Record<string, unknown> = {}) {
  const [name, message] = ERROR_NAMES[status] ?? ['UNKNOWN_ERROR', 'An unknown error has occurred.'];
  return new PayPalApiError(status, {
    name,
    message,
    debug_id: debugId(),
    ...(issue ? { details: [{ issue, ...(description ? { description } : {}), ...extra }] } : {}),
    links: [
      {
        href: `https://developer.paypal.com/docs/api/payments/v2/#error-${issue ?? name}`,
        rel: 'information_link',
        method: 'GET',
      },
    ],
  });
}

const ALPHANUMERIC = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const paypalId = (length = 17) => Array.from(randomBytes(length), (b) => ALPHANUMERIC[b % 36]).join('');

const exponentOf = (currency: string) =>
  new Intl.NumberFormat('en-US', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ??
  2;

/** Minor units as PayPal's decimal string: 1050 USD → "10.50", 1050 JPY → "1050". */
export function toPayPalValue(cents: number, currency: string): string {
  const exponent = exponentOf(currency);
  return exponent === 0 ? String(cents) : (cents / 10 ** exponent).toFixed(exponent);
}

/** PayPal's decimal string as minor units, exactly (no floating point); undefined if malformed. */
export function fromPayPalValue(value: string, currency: string): number | undefined {
  const exponent = exponentOf(currency);
  const match = /^(\d{1,10})(?:\.(\d+))?$/.exec(value);
  if (!match || (match[2]?.length ?? 0) > exponent) return undefined;
  return Number(match[1]) * 10 ** exponent + Number((match[2] ?? '').padEnd(exponent, '0') || 0);
}

const iso = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

export async function startPayPal(options: PayPalStandInOptions = {}): Promise<PayPalStandIn> {
  const clientId = options.clientId ?? 'standin-client-id';
  const clientSecret = options.clientSecret ?? 'standin-client-secret';
  const tokenTtl = options.tokenTtlSeconds ?? 32_400;
  let webhook = options.webhook;
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const certName = `CERT-360caa42-fca2a594-${randomBytes(4).toString('hex')}`;
  const tokens = new Map<string, number>();
  const captures = new Map<string, Capture>();
  const refunds = new Map<string, Refund>();
  const events = new Map<string, string>();
  const requestIds = new Map<string, Saved>();
  const faults: PayPalFault[] = [];
  let failingRefunds = 0;
  const holds = createHolds<string>();
  const recorded: PayPalCall[] = [];
  const inFlight = new Map<string, number>();
  let url = '';
  const certUrl = () => `${url}/v1/notifications/certs/${certName}`;

  const link = (path: string, rel: string, method = 'GET') => ({ href: `${url}${path}`, rel, method });

  function refundJson(refund: Refund): PayPalObject {
    const value = toPayPalValue(refund.amountCents, refund.currency);
    return {
      id: refund.id,
      amount: { currency_code: refund.currency, value },
      seller_payable_breakdown: {
        gross_amount: { currency_code: refund.currency, value },
        paypal_fee: { currency_code: refund.currency, value: toPayPalValue(0, refund.currency) },
        net_amount: { currency_code: refund.currency, value },
        total_refunded_amount: {
          currency_code: refund.currency,
          value: toPayPalValue(captures.get(refund.captureId)!.refundedCents, refund.currency),
        },
      },
      ...(refund.invoiceId ? { invoice_id: refund.invoiceId } : {}),
      ...(refund.customId ? { custom_id: refund.customId } : {}),
      ...(refund.noteToPayer ? { note_to_payer: refund.noteToPayer } : {}),
      status: refund.status,
      create_time: refund.createTime,
      update_time: refund.createTime,
      links: [
        link(`/v2/payments/refunds/${refund.id}`, 'self'),
        link(`/v2/payments/captures/${refund.captureId}`, 'up'),
      ],
    };
  }

  function captureJson(capture: Capture): PayPalObject {
    const value = toPayPalValue(capture.amountCents, capture.currency);
    return {
      id: capture.id,
      status:
        capture.refundedCents === 0
          ? 'COMPLETED'
          : capture.refundedCents >= capture.amountCents
            ? 'REFUNDED'
            : 'PARTIALLY_REFUNDED',
      amount: { currency_code: capture.currency, value },
      final_capture: true,
      ...(capture.invoiceId ? { invoice_id: capture.invoiceId } : {}),
      seller_protection: {
        status: 'ELIGIBLE',
        dispute_categories: ['ITEM_NOT_RECEIVED', 'UNAUTHORIZED_TRANSACTION'],
      },
      seller_receivable_breakdown: {
        gross_amount: { currency_code: capture.currency, value },
        paypal_fee: { currency_code: capture.currency, value: toPayPalValue(0, capture.currency) },
        net_amount: { currency_code: capture.currency, value },
      },
      create_time: capture.createTime,
      update_time: capture.updateTime,
      links: [
        link(`/v2/payments/captures/${capture.id}`, 'self'),
        link(`/v2/payments/captures/${capture.id}/refund`, 'refund', 'POST'),
        link(`/v2/checkout/orders/${capture.orderId}`, 'up'),
      ],
    };
  }

  function orderJson(orderId: string): PayPalObject | undefined {
    const ofOrder = [...captures.values()].filter((c) => c.orderId === orderId);
    const capture = ofOrder[0];
    if (!capture) return undefined;
    const ids = new Set(ofOrder.map((c) => c.id));
    return {
      id: orderId,
      intent: 'CAPTURE',
      status: 'COMPLETED',
      purchase_units: [
        {
          reference_id: 'default',
          amount: {
            currency_code: capture.currency,
            value: toPayPalValue(capture.amountCents, capture.currency),
          },
          ...(capture.invoiceId ? { invoice_id: capture.invoiceId } : {}),
          payments: {
            captures: ofOrder.map(captureJson),
            refunds: [...refunds.values()].filter((r) => ids.has(r.captureId)).map(refundJson),
          },
        },
      ],
      create_time: capture.createTime,
      update_time: capture.updateTime,
      links: [link(`/v2/checkout/orders/${orderId}`, 'self')],
    };
  }

  function createCapture(seed: CaptureSeed): PayPalObject {
    if (!Number.isInteger(seed.amountCents) || seed.amountCents < 1)
      throw new Error('amountCents must be a positive integer');
    const id = seed.id ?? paypalId();
    if (captures.has(id)) throw new Error(`Capture ${id} already exists`);
    const time = iso();
    const capture: Capture = {
      id,
      orderId: seed.orderId ?? paypalId(),
      amountCents: seed.amountCents,
      currency: (seed.currency ?? 'USD').toUpperCase(),
      invoiceId: seed.invoiceId,
      refundedCents: 0,
      createTime: time,
      updateTime: time,
    };
    captures.set(id, capture);
    return captureJson(capture);
  }

  /** Refunds a capture as PayPal does, or throws PayPal's error. */
  function refundCapture(captureId: string, body: Record<string, unknown>): Refund {
    const capture = captures.get(captureId);
    if (!capture)
      throw apiError(
        404,
        'INVALID_RESOURCE_ID',
        'Specified resource ID does not exist. Please check the resource ID and try again.',
      );
    const remaining = capture.amountCents - capture.refundedCents;
    if (remaining <= 0)
      throw apiError(422, 'CAPTURE_FULLY_REFUNDED', 'The capture has already been fully refunded.');
    let amountCents = remaining;
    const amount = body.amount as { value?: unknown; currency_code?: unknown } | undefined;
    if (amount !== undefined) {
      if (typeof amount !== 'object' || amount === null || typeof amount.currency_code !== 'string')
        throw apiError(400, 'MISSING_REQUIRED_PARAMETER', 'A required field / parameter is missing.', {
          field: '/amount/currency_code',
          location: 'body',
        });
      if (typeof amount.value !== 'string')
        throw apiError(400, 'MISSING_REQUIRED_PARAMETER', 'A required field / parameter is missing.', {
          field: '/amount/value',
          location: 'body',
        });
      if (amount.currency_code !== capture.currency)
        throw apiError(
          422,
          'REFUND_CAPTURE_CURRENCY_MISMATCH',
          'Refund must be in the same currency as the capture.',
        );
      const parsed = fromPayPalValue(amount.value, capture.currency);
      if (parsed === undefined)
        throw apiError(
          400,
          'DECIMAL_PRECISION',
          'If the currency supports decimals, only two decimal place precision is supported.',
          {
            field: '/amount/value',
            value: amount.value,
            location: 'body',
          },
        );
      if (parsed <= 0)
        throw apiError(422, 'AMOUNT_BELOW_MINIMUM', 'The refund amount must be greater than zero.', {
          field: '/amount/value',
          location: 'body',
        });
      if (parsed > remaining)
        throw apiError(
          422,
          'REFUND_AMOUNT_EXCEEDED',
          'The refund amount must be less than or equal to the capture amount that has not yet been refunded.',
        );
      amountCents = parsed;
    }
    if (typeof body.custom_id === 'string' && body.custom_id.length > 127)
      throw apiError(400, 'INVALID_STRING_MAX_LENGTH', 'The value of a field is too long.', {
        field: '/custom_id',
        location: 'body',
      });
    const refund: Refund = {
      id: paypalId(),
      captureId,
      amountCents,
      currency: capture.currency,
      invoiceId: typeof body.invoice_id === 'string' ? body.invoice_id : capture.invoiceId,
      customId: typeof body.custom_id === 'string' ? body.custom_id : undefined,
      noteToPayer: typeof body.note_to_payer === 'string' ? body.note_to_payer : undefined,
      status: failingRefunds > 0 ? 'FAILED' : 'COMPLETED',
      createTime: iso(),
    };
    if (refund.status === 'FAILED') failingRefunds -= 1;
    refunds.set(refund.id, refund);
    if (refund.status === 'COMPLETED') capture.refundedCents += amountCents;
    capture.updateTime = refund.createTime;
    return refund;
  }

  const requireToken = (req: IncomingMessage) => {
    const header = req.headers.authorization ?? '';
    const token = /^Bearer (.+)$/i.exec(header)?.[1];
    const expires = token ? tokens.get(token) : undefined;
    if (expires === undefined)
      throw new PayPalApiError(401, {
        name: 'AUTHENTICATION_FAILURE',
        message:
          'Authentication failed due to invalid authentication credentials or a missing Authorization header.',
        links: [{ href: 'https://developer.paypal.com/docs/api/overview/#error', rel: 'information_link' }],
      });
    if (expires <= Date.now())
      throw new PayPalApiError(401, {
        error: 'invalid_token',
        error_description: 'Access Token not found in cache',
      });
  };

  function issueToken(req: IncomingMessage, rawBody: string) {
    const header = req.headers.authorization ?? '';
    const basic = /^Basic (.+)$/i.exec(header)?.[1];
    const [id, secret] = basic ? Buffer.from(basic, 'base64').toString('utf8').split(':') : [];
    if (id !== clientId || secret !== clientSecret)
      throw new PayPalApiError(401, {
        error: 'invalid_client',
        error_description: 'Client Authentication failed',
      });
    const grant = new URLSearchParams(rawBody).get('grant_type');
    if (grant !== 'client_credentials')
      throw new PayPalApiError(400, {
        error: 'unsupported_grant_type',
        error_description: grant ? `Grant Type ${grant} is not supported` : 'Grant Type is NULL',
      });
    const accessToken = `A21AA${randomBytes(48).toString('base64url')}`;
    tokens.set(accessToken, Date.now() + tokenTtl * 1000);
    return {
      scope:
        'https://uri.paypal.com/services/payments/refund https://uri.paypal.com/services/payments/payment/authcapture https://uri.paypal.com/services/applications/webhooks',
      access_token: accessToken,
      token_type: 'Bearer',
      app_id: 'APP-80W284485P519543T',
      expires_in: tokenTtl,
      nonce: `${iso()}${randomBytes(16).toString('base64url')}`,
    };
  }

  function signatureBase(transmissionId: string, time: string, webhookId: string, body: string) {
    return `${transmissionId}|${time}|${webhookId}|${crc32(Buffer.from(body, 'utf8'))}`;
  }

  function verifySignature(body: Record<string, unknown>): 'SUCCESS' | 'FAILURE' {
    const required = [
      'auth_algo',
      'cert_url',
      'transmission_id',
      'transmission_sig',
      'transmission_time',
      'webhook_id',
    ];
    const missing = required.find((f) => typeof body[f] !== 'string' || !body[f]);
    if (missing || typeof body.webhook_event !== 'object' || body.webhook_event === null)
      throw new PayPalApiError(400, {
        name: 'VALIDATION_ERROR',
        message: 'Invalid request - see details',
        debug_id: debugId(),
        details: [
          { field: missing ?? 'webhook_event', location: 'body', issue: 'MISSING_REQUIRED_PARAMETER' },
        ],
      });
    if (!webhook || body.webhook_id !== webhook.webhookId)
      throw apiError(404, 'INVALID_RESOURCE_ID', 'Webhook id does not exist.', {
        field: 'webhook_id',
        location: 'body',
      });
    if (body.cert_url !== certUrl() || body.auth_algo !== 'SHA256withRSA') return 'FAILURE';
    // PayPal checks the event as it is given back to it: the body it signed, re-serialised.
    const base = signatureBase(
      String(body.transmission_id),
      String(body.transmission_time),
      webhook.webhookId,
      JSON.stringify(body.webhook_event),
    );
    const verifier = createVerify('RSA-SHA256');
    verifier.update(base);
    try {
      return verifier.verify(publicKey, String(body.transmission_sig), 'base64') ? 'SUCCESS' : 'FAILURE';
    } catch {
      return 'FAILURE';
    }
  }

  function takeFault(method: string, path: string): PayPalFault | undefined {
    const fault = faults.find(
      (f) =>
        (f.times ?? 1) > 0 &&
        (f.method === undefined || f.method.toUpperCase() === method) &&
        (f.path === undefined || path.startsWith(f.path)),
    );
    if (fault) fault.times = (fault.times ?? 1) - 1;
    return fault;
  }

  /** The API proper, after authentication: answers, or throws a PayPalApiError. */
  function handle(
    req: IncomingMessage,
    method: string,
    path: string,
    rawBody: string,
    call: PayPalCall,
  ): { status: number; body: unknown } {
    let m: RegExpExecArray | null;
    if (method === 'POST' && (m = /^\/v2\/payments\/captures\/([^/]+)\/refund$/.exec(path))) {
      const captureId = decodeURIComponent(m[1]!);
      let body: Record<string, unknown> = {};
      if (rawBody.trim()) {
        try {
          body = JSON.parse(rawBody) as Record<string, unknown>;
        } catch {
          throw apiError(400, 'MALFORMED_REQUEST_JSON', 'The request JSON is not well formed.');
        }
      }
      const minimal = !/return=representation/i.test(String(req.headers.prefer ?? ''));
      const answer = (refund: Refund, status: number) => {
        const full = refundJson(refund);
        return { status, body: minimal ? { id: full.id, status: full.status, links: full.links } : full };
      };
      const requestId =
        typeof req.headers['paypal-request-id'] === 'string' ? req.headers['paypal-request-id'] : undefined;
      if (requestId) {
        const saved = requestIds.get(requestId);
        if (saved) {
          if (saved.path !== path || saved.body !== JSON.stringify(body))
            throw apiError(
              422,
              'PAYPAL_REQUEST_ID_PREVIOUSLY_USED',
              'The PayPal-Request-ID has already been used for another request.',
            );
          // PayPal answers a known request id with the latest state of what that request did.
          call.replayed = true;
          return answer(refunds.get(saved.refundId)!, saved.status);
        }
      }
      const refund = refundCapture(captureId, body);
      if (requestId)
        requestIds.set(requestId, { path, body: JSON.stringify(body), refundId: refund.id, status: 201 });
      return answer(refund, 201);
    }
    if (method === 'GET' && (m = /^\/v2\/payments\/captures\/([^/]+)$/.exec(path))) {
      const capture = captures.get(decodeURIComponent(m[1]!));
      if (!capture)
        throw apiError(
          404,
          'INVALID_RESOURCE_ID',
          'Specified resource ID does not exist. Please check the resource ID and try again.',
        );
      return { status: 200, body: captureJson(capture) };
    }
    if (method === 'GET' && (m = /^\/v2\/payments\/refunds\/([^/]+)$/.exec(path))) {
      const refund = refunds.get(decodeURIComponent(m[1]!));
      if (!refund)
        throw apiError(
          404,
          'INVALID_RESOURCE_ID',
          'Specified resource ID does not exist. Please check the resource ID and try again.',
        );
      return { status: 200, body: refundJson(refund) };
    }
    if (method === 'GET' && (m = /^\/v2\/checkout\/orders\/([^/]+)$/.exec(path))) {
      const order = orderJson(decodeURIComponent(m[1]!));
      if (!order)
        throw apiError(
          404,
          'INVALID_RESOURCE_ID',
          'Specified resource ID does not exist. Please check the resource ID and try again.',
        );
      return { status: 200, body: order };
    }
    if (method === 'POST' && path === '/v1/notifications/verify-webhook-signature') {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(rawBody) as Record<string, unknown>;
      } catch {
        throw apiError(400, 'MALFORMED_REQUEST_JSON', 'The request JSON is not well formed.');
      }
      return { status: 200, body: { verification_status: verifySignature(body) } };
    }
    throw apiError(404, 'INVALID_RESOURCE_ID', `${method} ${path} is not a resource of this stand-in.`);
  }

  const admin = createAdmin({
    seed: PayPalSeedSchema,
    applySeed: (data) => (data.captures ?? []).map(createCapture),
    errorAnswer: (status) => ({ body: apiError(status).body }),
  });

  const server = createServer(
    admin.listener(async (req, res) => {
      // Requests may arrive in absolute form (through a proxy); only the path matters.
      const target = new URL(req.url ?? '/', 'http://paypal.local');
      const method = (req.method ?? 'GET').toUpperCase();
      const path = target.pathname;
      const rawBody = (await readRequestBody(req)).toString('utf8');
      const requestId =
        typeof req.headers['paypal-request-id'] === 'string' ? req.headers['paypal-request-id'] : undefined;
      const running = (inFlight.get(path) ?? 0) + 1;
      inFlight.set(path, running);
      res.on('close', () => inFlight.set(path, (inFlight.get(path) ?? 1) - 1));
      const call: PayPalCall = { method, path, requestId, status: 0, replayed: false, inFlight: running };
      recorded.push(call);
      await holds.pass(path);
      const send = (status: number, body: unknown, contentType = 'application/json') => {
        call.status = status;
        res
          .writeHead(status, { 'content-type': contentType, 'paypal-debug-id': debugId() })
          .end(typeof body === 'string' ? body : JSON.stringify(body));
      };

      if (method === 'GET' && path === `/v1/notifications/certs/${certName}`)
        return send(200, publicPem, 'application/x-pem-file');

      try {
        if (method === 'POST' && path === '/v1/oauth2/token') return send(200, issueToken(req, rawBody));
        requireToken(req);
      } catch (error) {
        if (error instanceof PayPalApiError) return send(error.status, error.body);
        throw error;
      }

      const fault = takeFault(method, path);
      if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault && !fault.dropResponse) {
        const error = apiError(
          fault.status ?? 500,
          fault.issue,
          fault.issue ? 'Injected by the stand-in.' : undefined,
        );
        return send(error.status, error.body);
      }

      let answer: { status: number; body: unknown };
      try {
        answer = handle(req, method, path, rawBody, call);
      } catch (error) {
        if (!(error instanceof PayPalApiError)) return send(500, apiError(500).body);
        answer = { status: error.status, body: error.body };
      }
      if (fault?.dropResponse) {
        call.status = -1;
        return void req.socket.destroy();
      }
      send(answer.status, answer.body);
    }),
  );

  function newEvent(fields: {
    event_type: string;
    resource_type: string;
    summary: string;
    resource: unknown;
  }) {
    const id = `WH-${paypalId()}-${paypalId()}`;
    const event: PayPalObject = {
      id,
      event_version: '1.0',
      create_time: iso(),
      resource_type: fields.resource_type,
      resource_version: '2.0',
      event_type: fields.event_type,
      summary: fields.summary,
      resource: fields.resource,
      links: [
        link(`/v1/notifications/webhooks-events/${id}`, 'self'),
        link(`/v1/notifications/webhooks-events/${id}/resend`, 'resend', 'POST'),
      ],
    };
    // PayPal sends compact JSON.
    const payload = JSON.stringify(event);
    events.set(id, payload);
    return { event: JSON.parse(payload) as PayPalObject, payload };
  }

  async function deliver(payload: string): Promise<WebhookDelivery> {
    if (!webhook) throw new Error('No webhook is configured on the PayPal stand-in');
    const transmissionId = randomUUID();
    const transmissionTime = iso();
    const signer = createSign('RSA-SHA256');
    signer.update(signatureBase(transmissionId, transmissionTime, webhook.webhookId, payload));
    const headers = {
      'content-type': 'application/json',
      'paypal-auth-algo': 'SHA256withRSA',
      'paypal-auth-version': 'v2',
      'paypal-cert-url': certUrl(),
      'paypal-transmission-id': transmissionId,
      'paypal-transmission-sig': signer.sign(privateKey, 'base64'),
      'paypal-transmission-time': transmissionTime,
      'user-agent': 'PayPal/AUHD-214.0-58843958',
    };
    const response = await fetch(webhook.url, { method: 'POST', headers, body: payload });
    return { status: response.status, body: await response.text(), request: { headers, body: payload } };
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    clientId,
    clientSecret,
    certUrl: certUrl(),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
    calls: (path) =>
      recorded.filter((c) => path === undefined || c.path.startsWith(path)).map((c) => ({ ...c })),
    failNext: (fault) => void faults.push({ ...fault }),
    clearFaults: () => void faults.splice(0),
    failNextRefund: () => void (failingRefunds += 1),
    hold: (path) => holds.hold((calledPath) => calledPath.startsWith(path)),
    admin,
    seed: (data) => (data.captures ?? []).map(createCapture),
    createCapture,
    capture: (captureId) => {
      const capture = captures.get(captureId);
      return capture && captureJson(capture);
    },
    refunds: (captureId) =>
      [...refunds.values()]
        .filter((r) => captureId === undefined || r.captureId === captureId)
        .reverse()
        .map(refundJson),
    forgetRequestIds: () => requestIds.clear(),
    expireTokens() {
      for (const token of tokens.keys()) tokens.set(token, 0);
    },
    async refundFromDashboard(captureId, amountCents, options = {}) {
      const capture = captures.get(captureId);
      if (!capture) throw new Error(`No such capture: '${captureId}'`);
      let refund: Refund;
      try {
        refund = refundCapture(
          captureId,
          amountCents === undefined
            ? {}
            : {
                amount: {
                  currency_code: capture.currency,
                  value: toPayPalValue(amountCents, capture.currency),
                },
              },
        );
      } catch (error) {
        throw error instanceof PayPalApiError ? new Error(error.message) : error;
      }
      const resource = refundJson(refund);
      const amount = resource.amount as { value: string; currency_code: string };
      const { event, payload } = newEvent({
        event_type: 'PAYMENT.CAPTURE.REFUNDED',
        resource_type: 'refund',
        summary: `A ${amount.value} ${amount.currency_code} capture payment was refunded`,
        resource,
      });
      return {
        refund: resource,
        event,
        ...(webhook && options.deliver !== false ? { delivery: await deliver(payload) } : {}),
      };
    },
    async sendEvent(partial) {
      const { event, payload } = newEvent({
        resource_type: 'unknown',
        summary: partial.event_type,
        ...partial,
      });
      return { event, delivery: await deliver(payload) };
    },
    redeliver(eventId) {
      const payload = events.get(eventId);
      if (!payload) return Promise.reject(new Error(`No such event: '${eventId}'`));
      return deliver(payload);
    },
    setWebhook(endpoint) {
      webhook = endpoint;
    },
  };
}
