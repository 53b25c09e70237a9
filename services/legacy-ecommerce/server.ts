import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { createAdmin, djangoErrorAnswer, readRequestBody, type Admin } from '../admin.js';
import type { AddressInfo } from 'node:net';
import { errors as joseErrors, jwtVerify } from 'jose';

/**
 * A stand-in for the legacy edX ecommerce service (django-oscar based `edx/ecommerce`), for what the
 * Coordinator reads from it:
 *
 * - `GET /api/v2/orders/?username=&page=&page_size=`: the learner's orders, newest first, paginated the
 *   Django REST framework way (`{ count, next, previous, results }`, pages start at 1, a page past the
 *   end is `404 {"detail": "Invalid page."}`), in the legacy order JSON shape (`number` "EDX-100004",
 *   `date_placed`, `total_excl_tax` as a decimal string, `lines`, `user`, `billing_address`, …);
 * - the receipt page `GET /checkout/receipt/?order_number=EDX-100004` (HTML);
 * - `POST /api/iap/v1/ios/refund/`: Apple refund notifications (`{"signedPayload": …}`) the Coordinator
 *   forwards when it holds no payment for them; 200 `{}`, 400 without a signedPayload.
 *
 * Authentication is ecommerce's: a JWT issued by the LMS (`Authorization: JWT <token>`), checked with
 * the LMS's HS256 key (devstack's `lms-secret`, audience `lms-key`). Staff (`administrator`) may read any
 * learner's orders; a learner only their own.
 */

export interface LegacyLineInput {
  title: string;
  /** Decimal string, e.g. "149.00". */
  linePriceExclTax: string;
  courseKey?: string;
  certificateType?: string;
  quantity?: number;
  status?: string;
  productClass?: string;
}

export interface LegacyOrderInput {
  number: string;
  username: string;
  email?: string;
  /** ISO 8601; the API writes it as `2021-12-20T15:09:44Z`. */
  datePlaced: string;
  /** @default the sum of the lines */
  totalExclTax?: string;
  currency?: string;
  discount?: string;
  status?: string;
  paymentProcessor?: string;
  lines: LegacyLineInput[];
}

export interface LegacyEcommerceSeed {
  orders?: LegacyOrderInput[];
}

/** `POST /_admin/seed`: legacy orders, as the ecommerce order API lists them. */
export const LegacyEcommerceSeedSchema = z
  .object({
    orders: z
      .array(
        z
          .object({
            number: z.string().min(1),
            username: z.string().min(1),
            email: z.string().min(1).optional(),
            datePlaced: z.iso.datetime(),
            totalExclTax: z
              .string()
              .regex(/^-?\d+\.\d{2}$/)
              .optional(),
            currency: z.string().length(3).optional(),
            discount: z
              .string()
              .regex(/^-?\d+\.\d{2}$/)
              .optional(),
            status: z.string().min(1).optional(),
            paymentProcessor: z.string().min(1).optional(),
            lines: z.array(
              z
                .object({
                  title: z.string().min(1),
                  linePriceExclTax: z.string().regex(/^-?\d+\.\d{2}$/),
                  courseKey: z.string().min(1).optional(),
                  certificateType: z.string().min(1).optional(),
                  quantity: z.number().int().positive().optional(),
                  status: z.string().min(1).optional(),
                  productClass: z.string().min(1).optional(),
                })
                .strict(),
            ),
          })
          .strict(),
      )
      .optional(),
  })
  .strict() satisfies z.ZodType<LegacyEcommerceSeed>;

export interface StartLegacyEcommerceOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** HS256 key of the LMS's JWTs. @default 'lms-secret' */
  jwtSecret?: string;
  /** @default 'lms-key' */
  jwtAudience?: string;
  /** The LMS's issuer (`<lms>/oauth2`); any issuer is accepted when unset. */
  jwtIssuer?: string;
}

export interface LegacyEcommerceStandIn {
  url: string;
  close(): Promise<void>;
  /** The admin API's state: the journal and faults of `/_admin/` (services/README.md). */
  admin: Admin;
  /** Requests received whose path starts with `pathPrefix` (all without one). */
  calls(pathPrefix?: string, method?: string): number;
  /** The next `n` requests whose path starts with `pathPrefix` (any without one) answer `status`. */
  failNext(n: number, status: number, pathPrefix?: string): void;
  seed(seed: LegacyEcommerceSeed): void;
  /** The bodies of the Apple refund notifications received at POST /api/iap/v1/ios/refund/, in order. */
  iosRefunds(): string[];
}

