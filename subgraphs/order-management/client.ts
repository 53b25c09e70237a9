import {
  createApiBuilderFromCtpClient,
  type CustomerUpdateAction,
  type OrderUpdateAction,
  type PaymentUpdateAction,
  type QueryParam,
} from '@commercetools/platform-sdk';
import { ClientBuilder } from '@commercetools/ts-client';
import { DomainError, ErrorCode } from '@commerce-coordinator/plugin-sdk';
import { readOrderManagementConfig, type OrderManagementConfig } from './config.js';

/**
 * The order-management Plugin's one Service client: commercetools' official TypeScript SDK
 * (`@commercetools/platform-sdk` over `@commercetools/ts-client`), whose client-credentials middleware
 * keeps the token (refreshed on expiry or a 401), and updates with optimistic concurrency — a 409
 * `ConcurrentModification` re-reads the resource and re-plans the update, a few times.
 */

// The subset of commercetools' resources the Plugin reads.
export interface Reference<T = unknown> {
  typeId: string;
  id: string;
  obj?: T;
}
export interface Money {
  centAmount: number;
  currencyCode: string;
}
export interface CustomFields {
  type: Reference;
  fields: Record<string, unknown>;
}
export interface CtState {
  id: string;
  key: string;
}
export interface CtLineItem {
  id: string;
  name: Record<string, string>;
  variant: { sku?: string; attributes?: Array<{ name: string; value: unknown }> };
  quantity: number;
  totalPrice: Money;
  state: Array<{ quantity: number; state: Reference<CtState> }>;
  custom?: CustomFields;
}
export interface CtReturnItem {
  id: string;
  lineItemId?: string;
  quantity: number;
  paymentState: 'NonRefundable' | 'Initial' | 'Refunded' | 'NotRefunded';
  shipmentState: string;
  custom?: CustomFields;
  createdAt: string;
}
export interface CtReturnInfo {
  items: CtReturnItem[];
  returnTrackingId?: string;
  returnDate?: string;
}
export interface CtTransaction {
  id: string;
  timestamp?: string;
  type: string;
  amount: Money;
  interactionId?: string;
  state: 'Initial' | 'Pending' | 'Success' | 'Failure';
}
export interface CtPayment {
  id: string;
  version: number;
  interfaceId?: string;
  amountPlanned: Money;
  paymentMethodInfo: { paymentInterface?: string };
  paymentStatus: { interfaceCode?: string };
  transactions: CtTransaction[];
}
export interface CtOrder {
  id: string;
  version: number;
  createdAt: string;
  orderNumber?: string;
  customerId?: string;
  customerEmail?: string;
  orderState: 'Open' | 'Confirmed' | 'Complete' | 'Cancelled';
  state?: Reference<CtState>;
  totalPrice: Money;
  lineItems: CtLineItem[];
  paymentInfo?: { payments: Array<Reference<CtPayment>> };
  returnInfo?: CtReturnInfo[];
  custom?: CustomFields;
}
export interface CtCustomer {
  id: string;
  version: number;
  email: string;
  firstName?: string;
  lastName?: string;
  custom?: CustomFields;
}
export type UpdateAction = { action: string } & Record<string, unknown>;

type Kind = 'orders' | 'payments' | 'customers';
type ResourceOf<K extends Kind> = K extends 'orders'
  ? CtOrder
  : K extends 'payments'
    ? CtPayment
    : CtCustomer;

/** Every order is read with its States and payments, so one call gives the whole picture. */
export const ORDER_EXPAND = ['state', 'lineItems[*].state[*].state', 'paymentInfo.payments[*]'];
const EXPAND: Record<Kind, string[]> = { orders: ORDER_EXPAND, payments: [], customers: [] };

/** A non-2xx answer from the Service, with commercetools' error body. */
export class OrderManagementError extends Error {
  override readonly name = 'OrderManagementError';
  constructor(
    readonly status: number,
    readonly body:
      { message?: string; errors?: Array<{ code?: string; currentVersion?: number }> } | undefined,
    what: string,
  ) {
    super(`order management answered ${status} to ${what}: ${body?.message ?? 'no message'}`);
  }
  get code(): string | undefined {
    return this.body?.errors?.[0]?.code;
  }
  get isConflict(): boolean {
    return this.status === 409 && this.code === 'ConcurrentModification';
  }
}

export interface ClientOptions {
  /** Attempts of an update that keeps meeting concurrent modifications. @default 6 */
  maxUpdateAttempts?: number;
  /** Per-request timeout. @default 10_000 */
  timeoutMs?: number;
}

export type OrderManagementClient = ReturnType<typeof createOrderManagementClient>;

/** What the SDK rejects with: an HttpError-like object, or `{ body: null, error }` on a network failure. */
interface SdkError {
  statusCode?: number;
  message?: string;
  body?: unknown;
  error?: unknown;
}

/** `what` (a method and path) short enough for a message, whatever id it names. */
const briefly = (what: string) => (what.length > 80 ? `${what.slice(0, 80)}…` : what);

