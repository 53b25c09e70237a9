import { accessToken } from '../../gateway/sdk/access-token.js';
import { readOrderManagementConfig, type OrderManagementConfig } from './config.js';

/**
 * The order-management Plugin's one Service client: commercetools' HTTP API with a client-credentials
 * token (cached, refreshed on expiry or a 401), and updates with optimistic concurrency — a 409
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

export function createOrderManagementClient(config: OrderManagementConfig, options: ClientOptions = {}) {
  const maxUpdateAttempts = options.maxUpdateAttempts ?? 6;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const token = accessToken(async () => {
    const res = await fetch(`${config.authUrl}/oauth/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${config.clientId}:${config.clientSecret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: config.scope }).toString(),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await res.json().catch(() => undefined)) as
      { access_token?: string; expires_in?: number; message?: string } | undefined;
    if (!res.ok || !body?.access_token) throw new OrderManagementError(res.status, body, 'POST /oauth/token');
    return { value: body.access_token, expiresInSeconds: body.expires_in ?? 3600 };
  });

  async function request<T>(
    method: 'GET' | 'POST',
    path: string,
    init: { query?: URLSearchParams; body?: unknown; correlationId?: string } = {},
  ): Promise<T> {
    const url = `${config.apiUrl}/${encodeURIComponent(config.projectKey)}${path}${init.query?.size ? `?${init.query}` : ''}`;
    const what = `${method} ${path}`;
    for (let attempt = 1; ; attempt++) {
      const res = await fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${await token.get()}`,
          accept: 'application/json',
          ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
          // commercetools has no idempotency keys; the flow step's key travels as the correlation id
          // so the Service's logs tie each write to its step.
          ...(init.correlationId ? { 'x-correlation-id': init.correlationId } : {}),
        },
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const body = (await res.json().catch(() => undefined)) as unknown;
      if (res.ok) return body as T;
      // An expired or revoked token: get a new one and try once more.
      if (res.status === 401 && attempt === 1) {
        token.invalidate();
        continue;
      }
      throw new OrderManagementError(res.status, body as OrderManagementError['body'], what);
    }
  }

  const withExpand = (kind: Kind, query = new URLSearchParams()) => {
    for (const path of EXPAND[kind]) query.append('expand', path);
    return query;
  };

  /** A resource by id, or undefined when the Service does not know it. */
  async function get<K extends Kind>(kind: K, id: string): Promise<ResourceOf<K> | undefined> {
    try {
      return await request<ResourceOf<K>>('GET', `/${kind}/${encodeURIComponent(id)}`, {
        query: withExpand(kind),
      });
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
    const params = withExpand(kind, new URLSearchParams({ where, limit: String(options.limit ?? 500) }));
    if (options.sort) params.append('sort', options.sort);
    for (const [name, value] of Object.entries(variables)) {
      for (const v of Array.isArray(value) ? value : [value]) params.append(`var.${name}`, String(v));
    }
    const page = await request<{ results: Array<ResourceOf<K>> }>('GET', `/${kind}`, { query: params });
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
    return request<ResourceOf<K>>('POST', `/${kind}/${encodeURIComponent(id)}`, {
      query: withExpand(kind),
      body: { version, actions },
      correlationId,
    });
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
    const unique = [...new Set(ids)];
    const chunks: string[][] = [];
    for (let i = 0; i < unique.length; i += 100) chunks.push(unique.slice(i, i + 100));
    const pages = await Promise.all(chunks.map((chunk) => query('orders', 'id in :ids', { ids: chunk })));
    return pages.flat();
  }

  return { get, query, update, updateWithRetry, getOrders, getOrder: (id: string) => get('orders', id) };
}

let shared: { key: string; client: OrderManagementClient } | undefined;

/** The client for the configured Service, built at first use and rebuilt when the configuration changes. */
export function orderManagementClient(): OrderManagementClient {
  const config = readOrderManagementConfig();
  const key = JSON.stringify(config);
  if (shared?.key !== key) shared = { key, client: createOrderManagementClient(config) };
  return shared.client;
}
