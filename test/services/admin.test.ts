import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLms, type LmsStandIn } from '../../services/lms/server.js';
import { startOrderManagement, type OrderManagement } from '../../services/order-management/server.js';
import { startStripe, type StripeStandIn } from '../../services/stripe/server.js';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

/** The admin API of the Service stand-ins (services/admin.ts), driven over HTTP only, as a demo would. */

const json = (body: unknown): RequestInit => ({
  headers: { 'content-type': 'application/json' },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

async function call(base: string, method: string, path: string, init: RequestInit = {}) {
  const res = await fetch(`${base}${path}`, { method, ...init });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // an HTML page, as Django answers a 5xx
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON answer, read by assertions
  return { status: res.status, body: body as Record<string, any>, headers: res.headers };
}

/** A client-credentials token from the LMS stand-in, as the Coordinator gets one. */
async function lmsToken(lms: LmsStandIn): Promise<string> {
  const { body } = await call(lms.url, 'POST', '/oauth2/access_token', {
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: 'commerce-coordinator',
      client_secret: 'commerce-coordinator-secret',
      token_type: 'jwt',
    }).toString(),
  });
  return String(body.access_token);
}

describe('a stand-in admin API (the LMS)', () => {
  let lms: LmsStandIn;
  let jwt: string;
  const enrollment = (username: string, courseId: string) =>
    call(lms.url, 'GET', `/api/enrollment/v1/enrollment/${username},${courseId}`, {
      headers: { authorization: `JWT ${jwt}` },
    });

  beforeAll(async () => {
    lms = await startLms();
    jwt = await lmsToken(lms);
  });
  afterAll(() => lms?.close());

  it('seeds users, courses and enrollments that the real API then serves', async () => {
    const seeded = await call(
      lms.url,
      'POST',
      '/_admin/seed',
      json({
        users: [{ id: 41, username: 'grace', email: 'grace@example.com', name: 'Grace Hopper' }],
        courses: [{ courseId: 'course-v1:NavyX+COBOL+2026', name: 'COBOL', modes: ['audit', 'verified'] }],
        enrollments: [{ username: 'grace', courseId: 'course-v1:NavyX+COBOL+2026', mode: 'verified' }],
      }),
    );
    expect(seeded).toMatchObject({ status: 201, body: { seeded: { users: 1, courses: 1, enrollments: 1 } } });

    const read = await enrollment('grace', 'course-v1:NavyX+COBOL+2026');
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({
      user: 'grace',
      mode: 'verified',
      is_active: true,
      course_details: { course_id: 'course-v1:NavyX+COBOL+2026', course_name: 'COBOL' },
    });
    const account = await call(lms.url, 'GET', '/api/user/v1/accounts?username=grace', {
      headers: { authorization: `JWT ${jwt}` },
    });
    expect(account.body).toEqual([expect.objectContaining({ id: 41, email: 'grace@example.com' })]);
  });

  it('refuses a body that is not JSON, or not a seed, with a stable code and where it is wrong', async () => {
    const notJson = await call(lms.url, 'POST', '/_admin/seed', json('{"users": ['));
    expect(notJson).toMatchObject({ status: 400, body: { error: { code: 'INVALID_JSON' } } });

    const notASeed = await call(lms.url, 'POST', '/_admin/seed', json({ users: [{ username: 'x' }] }));
    expect(notASeed.status).toBe(400);
    expect(notASeed.body.error).toMatchObject({
      code: 'INVALID_INPUT',
      issues: [expect.objectContaining({ path: ['users', 0, 'id'] })],
    });
    const unknownKey = await call(lms.url, 'POST', '/_admin/seed', json({ learners: [] }));
    expect(unknownKey).toMatchObject({ status: 400, body: { error: { code: 'INVALID_INPUT' } } });
    const badFault = await call(lms.url, 'POST', '/_admin/faults', json({ status: 200 }));
    expect(badFault).toMatchObject({ status: 400, body: { error: { code: 'INVALID_INPUT' } } });
    const nowhere = await call(lms.url, 'GET', '/_admin/nothing');
    expect(nowhere).toMatchObject({ status: 404, body: { error: { code: 'UNKNOWN_ENDPOINT' } } });
  });

  it('injects a status with the Service’s own error body for the next N matching requests', async () => {
    const path = '/api/enrollment/v1/enrollment/';
    const injected = await call(
      lms.url,
      'POST',
      '/_admin/faults',
      json({ method: 'get', path, times: 2, status: 403 }),
    );
    expect(injected).toMatchObject({ status: 201, body: { fault: { method: 'GET', times: 2 } } });

    // Another path is untouched; the matching ones get DRF's `{ detail }`, twice, then the real answer.
    expect(
      (
        await call(lms.url, 'GET', '/api/user/v1/accounts?username=grace', {
          headers: { authorization: `JWT ${jwt}` },
        })
      ).status,
    ).toBe(200);
    for (let i = 0; i < 2; i++)
      expect(await enrollment('grace', 'course-v1:NavyX+COBOL+2026')).toMatchObject({
        status: 403,
        body: { detail: expect.any(String) },
      });
    expect((await enrollment('grace', 'course-v1:NavyX+COBOL+2026')).status).toBe(200);

    // A 5xx is Django's HTML page.
    await call(lms.url, 'POST', '/_admin/faults', json({ path, status: 503 }));
    const down = await enrollment('grace', 'course-v1:NavyX+COBOL+2026');
    expect(down.status).toBe(503);
    expect(down.headers.get('content-type')).toMatch(/^text\/html/);
  });

  it('delays matching requests, and clearing the faults ends them', async () => {
    const path = '/api/enrollment/v1/enrollment/';
    await call(lms.url, 'POST', '/_admin/faults', json({ path, delayMs: 400, times: 5 }));
    let started = Date.now();
    expect((await enrollment('grace', 'course-v1:NavyX+COBOL+2026')).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(380);

    const listed = await call(lms.url, 'GET', '/_admin/faults');
    expect(listed.body.faults).toEqual([expect.objectContaining({ path, delayMs: 400, remaining: 4 })]);
    expect(await call(lms.url, 'DELETE', '/_admin/faults')).toMatchObject({ status: 204 });
    expect((await call(lms.url, 'GET', '/_admin/faults')).body.faults).toEqual([]);
    started = Date.now();
    await enrollment('grace', 'course-v1:NavyX+COBOL+2026');
    expect(Date.now() - started).toBeLessThan(300);
  });

  it('resets the connection of a matching request', async () => {
    await call(lms.url, 'POST', '/_admin/faults', json({ path: '/api/user/', reset: true }));
    await expect(fetch(`${lms.url}/api/user/v1/accounts?username=grace`)).rejects.toThrow();
  });

  it('journals what it received, the body as the Service read it; filters and resets', async () => {
    expect(await call(lms.url, 'DELETE', '/_admin/journal')).toMatchObject({ status: 204 });
    const body = {
      user: 'grace',
      mode: 'verified',
      course_details: { course_id: 'course-v1:NavyX+COBOL+2026' },
    };
    const enrolled = await call(lms.url, 'POST', '/api/enrollment/v1/enrollment', {
      headers: { 'content-type': 'application/json', authorization: `JWT ${jwt}`, 'idempotency-key': 'k-1' },
      body: JSON.stringify(body),
    });
    expect(enrolled.status).toBe(200);
    await enrollment('grace', 'course-v1:NavyX+COBOL+2026');

    const all = await call(lms.url, 'GET', '/_admin/journal');
    expect(all.body.requests.map((r: { method: string }) => r.method)).toEqual(['POST', 'GET']);
    const posts = await call(lms.url, 'GET', '/_admin/journal?method=post&path=/api/enrollment/');
    expect(posts.body.requests).toEqual([
      {
        method: 'POST',
        path: '/api/enrollment/v1/enrollment',
        query: '',
        headers: { 'content-type': 'application/json', 'idempotency-key': 'k-1' },
        body,
        status: 200,
      },
    ]);
    // Credentials are not journalled; the admin API itself is not either.
    expect(JSON.stringify(all.body)).not.toContain(jwt);
    expect(JSON.stringify(all.body)).not.toContain('/_admin/');
    const badFilter = await call(lms.url, 'GET', '/_admin/journal?verb=GET');
    expect(badFilter).toMatchObject({ status: 400, body: { error: { code: 'INVALID_INPUT' } } });

    await call(lms.url, 'DELETE', '/_admin/journal');
    expect((await call(lms.url, 'GET', '/_admin/journal')).body.requests).toEqual([]);
  });
});

describe('a stand-in admin API (Stripe)', () => {
  let stripe: StripeStandIn;
  beforeAll(async () => {
    stripe = await startStripe();
  });
  afterAll(() => stripe?.close());

  it('journals a form-encoded call with its Idempotency-Key, and refuses a seed that takes an id', async () => {
    await call(
      stripe.url,
      'POST',
      '/_admin/seed',
      json({ paymentIntents: [{ id: 'pi_admin_1', amount: 1000 }] }),
    );
    const taken = await call(
      stripe.url,
      'POST',
      '/_admin/seed',
      json({ paymentIntents: [{ id: 'pi_admin_1', amount: 5 }] }),
    );
    expect(taken).toMatchObject({ status: 409, body: { error: { code: 'SEED_REJECTED' } } });

    const refund = await call(stripe.url, 'POST', '/v1/refunds', {
      headers: {
        authorization: `Bearer ${stripe.secretKey}`,
        'content-type': 'application/x-www-form-urlencoded',
        'idempotency-key': 'refund-1',
      },
      body: 'payment_intent=pi_admin_1&amount=400',
    });
    expect(refund).toMatchObject({ status: 200, body: { object: 'refund', amount: 400 } });
    const { body } = await call(stripe.url, 'GET', '/_admin/journal?path=/v1/refunds');
    expect(body.requests).toEqual([
      expect.objectContaining({
        method: 'POST',
        headers: expect.objectContaining({ 'idempotency-key': 'refund-1' }),
        body: 'payment_intent=pi_admin_1&amount=400',
        status: 200,
      }),
    ]);
  });

  it('answers an injected status with Stripe’s error body', async () => {
    await call(
      stripe.url,
      'POST',
      '/_admin/faults',
      json({ method: 'POST', path: '/v1/refunds', status: 402 }),
    );
    const refused = await call(stripe.url, 'POST', '/v1/refunds', {
      headers: {
        authorization: `Bearer ${stripe.secretKey}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'payment_intent=pi_admin_1',
    });
    expect(refused).toMatchObject({
      status: 402,
      body: { error: { type: expect.any(String), message: expect.any(String) } },
    });
    const { body } = await call(stripe.url, 'GET', '/_admin/journal?method=POST&path=/v1/refunds');
    expect(body.requests.at(-1)).toMatchObject({
      status: 402,
      fault: true,
      body: 'payment_intent=pi_admin_1',
    });
  });
});

describe('a refund demo, black-box through the admin APIs and the gateway', () => {
  let cc: CommerceCoordinator;
  beforeAll(async () => {
    cc = await startCommerceCoordinator('admin-api-refund');
  });
  afterAll(() => cc?.stop());

  it('refunds an order seeded over HTTP, and Stripe’s journal shows the one refund it was asked for', async () => {
    const { stripe, orderManagement, lms } = cc.services;
    const { ada } = DEMO.learners;
    const courseId = `course-v1:AdminX+Refund${process.pid}+2026`;
    const orderNumber = `2U-ADMIN${process.pid}`;
    expect(
      (
        await call(
          lms.url,
          'POST',
          '/_admin/seed',
          json({
            courses: [{ courseId, name: 'Refundable' }],
            enrollments: [{ username: ada.username, courseId, mode: 'verified' }],
          }),
        )
      ).status,
    ).toBe(201);
    const paid = await call(
      stripe.url,
      'POST',
      '/_admin/seed',
      json({
        paymentIntents: [{ amount: 12_300, metadata: { order_number: orderNumber } }],
      }),
    );
    expect(paid.status).toBe(201);
    const paymentIntentId = String(paid.body.seeded[0].id);
    const seeded = await call(
      orderManagement.url,
      'POST',
      '/_admin/seed',
      json({
        orders: [
          {
            orderNumber,
            customer: { lmsUserId: ada.lmsUserId, username: ada.username, email: ada.email },
            lineItems: [
              { title: 'Refundable', priceCents: 12_300, courseRunKey: courseId, state: 'SUCCESS' },
            ],
            payment: { psp: 'STRIPE', pspPaymentId: paymentIntentId, amountCents: 12_300 },
          },
        ],
      }),
    );
    expect(seeded.status).toBe(201);
    const order = seeded.body.seeded.orders[0];
    await call(stripe.url, 'DELETE', '/_admin/journal');

    const { data, errors } = await cc.graphql<{ requestRefund: { flow: { id: string; status: string } } }>(
      'mutation ($input: RefundRequestInput!) { requestRefund(input: $input) { flow { id status } } }',
      { input: { orderId: order.id, lineItemIds: [order.lineItems[0].id] } },
      cc.tokens.staff,
    );
    expect(errors).toBeUndefined();
    expect(data!.requestRefund.flow.status).toBe('COMPLETED');

    const { body } = await call(stripe.url, 'GET', '/_admin/journal?method=POST&path=/v1/refunds');
    expect(body.requests).toHaveLength(1);
    const [refund] = body.requests;
    expect(refund.status).toBe(200);
    expect(refund.headers['idempotency-key']).toContain(data!.requestRefund.flow.id);
    expect(new URLSearchParams(refund.body).get('payment_intent')).toBe(paymentIntentId);
    expect(new URLSearchParams(refund.body).get('amount')).toBe('12300');
  });
});

describe('a stand-in admin API (order management)', () => {
  let om: OrderManagement;
  beforeAll(async () => {
    om = await startOrderManagement();
  });
  afterAll(() => om?.close());

  it('answers an injected 404 with commercetools’ error body, naming the resource requested', async () => {
    const basic = Buffer.from(`${om.clientId}:${om.clientSecret}`).toString('base64');
    const { body: token } = await call(om.url, 'POST', '/oauth/token', {
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    const seeded = await call(
      om.url,
      'POST',
      '/_admin/seed',
      json({
        orders: [
          {
            orderNumber: '2U-ADMIN-OM-1',
            customer: { lmsUserId: 77, username: 'lin', email: 'lin@example.com' },
            lineItems: [{ title: 'A course', priceCents: 100 }],
          },
        ],
      }),
    );
    const orderId = String(seeded.body.seeded.orders[0].id);
    const read = (id: string) =>
      call(om.url, 'GET', `/${om.projectKey}/orders/${id}`, {
        headers: { authorization: `Bearer ${token.access_token}` },
      });
    expect((await read(orderId)).body).toMatchObject({ id: orderId, orderNumber: '2U-ADMIN-OM-1' });

    await call(om.url, 'POST', '/_admin/faults', json({ path: `/${om.projectKey}/orders/`, status: 404 }));
    const missing = await read(orderId);
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({
      statusCode: 404,
      errors: [{ code: 'ResourceNotFound', message: expect.stringContaining(orderId) }],
    });
  });
});