/**
 * The Service's answers that refuse a request for its size: its URL (414) or its request line and
 * headers (431, Node's answer to a request line over its 16 KB), which grow with the ids and values a
 * caller gave. Retrying the same request cannot help, so these are the caller's input being too long:
 * BAD_USER_INPUT (not SERVICE_UNAVAILABLE, which every webhook sender and flow would retry for ever;
 * not a bare error, which would be an INTERNAL_SERVER_ERROR for what the caller can fix).
 */
const TOO_LONG = new Set([414, 431]);

/**
 * The SDK's rejection as an OrderManagementError (the Service answered), a BAD_USER_INPUT DomainError
 * (the Service refused the request as too long) or a plain Error (it did not answer).
 */
function serviceError(failure: unknown, what: string): Error {
  let error = failure as SdkError | undefined;
  // A network failure is wrapped: `{ body: null, error: NetworkError }`.
  if (error && error.statusCode === undefined && error.error && typeof error.error === 'object')
    error = error.error as SdkError;
  const status = error?.statusCode;
  if (typeof status === 'number' && status > 0) {
    if (TOO_LONG.has(status))
      return new DomainError(
        ErrorCode.BAD_USER_INPUT,
        `The order management Service refused ${briefly(what)} as too long (${status}): a value of the request is too long for it`,
        { serviceStatus: status },
      );
    const body =
      error?.body && typeof error.body === 'object'
        ? (error.body as OrderManagementError['body'])
        : // the auth middleware's errors carry the body's parts, not the body
          {
            message: error?.message,
            ...(Array.isArray(error?.error) ? { errors: error.error as Array<{ code?: string }> } : {}),
          };
    return new OrderManagementError(status, body, what);
  }
  // No answer: a timeout or a network failure; transient.
  const cause = error?.body instanceof Error ? error.body : failure;
  return new Error(`order management did not answer ${what}: ${error?.message ?? String(failure)}`, {
    cause,
  });
}

