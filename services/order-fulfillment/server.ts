import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { createAdmin, djangoErrorAnswer, readRequestBody, type Admin } from '../admin.js';

/**
 * A stand-in for 2U's Order Fulfillment service (the reference's `order_fulfillment` app, ADR-0009), for
 * what the Coordinator uses of it:
 *
 * - `POST /api/fulfill-order/`: fulfill one order line, an enrollment (course run) or an entitlement
 *   (course UUID), for a line of business (`lob`) and an LMS username. It answers at once and reports
 *   the outcome later, on its completion webhook.
 * - `POST /api/revoke-line/`: `{ edx_lms_username, course_run_key, course_mode, entitlement_uuid?, lob }`
 *   unenrolls (or expires the entitlement of) a returned line.
 * - The completion webhook: `POST <coordinator>/order-fulfillment/fulfillment-response-webhook` with
 *   `{ id, detail: { fulfillment_type, is_fulfilled, entitlement_uuid?, order_id, line_item_id } }`,
 *   signed the reference's way (`HMACSignatureWebhookAuthentication`): `X-Fulfillment-Webhook-Timestamp`
 *   (unix seconds) and `X-Fulfillment-Webhook-Signature`, the base64 HMAC-SHA256 of `"<timestamp>.<body>"`
 *   with the shared secret.
 *
 * Authentication of the API is the reference client's `X-Edx-Api-Key` header; a missing or wrong key is
 * DRF's 401 / 403. Both endpoints are idempotent: a line asked for again (order id, line item id) is
 * not fulfilled twice (one whose report went out is reported again: see the fulfill handler), a line
 * already revoked answers `revoked`.
 *
 * Like the real service, a line is fulfilled when the service gets to it (when its report goes out),
 * not when it is accepted: a revoke that arrives in between finds nothing to end, and the enrollment
 * the fulfillment then makes stays until it is revoked again (`enrolled`).
 */

export const FULFILLMENT_SIGNATURE_HEADER = 'x-fulfillment-webhook-signature';
export const FULFILLMENT_TIMESTAMP_HEADER = 'x-fulfillment-webhook-timestamp';

/** The signature of a completion webhook body: base64 HMAC-SHA256 over `"<timestamp>.<body>"`. */
export function signFulfillmentWebhook(secret: string, timestamp: number | string, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('base64');
}

/** One line to fulfill, as the Coordinator forwards it (the reference's forwarding payload). */
export const FulfillOrderRequestSchema = z.object({
  order_id: z.string().min(1).max(200),
  order_number: z.string().min(1).max(200),
  line_item_id: z.string().min(1).max(200),
  item_quantity: z.number().int().positive().default(1),
  /** enrollment: a course run (`course_id` its key); entitlement: a course UUID. */
  fulfillment_type: z.enum(['enrollment', 'entitlement']),
  course_id: z.string().min(1).max(500),
  course_mode: z.string().min(1).max(100),
  edx_lms_user_id: z.number().int(),
  edx_lms_username: z.string().min(1).max(150),
  email_opt_in: z.boolean().default(false),
  provider_id: z.string().nullable().optional(),
  date_placed: z.string().optional(),
  source_system: z.string().optional(),
  /** The line of business the line is fulfilled for (edx, …). */
  lob: z.string().min(1).max(100),
});
export type FulfillOrderRequest = z.infer<typeof FulfillOrderRequestSchema>;

/** The reference's `OrderRevokeLineRequestSerializer`. */
export const RevokeLineRequestSchema = z.object({
  edx_lms_username: z.string().min(1).max(150),
  course_run_key: z.string().min(1).max(500),
  course_mode: z.string().min(1).max(100),
  entitlement_uuid: z.string().min(1).max(100).nullable().optional(),
  lob: z.string().min(1).max(100),
});
export type RevokeLineRequest = z.infer<typeof RevokeLineRequestSchema>;

/** What the completion webhook reports about one line. */
export interface FulfillmentReport {
  fulfillment_type: 'enrollment' | 'entitlement';
  is_fulfilled: boolean;
  entitlement_uuid?: string;
  order_id: string;
  line_item_id: string;
}

export interface FulfilledLine {
  request: FulfillOrderRequest;
  /** The report sent (or to be sent) on the completion webhook. */
  report: FulfillmentReport;
  /** Whether the report was delivered (a 2xx from the webhook endpoint). */
  reported: boolean;
}

export interface WebhookDelivery {
  status: number;
  body: unknown;
}

export interface OrderFulfillmentWebhook {
  url: string;
  secret: string;
}

/** `POST /_admin/seed`: which course runks / course UUIDs the service fails to fulfill. */
export const OrderFulfillmentSeedSchema = z
  .object({
    /**
     * The `course_id`s (course run keys or course UUIDs) whose fulfillment reports `is_fulfilled: false`,
     * instead of those seeded before.
     */
    failing: z.array(z.string().min(1)).optional(),
    /** false: fulfillments are held until `deliverPending` (the service is slow); true: reported at once. */
    autoReport: z.boolean().optional(),
  })
  .strict();
