import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { createAdmin, readRequestBody, type Admin } from '../admin.js';

/**
 * A stand-in for the part of Stripe's API the stripe Plugin uses, speaking Stripe's wire format so the
 * official `stripe` SDK talks to it unchanged (`new Stripe(key, { host, port, protocol: 'http' })`):
 * form-encoded bodies with bracket notation, `expand[]`, Bearer secret-key auth, `Idempotency-Key`
 * replays (`Idempotent-Replayed: true`) and conflicts (`idempotency_error`), Stripe's error bodies, and
 * webhooks signed with the real `Stripe-Signature` scheme.
 *
 * Implemented: PaymentIntents (retrieve), Charges (retrieve, list; their refunds when expanded), Refunds
 * (create, retrieve, list), the public receipt page. Everything else answers 404 as Stripe does for an
 * unknown URL.
 *
 * Webhooks: the endpoint receives what the stripe Plugin subscribes to — `charge.refunded` when a
 * refund is made (its Charge, which since API version 2022-11-15 no longer embeds its refunds) and
 * `charge.refund.updated` when a pending refund settles (the Refund). A delivery can be held back and
 * sent later, as Stripe does when an endpoint was unreachable.
 */

export interface StripeStandInOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** The secret key callers must present. @default 'sk_test_standin' */
  secretKey?: string;
  /** Where `refundFromDashboard` delivers `charge.refunded`, and the endpoint's signing secret (`whsec_…`). */
  webhook?: StripeWebhookEndpoint;
}

export interface StripeWebhookEndpoint {
  url: string;
  secret: string;
}

/** A payment to create as if a customer had paid: a succeeded PaymentIntent with one succeeded Charge. */
export interface PaymentIntentSeed {
  id?: string;
  /** In the currency's minor unit, as Stripe counts. */
  amount: number;
  /** Lower-case ISO code, as Stripe writes it. @default 'usd' */
  currency?: string;
  metadata?: Record<string, string>;
}