const MAX_PAGE_SIZE = 100;
const DEFAULT_PAGE_SIZE = 20;

type Answer = { status: number; body?: unknown; headers?: Record<string, string> };
const detail = (status: number, message: string, headers?: Record<string, string>): Answer => ({
  status,
  body: { detail: message },
  headers,
});

/** Sums decimal strings without floating point. */
function addDecimals(values: string[]): string {
  const cents = values.reduce((sum, v) => {
    const [whole = '0', fraction = ''] = v.split('.');
    const sign = whole.startsWith('-') ? -1n : 1n;
    return (
      sum + sign * (BigInt(whole.replace('-', '') || '0') * 100n + BigInt((fraction + '00').slice(0, 2)))
    );
  }, 0n);
  const sign = cents < 0n ? '-' : '';
  const abs = cents < 0n ? -cents : cents;
  return `${sign}${abs / 100n}.${String(abs % 100n).padStart(2, '0')}`;
}

export async function startLegacyEcommerce(
  options: StartLegacyEcommerceOptions = {},
): Promise<LegacyEcommerceStandIn> {
  const secret = new TextEncoder().encode(options.jwtSecret ?? 'lms-secret');
  const audience = options.jwtAudience ?? 'lms-key';
  const orders = new Map<
    string,
    Record<string, unknown> & { number: string; date_placed: string; user: { username: string } }
  >();
  const requests: Array<{ method: string; path: string }> = [];
  const iosRefunds: string[] = [];
  const faults: Array<{ remaining: number; status: number; prefix: string }> = [];
  let base = '';

  const toJson = (o: LegacyOrderInput) => {
    const currency = o.currency ?? 'USD';
    return {
      billing_address: null,
      currency,
      date_placed: new Date(o.datePlaced).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      discount: o.discount ?? '0',
      lines: o.lines.map((line, i) => ({
        description: line.title,
        line_price_excl_tax: line.linePriceExclTax,
        product: {
          attribute_values: [
            ...(line.certificateType
              ? [{ code: 'certificate_type', name: 'certificate_type', value: line.certificateType }]
              : []),
            ...(line.courseKey ? [{ code: 'course_key', name: 'course_key', value: line.courseKey }] : []),
          ],
          expires: null,
          id: i + 1,
          is_available_to_buy: true,
          price: line.linePriceExclTax,
          product_class: line.productClass ?? 'Seat',
          stockrecords: [],
          structure: 'child',
          title: line.title,
          url: `${base}/api/v2/products/${i + 1}/`,
        },
        quantity: line.quantity ?? 1,
        status: line.status ?? 'Complete',
        title: line.title,
        unit_price_excl_tax: line.linePriceExclTax,
      })),
      number: o.number,
      payment_processor: o.paymentProcessor ?? 'cybersource-rest',
      status: o.status ?? 'Complete',
      total_excl_tax: o.totalExclTax ?? addDecimals(o.lines.map((l) => l.linePriceExclTax)),
      user: { email: o.email ?? `${o.username}@example.com`, username: o.username },
      vouchers: [],
    };
  };

  async function authenticate(req: IncomingMessage): Promise<{ username: string; isStaff: boolean }> {
    const [scheme, token] = (req.headers.authorization ?? '').split(/\s+/, 2);
    if (scheme?.toUpperCase() !== 'JWT' || !token)
      throw detail(401, 'Authentication credentials were not provided.', {
        'www-authenticate': 'JWT realm="api"',
      });
    try {
      const { payload } = await jwtVerify(token, secret, {
        audience,
        algorithms: ['HS256'],
        ...(options.jwtIssuer ? { issuer: options.jwtIssuer } : {}),
      });
      if (typeof payload.preferred_username !== 'string') throw detail(401, 'Invalid payload.');
      return { username: payload.preferred_username, isStaff: payload.administrator === true };
    } catch (error) {
      if (error instanceof joseErrors.JOSEError)
        throw detail(
          401,
          error instanceof joseErrors.JWTExpired ? 'Signature has expired.' : 'Error decoding signature.',
        );
      throw error;
    }
  }

  async function route(req: IncomingMessage, url: URL): Promise<Answer> {
    if (url.pathname === '/checkout/receipt/' && req.method === 'GET') {
      const order = orders.get(url.searchParams.get('order_number') ?? '');
      if (!order) return { status: 404, body: '<h1>Not Found</h1>' };
      return { status: 200, body: `<html><body><h1>Receipt for order ${order.number}</h1></body></html>` };
    }
    if (url.pathname === '/api/iap/v1/ios/refund/') {
      // Ecommerce's IOSRefundView: Apple (and the Coordinator forwarding Apple's body) call it without
      // credentials; it reads the App Store Server Notification's signedPayload itself.
      if (req.method !== 'POST') return detail(405, `Method "${req.method}" not allowed.`);
      const raw = (await readRequestBody(req)).toString('utf8');
      let signedPayload: unknown;
      try {
        signedPayload = (JSON.parse(raw) as { signedPayload?: unknown } | null)?.signedPayload;
      } catch {
        return detail(400, 'JSON parse error.');
      }
      if (typeof signedPayload !== 'string' || !signedPayload)
        return detail(400, 'signedPayload: This field is required.');
      iosRefunds.push(raw);
      return { status: 200, body: {} };
    }
    if (url.pathname === '/api/v2/orders/' || url.pathname === '/api/v2/orders') {
      if (req.method !== 'GET') return detail(405, `Method "${req.method}" not allowed.`);
      const caller = await authenticate(req);
      const username = url.searchParams.get('username') || caller.username;
      if (username !== caller.username && !caller.isStaff)
        return detail(403, 'You do not have permission to perform this action.');
      const mine = [...orders.values()]
        .filter((o) => o.user.username === username)
        .sort((a, b) => b.date_placed.localeCompare(a.date_placed));
      const pageSize = Math.min(
        Number(url.searchParams.get('page_size')) || DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
      );
      const pageParam = url.searchParams.get('page') ?? '1';
      const page = /^\d+$/.test(pageParam) ? Number(pageParam) : NaN;
      const pages = Math.max(1, Math.ceil(mine.length / pageSize));
      if (!(page >= 1 && page <= pages)) return detail(404, 'Invalid page.');
      const link = (p: number) => {
        const next = new URL(url.pathname + url.search, base);
        next.searchParams.set('page', String(p));
        return next.href;
      };
      return {
        status: 200,
        body: {
          count: mine.length,
          next: page < pages ? link(page + 1) : null,
          previous: page > 1 ? link(page - 1) : null,
          results: mine.slice((page - 1) * pageSize, page * pageSize),
        },
      };
    }
    return { status: 404, body: '<h1>Not Found</h1>' };
  }

  const send = (res: ServerResponse, answer: Answer) => {
    const headers: Record<string, string> = { ...answer.headers };
    let payload: string | undefined;
    if (answer.body !== undefined) {
      const html = typeof answer.body === 'string';
      headers['content-type'] = html ? 'text/html; charset=utf-8' : 'application/json';
      payload = html ? (answer.body as string) : JSON.stringify(answer.body);
    }
    res.writeHead(answer.status, headers).end(payload);
  };

  const seed = (data: LegacyEcommerceSeed) => {
    for (const order of data.orders ?? []) orders.set(order.number, toJson(order));
  };
  const admin = createAdmin({
    seed: LegacyEcommerceSeedSchema,
    applySeed: (data) => ({ orders: (seed(data), data.orders?.length ?? 0) }),
    errorAnswer: djangoErrorAnswer,
  });

  const server = createServer(
    admin.listener((req, res) => {
      const url = new URL(req.url ?? '/', base || 'http://127.0.0.1');
      requests.push({ method: req.method ?? 'GET', path: url.pathname });
      const fault = faults.find((f) => f.remaining > 0 && url.pathname.startsWith(f.prefix));
      if (fault) {
        fault.remaining--;
        return send(
          res,
          fault.status >= 500
            ? { status: fault.status, body: `<h1>Server Error (${fault.status})</h1>` }
            : detail(fault.status, `Injected ${fault.status}.`),
        );
      }
      route(req, url).then(
        (answer) => send(res, answer),
        (error: unknown) =>
          send(
            res,
            error && typeof error === 'object' && 'status' in error
              ? (error as Answer)
              : { status: 500, body: '<h1>Server Error (500)</h1>' },
          ),
      );
    }),
  );
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    calls: (pathPrefix = '', method) =>
      requests.filter((r) => r.path.startsWith(pathPrefix) && (!method || r.method === method)).length,
    failNext: (n, status, pathPrefix = '') => void faults.push({ remaining: n, status, prefix: pathPrefix }),
    admin,
    seed,
    iosRefunds: () => [...iosRefunds],
  };
}