export type OrderFulfillmentSeed = z.infer<typeof OrderFulfillmentSeedSchema>;

export interface OrderFulfillmentStandIn {
  url: string;
  apiKey: string;
  admin: Admin;
  close(): Promise<void>;
  seed(seed: OrderFulfillmentSeed): void;
  setWebhook(webhook: OrderFulfillmentWebhook | undefined): void;
  /** The lines it was asked to fulfill, in order. */
  fulfillments(): FulfilledLine[];
  /** The revoke requests it performed (a repeated one once). */
  revocations(): RevokeLineRequest[];
  /**
   * Whether the learner holds the course run (or entitlement of the course UUID) through the service
   * now: fulfilled when its report went out, and not revoked since.
   */
  enrolled(username: string, courseId: string): boolean;
  /** Requests received whose path starts with `pathPrefix`. */
  calls(pathPrefix?: string, method?: string): number;
  /**
   * Sends the reports not yet delivered (held while `autoReport` is false), of one order when given;
   * answers each delivery.
   */
  deliverPending(orderId?: string): Promise<WebhookDelivery[]>;
  /** Signs and sends any report (the same body twice is a redelivery), as the service's bus would. */
  report(
    report: FulfillmentReport,
    options?: { timestamp?: number; eventId?: string },
  ): Promise<WebhookDelivery>;
}

export const DEFAULT_ORDER_FULFILLMENT_API_KEY = 'of-standin-api-key';

type Answer = { status: number; body?: unknown };
const detail = (status: number, message: string): Answer => ({ status, body: { detail: message } });

