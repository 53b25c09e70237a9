import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { createClient } from 'redis';
import { z } from 'zod';
import { createAdmin, djangoErrorAnswer, readRequestBody, type Admin } from '../admin.js';
import {
  REFUND_REQUESTED_EVENT_TYPE,
  streamFields,
  type EventMetadata,
} from '../../schema/contracts/lms-refund-event.js';

/**
 * A stand-in for the parts of the Open edX LMS (edx-platform) the Coordinator uses, over real HTTP
 * with the same paths, payloads, status codes and error bodies:
 *
 * - OAuth2 client credentials, `POST /oauth2/access_token` with `token_type=jwt` → a JWT access token
 *   (HS256, devstack's `lms-secret` / audience `lms-key` by default), sent back as `Authorization: JWT …`;
 * - enrollments `POST /api/enrollment/v1/enrollment` (enroll, update, unenroll with `is_active: false`;
 *   enrollment attributes stored) and `GET /api/enrollment/v1/enrollment/{username},{course_id}`;
 * - entitlements `POST|GET /api/entitlements/v1/entitlements/`, `GET|DELETE …/{uuid}/` (DELETE expires
 *   the entitlement, as edx-platform's `perform_destroy` does);
 * - accounts `GET /api/user/v1/accounts?username=|lms_user_id=|email=` and
 *   `POST /api/user/v1/accounts/{username}/deactivate/`;
 * - an Open edX event producer on a Redis Stream, writing entries as `edx-event-bus-redis` does.
 *
 * One endpoint is NOT edx-platform's: `GET /api/coordinator/v1/order-enrollments/?order_ids=a,b`
 * lists the enrollments whose `order.order_id` enrollment attribute names one of the orders, so that a
 * page of orders costs one LMS call. A real deployment needs that small read API added to the LMS
 * (edx-platform has enrollment attributes but no query by attribute).
 *
 * Errors follow Django REST framework: `{ "detail": … }` for authentication (401, with
 * `WWW-Authenticate: JWT realm="api"`) and permission (403) errors, field errors as `{ field: [msg] }`,
 * and the enrollment API's own `{ "message": … }` bodies. Injected 5xx answers are HTML, as Django's are.
 */

export interface LmsUser {
  id: number;
  username: string;
  email: string;
  name: string;
  isStaff: boolean;
  isActive: boolean;
  dateJoined: string;
  /** Set by the deactivation endpoint (edx-platform gives the user an unusable password). */
  deactivated: boolean;
}

export interface LmsCourse {
  courseId: string;
  name: string;
  /** Course mode slugs on sale, e.g. `['audit', 'verified']`. */
  modes: string[];
}

export interface LmsOAuthClient {
  clientId: string;
  clientSecret: string;
  /** The (service) user the client's tokens act as. */
  username: string;
}

export interface EnrollmentAttribute {
  namespace: string;
  name: string;
  value: string;
}

export interface LmsEnrollment {
  username: string;
  courseId: string;
  mode: string;
  isActive: boolean;
  created: string;
  attributes: EnrollmentAttribute[];
}

export interface LmsEntitlement {
  uuid: string;
  username: string;
  courseUuid: string;
  mode: string;
  orderNumber: string | null;
  created: string;
  modified: string;
  expiredAt: string | null;
}

export interface LmsSeed {
  users?: Array<Partial<LmsUser> & { id: number; username: string }>;
  courses?: Array<Partial<LmsCourse> & { courseId: string }>;
  clients?: LmsOAuthClient[];
  enrollments?: Array<Partial<LmsEnrollment> & { username: string; courseId: string }>;
}

const SLUG = z.string().min(1);

