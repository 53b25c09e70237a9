import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { createAdmin, readRequestBody, type Admin } from '../admin.js';
import { Checkout, type CheckoutSeed } from './checkout.js';
import { createHolds, type Hold } from '../holds.js';
import { CATALOG_RESOURCES, CatalogSeedSchema, OrderManagementCatalog, type CatalogSeed } from './catalog.js';
import { compilePredicate, PredicateError } from './predicate.js';
import {
  CtError,
  LINE_ITEM_STATE_KEYS,
  notFound,
  OrderManagementStore,
  type LineState,
  type ResourceKind,
  type SeedData,
} from './store.js';

export type { SeedData, SeedOrder, SeedCustomer, SeedLineItem, SeedPayment, LineState } from './store.js';
export type { CheckoutSeed, SeedProduct, SeedCart, SeedMobilePayment, SeedCustomObject } from './checkout.js';
export { LINE_ITEM_STATE_KEYS, SANCTIONED_STATE_KEY, OrderManagementStore } from './store.js';
export { OrderManagementCatalog, type CatalogSeed } from './catalog.js';

/**
 * A stand-in for the order management Service (commercetools Composable Commerce): the subset of its
 * HTTP API the Coordinator uses, with the same paths, payloads and error bodies.
 *
 *   POST /oauth/token                       client credentials (HTTP Basic) → bearer token
 *   GET  /{projectKey}/{orders|payments|customers|states}?where=…&var.x=…&sort=…&limit=…&offset=…&expand=…
 *   GET  /{projectKey}/{orders|payments|customers}/{id}?expand=…
 *   GET  /{projectKey}/orders/order-number={orderNumber}
 *   POST /{projectKey}/{orders|payments|customers}/{id}   { version, actions: [...] }  (409 on a stale version)
 *   GET  /{projectKey}/{discount-codes|cart-discounts|product-projections[/search]|standalone-prices}  (catalog.ts)
 *
 * Test controls are in process (`seed`, `failNext`, `calls`, `responses`, `expireTokens`, `store`) and
 * over HTTP under `/_admin/` (services/README.md).
 */
const SeedCustomerSchema = z
  .object({
    id: z.string().min(1).optional(),
    lmsUserId: z.number().int().positive(),
    username: z.string().min(1),
    email: z.string().min(1),
    firstName: z.string().optional(),
    lastName: z.string().optional(),
  })
  .strict();

/** `POST /_admin/seed`: customers and their orders, with line items and the payment at its PSP. */
export const OrderManagementSeedSchema = z
  .object({
    customers: z.array(SeedCustomerSchema).optional(),
    orders: z
      .array(
        z
          .object({
            id: z.string().min(1).optional(),
            orderNumber: z.string().min(1),
            createdAt: z.iso.datetime().optional(),
            customer: SeedCustomerSchema,
            orderState: z.enum(['Open', 'Confirmed', 'Complete', 'Cancelled']).optional(),
            sanctioned: z.boolean().optional(),
            currency: z.string().length(3).optional(),
            lineItems: z
              .array(
                z
                  .object({
                    id: z.string().min(1).optional(),
                    title: z.string().min(1),
                    priceCents: z.number().int().min(0),
                    courseRunKey: z.string().min(1).optional(),
                    bundleKey: z.string().min(1).optional(),
                    mode: z.string().min(1).optional(),
                    lob: z.string().min(1).optional(),
                    state: z
                      .enum(Object.keys(LINE_ITEM_STATE_KEYS) as [LineState, ...LineState[]])
                      .optional(),
                    entitlementUuid: z.string().min(1).optional(),
                    creditProvider: z.string().min(1).optional(),
                  })
                  .strict(),
              )
              .min(1),
            payment: z
              .object({
                psp: z.enum(['STRIPE', 'PAYPAL']),
                pspPaymentId: z.string().min(1),
                pspOrderId: z.string().min(1).optional(),
                amountCents: z.number().int().min(0).optional(),
                interfaceCode: z.string().min(1).optional(),
              })
              .strict()
              .optional(),
          })
          .strict(),
      )
      .optional(),
    // The checkout side (checkout.ts): the catalogue, active carts, dangling mobile payments, custom objects.
    products: z
      .array(
        z
          .object({
            sku: z.string().min(1),
            title: z.string().min(1),
            usdCents: z.number().int().min(0),
            mode: z.string().min(1).optional(),
          })
          .strict(),
      )
      .optional(),
    carts: z
      .array(
        z
          .object({
            id: z.string().min(1).optional(),
            lmsUserId: z.number().int().positive(),
            sku: z.string().min(1),
          })
          .strict(),
      )
      .optional(),
    mobilePayments: z
      .array(
        z
          .object({
            id: z.string().min(1).optional(),
            method: z.enum(['ios_iap', 'android_iap']),
            transactionId: z.string().min(1),
            usdCents: z.number().int().min(0),
          })
          .strict(),
      )
      .optional(),
    customObjects: z
      .array(z.object({ container: z.string().min(1), key: z.string().min(1), value: z.unknown() }).strict())
      .optional(),
    /** Discounts, products and prices (catalog.ts). */
    catalog: CatalogSeedSchema.optional(),
  })
  .strict() satisfies z.ZodType<SeedData & CheckoutSeed>;

