import {
  accessToken,
  clientCredentialsRequest,
  issuedTokenOf,
  type IssuedToken,
} from '@commerce-coordinator/plugin-sdk';
import { z } from 'zod';
import type { LegacyEcommerceConfig } from './config.js';

/**
 * The legacy ecommerce client: a JWT from the LMS's OAuth2 provider (client credentials, cached until
 * shortly before it expires), then `GET /api/v2/orders/` with `Authorization: JWT <token>`, as CC's
 * EcommerceAPIClient (an edx-rest-api-client OAuthAPIClient) does.
 *
 * `LegacyEcommerceUnavailableError` for what may pass (5xx, 408, 429, timeouts, network errors,
 * refused credentials); `LegacyEcommerceRejectedError` for a 4xx about the request itself.
 */

export class LegacyEcommerceUnavailableError extends Error {
  override readonly name = 'LegacyEcommerceUnavailableError';
}

export class LegacyEcommerceRejectedError extends Error {
  override readonly name = 'LegacyEcommerceRejectedError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

const lineSchema = z.object({
  title: z.string(),
  quantity: z.number().int().nullable().optional(),
  description: z.string().nullable().optional(),
  status: z.string().nullable().optional(),
  line_price_excl_tax: z.string(),
  unit_price_excl_tax: z.string().nullable().optional(),
  product: z
    .object({
      product_class: z.string().nullable().optional(),
      attribute_values: z
        .array(z.object({ code: z.string().optional(), name: z.string().optional(), value: z.unknown() }))
        .nullable()
        .optional(),
    })
    .nullable()
    .optional(),
});

const orderSchema = z.object({
  number: z.string(),
  date_placed: z.string(),
  status: z.string().nullable().optional(),
  currency: z.string().nullable().optional(),
  total_excl_tax: z.string(),
  discount: z.string().nullable().optional(),
  payment_processor: z.string().nullable().optional(),
  user: z.object({ username: z.string(), email: z.string().nullable().optional() }),
  lines: z.array(lineSchema),
});
export type LegacyOrderJson = z.infer<typeof orderSchema>;

const pageSchema = z.object({
  count: z.number().int(),
  next: z.string().nullable(),
  results: z.array(orderSchema),
});
export type LegacyOrderPage = z.infer<typeof pageSchema>;

async function readJson(res: Response): Promise<unknown> {
  const text = await res.text();
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text.slice(0, 200);
  }
}

const messageOf = (status: number, body: unknown) =>
  body && typeof body === 'object' && typeof (body as { detail?: unknown }).detail === 'string'
    ? (body as { detail: string }).detail
    : `legacy ecommerce answered ${status}`;

export class LegacyEcommerceClient {
  private readonly token = accessToken(() => this.issueToken());

  constructor(private readonly config: LegacyEcommerceConfig) {}

  private async fetchOnce(url: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, {
        ...init,
        signal: AbortSignal.timeout(this.config.LEGACY_ECOMMERCE_TIMEOUT_MS),
      });
    } catch (error) {
      const reason =
        (error as Error).name === 'TimeoutError'
          ? `timed out after ${this.config.LEGACY_ECOMMERCE_TIMEOUT_MS}ms`
          : `failed: ${(error as Error).message}`;
      throw new LegacyEcommerceUnavailableError(`${init.method ?? 'GET'} ${new URL(url).pathname} ${reason}`);
    }
  }

  private async issueToken(): Promise<IssuedToken> {
    const res = await this.fetchOnce(
      `${this.config.LEGACY_ECOMMERCE_OAUTH_URL}/oauth2/access_token`,
      clientCredentialsRequest({
        clientId: this.config.LEGACY_ECOMMERCE_CLIENT_ID,
        clientSecret: this.config.LEGACY_ECOMMERCE_CLIENT_SECRET,
      }),
    );
    const body = await readJson(res);
    if (!res.ok)
      throw new LegacyEcommerceUnavailableError(
        `the OAuth provider refused a token for LEGACY_ECOMMERCE_CLIENT_ID (${res.status})`,
      );
    const token = issuedTokenOf(body);
    if (!token) throw new LegacyEcommerceUnavailableError('unexpected token answer from the OAuth provider');
    return token;
  }

  /** One page of a learner's orders, newest first; pages start at 1. */
  async ordersPage(username: string, page: number, pageSize: number): Promise<LegacyOrderPage> {
    return this.orders(new URLSearchParams({ username, page: String(page), page_size: String(pageSize) }));
  }

  /**
   * Whether ecommerce answers the Coordinator's service user: one order of its own (no username), the
   * cheapest authenticated read. For /readyz.
   */
  async check(): Promise<void> {
    await this.orders(new URLSearchParams({ page_size: '1' }));
  }

  /**
   * `POST /api/iap/v1/ios/refund/` with an Apple notification's body exactly as Apple sent it: legacy
   * ecommerce verifies Apple's signature itself, so not a byte may change (CC's `refund_for_ios`).
   * Answers ecommerce's status.
   */
  async forwardIosRefund(body: string): Promise<number> {
    const path = '/api/iap/v1/ios/refund/';
    for (let attempt = 1; ; attempt++) {
      const res = await this.fetchOnce(`${this.config.LEGACY_ECOMMERCE_URL}${path}`, {
        method: 'POST',
        headers: {
          authorization: `JWT ${await this.token.get()}`,
          'content-type': 'application/json',
          accept: 'application/json',
        },
        body,
      });
      const answer = await readJson(res);
      if (res.status === 401 && attempt === 1) {
        this.token.invalidate();
        continue;
      }
      if (res.status >= 500 || [401, 403, 408, 429].includes(res.status))
        throw new LegacyEcommerceUnavailableError(
          `POST ${path}: legacy ecommerce answered ${res.status} (${messageOf(res.status, answer)})`,
        );
      if (!res.ok) throw new LegacyEcommerceRejectedError(messageOf(res.status, answer), res.status);
      return res.status;
    }
  }

  private async orders(query: URLSearchParams): Promise<LegacyOrderPage> {
    const url = `${this.config.LEGACY_ECOMMERCE_URL}/api/v2/orders/?${query}`;
    for (let attempt = 1; ; attempt++) {
      const res = await this.fetchOnce(url, {
        headers: { authorization: `JWT ${await this.token.get()}`, accept: 'application/json' },
      });
      const body = await readJson(res);
      if (res.status === 401 && attempt === 1) {
        this.token.invalidate();
        continue;
      }
      if (res.status >= 500 || [401, 403, 408, 429].includes(res.status))
        throw new LegacyEcommerceUnavailableError(
          `GET /api/v2/orders/: legacy ecommerce answered ${res.status} (${messageOf(res.status, body)})`,
        );
      if (!res.ok) throw new LegacyEcommerceRejectedError(messageOf(res.status, body), res.status);
      const parsed = pageSchema.safeParse(body);
      if (!parsed.success)
        throw new LegacyEcommerceUnavailableError(
          `unexpected orders page from legacy ecommerce: ${parsed.error.message}`,
        );
      return parsed.data;
    }
  }
}
