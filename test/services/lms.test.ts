import { decodeJwt, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LMS_CLIENT, startLms, type LmsStandIn } from '../../services/lms/server.js';
import { avroDecode, avroEncode } from '../../schema/contracts/avro.js';
import {
  decodeRefundRequested,
  parseStreamEntry,
  REFUND_REQUESTED_EVENT_TYPE,
  refundRequestedSchema,
} from '../../schema/contracts/lms-refund-event.js';
import {
  adminRedis,
  deleteNamespace,
  machineRedisUrl,
  requireRedis,
  testNamespace,
} from '../support/redis.js';

const COURSE = 'course-v1:edX+DemoX+Demo_Course';
const COURSE_UUID = '6f2c4e8a-3a3b-4c1e-9d7e-0c2a1b3c4d5e';

let lms: LmsStandIn;
let redisUrl: string;
const namespace = testNamespace('lms stand-in');
const stream = `${namespace}:commerce-order-lifecycle`;

async function token(clientId = DEFAULT_LMS_CLIENT.clientId, clientSecret = DEFAULT_LMS_CLIENT.clientSecret) {
  const res = await fetch(`${lms.url}/oauth2/access_token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: clientId,
      client_secret: clientSecret,
      token_type: 'jwt',
    }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

async function call(method: string, path: string, options: { token?: string; body?: unknown } = {}) {
  const res = await fetch(`${lms.url}${path}`, {
    method,
    headers: {
      ...(options.token ? { authorization: `JWT ${options.token}` } : {}),
      ...(options.body ? { 'content-type': 'application/json' } : {}),
    },
    body: options.body ? JSON.stringify(options.body) : undefined,
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // HTML
  }
  return { status: res.status, headers: res.headers, body: body as Record<string, unknown> & unknown[] };
}

beforeAll(async () => {
  redisUrl = await requireRedis(machineRedisUrl());
  lms = await startLms({ redisUrl, eventStream: stream });
  lms.seed({
    users: [
      { id: 7, username: 'ada', email: 'ada@example.com', name: 'Ada Lovelace' },
      { id: 8, username: 'bob' },
    ],
    courses: [{ courseId: COURSE, name: 'Demo', modes: ['audit', 'verified'] }],
    clients: [{ clientId: 'ada-app', clientSecret: 's3cret', username: 'ada' }],
  });
});

afterAll(async () => {
  await lms?.close();
  await deleteNamespace(redisUrl, namespace);
});

describe('LMS stand-in: OAuth2', () => {
  it('issues a JWT access token for client credentials with token_type=jwt', async () => {
    const res = await fetch(`${lms.url}/oauth2/access_token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: DEFAULT_LMS_CLIENT.clientId,
        client_secret: DEFAULT_LMS_CLIENT.clientSecret,
        token_type: 'jwt',
      }),
    });
    const body = (await res.json()) as Record<string, unknown>;
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ token_type: 'JWT', expires_in: 3600, scope: 'read write email profile' });
    const claims = decodeJwt(body.access_token as string);
    expect(claims).toMatchObject({
      iss: `${lms.url}/oauth2`,
      aud: 'lms-key',
      preferred_username: DEFAULT_LMS_CLIENT.username,
      administrator: true,
    });
  });

  it('refuses a wrong secret (401 invalid_client) and another grant (400 unsupported_grant_type)', async () => {
    const wrong = await fetch(`${lms.url}/oauth2/access_token`, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: 'ada-app',
        client_secret: 'nope',
        token_type: 'jwt',
      }),
    });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toEqual({ error: 'invalid_client' });
    const grant = await fetch(`${lms.url}/oauth2/access_token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'password', client_id: 'ada-app', client_secret: 's3cret' }),
    });
    expect(grant.status).toBe(400);
    expect(await grant.json()).toEqual({ error: 'unsupported_grant_type' });
  });

  it('answers like DRF without credentials, with a bad token and with an expired one', async () => {
    const none = await call('GET', '/api/user/v1/accounts?username=ada');
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ detail: 'Authentication credentials were not provided.' });
    expect(none.headers.get('www-authenticate')).toBe('JWT realm="api"');

    const bad = await call('GET', '/api/user/v1/accounts?username=ada', { token: 'not.a.jwt' });
    expect(bad.status).toBe(401);
    expect(bad.body).toEqual({ detail: 'Error decoding signature.' });

    const expired = await new SignJWT({ preferred_username: 'ada' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(lms.issuer)
      .setAudience('lms-key')
      .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
      .sign(new TextEncoder().encode('lms-secret'));
    const old = await call('GET', '/api/user/v1/accounts?username=ada', { token: expired });
    expect(old.status).toBe(401);
    expect(old.body).toEqual({ detail: 'Signature has expired.' });
  });
});

describe('LMS stand-in: enrollments', () => {
  it('enrolls with attributes, updates on a second POST, unenrolls with is_active false', async () => {
    const staff = await token();
    const enroll = await call('POST', '/api/enrollment/v1/enrollment', {
      token: staff,
      body: {
        user: 'ada',
        mode: 'verified',
        is_active: true,
        course_details: { course_id: COURSE },
        enrollment_attributes: [{ namespace: 'order', name: 'order_id', value: 'order-1' }],
      },
    });
    expect(enroll.status).toBe(200);
    expect(enroll.body).toMatchObject({
      mode: 'verified',
      is_active: true,
      user: 'ada',
      course_details: { course_id: COURSE },
    });

    const again = await call('POST', '/api/enrollment/v1/enrollment', {
      token: staff,
      body: {
        user: 'ada',
        mode: 'verified',
        course_details: { course_id: COURSE },
        enrollment_attributes: [{ namespace: 'order', name: 'line_item_id', value: 'line-1' }],
      },
    });
    expect(again.status).toBe(200);
    const adas = lms.state().enrollments.filter((e) => e.username === 'ada');
    expect(adas).toHaveLength(1);
    expect(adas[0]?.attributes).toEqual([
      { namespace: 'order', name: 'order_id', value: 'order-1' },
      { namespace: 'order', name: 'line_item_id', value: 'line-1' },
    ]);

    const get = await call('GET', `/api/enrollment/v1/enrollment/ada,${encodeURIComponent(COURSE)}`, {
      token: staff,
    });
    expect(get.status).toBe(200);
    expect(get.body).toMatchObject({ is_active: true, mode: 'verified' });

    const unenroll = await call('POST', '/api/enrollment/v1/enrollment', {
      token: staff,
      body: { user: 'ada', is_active: false, course_details: { course_id: COURSE } },
    });
    expect(unenroll.status).toBe(200);
    expect(unenroll.body).toMatchObject({ is_active: false, mode: 'verified' });
  });

  it('answers 200 with an empty body for a user who is not enrolled', async () => {
    const get = await call('GET', `/api/enrollment/v1/enrollment/bob,${COURSE}`, { token: await token() });
    expect(get.status).toBe(200);
    expect(get.body).toBeUndefined();
  });

  it('refuses unknown users (406), unknown courses and unavailable modes (400) with the LMS messages', async () => {
    const staff = await token();
    const enroll = (body: Record<string, unknown>) =>
      call('POST', '/api/enrollment/v1/enrollment', { token: staff, body });
    const ghost = await enroll({ user: 'ghost', mode: 'verified', course_details: { course_id: COURSE } });
    expect(ghost.status).toBe(406);
    expect(ghost.body).toEqual({ message: 'The user ghost does not exist.' });
    const course = await enroll({
      user: 'bob',
      mode: 'verified',
      course_details: { course_id: 'course-v1:No+Such+Run' },
    });
    expect(course.status).toBe(400);
    expect(course.body).toEqual({ message: "No course 'course-v1:No+Such+Run' found for enrollment" });
    const mode = await enroll({ user: 'bob', mode: 'professional', course_details: { course_id: COURSE } });
    expect(mode.status).toBe(400);
    expect(mode.body).toEqual({
      message: `The [professional] course mode is expired or otherwise unavailable for course run [${COURSE}].`,
    });
    const missing = await enroll({ user: 'bob' });
    expect(missing.body).toEqual({ message: 'Course ID must be specified to create a new enrollment.' });
  });

  it('lists enrollments by order id for many orders in one call (the stand-in-only endpoint)', async () => {
    const staff = await token();
    await call('POST', '/api/enrollment/v1/enrollment', {
      token: staff,
      body: {
        user: 'bob',
        mode: 'verified',
        course_details: { course_id: COURSE },
        enrollment_attributes: [{ namespace: 'order', name: 'order_id', value: 'order-2' }],
      },
    });
    const list = await call('GET', '/api/coordinator/v1/order-enrollments/?order_ids=order-2,order-none', {
      token: staff,
    });
    expect(list.status).toBe(200);
    expect(list.body).toMatchObject({
      results: [
        {
          order_id: 'order-2',
          enrollments: [{ user: 'bob', course_id: COURSE, mode: 'verified', is_active: true }],
        },
        { order_id: 'order-none', enrollments: [] },
      ],
    });
    const learner = await call('GET', '/api/coordinator/v1/order-enrollments/?order_ids=order-2', {
      token: await token('ada-app', 's3cret'),
    });
    expect(learner.status).toBe(403);
  });
});

describe('LMS stand-in: entitlements and accounts', () => {
  it('creates, lists and expires (DELETE, idempotent) entitlements; staff only for writes', async () => {
    const staff = await token();
    const created = await call('POST', '/api/entitlements/v1/entitlements/', {
      token: staff,
      body: { user: 'ada', course_uuid: COURSE_UUID, mode: 'verified', order_number: '2U-2026000001' },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      user: 'ada',
      course_uuid: COURSE_UUID,
      expired_at: null,
      order_number: '2U-2026000001',
    });
    const uuid = created.body.uuid as string;

    const list = await call('GET', '/api/entitlements/v1/entitlements/?user=ada', { token: staff });
    expect(list.body).toMatchObject({
      count: 1,
      num_pages: 1,
      current_page: 1,
      next: null,
      results: [{ uuid }],
    });

    expect(
      (await call('DELETE', `/api/entitlements/v1/entitlements/${uuid}/`, { token: staff })).status,
    ).toBe(204);
    expect(
      (await call('DELETE', `/api/entitlements/v1/entitlements/${uuid}/`, { token: staff })).status,
    ).toBe(204);
    const after = await call('GET', `/api/entitlements/v1/entitlements/${uuid}/`, { token: staff });
    expect(after.body.expired_at).toEqual(expect.any(String));
    const unknown = await call('DELETE', `/api/entitlements/v1/entitlements/${COURSE_UUID}/`, {
      token: staff,
    });
    expect(unknown).toMatchObject({ status: 404, body: { detail: 'Not found.' } });

    const invalid = await call('POST', '/api/entitlements/v1/entitlements/', {
      token: staff,
      body: { user: 'nobody', course_uuid: 'bundle-1' },
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body).toEqual({
      user: ['Object with username=nobody does not exist.'],
      course_uuid: ['Must be a valid UUID.'],
      mode: ['This field is required.'],
    });
    const learner = await call('POST', '/api/entitlements/v1/entitlements/', {
      token: await token('ada-app', 's3cret'),
      body: { user: 'ada', course_uuid: COURSE_UUID, mode: 'verified' },
    });
    expect(learner).toMatchObject({
      status: 403,
      body: { detail: 'You do not have permission to perform this action.' },
    });
  });

  it('finds accounts by username and lms_user_id, and deactivates idempotently', async () => {
    const staff = await token();
    const byName = await call('GET', '/api/user/v1/accounts?username=ada', { token: staff });
    expect(byName.body).toEqual([
      expect.objectContaining({ id: 7, username: 'ada', email: 'ada@example.com', name: 'Ada Lovelace' }),
    ]);
    const byId = await call('GET', '/api/user/v1/accounts?lms_user_id=8', { token: staff });
    expect(byId.body).toEqual([expect.objectContaining({ id: 8, username: 'bob' })]);
    expect((await call('GET', '/api/user/v1/accounts?lms_user_id=999', { token: staff })).status).toBe(404);

    for (let i = 0; i < 2; i++) {
      const res = await call('POST', '/api/user/v1/accounts/bob/deactivate/', { token: staff });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ username: 'bob' });
    }
    expect(lms.state().users.find((u) => u.username === 'bob')?.deactivated).toBe(true);
    expect((await call('POST', '/api/user/v1/accounts/ghost/deactivate/', { token: staff })).status).toBe(
      404,
    );
    const learner = await call('POST', '/api/user/v1/accounts/bob/deactivate/', {
      token: await token('ada-app', 's3cret'),
    });
    expect(learner.status).toBe(403);
  });
});

describe('LMS stand-in: test controls', () => {
  it('fails the next calls of a path with the status given (HTML for 5xx) and counts calls', async () => {
    const staff = await token();
    const before = lms.calls('/api/user/v1/accounts');
    lms.failNext(2, 503, '/api/user/v1/accounts');
    const first = await call('GET', '/api/user/v1/accounts?username=ada', { token: staff });
    expect(first.status).toBe(503);
    expect(first.headers.get('content-type')).toContain('text/html');
    expect((await call('GET', '/api/user/v1/accounts?username=ada', { token: staff })).status).toBe(503);
    expect((await call('GET', '/api/user/v1/accounts?username=ada', { token: staff })).status).toBe(200);
    expect(lms.calls('/api/user/v1/accounts') - before).toBe(3);
  });
});

describe('LMS stand-in: event bus producer', () => {
  it('encodes Avro exactly as the binary spec says (golden bytes)', () => {
    const bytes = avroEncode(refundRequestedSchema, {
      refund_request: {
        order_id: 'o1',
        line_item_ids: ['a', 'b'],
        lms_user_id: 64,
        username: 'u',
        reason: null,
      },
    });
    // "o1" = len 2 (zigzag 4); array block of 2 (4), "a", "b", end (0); long 64 (zigzag 128 = 0x80 0x01);
    // "u"; union branch 0 (null).
    expect([...bytes]).toEqual([4, 0x6f, 0x31, 4, 2, 0x61, 2, 0x62, 0, 0x80, 0x01, 2, 0x75, 0]);
    expect(avroDecode(refundRequestedSchema, bytes)).toEqual({
      refund_request: {
        order_id: 'o1',
        line_item_ids: ['a', 'b'],
        lms_user_id: 64,
        username: 'u',
        reason: null,
      },
    });
    expect([...avroEncode({ type: 'array', items: 'long' }, [-1, -65, 2 ** 40])]).toEqual([
      6, 1, 0x81, 0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0,
    ]);
  });

  it('XADDs an entry with the edx-event-bus-redis fields, in its order, and Avro event_data', async () => {
    const { eventId, messageId } = await lms.emitRefundRequested({
      orderId: '3f1c2d4e-0000-4000-8000-000000000001',
      lineItemIds: ['line-1', 'line-2'],
      username: 'ada',
      reason: 'changed my mind',
      time: new Date('2026-01-31T12:00:00.123Z'),
    });
    const redis = await adminRedis(redisUrl);
    try {
      const entries = (await redis.callBuffer('XRANGE', stream, messageId, messageId)) as Array<
        [Buffer, Buffer[]]
      >;
      const fields = entries[0]![1];
      const names = fields.filter((_, i) => i % 2 === 0).map((b) => b.toString());
      expect(names).toEqual([
        'type',
        'id',
        'source',
        'time',
        'minorversion',
        'sourcehost',
        'sourcelib',
        'event_data',
      ]);
      const message = parseStreamEntry(fields);
      expect(message.metadata).toMatchObject({
        type: REFUND_REQUESTED_EVENT_TYPE,
        id: eventId,
        source: 'openedx/lms/web',
        time: '2026-01-31T12:00:00.123000+00:00',
        minorversion: '0',
      });
      expect(message.metadata.sourcelib).toMatch(/^\d+\.\d+\.\d+$/);
      expect(decodeRefundRequested(message.eventData)).toEqual({
        refund_request: {
          order_id: '3f1c2d4e-0000-4000-8000-000000000001',
          line_item_ids: ['line-1', 'line-2'],
          lms_user_id: 7,
          username: 'ada',
          reason: 'changed my mind',
        },
      });
      // Capped like the library's STREAM_MAX_LEN (approximate trimming): the stream exists and holds it.
      expect(await redis.call('XLEN', stream)).toBeGreaterThanOrEqual(1);
    } finally {
      await redis.close();
    }
  });
});