/** `POST /_admin/seed`: payments as if customers had paid. */
export const StripeSeedSchema = z
  .object({
    paymentIntents: z
      .array(
        z
          .object({
            id: z.string().startsWith('pi_').optional(),
            amount: z.number().int().positive(),
            currency: z.string().length(3).optional(),
            metadata: z.record(z.string(), z.string()).optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict() satisfies z.ZodType<{ paymentIntents?: PaymentIntentSeed[] }>;

/**
 * An answer to inject instead of (or after) the real one, for the next `times` matching calls. Two
 * transient failures of a real Stripe, as its SDK and our Plugins meet them:
 * - a 5xx from in front of the API (`status: 503`; a load balancer, a lock timeout): the call is not
 *   performed and nothing is saved under its Idempotency-Key, so a retry with the key is performed.
 *   The SDK retries a 5xx itself unless the answer says `Stripe-Should-Retry: false` (`shouldRetry`),
 *   in which case the caller's own retry (a flow step's) does;
 * - a timeout (`dropResponse`): the call is performed, then the connection dropped unanswered; a retry
 *   with the same Idempotency-Key gets the saved answer, and refunds nothing more.
 */
export interface StripeFault {
  method?: string;
  /** Matches calls whose path starts with this. */
  path?: string;
  /** @default 500 */
  status?: number;
  /** The `error` object to answer; derived from `status` when absent. */
  error?: { type?: string; code?: string; decline_code?: string; message?: string; param?: string };
  /** @default 1 */
  times?: number;
  /** Sent as `Stripe-Should-Retry`, Stripe's advice to its SDKs; absent: no such header. */
  shouldRetry?: boolean;
  /** Holds the call this long first. */
  delayMs?: number;
  /**
   * Performs the call, then drops the connection without answering: the caller cannot know whether it
   * happened (its retry with the same Idempotency-Key must get the saved answer).
   */
  dropResponse?: boolean;
}

export interface StripeCall {
  method: string;
  path: string;
  query: string;
  idempotencyKey?: string;
  status: number;
  replayed: boolean;
}

export type StripeObject = Record<string, unknown> & { id: string; object: string };

export interface DashboardRefund {
  refund: StripeObject;
  event: StripeObject;
  /** The webhook endpoint's answer, when one is configured and the event was delivered. */
  delivery?: WebhookDelivery;
}

export interface DashboardRefundOptions {
  /**
   * `pending`: the refund waits for the card network (as some payment methods' refunds do) until
   * `settleRefund`. @default 'succeeded'
   */
  status?: 'succeeded' | 'pending';
  /** false: the event is created but not sent (the endpoint was down); `redeliver` sends it later. @default true */
  deliver?: boolean;
}

export interface WebhookDelivery {
  status: number;
  body: string;
}

export interface StripeStandIn {
  url: string;
  /** The secret key this stand-in accepts. */
  secretKey: string;
  close(): Promise<void>;
  /** The admin API's state: the journal and faults of `/_admin/` (services/README.md). */
  admin: Admin;
  /** Calls received, oldest first; only those whose path starts with `path` when given. */
  calls(path?: string): StripeCall[];
  failNext(fault: StripeFault): void;
  /** Drops the faults not used yet. */
  clearFaults(): void;
  seed(data: { paymentIntents?: PaymentIntentSeed[] }): StripeObject[];
  createPaymentIntent(seed: PaymentIntentSeed): StripeObject;
  /** The refunds of a PaymentIntent (or all), newest first. */
  refunds(paymentIntentId?: string): StripeObject[];
  /**
   * Stripe keeps an Idempotency-Key's answer for 24 hours, then forgets it: a request with the key
   * after that is performed again. This forgets every key now.
   */
  forgetIdempotencyKeys(): void;
  charge(chargeId: string): StripeObject | undefined;
  /** A refund made by a person in the Stripe dashboard, followed by its signed `charge.refunded` event. */
  refundFromDashboard(
    paymentIntentId: string,
    amount?: number,
    options?: DashboardRefundOptions,
  ): Promise<DashboardRefund>;
  /**
   * A pending refund settles: it succeeds, or fails and its amount goes back onto the charge; then its
   * signed `charge.refund.updated` event.
   */
  settleRefund(
    refundId: string,
    status: 'succeeded' | 'failed',
    options?: Pick<DashboardRefundOptions, 'deliver'>,
  ): Promise<DashboardRefund>;
  /**
   * A refund that had succeeded fails later, as card refunds do when the card was closed meanwhile
   * (`failure_reason` expired_or_canceled_card): it moves to failed and its amount goes back onto the
   * charge; then its signed `charge.refund.updated` event (`previous_attributes.status` succeeded).
   */
  failSucceededRefund(
    refundId: string,
    options?: Pick<DashboardRefundOptions, 'deliver'>,
  ): Promise<DashboardRefund>;
  /** Signs and delivers any event (`id`, `created`… filled in), e.g. a type the endpoint does not handle. */
  sendEvent(event: {
    type: string;
    data: { object: Record<string, unknown> };
  }): Promise<{ event: StripeObject; delivery: WebhookDelivery }>;
  /**
   * Sends an earlier event (again, or for the first time when it was held back), freshly signed, as
   * Stripe does when retrying a delivery.
   */
  redeliver(eventId: string): Promise<WebhookDelivery>;
  setWebhook(webhook: StripeWebhookEndpoint | undefined): void;
}

/** The API version the stand-in's objects follow (that of the installed SDK when it was written). */
const API_VERSION = '2026-10-28.endive';

type Params = Record<string, unknown>;

interface Saved {
  method: string;
  path: string;
  fingerprint: string;
  requestId: string;
  /** Absent while the first request with this key is still running. */
  answer?: { status: number; body: unknown };
}

class StripeApiError extends Error {
  constructor(
    readonly status: number,
    readonly error: Record<string, unknown>,
  ) {
    super(String(error.message));
  }
}

const invalidRequest = (status: number, message: string, extra: Record<string, unknown> = {}) =>
  new StripeApiError(status, { type: 'invalid_request_error', message, ...extra });

const docUrl = (code: string) => `https://stripe.com/docs/error-codes/${code.replace(/_/g, '-')}`;

const resourceMissing = (status: number, kind: string, id: string, param?: string) =>
  invalidRequest(status, `No such ${kind}: '${id}'`, {
    code: 'resource_missing',
    doc_url: docUrl('resource_missing'),
    ...(param ? { param } : {}),
  });

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const stripeId = (prefix: string) =>
  `${prefix}_${Array.from(randomBytes(24), (b) => BASE62[b % 62]).join('')}`;

const now = () => Math.floor(Date.now() / 1000);

const money = (amount: number, currency: string) =>
  new Intl.NumberFormat('en-US', { style: 'currency', currency: currency.toUpperCase() }).format(
    amount / 10 ** currencyExponent(currency),
  );

const currencyExponent = (currency: string) =>
  new Intl.NumberFormat('en-US', { style: 'currency', currency: currency.toUpperCase() }).resolvedOptions()
    .maximumFractionDigits ?? 2;

/**
 * Parses a form-encoded body or query string the way Stripe does: `metadata[order_number]=…` nests,
 * `expand[0]=…` and `expand[]=…` make arrays.
 */
export function parseStripeParams(encoded: string): Params {
  const root: Params = {};
  for (const [rawKey, value] of new URLSearchParams(encoded)) {
    const parts = rawKey.replace(/\]/g, '').split('[');
    if (parts.some((p) => p === '__proto__' || p === 'constructor' || p === 'prototype')) continue;
    let node = root;
    parts.forEach((part, i) => {
      const key = part === '' ? String(Object.keys(node).length) : part;
      if (i === parts.length - 1) node[key] = value;
      else {
        const next = node[key];
        node = (typeof next === 'object' && next !== null ? next : (node[key] = {})) as Params;
      }
    });
  }
  return arraysOf(root) as Params;
}

function arraysOf(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const entries = Object.entries(value as Params).map(([k, v]) => [k, arraysOf(v)] as const);
  const numeric = entries.length > 0 && entries.every(([k], i) => k === String(i));
  return numeric ? entries.map(([, v]) => v) : Object.fromEntries(entries);
}

/** Parameters compared for an idempotent replay: the same values, in any order. */
function fingerprint(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(fingerprint).join(',')}]`;
  if (typeof value === 'object' && value !== null)
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${fingerprint((value as Params)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value);
}

const expandList = (params: Params): string[] =>
  Array.isArray(params.expand) ? params.expand.map(String) : [];

export async function startStripe(options: StripeStandInOptions = {}): Promise<StripeStandIn> {
  const secretKey = options.secretKey ?? 'sk_test_standin';
  let webhook = options.webhook;
  const paymentIntents = new Map<string, StripeObject>();
  const charges = new Map<string, StripeObject>();
  /** Insertion order = creation order. */
  const refunds = new Map<string, StripeObject>();
  const events = new Map<string, StripeObject>();
  const idempotency = new Map<string, Saved>();
  const faults: StripeFault[] = [];
  const recorded: StripeCall[] = [];
  const receipts = new Map<string, string>();
  let url = '';

  function createPaymentIntent(seed: PaymentIntentSeed): StripeObject {
    if (!Number.isInteger(seed.amount) || seed.amount < 1)
      throw new Error('amount must be a positive integer');
    const currency = (seed.currency ?? 'usd').toLowerCase();
    const id = seed.id ?? stripeId('pi');
    if (paymentIntents.has(id)) throw new Error(`PaymentIntent ${id} already exists`);
    const chargeId = stripeId('ch');
    const receiptToken = Array.from(randomBytes(32), (b) => BASE62[b % 62]).join('');
    receipts.set(receiptToken, chargeId);
    const created = now();
    charges.set(chargeId, {
      id: chargeId,
      object: 'charge',
      amount: seed.amount,
      amount_captured: seed.amount,
      amount_refunded: 0,
      balance_transaction: stripeId('txn'),
      captured: true,
      created,
      currency,
      description: null,
      disputed: false,
      livemode: false,
      metadata: {},
      paid: true,
      payment_intent: id,
      payment_method: stripeId('pm'),
      receipt_url: `${url}/receipts/payment/${receiptToken}`,
      refunded: false,
      status: 'succeeded',
    });
    const intent: StripeObject = {
      id,
      object: 'payment_intent',
      amount: seed.amount,
      amount_capturable: 0,
      amount_received: seed.amount,
      capture_method: 'automatic',
      client_secret: `${id}_secret_${Array.from(randomBytes(24), (b) => BASE62[b % 62]).join('')}`,
      confirmation_method: 'automatic',
      created,
      currency,
      customer: null,
      description: null,
      latest_charge: chargeId,
      livemode: false,
      metadata: { ...seed.metadata },
      payment_method_types: ['card'],
      status: 'succeeded',
    };
    paymentIntents.set(id, intent);
    return structuredClone(intent);
  }

  const refundsNewestFirst = (filter: (r: StripeObject) => boolean) =>
    [...refunds.values()].filter(filter).reverse();

  /** Creates a refund as Stripe does, or throws Stripe's error. */
  function createRefund(params: Params, status: 'succeeded' | 'pending' = 'succeeded'): StripeObject {
    let charge: StripeObject | undefined;
    if (typeof params.payment_intent === 'string') {
      const intent = paymentIntents.get(params.payment_intent);
      if (!intent) throw resourceMissing(400, 'payment_intent', params.payment_intent, 'payment_intent');
      charge = typeof intent.latest_charge === 'string' ? charges.get(intent.latest_charge) : undefined;
      if (!charge || charge.status !== 'succeeded')
        throw invalidRequest(
          400,
          `This PaymentIntent (${intent.id}) does not have a successful charge to refund.`,
        );
    } else if (typeof params.charge === 'string') {
      charge = charges.get(params.charge);
      if (!charge) throw resourceMissing(400, 'charge', params.charge, 'charge');
    } else {
      throw invalidRequest(
        400,
        'One of the following params should be provided for this request: payment_intent or charge.',
      );
    }
    const chargeAmount = charge.amount as number;
    const alreadyRefunded = charge.amount_refunded as number;
    const currency = charge.currency as string;
    if (charge.refunded)
      throw invalidRequest(400, `Charge ${charge.id} has already been refunded.`, {
        code: 'charge_already_refunded',
        doc_url: docUrl('charge_already_refunded'),
      });
    let amount = chargeAmount - alreadyRefunded;
    if (params.amount !== undefined) {
      if (typeof params.amount !== 'string' || !/^-?\d+$/.test(params.amount))
        throw invalidRequest(400, `Invalid integer: ${String(params.amount)}`, {
          code: 'parameter_invalid_integer',
          param: 'amount',
          doc_url: docUrl('parameter_invalid_integer'),
        });
      amount = Number(params.amount);
      if (amount < 1)
        throw invalidRequest(400, 'This value must be greater than or equal to 1.', {
          code: 'parameter_invalid_integer',
          param: 'amount',
          doc_url: docUrl('parameter_invalid_integer'),
        });
      if (amount > chargeAmount - alreadyRefunded)
        throw invalidRequest(
          400,
          `Refund amount (${money(amount, currency)}) is greater than unrefunded amount on charge (${money(chargeAmount - alreadyRefunded, currency)})`,
          { code: 'amount_too_large', param: 'amount', doc_url: docUrl('amount_too_large') },
        );
    }
    const reasons = ['duplicate', 'fraudulent', 'requested_by_customer'];
    if (params.reason !== undefined && !reasons.includes(String(params.reason)))
      throw invalidRequest(400, `Invalid reason: must be one of ${reasons.join(', ')}`, { param: 'reason' });
    const metadata = typeof params.metadata === 'object' && params.metadata !== null ? params.metadata : {};
    const refund: StripeObject = {
      id: stripeId('re'),
      object: 'refund',
      amount,
      balance_transaction: stripeId('txn'),
      charge: charge.id,
      created: now(),
      currency,
      metadata,
      payment_intent: charge.payment_intent,
      reason: params.reason ?? null,
      receipt_number: null,
      source_transfer_reversal: null,
      status,
      transfer_reversal: null,
    };
    refunds.set(refund.id, refund);
    // A pending refund counts as refunded on its charge until it fails.
    charge.amount_refunded = alreadyRefunded + amount;
    charge.refunded = alreadyRefunded + amount >= chargeAmount;
    return structuredClone(refund);
  }

  function list(path: string, data: StripeObject[], params: Params) {
    const limit = Math.min(Math.max(Number(params.limit ?? 10) || 10, 1), 100);
    let start = 0;
    if (typeof params.starting_after === 'string') {
      const at = data.findIndex((o) => o.id === params.starting_after);
      if (at === -1)
        throw resourceMissing(
          400,
          path.split('/').pop()!.replace(/s$/, ''),
          params.starting_after,
          'starting_after',
        );
      start = at + 1;
    }
    const page = data.slice(start, start + limit);
    return { object: 'list', data: page, has_more: start + limit < data.length, url: path };
  }

  /**
   * A charge's refunds as Stripe lists them on an expanded charge (`expand[]=refunds`, or
   * `latest_charge.refunds`): since API version 2022-11-15 a Charge carries them only when expanded,
   * then as a list of its first 10, newest first.
   */
  const chargeRefunds = (chargeId: string) => {
    const all = refundsNewestFirst((r) => r.charge === chargeId);
    return {
      object: 'list',
      data: all.slice(0, 10).map((r) => structuredClone(r)),
      has_more: all.length > 10,
      url: `/v1/charges/${chargeId}/refunds`,
    };
  };

  /** Expands `expand[]` paths as Stripe does, nested ones (`latest_charge.refunds`) included. */
  function expanded(object: StripeObject, expand: string[]): StripeObject {
    const copy = structuredClone(object);
    const expandPath = (node: Record<string, unknown>, [field, ...rest]: string[]) => {
      let value = node[field!];
      if (typeof value === 'string') {
        const target = charges.get(value) ?? paymentIntents.get(value) ?? refunds.get(value);
        if (target) value = node[field!] = structuredClone(target);
      } else if (field === 'refunds' && node.object === 'charge' && typeof node.id === 'string') {
        value = node.refunds = chargeRefunds(node.id);
      }
      if (rest.length && typeof value === 'object' && value !== null)
        expandPath(value as Record<string, unknown>, rest);
    };
    for (const path of expand) expandPath(copy, path.split('.'));
    return copy;
  }

  /** The API proper: answers a authenticated call, or throws a StripeApiError. */
  function handle(method: string, path: string, params: Params): { status: number; body: unknown } {
    const expand = expandList(params);
    let m: RegExpExecArray | null;
    if (method === 'GET' && (m = /^\/v1\/payment_intents\/([^/]+)$/.exec(path))) {
      const id = decodeURIComponent(m[1]!);
      const intent = paymentIntents.get(id);
      if (!intent) throw resourceMissing(404, 'payment_intent', id, 'intent');
      return { status: 200, body: expanded(intent, expand) };
    }
    if (method === 'GET' && (m = /^\/v1\/charges\/([^/]+)$/.exec(path))) {
      const id = decodeURIComponent(m[1]!);
      const charge = charges.get(id);
      if (!charge) throw resourceMissing(404, 'charge', id, 'id');
      return { status: 200, body: expanded(charge, expand) };
    }
    if (method === 'GET' && path === '/v1/charges') {
      const all = [...charges.values()]
        .filter((c) => params.payment_intent === undefined || c.payment_intent === params.payment_intent)
        .reverse();
      return { status: 200, body: list(path, all, params) };
    }
    if (method === 'POST' && path === '/v1/refunds') {
      return { status: 200, body: expanded(createRefund(params), expand) };
    }
    if (method === 'GET' && path === '/v1/refunds') {
      const all = refundsNewestFirst(
        (r) =>
          (params.payment_intent === undefined || r.payment_intent === params.payment_intent) &&
          (params.charge === undefined || r.charge === params.charge),
      );
      return { status: 200, body: list(path, all, params) };
    }
    if (method === 'GET' && (m = /^\/v1\/refunds\/([^/]+)$/.exec(path))) {
      const id = decodeURIComponent(m[1]!);
      const refund = refunds.get(id);
      if (!refund) throw resourceMissing(404, 'refund', id, 'id');
      return { status: 200, body: expanded(refund, expand) };
    }
    throw invalidRequest(
      404,
      `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`,
    );
  }

  function authenticate(req: IncomingMessage): StripeApiError | undefined {
    const header = req.headers.authorization ?? '';
    let key: string | undefined;
    if (/^Bearer /i.test(header)) key = header.slice(7).trim();
    else if (/^Basic /i.test(header))
      key = Buffer.from(header.slice(6), 'base64').toString('utf8').split(':')[0];
    if (!key)
      return invalidRequest(
        401,
        "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
      );
    if (key !== secretKey)
      return invalidRequest(
        401,
        `Invalid API Key provided: ${key.slice(0, 8)}${'*'.repeat(Math.max(key.length - 12, 4))}${key.slice(-4)}`,
      );
    return undefined;
  }

  function takeFault(method: string, path: string): StripeFault | undefined {
    const fault = faults.find(
      (f) =>
        (f.times ?? 1) > 0 &&
        (f.method === undefined || f.method.toUpperCase() === method) &&
        (f.path === undefined || path.startsWith(f.path)),
    );
    if (fault) fault.times = (fault.times ?? 1) - 1;
    return fault;
  }

  const faultError = (fault: StripeFault): Record<string, unknown> => {
    const status = fault.status ?? 500;
    const base =
      status === 402
        ? {
            type: 'card_error',
            code: 'card_declined',
            decline_code: 'generic_decline',
            message: 'Your card was declined.',
          }
        : status === 429
          ? {
              type: 'invalid_request_error',
              code: 'rate_limit',
              message: 'Too many requests hit the API too quickly.',
            }
          : status >= 500
            ? { type: 'api_error', message: 'An unknown error occurred (injected by the stand-in).' }
            : { type: 'invalid_request_error', message: `Injected ${status} (stand-in fault).` };
    return { ...base, ...fault.error };
  };

  const admin = createAdmin({
    seed: StripeSeedSchema,
    applySeed: (data) => (data.paymentIntents ?? []).map(createPaymentIntent),
    errorAnswer: (status) => ({ body: { error: faultError({ status }) } }),
  });

  const server = createServer(
    admin.listener(async (req, res) => {
      const target = new URL(req.url ?? '/', 'http://stripe.local');
      const method = (req.method ?? 'GET').toUpperCase();
      const path = target.pathname;
      const rawBody = (await readRequestBody(req)).toString('utf8');
      const requestId = stripeId('req');
      const idempotencyKey =
        typeof req.headers['idempotency-key'] === 'string' ? req.headers['idempotency-key'] : undefined;
      const call: StripeCall = {
        method,
        path,
        query: target.search,
        idempotencyKey,
        status: 0,
        replayed: false,
      };
      recorded.push(call);

      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        call.status = status;
        res
          .writeHead(status, {
            'content-type': 'application/json',
            'request-id': requestId,
            'stripe-version': String(req.headers['stripe-version'] ?? API_VERSION),
            ...(idempotencyKey && method === 'POST' ? { 'idempotency-key': idempotencyKey } : {}),
            ...headers,
          })
          .end(JSON.stringify(body, null, 2));
      };
      const sendError = (error: StripeApiError) =>
        send(error.status, {
          error: { ...error.error, request_log_url: `https://dashboard.stripe.com/test/logs/${requestId}` },
        });

      // The public receipt page a charge's receipt_url points at.
      const receipt = /^\/receipts\/payment\/([A-Za-z0-9]+)$/.exec(path);
      if (method === 'GET' && receipt) {
        const charge = charges.get(receipts.get(receipt[1]!) ?? '');
        if (!charge) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found');
        return void res
          .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
          .end(
            `<!doctype html><title>Receipt</title><h1>Receipt</h1><p>${money(charge.amount as number, charge.currency as string)} paid (${charge.id})</p>`,
          );
      }

      const denied = authenticate(req);
      if (denied) return send(401, { error: denied.error }, { 'www-authenticate': 'Basic realm="Stripe"' });

      const fault = takeFault(method, path);
      if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault && !fault.dropResponse)
        return send(
          fault.status ?? 500,
          { error: faultError(fault) },
          fault.shouldRetry === undefined ? {} : { 'stripe-should-retry': String(fault.shouldRetry) },
        );

      const contentType = String(req.headers['content-type'] ?? '');
      if (method === 'POST' && rawBody && !contentType.startsWith('application/x-www-form-urlencoded'))
        return sendError(
          invalidRequest(400, 'Invalid request: the body must be application/x-www-form-urlencoded.'),
        );
      const params = parseStripeParams(method === 'POST' ? rawBody : target.search.slice(1));

      // Idempotency: POSTs only, as Stripe (GETs are idempotent by definition and ignore the key).
      const saveKey = method === 'POST' && idempotencyKey ? idempotencyKey : undefined;
      if (saveKey) {
        const saved = idempotency.get(saveKey);
        const print = fingerprint(params);
        if (saved) {
          if (saved.method !== method || saved.path !== path)
            return sendError(
              new StripeApiError(400, {
                type: 'idempotency_error',
                message: `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${saved.method} ${saved.path}' vs '${method} ${path}'). Try using a key other than '${saveKey}' if you meant to execute a different request.`,
              }),
            );
          if (saved.fingerprint !== print)
            return sendError(
              new StripeApiError(400, {
                type: 'idempotency_error',
                message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${saveKey}' if you meant to execute a different request.`,
              }),
            );
          if (!saved.answer)
            return sendError(
              new StripeApiError(409, {
                type: 'idempotency_error',
                message: `There is currently another in-progress request using this idempotency key ('${saveKey}'). Please try again later.`,
              }),
            );
          call.replayed = true;
          return send(saved.answer.status, saved.answer.body, {
            'idempotent-replayed': 'true',
            'original-request': saved.requestId,
          });
        }
        idempotency.set(saveKey, { method, path, fingerprint: print, requestId });
      }

      let answer: { status: number; body: unknown };
      try {
        answer = handle(method, path, params);
      } catch (error) {
        if (!(error instanceof StripeApiError)) {
          if (saveKey) idempotency.delete(saveKey);
          return send(500, { error: { type: 'api_error', message: (error as Error).message } });
        }
        answer = {
          status: error.status,
          body: {
            error: { ...error.error, request_log_url: `https://dashboard.stripe.com/test/logs/${requestId}` },
          },
        };
      }
      if (saveKey) idempotency.get(saveKey)!.answer = answer;
      if (fault?.dropResponse) {
        call.status = -1;
        return void req.socket.destroy();
      }
      send(answer.status, answer.body);
    }),
  );

  /** A refund that failed: the money goes back onto the charge, which can be refunded again. */
  function failRefund(refund: StripeObject): void {
    const charge = charges.get(refund.charge as string)!;
    charge.amount_refunded = (charge.amount_refunded as number) - (refund.amount as number);
    charge.refunded = false;
    refund.failure_reason = 'expired_or_canceled_card';
    refund.failure_balance_transaction = stripeId('txn');
  }

  async function deliver(event: StripeObject): Promise<WebhookDelivery> {
    if (!webhook) throw new Error('No webhook endpoint is configured on the Stripe stand-in');
    // Stripe sends events pretty-printed; the signature covers these exact bytes.
    const payload = JSON.stringify(event, null, 2);
    const timestamp = now();
    const signature = createHmac('sha256', webhook.secret).update(`${timestamp}.${payload}`).digest('hex');
    const response = await fetch(webhook.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json; charset=utf-8',
        'stripe-signature': `t=${timestamp},v1=${signature}`,
        'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
      },
      body: payload,
    });
    return { status: response.status, body: await response.text() };
  }

  /** An event about `object` as Stripe creates it when something happens in the dashboard. */
  function newEvent(type: string, object: StripeObject, data: Record<string, unknown>): StripeObject {
    const event: StripeObject = {
      id: stripeId('evt'),
      object: 'event',
      api_version: API_VERSION,
      created: now(),
      data: { object: structuredClone(object), ...data },
      livemode: false,
      pending_webhooks: webhook ? 1 : 0,
      request: { id: stripeId('req'), idempotency_key: randomUUID() },
      type,
    };
    events.set(event.id, event);
    return event;
  }

  async function deliverUnlessHeld(
    options: { deliver?: boolean },
    event: StripeObject,
  ): Promise<{ delivery?: WebhookDelivery }> {
    return webhook && options.deliver !== false ? { delivery: await deliver(event) } : {};
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    secretKey,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
    calls: (path) =>
      recorded.filter((c) => path === undefined || c.path.startsWith(path)).map((c) => ({ ...c })),
    failNext: (fault) => void faults.push({ ...fault }),
    clearFaults: () => void faults.splice(0),
    admin,
    seed: (data) => (data.paymentIntents ?? []).map(createPaymentIntent),
    createPaymentIntent,
    refunds: (paymentIntentId) =>
      refundsNewestFirst((r) => paymentIntentId === undefined || r.payment_intent === paymentIntentId).map(
        (r) => structuredClone(r),
      ),
    forgetIdempotencyKeys: () => idempotency.clear(),
    charge: (chargeId) => {
      const charge = charges.get(chargeId);
      return charge && structuredClone(charge);
    },
    async refundFromDashboard(paymentIntentId, amount, options = {}) {
      const intent = paymentIntents.get(paymentIntentId);
      if (!intent) throw new Error(`No such payment_intent: '${paymentIntentId}'`);
      const charge = charges.get(intent.latest_charge as string)!;
      const before = { amount_refunded: charge.amount_refunded, refunded: charge.refunded };
      let refund: StripeObject;
      try {
        refund = createRefund(
          { payment_intent: paymentIntentId, ...(amount === undefined ? {} : { amount: String(amount) }) },
          options.status,
        );
      } catch (error) {
        throw error instanceof StripeApiError ? new Error(error.message) : error;
      }
      // Since API version 2022-11-15 a Charge no longer embeds its refunds: list them to find this one.
      const event = newEvent('charge.refunded', charge, {
        previous_attributes:
          before.refunded === charge.refunded ? { amount_refunded: before.amount_refunded } : before,
      });
      return { refund, event: structuredClone(event), ...(await deliverUnlessHeld(options, event)) };
    },
    async settleRefund(refundId, status, options = {}) {
      const refund = refunds.get(refundId);
      if (!refund) throw new Error(`No such refund: '${refundId}'`);
      if (refund.status !== 'pending')
        throw new Error(`Refund ${refundId} is ${String(refund.status)}, not pending`);
      refund.status = status;
      if (status === 'failed') failRefund(refund);
      const event = newEvent('charge.refund.updated', refund, { previous_attributes: { status: 'pending' } });
      return {
        refund: structuredClone(refund),
        event: structuredClone(event),
        ...(await deliverUnlessHeld(options, event)),
      };
    },
    async failSucceededRefund(refundId, options = {}) {
      const refund = refunds.get(refundId);
      if (!refund) throw new Error(`No such refund: '${refundId}'`);
      if (refund.status !== 'succeeded')
        throw new Error(`Refund ${refundId} is ${String(refund.status)}, not succeeded`);
      refund.status = 'failed';
      failRefund(refund);
      const event = newEvent('charge.refund.updated', refund, {
        previous_attributes: { status: 'succeeded', failure_reason: null, failure_balance_transaction: null },
      });
      return {
        refund: structuredClone(refund),
        event: structuredClone(event),
        ...(await deliverUnlessHeld(options, event)),
      };
    },
    async sendEvent(partial) {
      const event: StripeObject = {
        id: stripeId('evt'),
        object: 'event',
        api_version: API_VERSION,
        created: now(),
        livemode: false,
        pending_webhooks: 1,
        request: { id: null, idempotency_key: null },
        ...structuredClone(partial),
      };
      events.set(event.id, event);
      return { event: structuredClone(event), delivery: await deliver(event) };
    },
    redeliver(eventId) {
      const event = events.get(eventId);
      if (!event) return Promise.reject(new Error(`No such event: '${eventId}'`));
      return deliver(event);
    },
    setWebhook(endpoint) {
      webhook = endpoint;
    },
  };
}