/** `POST /_admin/seed`: learners, courses, OAuth clients and enrollments, as edx-platform stores them. */
export const LmsSeedSchema = z
  .object({
    users: z
      .array(
        z
          .object({
            id: z.number().int().positive(),
            username: SLUG,
            email: z.string().min(1).optional(),
            name: z.string().optional(),
            isStaff: z.boolean().optional(),
            isActive: z.boolean().optional(),
            dateJoined: z.iso.datetime().optional(),
          })
          .strict(),
      )
      .optional(),
    courses: z
      .array(
        z.object({ courseId: SLUG, name: z.string().optional(), modes: z.array(SLUG).optional() }).strict(),
      )
      .optional(),
    clients: z.array(z.object({ clientId: SLUG, clientSecret: SLUG, username: SLUG }).strict()).optional(),
    enrollments: z
      .array(
        z
          .object({
            username: SLUG,
            courseId: SLUG,
            mode: SLUG.optional(),
            isActive: z.boolean().optional(),
            attributes: z
              .array(z.object({ namespace: SLUG, name: SLUG, value: z.string() }).strict())
              .optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict() satisfies z.ZodType<LmsSeed>;

export interface RefundRequestedInput {
  orderId: string;
  lineItemIds: string[];
  username: string;
  /** @default the seeded user's id */
  lmsUserId?: number;
  reason?: string | null;
  /** The event's id (OEP-41 `metadata.id`). @default a new UUID */
  eventId?: string;
  /** @default now */
  time?: Date;
}

export interface StartLmsOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** The event bus (edx-event-bus-redis's `EVENT_BUS_REDIS_CONNECTION_URL`); needed by `emitRefundRequested`. */
  redisUrl?: string;
  /** The stream (the full topic) refund requests are added to. @default 'commerce-order-lifecycle' */
  eventStream?: string;
  /** HS256 key of the JWTs (edx-platform's `JWT_AUTH.JWT_SECRET_KEY`). @default 'lms-secret' */
  jwtSecret?: string;
  /** @default 'lms-key' */
  jwtAudience?: string;
  /** @default 3600 */
  tokenTtlSeconds?: number;
}

export interface LmsState {
  users: LmsUser[];
  enrollments: LmsEnrollment[];
  entitlements: LmsEntitlement[];
}

export interface LmsStandIn {
  url: string;
  /** The JWT issuer, `<url>/oauth2`. */
  issuer: string;
  close(): Promise<void>;
  /** The admin API's state: the journal and faults of `/_admin/` (services/README.md). */
  admin: Admin;
  /** Requests received whose path starts with `pathPrefix` (all without one), optionally of one method. */
  calls(pathPrefix?: string, method?: string): number;
  /** The next `n` requests whose path starts with `pathPrefix` (any without one) answer `status`. */
  failNext(n: number, status: number, pathPrefix?: string): void;
  /** The next `n` requests whose path starts with `pathPrefix` are held `ms` before being handled. */
  delayNext(n: number, ms: number, pathPrefix?: string): void;
  seed(seed: LmsSeed): void;
  state(): LmsState;
  /** Adds an `org.openedx.commerce.order.refund.requested.v1` event to the event stream. */
  emitRefundRequested(input: RefundRequestedInput): Promise<{ eventId: string; messageId: string }>;
}

/** The OAuth client and service user a Coordinator uses unless a test seeds others. */
export const DEFAULT_LMS_CLIENT: LmsOAuthClient = {
  clientId: 'commerce-coordinator',
  clientSecret: 'commerce-coordinator-secret',
  username: 'commerce_coordinator_worker',
};

const OPENEDX_EVENTS_VERSION = '9.18.0';
const STREAM_MAX_LEN = 10_000;

class HttpAnswer {
  constructor(
    readonly status: number,
    readonly body?: unknown,
    readonly headers: Record<string, string> = {},
  ) {}
}

const detail = (status: number, message: string, headers?: Record<string, string>) =>
  new HttpAnswer(status, { detail: message }, headers);
const NOT_AUTHENTICATED = () =>
  detail(401, 'Authentication credentials were not provided.', { 'www-authenticate': 'JWT realm="api"' });
const FORBIDDEN = () => detail(403, 'You do not have permission to perform this action.');
const NOT_FOUND = () => detail(404, 'Not found.');
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

interface Fault {
  remaining: number;
  prefix: string;
  status?: number;
  delayMs?: number;
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const text = (await readRequestBody(req)).toString('utf8');
  if (!text) return {};
  const type = req.headers['content-type'] ?? '';
  if (type.includes('application/x-www-form-urlencoded'))
    return Object.fromEntries(new URLSearchParams(text));
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw detail(400, 'JSON parse error - Expecting value: line 1 column 1 (char 0)');
}

export async function startLms(options: StartLmsOptions = {}): Promise<LmsStandIn> {
  const secret = new TextEncoder().encode(options.jwtSecret ?? 'lms-secret');
  const audience = options.jwtAudience ?? 'lms-key';
  const tokenTtl = options.tokenTtlSeconds ?? 3600;
  const eventStream = options.eventStream ?? 'commerce-order-lifecycle';

  const users = new Map<string, LmsUser>();
  const courses = new Map<string, LmsCourse>();
  const clients = new Map<string, LmsOAuthClient>();
  const enrollments = new Map<string, LmsEnrollment>();
  const entitlements = new Map<string, LmsEntitlement>();
  const requests: Array<{ method: string; path: string }> = [];
  const faults: Fault[] = [];
  let redis: ReturnType<typeof createClient> | undefined;
  let issuer = '';

  const enrollmentKey = (username: string, courseId: string) => `${username}\u0000${courseId}`;
  const now = () => new Date().toISOString();

  const seed = (s: LmsSeed) => {
    for (const u of s.users ?? [])
      users.set(u.username, {
        email: `${u.username}@example.com`,
        name: u.username,
        isStaff: false,
        isActive: true,
        dateJoined: now(),
        deactivated: false,
        ...u,
      });
    for (const c of s.courses ?? [])
      courses.set(c.courseId, { name: c.courseId, modes: ['audit', 'verified'], ...c });
    for (const c of s.clients ?? []) clients.set(c.clientId, c);
    for (const e of s.enrollments ?? [])
      enrollments.set(enrollmentKey(e.username, e.courseId), {
        mode: 'audit',
        isActive: true,
        created: now(),
        attributes: [],
        ...e,
      });
  };
  seed({
    users: [{ id: 1, username: DEFAULT_LMS_CLIENT.username, isStaff: true }],
    clients: [DEFAULT_LMS_CLIENT],
  });

  // ---- representations (edx-platform serializers, the fields we keep) ----
  const accountJson = (u: LmsUser) => ({
    username: u.username,
    name: u.name,
    email: u.email,
    id: u.id,
    is_active: u.isActive,
    date_joined: u.dateJoined,
    last_login: null,
    country: null,
    requires_parental_consent: false,
  });
  const enrollmentJson = (e: LmsEnrollment) => {
    const course = courses.get(e.courseId);
    return {
      created: e.created,
      mode: e.mode,
      is_active: e.isActive,
      course_details: {
        course_id: e.courseId,
        course_name: course?.name ?? e.courseId,
        enrollment_start: null,
        enrollment_end: null,
        course_start: null,
        course_end: null,
        invite_only: false,
        course_modes: (course?.modes ?? []).map((slug) => ({
          slug,
          name: slug[0]?.toUpperCase() + slug.slice(1),
          min_price: 0,
          suggested_prices: '',
          currency: 'usd',
          expiration_datetime: null,
          description: null,
          sku: null,
          bulk_sku: null,
        })),
        pacing_type: 'Instructor Paced',
      },
      user: e.username,
    };
  };
  const entitlementJson = (e: LmsEntitlement) => ({
    user: e.username,
    uuid: e.uuid,
    course_uuid: e.courseUuid,
    enrollment_course_run: null,
    expired_at: e.expiredAt,
    created: e.created,
    modified: e.modified,
    mode: e.mode,
    refund_locked: false,
    order_number: e.orderNumber,
    support_details: [],
  });

  // ---- authentication (edx-drf-extensions JwtAuthentication) ----
  async function authenticate(req: IncomingMessage): Promise<LmsUser> {
    const header = req.headers.authorization;
    if (!header) throw NOT_AUTHENTICATED();
    const [scheme, token] = header.split(/\s+/, 2);
    if (scheme?.toUpperCase() !== 'JWT' || !token) throw NOT_AUTHENTICATED();
    try {
      const { payload } = await jwtVerify(token, secret, { issuer, audience, algorithms: ['HS256'] });
      const user = users.get(String(payload.preferred_username));
      if (!user) throw detail(401, 'User retrieval failed.');
      return user;
    } catch (error) {
      if (error instanceof HttpAnswer) throw error;
      if (error instanceof joseErrors.JWTExpired) throw detail(401, 'Signature has expired.');
      throw detail(401, 'Error decoding signature.');
    }
  }

  async function issueToken(body: Record<string, unknown>, req: IncomingMessage): Promise<HttpAnswer> {
    let clientId = body.client_id as string | undefined;
    let clientSecret = body.client_secret as string | undefined;
    const basic = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (basic) {
      const [id, pass] = Buffer.from(basic[1] as string, 'base64')
        .toString('utf8')
        .split(':', 2);
      clientId = decodeURIComponent(id ?? '');
      clientSecret = decodeURIComponent(pass ?? '');
    }
    if (body.grant_type !== 'client_credentials')
      return new HttpAnswer(400, { error: 'unsupported_grant_type' });
    const client = clientId ? clients.get(clientId) : undefined;
    if (!client || client.clientSecret !== clientSecret)
      return new HttpAnswer(401, { error: 'invalid_client' });
    if (String(body.token_type ?? '').toLowerCase() !== 'jwt')
      return new HttpAnswer(400, {
        error: 'invalid_request',
        error_description: 'This stand-in issues JWT access tokens only: send token_type=jwt.',
      });
    const user = users.get(client.username);
    if (!user) return new HttpAnswer(401, { error: 'invalid_client' });
    const scopes = ['read', 'write', 'email', 'profile'];
    const accessToken = await new SignJWT({
      preferred_username: user.username,
      email: user.email,
      email_verified: true,
      administrator: user.isStaff,
      user_id: user.id,
      scopes,
      version: '1.2.0',
      is_restricted: false,
      filters: [],
    })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(randomUUID().replaceAll('-', ''))
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(`${tokenTtl}s`)
      .sign(secret);
    return new HttpAnswer(200, {
      access_token: accessToken,
      expires_in: tokenTtl,
      token_type: 'JWT',
      scope: scopes.join(' '),
    });
  }

  // ---- enrollment API (openedx/core/djangoapps/enrollments/views.py) ----
  /** The enrollment attributes a mode requires (`namespace:name`), as edx-platform's REQUIRED_ATTRIBUTES. */
  const REQUIRED_ATTRIBUTES: Record<string, string[]> = { credit: ['credit:provider_id'] };

  function enroll(caller: LmsUser, body: Record<string, unknown>): HttpAnswer {
    const details = (body.course_details ?? {}) as { course_id?: unknown };
    const courseId = typeof details.course_id === 'string' ? details.course_id : '';
    if (!courseId)
      return new HttpAnswer(400, { message: 'Course ID must be specified to create a new enrollment.' });
    const username = typeof body.user === 'string' && body.user ? body.user : caller.username;
    if (username !== caller.username && !caller.isStaff) return new HttpAnswer(404);
    const isActive = body.is_active ?? true;
    if (typeof isActive !== 'boolean')
      return new HttpAnswer(400, {
        message: `'${String(isActive)}' is an invalid enrollment activation status.`,
      });
    const user = users.get(username);
    if (!user) return new HttpAnswer(406, { message: `The user ${username} does not exist.` });
    const course = courses.get(courseId);
    if (!course) return new HttpAnswer(400, { message: `No course '${courseId}' found for enrollment` });
    const existing = enrollments.get(enrollmentKey(username, courseId));
    const mode =
      typeof body.mode === 'string' && body.mode
        ? body.mode
        : (existing?.mode ?? (course.modes.includes('audit') ? 'audit' : (course.modes[0] ?? 'audit')));
    if (!caller.isStaff && !['audit', 'honor'].includes(mode))
      return new HttpAnswer(403, {
        message: `User does not have permission to create enrollment with mode [${mode}].`,
      });
    if (!course.modes.includes(mode))
      return new HttpAnswer(400, {
        message: `The [${mode}] course mode is expired or otherwise unavailable for course run [${courseId}].`,
      });
    const given = Array.isArray(body.enrollment_attributes) ? body.enrollment_attributes : [];
    // enrollments/api.py `_invalid_attribute`: each attribute names its namespace, name and value.
    for (const raw of given as unknown[]) {
      const missing = ['namespace', 'name', 'value'].find(
        (key) => !raw || typeof raw !== 'object' || !(key in raw),
      );
      if (missing) {
        const message = `'${missing}' not in enrollment attribute`;
        return new HttpAnswer(400, { message, localizedMessage: message });
      }
    }
    // enrollments/views.py REQUIRED_ATTRIBUTES: changing an enrollment to a mode that needs attributes
    // (credit: its provider), when attributes are given, needs those.
    const modeChanged =
      existing !== undefined && typeof body.mode === 'string' && body.mode !== existing.mode;
    const activeChanged =
      existing !== undefined && typeof body.is_active === 'boolean' && body.is_active !== existing.isActive;
    if (given.length && (modeChanged || activeChanged)) {
      const required = REQUIRED_ATTRIBUTES[mode] ?? [];
      const named = new Set(
        (given as EnrollmentAttribute[]).map((a) => `${String(a.namespace)}:${String(a.name)}`),
      );
      if (required.some((r) => !named.has(r)))
        return new HttpAnswer(400, {
          message: `Missing enrollment attributes: requested mode=${mode} required attributes=[${required
            .map((r) => `'${r}'`)
            .join(', ')}]`,
        });
    }
    const attributes = [...(existing?.attributes ?? [])];
    for (const raw of given as Array<Partial<EnrollmentAttribute>>) {
      if (!raw?.namespace || !raw.name) continue;
      const attribute = {
        namespace: String(raw.namespace),
        name: String(raw.name),
        value: String(raw.value ?? ''),
      };
      const at = attributes.findIndex(
        (a) => a.namespace === attribute.namespace && a.name === attribute.name,
      );
      if (at >= 0) attributes[at] = attribute;
      else attributes.push(attribute);
    }
    const enrollment: LmsEnrollment = {
      username,
      courseId,
      mode,
      isActive,
      created: existing?.created ?? now(),
      attributes,
    };
    enrollments.set(enrollmentKey(username, courseId), enrollment);
    return new HttpAnswer(200, enrollmentJson(enrollment));
  }

  // ---- entitlements API (common/djangoapps/entitlements/rest_api/v1/views.py) ----
  function createEntitlement(caller: LmsUser, body: Record<string, unknown>): HttpAnswer {
    if (!caller.isStaff) return FORBIDDEN();
    const problems: Record<string, string[]> = {};
    const username = typeof body.user === 'string' ? body.user : '';
    if (!username) problems.user = ['This field is required.'];
    else if (!users.has(username)) problems.user = [`Object with username=${username} does not exist.`];
    const courseUuid = typeof body.course_uuid === 'string' ? body.course_uuid : '';
    if (!courseUuid) problems.course_uuid = ['This field is required.'];
    else if (!UUID.test(courseUuid)) problems.course_uuid = ['Must be a valid UUID.'];
    if (typeof body.mode !== 'string' || !body.mode) problems.mode = ['This field is required.'];
    if (Object.keys(problems).length) return new HttpAnswer(400, problems);
    const entitlement: LmsEntitlement = {
      uuid: randomUUID(),
      username,
      courseUuid,
      mode: body.mode as string,
      orderNumber: typeof body.order_number === 'string' ? body.order_number : null,
      created: now(),
      modified: now(),
      expiredAt: null,
    };
    entitlements.set(entitlement.uuid, entitlement);
    return new HttpAnswer(201, entitlementJson(entitlement));
  }

  function listEntitlements(caller: LmsUser, url: URL): HttpAnswer {
    const filterUser = url.searchParams.get('user');
    const visible = [...entitlements.values()].filter(
      (e) => (caller.isStaff || e.username === caller.username) && (!filterUser || e.username === filterUser),
    );
    const pageSize = Math.min(Number(url.searchParams.get('page_size') ?? 50) || 50, 100);
    const page = Number(url.searchParams.get('page') ?? 1);
    const numPages = Math.max(1, Math.ceil(visible.length / pageSize));
    if (!Number.isInteger(page) || page < 1 || page > numPages) return detail(404, 'Invalid page.');
    const link = (p: number) => {
      const next = new URL(url.href);
      next.searchParams.set('page', String(p));
      return next.href;
    };
    return new HttpAnswer(200, {
      count: visible.length,
      num_pages: numPages,
      current_page: page,
      start: (page - 1) * pageSize,
      next: page < numPages ? link(page + 1) : null,
      previous: page > 1 ? link(page - 1) : null,
      results: visible.slice((page - 1) * pageSize, page * pageSize).map(entitlementJson),
    });
  }

  // ---- accounts API (openedx/core/djangoapps/user_api/accounts/views.py) ----
  function listAccounts(caller: LmsUser, url: URL): HttpAnswer {
    let found: LmsUser[];
    const usernames = url.searchParams.get('username');
    const email = url.searchParams.get('email');
    const lmsUserId = url.searchParams.get('lms_user_id');
    if (usernames) {
      found = [];
      for (const name of usernames.replace(/^,+|,+$/g, '').split(',')) {
        const user = users.get(name);
        if (!user) return new HttpAnswer(caller.isStaff ? 404 : 403);
        found.push(user);
      }
    } else if (email) {
      const user = [...users.values()].find((u) => u.email === email);
      if (!user) return new HttpAnswer(404);
      found = [user];
    } else if (lmsUserId) {
      const user = [...users.values()].find((u) => String(u.id) === lmsUserId);
      if (!user) return new HttpAnswer(404);
      found = [user];
    } else {
      return new HttpAnswer(400, { developer_message: 'username, email or lms_user_id is required' });
    }
    // A learner sees other learners' public profile only; the stand-in keeps it simple and refuses.
    if (!caller.isStaff && found.some((u) => u.username !== caller.username)) return FORBIDDEN();
    return new HttpAnswer(200, found.map(accountJson));
  }

  async function route(req: IncomingMessage, url: URL): Promise<HttpAnswer> {
    const method = req.method ?? 'GET';
    const path = url.pathname;
    if (path === '/oauth2/access_token' || path === '/oauth2/access_token/') {
      if (method !== 'POST') return detail(405, `Method "${method}" not allowed.`);
      return issueToken(await readBody(req), req);
    }

    const body = method === 'POST' || method === 'PATCH' ? await readBody(req) : {};
    const caller = await authenticate(req);

    if (path === '/api/enrollment/v1/enrollment' || path === '/api/enrollment/v1/enrollment/') {
      if (method !== 'POST') return detail(405, `Method "${method}" not allowed.`);
      return enroll(caller, body);
    }
    const oneEnrollment = /^\/api\/enrollment\/v1\/enrollment\/([^,/]+),([^/]+)\/?$/.exec(path);
    if (oneEnrollment && method === 'GET') {
      const username = decodeURIComponent(oneEnrollment[1] as string);
      const courseId = decodeURIComponent(oneEnrollment[2] as string);
      if (username !== caller.username && !caller.isStaff) return new HttpAnswer(404);
      const found = enrollments.get(enrollmentKey(username, courseId));
      // edx-platform answers 200 with an empty body when the user is not enrolled.
      return new HttpAnswer(200, found ? enrollmentJson(found) : undefined);
    }

    if (path === '/api/entitlements/v1/entitlements/') {
      if (method === 'POST') return createEntitlement(caller, body);
      if (method === 'GET') return listEntitlements(caller, url);
      return detail(405, `Method "${method}" not allowed.`);
    }
    const oneEntitlement = /^\/api\/entitlements\/v1\/entitlements\/([^/]+)\/$/.exec(path);
    if (oneEntitlement) {
      const entitlement = entitlements.get(decodeURIComponent(oneEntitlement[1] as string));
      if (method === 'GET') {
        if (!entitlement || (!caller.isStaff && entitlement.username !== caller.username)) return NOT_FOUND();
        return new HttpAnswer(200, entitlementJson(entitlement));
      }
      if (method === 'DELETE') {
        if (!caller.isStaff) return FORBIDDEN();
        if (!entitlement) return NOT_FOUND();
        entitlement.expiredAt ??= now();
        entitlement.modified = now();
        return new HttpAnswer(204);
      }
      return detail(405, `Method "${method}" not allowed.`);
    }

    if ((path === '/api/user/v1/accounts' || path === '/api/user/v1/accounts/') && method === 'GET')
      return listAccounts(caller, url);
    const deactivate = /^\/api\/user\/v1\/accounts\/([^/]+)\/deactivate\/$/.exec(path);
    if (deactivate) {
      if (method !== 'POST') return detail(405, `Method "${method}" not allowed.`);
      if (!caller.isStaff) return FORBIDDEN();
      const user = users.get(decodeURIComponent(deactivate[1] as string));
      if (!user) return NOT_FOUND();
      user.deactivated = true;
      return new HttpAnswer(200, accountJson(user));
    }

    // Not edx-platform: see the module comment.
    if (path === '/api/coordinator/v1/order-enrollments/' && method === 'GET') {
      if (!caller.isStaff) return FORBIDDEN();
      const orderIds = (url.searchParams.get('order_ids') ?? '').split(',').filter(Boolean);
      if (!orderIds.length) return new HttpAnswer(400, { order_ids: ['This field is required.'] });
      if (orderIds.length > 100) return new HttpAnswer(400, { order_ids: ['At most 100 order ids.'] });
      const all = [...enrollments.values()];
      return new HttpAnswer(200, {
        results: orderIds.map((orderId) => ({
          order_id: orderId,
          enrollments: all
            .filter((e) =>
              e.attributes.some(
                (a) => a.namespace === 'order' && a.name === 'order_id' && a.value === orderId,
              ),
            )
            .map((e) => ({
              user: e.username,
              course_id: e.courseId,
              mode: e.mode,
              is_active: e.isActive,
              created: e.created,
              enrollment_attributes: e.attributes,
            })),
        })),
      });
    }
    return new HttpAnswer(
      404,
      '<h1>Not Found</h1><p>The requested resource was not found on this server.</p>',
    );
  }

  const send = (res: ServerResponse, answer: HttpAnswer) => {
    const headers = { ...answer.headers };
    let payload: string | undefined;
    if (answer.body !== undefined) {
      const html = typeof answer.body === 'string';
      headers['content-type'] = html ? 'text/html; charset=utf-8' : 'application/json';
      payload = html ? (answer.body as string) : JSON.stringify(answer.body);
    }
    res.writeHead(answer.status, headers).end(payload);
  };

  const admin = createAdmin({
    seed: LmsSeedSchema,
    applySeed: (data) => {
      seed(data);
      return Object.fromEntries(Object.entries(data).map(([kind, list]) => [kind, list.length]));
    },
    errorAnswer: djangoErrorAnswer,
  });

  const server = createServer(
    admin.listener((req, res) => {
      const url = new URL(req.url ?? '/', issuer.replace(/\/oauth2$/, '') || 'http://127.0.0.1');
      requests.push({ method: req.method ?? 'GET', path: url.pathname });
      const fault = faults.find((f) => f.remaining > 0 && url.pathname.startsWith(f.prefix));
      if (fault) fault.remaining--;
      void (async () => {
        try {
          if (fault?.delayMs) await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
          if (fault?.status) {
            // Drain the body so the client sees the answer, not a reset.
            await readRequestBody(req);
            return send(
              res,
              fault.status >= 500
                ? new HttpAnswer(fault.status, `<h1>Server Error (${fault.status})</h1>`)
                : detail(fault.status, `Injected ${fault.status}.`),
            );
          }
          send(res, await route(req, url));
        } catch (error) {
          if (error instanceof HttpAnswer) send(res, error);
          else send(res, new HttpAnswer(500, '<h1>Server Error (500)</h1>'));
        }
      })();
    }),
  );
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  issuer = `${url}/oauth2`;

  return {
    url,
    issuer,
    async close() {
      if (redis?.isOpen) redis.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    calls: (pathPrefix = '', method) =>
      requests.filter((r) => r.path.startsWith(pathPrefix) && (!method || r.method === method)).length,
    admin,
    failNext: (n, status, pathPrefix = '') => void faults.push({ remaining: n, status, prefix: pathPrefix }),
    delayNext: (n, ms, pathPrefix = '') =>
      void faults.push({ remaining: n, delayMs: ms, prefix: pathPrefix }),
    seed,
    state: () => ({
      users: [...users.values()].map((u) => ({ ...u })),
      enrollments: [...enrollments.values()].map((e) => ({ ...e, attributes: [...e.attributes] })),
      entitlements: [...entitlements.values()].map((e) => ({ ...e })),
    }),
    async emitRefundRequested(input) {
      if (!options.redisUrl) throw new Error('startLms({ redisUrl }) is needed to emit events');
      if (!redis) {
        redis = createClient({ url: options.redisUrl });
        redis.on('error', () => {});
        await redis.connect();
      }
      const lmsUserId = input.lmsUserId ?? users.get(input.username)?.id;
      if (lmsUserId === undefined)
        throw new Error(`unknown LMS user ${input.username}: seed it or pass lmsUserId`);
      const metadata: EventMetadata = {
        type: REFUND_REQUESTED_EVENT_TYPE,
        id: input.eventId ?? randomUUID(),
        source: 'openedx/lms/web',
        // Python's datetime.isoformat() of an aware UTC time: microseconds and +00:00.
        time: (input.time ?? new Date()).toISOString().replace(/(\.\d{3})Z$/, '$1000+00:00'),
        minorversion: '0',
        sourcehost: hostname(),
        sourcelib: OPENEDX_EVENTS_VERSION,
      };
      const fields = streamFields(metadata, {
        refund_request: {
          order_id: input.orderId,
          line_item_ids: input.lineItemIds,
          lms_user_id: lmsUserId,
          username: input.username,
          reason: input.reason ?? null,
        },
      });
      const messageId = await redis.sendCommand([
        'XADD',
        eventStream,
        'MAXLEN',
        '~',
        String(STREAM_MAX_LEN),
        '*',
        ...fields,
      ]);
      return { eventId: metadata.id, messageId: String(messageId) };
    },
  };
}
