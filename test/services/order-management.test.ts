import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrderManagement, type OrderManagement } from '../../services/order-management/server.js';

// The stand-in speaks commercetools' HTTP API: these tests call it as a client would, over HTTP.

let om: OrderManagement;
let token: string;
let orderId: string;
let otherIds: string[];

const api = (path: string) => `${om.url}/${om.projectKey}${path}`;

async function getToken(id = om.clientId, secret = om.clientSecret) {
  return fetch(`${om.url}/oauth/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials&scope=manage_project:edx-commerce',
  });
}

async function call(method: 'GET' | 'POST', path: string, body?: unknown, bearer = token) {
  const res = await fetch(api(path), {
    method,
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const json = (await res.json()) as Record<string, unknown> & { results?: unknown[] };
  return { status: res.status, body: json, results: json.results };
}

beforeAll(async () => {
  om = await startOrderManagement({
    seed: {
      orders: [
        {
          orderNumber: '2U-2026000001',
          customer: { lmsUserId: 42, username: 'ada', email: 'ada@example.com', firstName: 'Ada' },
          lineItems: [
            {
              title: 'Python 101',
              priceCents: 4900,
              courseRunKey: 'course-v1:edX+PY101+2026',
              state: 'PENDING',
            },
            { title: 'Data bundle', priceCents: 9900, bundleKey: 'bundle-data', state: 'SUCCESS' },
          ],
          payment: { psp: 'STRIPE', pspPaymentId: 'pi_001' },
        },
      ],
    },
  });
  const created = om.seed({
    orders: ['2U-2026000002', '2U-2026000003', '2U-2026000004'].map((orderNumber, i) => ({
      orderNumber,
      createdAt: `2026-0${i + 1}-01T00:00:00.000Z`,
      customer: { lmsUserId: 43, username: 'bob', email: 'bob@example.com' },
      lineItems: [{ title: 'Course', priceCents: 1000, courseRunKey: `course-v1:edX+C${i}+2026` }],
    })),
  });
  otherIds = created.orders.map((o) => o.id);
  orderId = [...om.store.orders.values()].find((o) => o.orderNumber === '2U-2026000001')!.id;
  token = ((await (await getToken()).json()) as { access_token: string }).access_token;
});
afterAll(() => om?.close());

describe('order management stand-in: auth', () => {
  it('issues a bearer token for valid client credentials, as commercetools’ auth API does', async () => {
    const res = await getToken();
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      token_type: 'Bearer',
      expires_in: 172800,
      scope: 'manage_project:edx-commerce',
      access_token: expect.any(String),
    });
  });

  it('refuses wrong client credentials with 401 invalid_client', async () => {
    const res = await getToken(om.clientId, 'wrong');
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({
      statusCode: 401,
      error: 'invalid_client',
      errors: [{ code: 'invalid_client' }],
    });
  });

  it('answers 401 invalid_token without a token, with an unknown one, and after expiry', async () => {
    const none = await fetch(api(`/orders/${orderId}`));
    expect(none.status).toBe(401);
    expect(await none.json()).toEqual({
      statusCode: 401,
      message: 'invalid_token',
      errors: [{ code: 'invalid_token', message: 'invalid_token' }],
      error: 'invalid_token',
    });
    expect((await call('GET', `/orders/${orderId}`, undefined, 'not-a-token')).status).toBe(401);

    const fresh = ((await (await getToken()).json()) as { access_token: string }).access_token;
    expect((await call('GET', `/orders/${orderId}`, undefined, fresh)).status).toBe(200);
    om.expireTokens();
    expect((await call('GET', `/orders/${orderId}`, undefined, fresh)).status).toBe(401);
    token = ((await (await getToken()).json()) as { access_token: string }).access_token;
  });
});

describe('order management stand-in: resources', () => {
  it('answers 404 with commercetools’ body for an unknown resource', async () => {
    const res = await call('GET', '/orders/00000000-0000-0000-0000-000000000000');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({
      statusCode: 404,
      message: "The Resource with ID '00000000-0000-0000-0000-000000000000' was not found.",
      errors: [
        {
          code: 'ResourceNotFound',
          message: "The Resource with ID '00000000-0000-0000-0000-000000000000' was not found.",
        },
      ],
    });
    expect((await call('POST', '/orders/nope', { version: 1, actions: [] })).status).toBe(404);
  });

  it('reads an order by id and by order number, expanding States and payments', async () => {
    const byId = await call(
      'GET',
      `/orders/${orderId}?expand=lineItems[*].state[*].state&expand=paymentInfo.payments[*]`,
    );
    expect(byId.status).toBe(200);
    const order = byId.body as {
      orderNumber: string;
      lineItems: Array<{ state: Array<{ state: { obj: { key: string } } }>; custom: { fields: object } }>;
      paymentInfo: {
        payments: Array<{ obj: { interfaceId: string; transactions: Array<{ type: string }> } }>;
      };
      custom: { fields: object };
    };
    expect(order.orderNumber).toBe('2U-2026000001');
    expect(order.lineItems.map((l) => l.state[0]!.state.obj.key)).toEqual([
      '2u-fulfillment-pending-state',
      '2u-fulfillment-success-state',
    ]);
    expect(order.lineItems[1]!.custom.fields).toEqual({ kind: 'BUNDLE', bundleKey: 'bundle-data' });
    expect(order.paymentInfo.payments[0]!.obj).toMatchObject({
      interfaceId: 'pi_001',
      transactions: [{ type: 'Charge' }],
    });
    expect(order.custom.fields).toEqual({ lmsUserId: 42, lmsUsername: 'ada' });

    const byNumber = await call('GET', '/orders/order-number=2U-2026000001');
    expect(byNumber.body.id).toBe(orderId);
  });

  it('fetches many orders in one call with `where=id in (…)`, literal or as input variables', async () => {
    const before = om.calls('GET', `/${om.projectKey}/orders`);
    const literal = await call(
      'GET',
      `/orders?where=${encodeURIComponent(`id in ("${otherIds[0]}", "${otherIds[2]}")`)}`,
    );
    expect(literal.body).toMatchObject({ count: 2, total: 2, offset: 0 });
    expect(literal.results!.map((o) => (o as { id: string }).id).sort()).toEqual(
      [otherIds[0], otherIds[2]].sort(),
    );

    const query = new URLSearchParams({ where: 'id in :ids', limit: '500' });
    for (const id of [...otherIds, orderId, 'unknown']) query.append('var.ids', id);
    const batch = await call('GET', `/orders?${query}`);
    expect(batch.body.count).toBe(4);
    expect(om.calls('GET', `/${om.projectKey}/orders`) - before).toBe(2);
  });

  it('filters by nested custom fields and dates, sorts and pages', async () => {
    const query = new URLSearchParams({
      where: 'custom(fields(lmsUserId = :id)) and createdAt > "2026-01-15T00:00:00.000Z"',
      'var.id': '43',
      sort: 'createdAt desc',
      limit: '1',
    });
    const page = await call('GET', `/orders?${query}`);
    expect(page.body).toMatchObject({ count: 1, total: 2, limit: 1 });
    expect((page.results![0] as { orderNumber: string }).orderNumber).toBe('2U-2026000004');

    const payments = await call(
      'GET',
      `/payments?where=${encodeURIComponent('transactions(type = "Charge" and interactionId = "pi_001")')}`,
    );
    expect(payments.body.count).toBe(1);
  });

  it('answers 400 InvalidInput for a malformed predicate or limit', async () => {
    const bad = await call('GET', `/orders?where=${encodeURIComponent('id in (')}`);
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ statusCode: 400, errors: [{ code: 'InvalidInput' }] });
    expect((await call('GET', '/orders?limit=501')).status).toBe(400);
  });
});

describe('order management stand-in: updates', () => {
  const transition = (lineItemId: string, from: string, to: string) => ({
    action: 'transitionLineItemState',
    lineItemId,
    quantity: 1,
    fromState: { typeId: 'state', key: from },
    toState: { typeId: 'state', key: to },
  });

  it('applies an update at the current version and answers 409 ConcurrentModification at a stale one', async () => {
    const order = (await call('GET', `/orders/${otherIds[0]}`)).body as {
      version: number;
      lineItems: Array<{ id: string }>;
    };
    const line = order.lineItems[0]!.id;
    const first = await call('POST', `/orders/${otherIds[0]}?expand=lineItems[*].state[*].state`, {
      version: order.version,
      actions: [transition(line, 'Initial', '2u-fulfillment-pending-state')],
    });
    expect(first.status).toBe(200);
    expect(first.body.version).toBe(order.version + 1);

    const stale = await call('POST', `/orders/${otherIds[0]}`, {
      version: order.version,
      actions: [transition(line, '2u-fulfillment-pending-state', '2u-fulfillment-processing-state')],
    });
    expect(stale.status).toBe(409);
    expect(stale.body).toEqual({
      statusCode: 409,
      message: `Object ${otherIds[0]} has a different version than expected. Expected: ${order.version} - Actual: ${order.version + 1}.`,
      errors: [
        {
          code: 'ConcurrentModification',
          message: `Object ${otherIds[0]} has a different version than expected. Expected: ${order.version} - Actual: ${order.version + 1}.`,
          currentVersion: order.version + 1,
        },
      ],
    });
  });

  it('applies all actions of an update or none, and enforces the States’ transitions', async () => {
    const order = (await call('GET', `/orders/${orderId}`)).body as {
      version: number;
      lineItems: Array<{ id: string }>;
    };
    const [course, bundle] = order.lineItems.map((l) => l.id) as [string, string];
    const refused = await call('POST', `/orders/${orderId}`, {
      version: order.version,
      actions: [
        transition(course, '2u-fulfillment-pending-state', '2u-fulfillment-processing-state'),
        // Success is final.
        transition(bundle, '2u-fulfillment-success-state', '2u-fulfillment-pending-state'),
      ],
    });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ errors: [{ code: 'InvalidOperation' }] });
    expect((await call('GET', `/orders/${orderId}`)).body.version).toBe(order.version);
  });

  it('answers 400 for a missing version or an unknown action', async () => {
    const missing = await call('POST', `/orders/${orderId}`, { actions: [] });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ errors: [{ code: 'InvalidJsonInput' }] });
    const version = (await call('GET', `/orders/${orderId}`)).body.version;
    const unknown = await call('POST', `/orders/${orderId}`, { version, actions: [{ action: 'explode' }] });
    expect(unknown.status).toBe(400);
  });

  it('records returns, payment states and refund transactions', async () => {
    const order = (await call('GET', `/orders/${orderId}`)).body as {
      version: number;
      lineItems: Array<{ id: string }>;
      paymentInfo: { payments: Array<{ id: string }> };
    };
    const returned = await call('POST', `/orders/${orderId}`, {
      version: order.version,
      actions: [
        {
          action: 'addReturnInfo',
          returnTrackingId: 'ret-1',
          items: [{ quantity: 1, lineItemId: order.lineItems[0]!.id, shipmentState: 'Returned' }],
        },
      ],
    });
    const info = (
      returned.body as {
        returnInfo: Array<{ returnTrackingId: string; items: Array<{ id: string; paymentState: string }> }>;
      }
    ).returnInfo[0]!;
    expect(info).toMatchObject({ returnTrackingId: 'ret-1', items: [{ paymentState: 'Initial' }] });

    const paymentId = order.paymentInfo.payments[0]!.id;
    const payment = (await call('GET', `/payments/${paymentId}`)).body;
    const refunded = await call('POST', `/payments/${paymentId}`, {
      version: payment.version,
      actions: [
        {
          action: 'addTransaction',
          transaction: {
            type: 'Refund',
            amount: { centAmount: 4900, currencyCode: 'USD' },
            interactionId: 're_1',
            state: 'Success',
          },
        },
      ],
    });
    expect(refunded.body).toMatchObject({
      transactions: [{ type: 'Charge' }, { type: 'Refund', interactionId: 're_1' }],
    });
  });

  it('fails the next calls on request, with the status’s commercetools body', async () => {
    om.failNext(1, 503, `/${om.projectKey}/orders`);
    const failed = await call('GET', `/orders/${orderId}`);
    expect(failed.status).toBe(503);
    expect(failed.body).toMatchObject({ statusCode: 503, errors: [{ code: 'ServiceUnavailable' }] });
    expect((await call('GET', `/orders/${orderId}`)).status).toBe(200);
  });
});