export interface OrderManagementOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** @default 'edx-commerce' */
  projectKey?: string;
  /** The API client's credentials. @default 'coordinator' / 'coordinator-secret' */
  clientId?: string;
  clientSecret?: string;
  seed?: SeedData & CheckoutSeed;
}

export interface OrderManagement {
  /** The API and auth base URL (both are served here). */
  url: string;
  projectKey: string;
  clientId: string;
  clientSecret: string;
  store: OrderManagementStore;
  /** Carts, the catalogue and custom objects (checkout.ts). */
  checkout: Checkout;
  /** Discount codes, cart discounts, products and standalone prices. */
  catalog: OrderManagementCatalog;
  /** The admin API's state: the journal and faults of `/_admin/` (services/README.md). */
  admin: Admin;
  seed(
    data: SeedData & CheckoutSeed,
  ): ReturnType<OrderManagementStore['seed']> & ReturnType<Checkout['seed']>;
  /**
   * How many requests `method path` received, e.g. `calls('GET', '/edx-commerce/orders')`; without
   * arguments, how many requests of any kind.
   */
  calls(method?: string, path?: string): number;
  /** How many answers had this status (e.g. 409 conflicts). */
  responses(status: number): number;
  /**
   * The next `times` requests whose path starts with `pathPrefix` (any API path when absent), and whose
   * method is `method` when given, are answered `status` with commercetools' body for it.
   */
  failNext(times: number, status: number, pathPrefix?: string, method?: 'GET' | 'POST'): void;
  /**
   * Holds every request `matches` accepts, before it is performed, until released: to let another
   * writer go first between a caller's read and its write.
   */
  hold(matches: (request: HeldRequest) => boolean): OrderManagementHold;
  /** Invalidates every issued token, as an expiry would. */
  expireTokens(): void;
  close(): Promise<void>;
}

/** A request `hold` may hold: its body parsed when it is JSON. */
export interface HeldRequest {
  method: string;
  path: string;
  body: unknown;
}

export type OrderManagementHold = Hold;

const TOKEN_TTL_SECONDS = 172_800;
const MAX_LIMIT = 500;

const invalidToken = () => new CtError(401, 'invalid_token', 'invalid_token');

