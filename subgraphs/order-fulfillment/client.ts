import { z } from 'zod';
import { orderFulfillmentApiConfig, type OrderFulfillmentApiConfig } from './config.js';

/**
 * The Order Fulfillment service's API as the reference's `OrderFulfillmentAPIClient` calls it:
 * `POST /api/fulfill-order/` and `POST /api/revoke-line/`, JSON, with `X-Edx-Api-Key`.
 *
 * Unlike the reference client (three in-client retries, then `None`, which its callers did not check),
 * a call either succeeds or throws: `OrderFulfillmentUnavailableError` for what may pass (5xx, 408,
 * 429, timeouts, refused credentials), which the flow step retries and then compensates;
 * `OrderFulfillmentRejectedError` for a 4xx about the request itself, with the service's message.
 */

export class OrderFulfillmentUnavailableError extends Error {
  override readonly name = 'OrderFulfillmentUnavailableError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export class OrderFulfillmentRejectedError extends Error {
  override readonly name = 'OrderFulfillmentRejectedError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** One line to fulfill: the reference's forwarding payload, `lob` and `edx_lms_username` included. */
export interface FulfillOrderPayload {
  order_id: string;
  order_number: string;
  line_item_id: string;
  item_quantity: number;
  fulfillment_type: 'enrollment' | 'entitlement';
  /** A course run key (enrollment) or a course UUID (entitlement). */
  course_id: string;
  course_mode: string;
  edx_lms_user_id: number;
  edx_lms_username: string;
  email_opt_in: boolean;
  provider_id: string | null;
  source_system: string;
  lob: string;
}

/** The reference's `OrderRevokeLineRequestSerializer`. */
export interface RevokeLinePayload {
  edx_lms_username: string;
  course_run_key: string;
  course_mode: string;
  entitlement_uuid?: string;
  lob: string;
}

const messageSchema = z.looseObject({ message: z.string().optional(), detail: z.string().optional() });

function messageOf(status: number, body: unknown): string {
  const parsed = messageSchema.safeParse(body);
  if (parsed.success && (parsed.data.detail ?? parsed.data.message))
    return (parsed.data.detail ?? parsed.data.message)!;
  if (body && typeof body === 'object')
    return Object.entries(body)
      .map(([field, value]) => `${field}: ${Array.isArray(value) ? value.join(' ') : JSON.stringify(value)}`)
      .join('; ');
  return `the Order Fulfillment service answered ${status}`;
}

export class OrderFulfillmentClient {
  constructor(private readonly config: OrderFulfillmentApiConfig) {}

  private async post(path: string, payload: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(`${this.config.ORDER_FULFILLMENT_URL}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          'x-edx-api-key': this.config.ORDER_FULFILLMENT_API_KEY,
        },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(this.config.ORDER_FULFILLMENT_TIMEOUT_MS),
      });
    } catch (error) {
      const reason =
        (error as Error).name === 'TimeoutError'
          ? `timed out after ${this.config.ORDER_FULFILLMENT_TIMEOUT_MS}ms`
          : `failed: ${(error as Error).message}`;
      throw new OrderFulfillmentUnavailableError(`POST ${path} ${reason}`);
    }
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // an HTML error page: kept as text
    }
    if (res.ok) return body;
    const message = `POST ${path}: ${messageOf(res.status, body)}`;
    if (res.status >= 500 || [401, 403, 408, 429].includes(res.status))
      throw new OrderFulfillmentUnavailableError(message, res.status);
    throw new OrderFulfillmentRejectedError(message, res.status);
  }

  fulfillOrder(payload: FulfillOrderPayload): Promise<unknown> {
    return this.post('/api/fulfill-order/', payload);
  }

  revokeLine(payload: RevokeLinePayload): Promise<unknown> {
    return this.post('/api/revoke-line/', payload);
  }
}

let cached: { config: OrderFulfillmentApiConfig; client: OrderFulfillmentClient } | undefined;

/** The client for the current configuration (re-read, so a changed environment takes effect). */
export function orderFulfillmentClient(): OrderFulfillmentClient {
  const config = orderFulfillmentApiConfig();
  if (
    !cached ||
    cached.config.ORDER_FULFILLMENT_URL !== config.ORDER_FULFILLMENT_URL ||
    cached.config.ORDER_FULFILLMENT_API_KEY !== config.ORDER_FULFILLMENT_API_KEY ||
    cached.config.ORDER_FULFILLMENT_TIMEOUT_MS !== config.ORDER_FULFILLMENT_TIMEOUT_MS
  )
    cached = { config, client: new OrderFulfillmentClient(config) };
  return cached.client;
}