export async function startOrderFulfillment(
  options: { port?: number; apiKey?: string; webhook?: OrderFulfillmentWebhook } = {},
): Promise<OrderFulfillmentStandIn> {
  const apiKey = options.apiKey ?? DEFAULT_ORDER_FULFILLMENT_API_KEY;
  let webhook = options.webhook;
  let autoReport = true;
  const failing = new Set<string>();
  const lines = new Map<string, FulfilledLine>();
  const revoked = new Map<string, RevokeLineRequest>();
  /** `<username>/<course_id>` → whether the learner holds it now (see `enrolled`). */
  const holding = new Map<string, boolean>();
  const holdingKey = (username: string, courseId: string) => `${username}/${courseId}`;
  const requests: Array<{ method: string; path: string }> = [];

  async function deliver(report: FulfillmentReport, sign: { timestamp?: number; eventId?: string } = {}) {
    if (!webhook) throw new Error('No completion webhook is configured on the Order Fulfillment stand-in');
    const timestamp = sign.timestamp ?? Math.floor(Date.now() / 1000);
    const body = JSON.stringify({
      id: sign.eventId ?? randomUUID(),
      'detail-type': 'Order Fulfillment Response',
      source: 'order-fulfillment',
      time: new Date().toISOString(),
      detail: report,
    });
    const res = await fetch(webhook.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        [FULFILLMENT_TIMESTAMP_HEADER]: String(timestamp),
        [FULFILLMENT_SIGNATURE_HEADER]: signFulfillmentWebhook(webhook.secret, timestamp, body),
      },
      body,
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: kept as text
    }
    return { status: res.status, body: parsed };
  }

  async function reportLine(line: FulfilledLine): Promise<WebhookDelivery | undefined> {
    if (line.reported || !webhook) return undefined;
    // The service does the work when it reports it: from now on the learner holds the line.
    if (line.report.is_fulfilled)
      holding.set(holdingKey(line.request.edx_lms_username, line.request.course_id), true);
    const delivery = await deliver(line.report);
    if (delivery.status >= 200 && delivery.status < 300) line.reported = true;
    return delivery;
  }

  function authenticate(req: IncomingMessage): Answer | undefined {
    const key = req.headers['x-edx-api-key'];
    if (typeof key !== 'string' || !key) return detail(401, 'Authentication credentials were not provided.');
    const given = Buffer.from(key);
    const expected = Buffer.from(apiKey);
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return detail(403, 'You do not have permission to perform this action.');
    return undefined;
  }

  async function readBody<T extends z.ZodType>(
    req: IncomingMessage,
    schema: T,
  ): Promise<z.infer<T> | Answer> {
    const raw = await readRequestBody(req);
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      return detail(400, 'JSON parse error.');
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      // DRF's field errors: { field: ["message"] }.
      const errors: Record<string, string[]> = {};
      for (const issue of parsed.error.issues)
        (errors[issue.path.join('.') || 'non_field_errors'] ??= []).push(issue.message);
      return { status: 400, body: errors };
    }
    return parsed.data;
  }

  const isAnswer = (value: unknown): value is Answer =>
    typeof value === 'object' && value !== null && 'status' in value && typeof value.status === 'number';

  async function route(req: IncomingMessage, url: URL): Promise<Answer> {
    const path = url.pathname.replace(/\/?$/, '/');
    if (path !== '/api/fulfill-order/' && path !== '/api/revoke-line/') return detail(404, 'Not found.');
    if (req.method !== 'POST') return detail(405, `Method "${req.method}" not allowed.`);
    const refused = authenticate(req);
    if (refused) return refused;

    if (path === '/api/fulfill-order/') {
      const request = await readBody(req, FulfillOrderRequestSchema);
      if (isAnswer(request)) return request;
      const key = `${request.order_id}/${request.line_item_id}`;
      const existing = lines.get(key);
      // A line asked for again after its report went out (the order's fulfillment ran again): a line
      // that failed is tried again, one fulfilled keeps its entitlement; either is reported again, so
      // the Coordinator never waits for a report already spent. One not yet reported is left as it is.
      if (!existing || existing.reported) {
        const fulfilled = !failing.has(request.course_id);
        const uuid =
          existing?.report.is_fulfilled && existing.report.entitlement_uuid
            ? existing.report.entitlement_uuid
            : randomUUID();
        const line: FulfilledLine = {
          request,
          reported: false,
          report: existing?.report.is_fulfilled
            ? existing.report
            : {
                fulfillment_type: request.fulfillment_type,
                is_fulfilled: fulfilled,
                ...(fulfilled && request.fulfillment_type === 'entitlement'
                  ? { entitlement_uuid: uuid }
                  : {}),
                order_id: request.order_id,
                line_item_id: request.line_item_id,
              },
        };
        lines.set(key, line);
        // The service works asynchronously: the report follows the answer.
        if (autoReport) setTimeout(() => void reportLine(line).catch(() => undefined), 20);
      }
      return {
        status: 200,
        body: {
          message: 'Order fulfillment request accepted.',
          order_id: request.order_id,
          line_item_id: request.line_item_id,
        },
      };
    }

    const request = await readBody(req, RevokeLineRequestSchema);
    if (isAnswer(request)) return request;
    const key = `${request.edx_lms_username}/${request.entitlement_uuid ?? request.course_run_key}`;
    const held = holdingKey(request.edx_lms_username, request.course_run_key);
    // Revoked before and not fulfilled again since: nothing to end.
    const already = revoked.has(key) && !holding.get(held);
    if (!already) revoked.set(key, request);
    holding.set(held, false);
    return { status: 200, body: { message: 'Line revoked.', revoked: true, already_revoked: already } };
  }

  const send = (res: ServerResponse, answer: Answer) => {
    if (answer.body === undefined) return void res.writeHead(answer.status).end();
    const html = typeof answer.body === 'string';
    res
      .writeHead(answer.status, { 'content-type': html ? 'text/html; charset=utf-8' : 'application/json' })
      .end(html ? (answer.body as string) : JSON.stringify(answer.body));
  };

  const seed = (data: OrderFulfillmentSeed) => {
    if (data.failing) {
      failing.clear();
      for (const course of data.failing) failing.add(course);
    }
    if (data.autoReport !== undefined) autoReport = data.autoReport;
  };
  const admin = createAdmin({
    seed: OrderFulfillmentSeedSchema,
    applySeed: (data) => (seed(data), { failing: [...failing], autoReport }),
    errorAnswer: djangoErrorAnswer,
  });

  let base = '';
  const server = createServer(
    admin.listener((req, res) => {
      const url = new URL(req.url ?? '/', base || 'http://127.0.0.1');
      requests.push({ method: req.method ?? 'GET', path: url.pathname });
      route(req, url).then(
        (answer) => send(res, answer),
        () => send(res, { status: 500, body: '<h1>Server Error (500)</h1>' }),
      );
    }),
  );
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    apiKey,
    admin,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    seed,
    setWebhook: (next) => void (webhook = next),
    fulfillments: () => [...lines.values()].map((line) => structuredClone(line)),
    revocations: () => [...revoked.values()].map((r) => structuredClone(r)),
    enrolled: (username, courseId) => holding.get(holdingKey(username, courseId)) ?? false,
    calls: (pathPrefix = '', method) =>
      requests.filter((r) => r.path.startsWith(pathPrefix) && (!method || r.method === method)).length,
    async deliverPending(orderId) {
      const deliveries: WebhookDelivery[] = [];
      for (const line of lines.values()) {
        if (orderId !== undefined && line.request.order_id !== orderId) continue;
        const delivery = await reportLine(line);
        if (delivery) deliveries.push(delivery);
      }
      return deliveries;
    },
    report: (report, sign) => deliver(report, sign),
  };
}
