import {
  accessToken,
  clientCredentialsRequest,
  issuedTokenOf,
  type IssuedToken,
} from '@commerce-coordinator/plugin-sdk';
import { z } from 'zod';
import type { LmsConfig } from './config.js';

/**
 * The LMS (Open edX, edx-platform) REST client: OAuth2 client credentials for a JWT access token (as
 * edx-rest-api-client's OAuthAPIClient does, cached until shortly before it expires), then the
 * enrollment, entitlement and account APIs with `Authorization: JWT <token>`.
 *
 * Errors: `LmsUnavailableError` for what may pass (5xx, 408, 429, timeouts, network errors, and
 * credentials the LMS refuses: an operator can fix those and the step is retried);
 * `LmsRejectedError` for a 4xx answer about the request itself (unknown user or course, a mode not
 * on sale, invalid input), with the LMS's message.
 */

export class LmsUnavailableError extends Error {
  override readonly name = 'LmsUnavailableError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export class LmsRejectedError extends Error {
  override readonly name = 'LmsRejectedError';
  constructor(
    message: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(message);
  }
}

export interface EnrollmentAttribute {
  namespace: string;
  name: string;
  value: string;
}

const enrollmentSchema = z.object({
  created: z.string().nullable(),
  mode: z.string(),
  is_active: z.boolean(),
  course_details: z.object({ course_id: z.string() }),
  user: z.string(),
});
export type LmsEnrollment = z.infer<typeof enrollmentSchema>;

const entitlementSchema = z.object({
  uuid: z.string(),
  user: z.string(),
  course_uuid: z.string(),
  mode: z.string(),
  expired_at: z.string().nullable(),
  order_number: z.string().nullable(),
});
export type LmsEntitlement = z.infer<typeof entitlementSchema>;

const entitlementPageSchema = z.object({ next: z.string().nullable(), results: z.array(entitlementSchema) });

const accountSchema = z.object({
  id: z.number().int(),
  username: z.string(),
  email: z.string().nullable().optional(),
  name: z.string().nullable().optional(),
  is_active: z.boolean(),
  date_joined: z.string().nullable().optional(),
});
export type LmsAccount = z.infer<typeof accountSchema>;

const orderEnrollmentsSchema = z.object({
  results: z.array(
    z.object({
      order_id: z.string(),
      enrollments: z.array(
        z.object({
          user: z.string(),
          course_id: z.string(),
          mode: z.string(),
          is_active: z.boolean(),
          created: z.string().nullable(),
          enrollment_attributes: z.array(
            z.object({ namespace: z.string(), name: z.string(), value: z.string() }),
          ),
        }),
      ),
    }),
  ),
});
export type OrderEnrollment = z.infer<
  typeof orderEnrollmentsSchema
>['results'][number]['enrollments'][number];

/** Order ids per order-enrollments call (the LMS side caps it). */
const ORDER_BATCH = 100;
/** A token is renewed this long before it expires. */

interface Answer {
  status: number;
  body: unknown;
}

/** The message of a DRF / edx-platform error body: `message`, `detail`, or the field errors. */
function errorMessage(status: number, body: unknown): string {
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    if (typeof b.message === 'string') return b.message;
    if (typeof b.detail === 'string') return b.detail;
    if (typeof b.error === 'string') return b.error;
    const fields = Object.entries(b)
      .map(([field, value]) => `${field}: ${Array.isArray(value) ? value.join(' ') : JSON.stringify(value)}`)
      .join('; ');
    if (fields) return fields;
  }
  return `the LMS answered ${status}`;
}

function parse<T extends z.ZodType>(schema: T, body: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(body);
  // An answer we cannot read is the LMS misbehaving, not the request being wrong.
  if (!result.success)
    throw new LmsUnavailableError(`unexpected ${what} from the LMS: ${result.error.message}`);
  return result.data;
}

export class LmsClient {
  private readonly token = accessToken(() => this.issueToken());

  constructor(private readonly config: LmsConfig) {}