export function createOrderManagementClient(config: OrderManagementConfig, options: ClientOptions = {}) {
  const maxUpdateAttempts = options.maxUpdateAttempts ?? 6;
  const timeoutMs = options.timeoutMs ?? 10_000;
  // The SDK times out API calls itself (`timeout`); its token request gets the same limit from its fetch.
  const timedFetch = (input: string | URL | Request, init: RequestInit = {}) =>
    fetch(input, { ...init, signal: init.signal ?? AbortSignal.timeout(timeoutMs) });
  // The SDK parses every answer as JSON and, when it cannot, rejects without the status, as if the
  // Service had not answered. A refusal for size rarely is JSON (Node's 431 has no body, a proxy's 414
  // is a page), so it is given a commercetools error body for its status and stays the answer it was.
  // (Other answers that are not JSON are left as they were: a page of a server that is not the Service.)
  const apiFetch = async (input: string | URL | Request, init?: RequestInit) => {
    const response = await fetch(input, init);
    if (!TOO_LONG.has(response.status)) return response;
    const text = await response.text();
    try {
      JSON.parse(text);
      return new Response(text, response);
    } catch {
      const message = `${response.status} ${response.statusText || 'error'} (the answer is not JSON)`;
      return new Response(JSON.stringify({ statusCode: response.status, message }), {
        status: response.status,
        statusText: response.statusText,
        headers: { 'content-type': 'application/json' },
      });
    }
  };
  // The SDK keeps the client-credentials token (and gets a new one on a 401, then retries once).
  const ctpClient = new ClientBuilder()
    .withClientCredentialsFlow({
      host: config.authUrl,
      projectKey: config.projectKey,
      credentials: { clientId: config.clientId, clientSecret: config.clientSecret },
      scopes: config.scope.split(/\s+/).filter(Boolean),
      httpClient: timedFetch,
    })
    .withHttpMiddleware({ host: config.apiUrl, httpClient: apiFetch, timeout: timeoutMs })
    .build();
  const api = createApiBuilderFromCtpClient(ctpClient).withProjectKey({ projectKey: config.projectKey });
  const resources = (kind: Kind) =>
    kind === 'orders' ? api.orders() : kind === 'payments' ? api.payments() : api.customers();

  async function execute<T>(what: string, request: { execute(): Promise<{ body: unknown }> }): Promise<T> {
    try {
      return (await request.execute()).body as T;
    } catch (error) {
      throw serviceError(error, what);
    }
  }

  /** A resource by id, or undefined when the Service does not know it. */
  async function get<K extends Kind>(kind: K, id: string): Promise<ResourceOf<K> | undefined> {
    // `GET /orders/` with no id is the query endpoint, answering a page of orders: no resource has it.
    if (!id) return undefined;
    try {
      return await execute<ResourceOf<K>>(
        `GET /${kind}/${encodeURIComponent(id)}`,
        resources(kind)
          .withId({ ID: id })
          .get({ queryArgs: { expand: EXPAND[kind] } }),
      );
    } catch (error) {
      if (error instanceof OrderManagementError && error.status === 404) return undefined;
      throw error;
    }
  }

  /**
   * Every resource matching `where` (a commercetools query predicate; values go in `variables`, used
   * as `:name`, so nothing is ever spliced into the predicate).
   */
  async function query<K extends Kind>(
    kind: K,
    where: string,
    variables: Record<string, string | number | ReadonlyArray<string | number>> = {},
    options: { sort?: string; limit?: number } = {},
  ): Promise<Array<ResourceOf<K>>> {
    const queryArgs: Record<string, QueryParam> = {
      where,
      limit: options.limit ?? 500,
      expand: EXPAND[kind],
      ...(options.sort ? { sort: options.sort } : {}),
    };
    for (const [name, value] of Object.entries(variables))
      queryArgs[`var.${name}`] = Array.isArray(value) ? value.map(String) : String(value);
    const page = await execute<{ results: Array<ResourceOf<K>> }>(
      `GET /${kind}`,
      resources(kind).get({ queryArgs }),
    );
    return page.results;
  }

  /** Applies `actions` at `version`; a stale version throws an OrderManagementError with isConflict. */
  async function update<K extends Kind>(
    kind: K,
    id: string,
    version: number,
    actions: readonly UpdateAction[],
    correlationId?: string,
  ): Promise<ResourceOf<K>> {
    // commercetools has no idempotency keys; the flow step's key travels as the correlation id so the
    // Service's logs tie each write to its step.
    const headers = correlationId ? { 'X-Correlation-ID': correlationId } : undefined;
    const what = `POST /${kind}/${encodeURIComponent(id)}`;
    const queryArgs = { expand: EXPAND[kind] };
    const byId = { ID: id };
    // The Plugin plans its actions as plain objects; the SDK's action unions describe the same JSON.
    switch (kind) {
      case 'orders':
        return execute(
          what,
          api
            .orders()
            .withId(byId)
            .post({
              queryArgs,
              headers,
              body: { version, actions: actions as unknown as OrderUpdateAction[] },
            }),
        );
      case 'payments':
        return execute(
          what,
          api
            .payments()
            .withId(byId)
            .post({
              queryArgs,
              headers,
              body: { version, actions: actions as unknown as PaymentUpdateAction[] },
            }),
        );
      default:
        return execute(
          what,
          api
            .customers()
            .withId(byId)
            .post({
              queryArgs,
              headers,
              body: { version, actions: actions as unknown as CustomerUpdateAction[] },
            }),
        );
    }
  }

  /**
   * Updates a resource whatever else changes it meanwhile: `plan` turns the current resource into
   * update actions (none: nothing to do, the resource is returned as it is); on a version conflict the
   * resource is read again and re-planned, so the plan always applies to what is there.
   */
  async function updateWithRetry<K extends Kind>(
    kind: K,
    id: string,
    plan: (current: ResourceOf<K>) => UpdateAction[],
    options: { current?: ResourceOf<K>; correlationId?: string } = {},
  ): Promise<ResourceOf<K>> {
    let current = options.current;
    for (let attempt = 1; ; attempt++) {
      current ??= await get(kind, id);
      if (!current)
        throw new OrderManagementError(404, { message: `${kind} ${id} not found` }, `GET /${kind}/${id}`);
      const actions = plan(current);
      if (!actions.length) return current;
      try {
        return await update(kind, id, current.version, actions, options.correlationId);
      } catch (error) {
        if (!(error instanceof OrderManagementError && error.isConflict) || attempt >= maxUpdateAttempts)
          throw error;
        current = undefined;
        // A little randomised backoff, so two writers that collided do not collide again.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
      }
    }
  }

  /** Orders by id, in as few calls as the Service's URL length allows (100 ids a call). */
  async function getOrders(ids: readonly string[]): Promise<CtOrder[]> {
    const unique = [...new Set(ids)].filter(Boolean);
    const chunks: string[][] = [];
    for (let i = 0; i < unique.length; i += 100) chunks.push(unique.slice(i, i + 100));
    const pages = await Promise.all(chunks.map((chunk) => query('orders', 'id in :ids', { ids: chunk })));
    return pages.flat();
  }

  /** Whether the Service answers this API client: one order, the cheapest authenticated read. For /readyz. */
  async function check(): Promise<void> {
    await execute('GET /orders', api.orders().get({ queryArgs: { limit: 1 } }));
  }

  return {
    // The SDK's request builders and their error mapping, for the Actions on carts, custom objects and
    // drafts (mobile.ts) and the catalogue reads (pricing.ts) that the helpers here do not cover.
    api,
    execute,
    get,
    query,
    update,
    updateWithRetry,
    getOrders,
    getOrder: (id: string) => get('orders', id),
    check,
  };
}

let shared: { key: string; client: OrderManagementClient } | undefined;

/** The client for the configured Service, built at first use and rebuilt when the configuration changes. */
export function orderManagementClient(): OrderManagementClient {
  const config = readOrderManagementConfig();
  const key = JSON.stringify(config);
  if (shared?.key !== key) shared = { key, client: createOrderManagementClient(config) };
  return shared.client;
}