export async function startOrderManagement(options: OrderManagementOptions = {}): Promise<OrderManagement> {
  const projectKey = options.projectKey ?? 'edx-commerce';
  const clientId = options.clientId ?? 'coordinator';
  const clientSecret = options.clientSecret ?? 'coordinator-secret';
  const store = new OrderManagementStore();
  const checkout = new Checkout(store);
  // One standalone-prices endpoint: the checkout's products' prices and the catalogue's.
  const catalog = new OrderManagementCatalog(store, checkout.standalonePrices);
  // Customers and orders first: seeded carts belong to customers.
  const seed = (data: SeedData & CheckoutSeed & { catalog?: CatalogSeed }) => {
    const { products, carts, mobilePayments, customObjects, catalog: catalogSeed, ...orders } = data;
    return {
      ...store.seed(orders),
      ...checkout.seed({ products, carts, mobilePayments, customObjects }),
      catalog: catalog.seed(catalogSeed),
    };
  };
  if (options.seed) seed(options.seed);
  const tokens = new Map<string, number>();
  const calls = new Map<string, number>();
  const statuses = new Map<number, number>();
  const faults: Array<{ remaining: number; status: number; pathPrefix?: string; method?: string }> = [];
  const holds = createHolds<HeldRequest>();

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    res
      .writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers })
      .end(JSON.stringify(body));
  };

  const admin = createAdmin({
    seed: OrderManagementSeedSchema,
    applySeed: (data) => seed(data),
    errorAnswer: (status, path) => ({ body: injected(status, path, store).body() }),
  });

  const server = createServer(
    admin.listener(async (req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const method = req.method ?? 'GET';
      const key = `${method} ${url.pathname}`;
      calls.set(key, (calls.get(key) ?? 0) + 1);
      try {
        const body = await readRequestBody(req);
        if (holds.active()) {
          let parsed: unknown;
          try {
            parsed = body.length ? JSON.parse(body.toString('utf8')) : undefined;
          } catch {
            parsed = undefined;
          }
          await holds.pass({ method, path: url.pathname, body: parsed });
        }
        const fault = faults.find(
          (f) =>
            f.remaining > 0 &&
            (!f.method || f.method === method) &&
            (f.pathPrefix ? url.pathname.startsWith(f.pathPrefix) : url.pathname !== '/oauth/token'),
        );
        if (fault) {
          fault.remaining -= 1;
          throw injected(fault.status, url.pathname, store);
        }
        if (url.pathname === '/oauth/token') return token(req, res, body);
        if (!authorized(req)) throw invalidToken();
        const [project, resource, id, ...rest] = url.pathname
          .split('/')
          .filter(Boolean)
          .map(decodeURIComponent);
        if (project === projectKey && method === 'GET' && CATALOG_RESOURCES.includes(resource ?? '')) {
          const answer = catalog.answer(
            resource!,
            [id, ...rest].filter((s) => s !== undefined),
            url.searchParams,
          );
          if (answer !== undefined) return send(res, 200, answer);
        }
        if (project === projectKey && resource !== undefined) {
          const answer = checkout.handle(
            method,
            [resource, ...(id === undefined ? [] : [id]), ...rest],
            url.searchParams,
            method === 'POST' && body.length ? parseJson(body) : undefined,
          );
          if (answer) return send(res, answer.status, answer.body);
          const collection = method === 'GET' && id === undefined ? checkout.collection(resource) : undefined;
          if (collection) return send(res, 200, query(collection, url.searchParams));
        }
        if (project !== projectKey || rest.length)
          throw new CtError(404, 'ResourceNotFound', `No endpoint ${method} ${url.pathname}.`);
        if (!['orders', 'payments', 'customers', 'states'].includes(resource ?? ''))
          throw new CtError(404, 'ResourceNotFound', `No endpoint ${method} ${url.pathname}.`);
        const kind = resource as ResourceKind;
        const expand = url.searchParams.getAll('expand');
        if (method === 'GET' && id === undefined)
          return send(res, 200, query((store[kind] as Map<string, unknown>).values(), url.searchParams));
        if (method === 'GET' && id !== undefined) {
          const found =
            kind === 'orders' && id.startsWith('order-number=')
              ? [...store.orders.values()].find((o) => o.orderNumber === id.slice('order-number='.length))
              : store.get(kind, id);
          if (!found) throw notFound(id);
          return send(res, 200, store.expand(found, expand));
        }
        if (method === 'POST' && id !== undefined && kind !== 'states') {
          const update = parseJson(body) as { version?: unknown; actions?: unknown };
          const updated = store.update(kind, id, update.version, update.actions);
          return send(res, 200, store.expand(updated, expand));
        }
        throw new CtError(405, 'MethodNotAllowed', `Method ${method} is not allowed on ${url.pathname}.`);
      } catch (error) {
        if (error instanceof CtError) {
          const body =
            error.statusCode === 401
              ? {
                  ...error.body(),
                  error: error.code,
                  ...(error.code === 'invalid_client' ? { error_description: error.message } : {}),
                }
              : error.body();
          return send(res, error.statusCode, body);
        }
        send(res, 500, new CtError(500, 'General', (error as Error).message).body());
      }
    }),
  );

  function token(req: IncomingMessage, res: ServerResponse, body: Buffer) {
    if (req.method !== 'POST') throw new CtError(405, 'MethodNotAllowed', 'Use POST for /oauth/token.');
    const [scheme, encoded] = (req.headers.authorization ?? '').split(' ');
    const [id, secret] = Buffer.from(encoded ?? '', 'base64')
      .toString('utf8')
      .split(':');
    if (scheme !== 'Basic' || id !== clientId || !safeEqual(secret ?? '', clientSecret))
      throw new CtError(
        401,
        'invalid_client',
        'Please provide valid client credentials using HTTP Basic Authentication.',
      );
    const form = new URLSearchParams(body.toString('utf8'));
    if (form.get('grant_type') !== 'client_credentials')
      throw new CtError(400, 'unsupported_grant_type', 'Use grant_type=client_credentials.');
    const accessToken = randomBytes(24).toString('base64url');
    tokens.set(accessToken, Date.now() + TOKEN_TTL_SECONDS * 1000);
    send(res, 200, {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: TOKEN_TTL_SECONDS,
      scope: form.get('scope') ?? `manage_project:${projectKey}`,
    });
  }

  function authorized(req: IncomingMessage) {
    const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const expires = match ? tokens.get(match[1]!) : undefined;
    return expires !== undefined && expires > Date.now();
  }

  function query(collection: Iterable<unknown>, params: URLSearchParams) {
    const variables = new Map<string, string[]>();
    for (const [name, value] of params) {
      if (name.startsWith('var.'))
        variables.set(name.slice(4), [...(variables.get(name.slice(4)) ?? []), value]);
    }
    const limit = Number(params.get('limit') ?? 20);
    const offset = Number(params.get('offset') ?? 0);
    if (!Number.isInteger(limit) || limit < 0 || limit > MAX_LIMIT)
      throw new CtError(400, 'InvalidInput', `The limit must be an integer between 0 and ${MAX_LIMIT}.`);
    if (!Number.isInteger(offset) || offset < 0)
      throw new CtError(400, 'InvalidInput', 'The offset must be a non-negative integer.');
    let matchers: Array<(r: unknown) => boolean>;
    try {
      matchers = params.getAll('where').map((where) => compilePredicate(where, variables));
    } catch (error) {
      if (error instanceof PredicateError)
        throw new CtError(400, 'InvalidInput', `Malformed parameter: where: ${error.message}`);
      throw error;
    }
    let results = [...collection].filter((r) => matchers.every((m) => m(r)));
    for (const sort of params.getAll('sort').reverse()) {
      const [field, direction] = sort.trim().split(/\s+/) as [string, string | undefined];
      const sign = direction?.toLowerCase() === 'desc' ? -1 : 1;
      const value = (r: unknown) => String((r as Record<string, unknown>)[field] ?? '');
      results = [...results].sort((a, b) => sign * value(a).localeCompare(value(b)));
    }
    const expand = params.getAll('expand');
    // Redeemed discount codes live in the catalogue: it expands `discountCodes[*].discountCode`.
    const page = results
      .slice(offset, offset + limit)
      .map((r) => catalog.expand(store.expand(r, expand), expand));
    return { limit, offset, count: page.length, total: results.length, results: page };
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    projectKey,
    clientId,
    clientSecret,
    store,
    checkout,
    catalog,
    admin,
    seed,
    calls: (method, path) =>
      method === undefined
        ? [...calls.values()].reduce((sum, n) => sum + n, 0)
        : (calls.get(`${method.toUpperCase()} ${path}`) ?? 0),
    responses: (status) => statuses.get(status) ?? 0,
    failNext: (times, status, pathPrefix, method) =>
      faults.push({
        remaining: times,
        status,
        ...(pathPrefix ? { pathPrefix } : {}),
        ...(method ? { method } : {}),
      }),
    hold: (matches) => holds.hold(matches),
    expireTokens: () => tokens.clear(),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** An injected failure with the body commercetools answers that status with. */
function injected(status: number, path: string, store: OrderManagementStore): CtError {
  const [, , resource, id] = path.split('/');
  switch (status) {
    case 400:
      return new CtError(400, 'InvalidInput', 'Injected invalid input.');
    case 401:
      return invalidToken();
    case 404:
      return notFound(id ?? path);
    case 409: {
      const current = id && resource ? store.get(resource as ResourceKind, id)?.version : undefined;
      return new CtError(
        409,
        'ConcurrentModification',
        `Object ${id} has a different version than expected.`,
        {
          currentVersion: current ?? 1,
        },
      );
    }
    case 502:
    case 503:
    case 504:
      return new CtError(status, 'ServiceUnavailable', 'Service unavailable (injected).');
    default:
      return new CtError(status, 'General', `Injected failure ${status}.`);
  }
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new CtError(400, 'InvalidJsonInput', 'Request body does not contain valid JSON.');
  }
}

function safeEqual(a: string, b: string) {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