  private async fetchOnce(path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(`${this.config.LMS_URL}${path}`, {
        ...init,
        signal: AbortSignal.timeout(this.config.LMS_TIMEOUT_MS),
      });
    } catch (error) {
      const reason =
        (error as Error).name === 'TimeoutError'
          ? `timed out after ${this.config.LMS_TIMEOUT_MS}ms`
          : `failed: ${(error as Error).message}`;
      throw new LmsUnavailableError(`${init.method ?? 'GET'} ${path} ${reason}`);
    }
  }

  private async issueToken(): Promise<IssuedToken> {
    const res = await this.fetchOnce(
      '/oauth2/access_token',
      clientCredentialsRequest({
        clientId: this.config.LMS_CLIENT_ID,
        clientSecret: this.config.LMS_CLIENT_SECRET,
      }),
    );
    const body = await readJson(res);
    if (!res.ok)
      throw new LmsUnavailableError(
        `the LMS refused an access token for LMS_CLIENT_ID (${res.status} ${errorMessage(res.status, body)})`,
        res.status,
      );
    const token = issuedTokenOf(body);
    if (!token) throw new LmsUnavailableError('unexpected token answer from the LMS');
    return token;
  }

  /**
   * Whether the LMS answers the Coordinator's OAuth2 client: a new access token, the one call every
   * other needs first (the cached token says nothing about now). For /readyz.
   */
  async check(): Promise<void> {
    await this.issueToken();
  }

  /** One API call; a 401 renews the token once (it may have been revoked or expired early). */
  private async call(method: string, path: string, body?: unknown): Promise<Answer> {
    for (let attempt = 1; ; attempt++) {
      const token = await this.token.get();
      const res = await this.fetchOnce(path, {
        method,
        headers: {
          authorization: `JWT ${token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const answer = { status: res.status, body: await readJson(res) };
      if (res.status === 401 && attempt === 1) {
        this.token.invalidate();
        continue;
      }
      if (res.status >= 500 || [401, 403, 408, 429].includes(res.status))
        throw new LmsUnavailableError(
          `${method} ${path}: the LMS answered ${res.status} (${errorMessage(res.status, answer.body)})`,
          res.status,
        );
      return answer;
    }
  }

  private async expect(
    method: string,
    path: string,
    body?: unknown,
    ok: number[] = [200, 201],
  ): Promise<unknown> {
    const answer = await this.call(method, path, body);
    if (!ok.includes(answer.status))
      throw new LmsRejectedError(errorMessage(answer.status, answer.body), answer.status, answer.body);
    return answer.body;
  }

  /**
   * Enrolls (or updates, or with `isActive: false` unenrolls) a user in a course run; the LMS makes it
   * idempotent on (user, course run).
   */
  async enroll(input: {
    username: string;
    courseRunKey: string;
    mode?: string;
    isActive: boolean;
    attributes?: EnrollmentAttribute[];
  }): Promise<LmsEnrollment> {
    const body = await this.expect('POST', '/api/enrollment/v1/enrollment', {
      user: input.username,
      ...(input.mode ? { mode: input.mode } : {}),
      is_active: input.isActive,
      course_details: { course_id: input.courseRunKey },
      ...(input.attributes ? { enrollment_attributes: input.attributes } : {}),
    });
    return parse(enrollmentSchema, body, 'enrollment');
  }

  async getEnrollment(username: string, courseRunKey: string): Promise<LmsEnrollment | null> {
    const path = `/api/enrollment/v1/enrollment/${encodeURIComponent(username)},${encodeURIComponent(courseRunKey)}`;
    const body = await this.expect('GET', path);
    return body === undefined || body === null ? null : parse(enrollmentSchema, body, 'enrollment');
  }

  /** Every entitlement of a user, across pages. */
  async listEntitlements(username: string): Promise<LmsEntitlement[]> {
    const found: LmsEntitlement[] = [];
    let path: string | null =
      `/api/entitlements/v1/entitlements/?user=${encodeURIComponent(username)}&page_size=100`;
    while (path) {
      const page: z.infer<typeof entitlementPageSchema> = parse(
        entitlementPageSchema,
        await this.expect('GET', path),
        'entitlement page',
      );
      found.push(...page.results);
      const next = page.next ? new URL(page.next) : null;
      path = next ? next.pathname + next.search : null;
    }
    return found;
  }

  async createEntitlement(input: {
    username: string;
    courseUuid: string;
    mode: string;
    orderNumber: string;
  }): Promise<LmsEntitlement> {
    const body = await this.expect('POST', '/api/entitlements/v1/entitlements/', {
      user: input.username,
      course_uuid: input.courseUuid,
      mode: input.mode,
      order_number: input.orderNumber,
      email_opt_in: false,
    });
    return parse(entitlementSchema, body, 'entitlement');
  }

  /** Expires (revokes) an entitlement: edx-platform's DELETE, which also unenrolls its course run. */
  async expireEntitlement(uuid: string): Promise<void> {
    await this.expect(
      'DELETE',
      `/api/entitlements/v1/entitlements/${encodeURIComponent(uuid)}/`,
      undefined,
      [200, 204],
    );
  }

  /** Deactivates an account; the LMS answers the same for an account already deactivated. */
  async deactivateAccount(username: string): Promise<LmsAccount> {
    const body = await this.expect(
      'POST',
      `/api/user/v1/accounts/${encodeURIComponent(username)}/deactivate/`,
    );
    return parse(accountSchema, body, 'account');
  }

  /** The account by username or LMS user id; null when the LMS knows no such user. */
  async findAccount(by: { username: string } | { lmsUserId: number }): Promise<LmsAccount | null> {
    const query =
      'username' in by ? `username=${encodeURIComponent(by.username)}` : `lms_user_id=${by.lmsUserId}`;
    const answer = await this.call('GET', `/api/user/v1/accounts?${query}`);
    if (answer.status === 404) return null;
    if (answer.status !== 200)
      throw new LmsRejectedError(errorMessage(answer.status, answer.body), answer.status, answer.body);
    return parse(z.array(accountSchema), answer.body, 'account list')[0] ?? null;
  }

  /**
   * The enrollments made for each order (by their `order.order_id` attribute), one call per 100
   * orders. This is the Coordinator's own LMS endpoint, not an edx-platform one.
   */
  async enrollmentsByOrder(orderIds: readonly string[]): Promise<Map<string, OrderEnrollment[]>> {
    const byOrder = new Map<string, OrderEnrollment[]>();
    for (let i = 0; i < orderIds.length; i += ORDER_BATCH) {
      const chunk = orderIds.slice(i, i + ORDER_BATCH);
      const body = await this.expect(
        'GET',
        `/api/coordinator/v1/order-enrollments/?order_ids=${chunk.map(encodeURIComponent).join(',')}`,
      );
      for (const result of parse(orderEnrollmentsSchema, body, 'order enrollments').results)
        byOrder.set(result.order_id, result.enrollments);
    }
    return byOrder;
  }
}

/** The JSON body, undefined when empty; a non-JSON body (an HTML error page) as its text. */
async function readJson(res: Response): Promise<unknown> {
  const text = await res.text();
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text.slice(0, 200);
  }
}
