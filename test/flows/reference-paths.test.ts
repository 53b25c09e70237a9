import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

// The paths at which Services call the reference system today, answered by the Coordinator's own
// routes and flows, so that a Service moves by changing only the host it calls:
//   /commercetools/fulfill|sanctioned (and /orders/…)  → /order-management/fulfill|sanctioned
//   /lms/user_retirement/                              → the user retirement flow
//   /orders/unified/order_history/                     → the order history flow
//   /health                                            → /readyz

let c: CommerceCoordinator;

beforeAll(async () => {
  c = await startCommerceCoordinator('flow-reference-paths');
  // The order history page shows the Coordinator's orders beside the legacy ones.
  await c.testData.update(c.testData.flag('transition.order-history.coordinator').variationForAll(true));
});
afterAll(async () => {
  await c?.stop();
});

const post = (path: string, body: unknown, token?: string) =>
  c.request(path, {
    method: 'POST',
    ...(token ? { token } : {}),
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

let seeded = 0;
function seedOrder(options: { sanctioned?: boolean } = {}) {
  const lmsUserId = 7600 + ++seeded;
  const customer = { lmsUserId, username: `refpath${lmsUserId}`, email: `refpath${lmsUserId}@example.com` };
  c.services.lms.seed({ users: [{ id: lmsUserId, username: customer.username, email: customer.email }] });
  const [order] = c.services.orderManagement.seed({
    customers: [{ ...customer, firstName: 'Ref', lastName: 'Path' }],
    orders: [
      {
        orderNumber: `2U-2029${String(seeded).padStart(6, '0')}`,
        customer,
        sanctioned: options.sanctioned ?? false,
        lineItems: [{ title: 'Course', priceCents: 4_900, courseRunKey: DEMO.courses.demo.courseId }],
      },
    ],
  }).orders;
  return { customer, order: order! };
}

describe('the order management Service’s reference paths', () => {
  it.each(['/commercetools/fulfill', '/orders/fulfill'])(
    '%s runs the fulfillment flow, one per event id whichever path delivers it',
    async (path) => {
      const { customer, order } = seedOrder();
      const event = { id: `evt-${randomUUID()}`, detail: { id: order.id } };
      const first = await post(path, event, c.tokens.orderManagement);
      expect(first.status).toBe(200);
      const answer = (await first.json()) as { flowId: string; status: string };
      expect(answer.status).toBe('COMPLETED');
      // The same event redelivered at the Coordinator's own path is the same flow.
      const again = await post('/order-management/fulfill', event, c.tokens.orderManagement);
      expect(((await again.json()) as { flowId: string }).flowId).toBe(answer.flowId);
      const enrolled = c.services.lms.state().enrollments.filter((e) => e.username === customer.username);
      expect(enrolled.map((e) => e.courseId)).toEqual([DEMO.courses.demo.courseId]);
    },
  );

  it.each(['/commercetools/sanctioned', '/orders/sanctioned'])(
    '%s signals a sanctioned order',
    async (path) => {
      const { order } = seedOrder({ sanctioned: true });
      const res = await post(
        path,
        { id: `evt-${randomUUID()}`, detail: { id: order.id } },
        c.tokens.orderManagement,
      );
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ published: true, duplicate: false });
    },
  );

  it('an alias keeps the route’s rules: anonymous 401, learner 403, bad envelope 400, GET 405', async () => {
    const { order } = seedOrder();
    const event = { id: `evt-${randomUUID()}`, detail: { id: order.id } };
    expect((await post('/commercetools/fulfill', event)).status).toBe(401);
    expect((await post('/commercetools/fulfill', event, c.tokens.ada)).status).toBe(403);
    const bad = await post('/commercetools/fulfill', { detail: {} }, c.tokens.orderManagement);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: string }).code).toBe('BAD_USER_INPUT');
    const get = await c.request('/commercetools/fulfill', { token: c.tokens.orderManagement });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
  });
});

describe('POST /lms/user_retirement/ (the LMS retirement pipeline)', () => {
  it('retires the learner’s personal data and answers 204; again, and for an unknown learner, 204', async () => {
    const { customer, order } = seedOrder();
    const res = await post('/lms/user_retirement/', { edx_lms_user_id: customer.lmsUserId }, c.tokens.lms);
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
    const stored = [...c.services.orderManagement.store.customers.values()].find(
      (k) => k.custom?.fields.lmsUserId === customer.lmsUserId,
    )!;
    expect(stored.email).toMatch(/^retired_user_[0-9a-f]{64}$/);
    expect(c.services.orderManagement.store.orders.get(order.id)!.customerEmail).toBe(stored.email);
    // Retiring twice leaves the hashes as they are (a retried pipeline step).
    expect(
      (await post('/lms/user_retirement/', { edx_lms_user_id: customer.lmsUserId }, c.tokens.lms)).status,
    ).toBe(204);
    expect(
      [...c.services.orderManagement.store.customers.values()].find(
        (k) => k.custom?.fields.lmsUserId === customer.lmsUserId,
      )!.email,
    ).toBe(stored.email);
    expect((await post('/lms/user_retirement/', { edx_lms_user_id: 987_654 }, c.tokens.staff)).status).toBe(
      204,
    );
  });

  it.each([
    ['a missing id', {}],
    ['a string id', { edx_lms_user_id: '4' }],
    ['a negative id', { edx_lms_user_id: -4 }],
    ['an unknown field', { edx_lms_user_id: 4, extra: true }],
    ['not JSON', '{"edx_lms_user_id":'],
    ['an array', [4]],
  ])('answers %s 400 BAD_USER_INPUT and retires nobody', async (_case, body) => {
    const before = JSON.stringify([...c.services.orderManagement.store.customers.values()]);
    const res = await post('/lms/user_retirement/', body, c.tokens.lms);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe('BAD_USER_INPUT');
    expect(JSON.stringify([...c.services.orderManagement.store.customers.values()])).toBe(before);
  });

  it('is for Services and staff: anonymous 401, a learner (even about themself) 403', async () => {
    const { customer } = seedOrder();
    expect((await post('/lms/user_retirement/', { edx_lms_user_id: customer.lmsUserId })).status).toBe(401);
    const self = await post(
      '/lms/user_retirement/',
      { edx_lms_user_id: DEMO.learners.ada.lmsUserId },
      c.tokens.ada,
    );
    expect(self.status).toBe(403);
    expect(((await self.json()) as { code: string }).code).toBe('FORBIDDEN');
  });
});

interface LegacyHistory {
  count: number;
  next: null;
  previous: null;
  results: Array<{
    number: string;
    date_placed: string;
    total_excl_tax: string;
    currency: string;
    lines: Array<{ title: string; quantity: number; line_price_excl_tax: string }>;
    receipt_url: string;
    system: string;
  }>;
}

describe('GET /orders/unified/order_history/ (the order history page)', () => {
  it('answers the learner’s merged history in the legacy paginated shape, the same as the orderHistory query', async () => {
    const res = await c.request('/orders/unified/order_history/', { token: c.tokens.ada });
    expect(res.status).toBe(200);
    const page = (await res.json()) as LegacyHistory;
    const { data } = await c.graphql<{ orderHistory: { history: Array<{ orderNumber: string }> } }>(
      'query { orderHistory(input: {}) { history { orderNumber } } }',
      {},
      c.tokens.ada,
    );
    expect(page.results.map((r) => r.number)).toEqual(data!.orderHistory.history.map((h) => h.orderNumber));
    expect(page).toMatchObject({ count: page.results.length, next: null, previous: null });
    expect(page.results.map((r) => r.number)).toEqual(
      expect.arrayContaining(['2U-2026000001', 'EDX-100001']),
    );
    // EDX-100002 is older than 180 days.
    expect(page.results.map((r) => r.number)).not.toContain('EDX-100002');
    const legacy = page.results.find((r) => r.number === 'EDX-100001')!;
    expect(legacy.total_excl_tax).toMatch(/^\d+\.\d{2}$/);
    expect(legacy.receipt_url).toBe('/orders/unified/order_receipt/?order_number=EDX-100001');
    const dates = page.results.map((r) => r.date_placed);
    expect(dates).toEqual([...dates].sort().reverse());
  });

  it('staff name the learner; a learner naming another is 403; anonymous is 401', async () => {
    const staff = await c.request('/orders/unified/order_history/?username=ada', { token: c.tokens.staff });
    expect(staff.status).toBe(200);
    expect(((await staff.json()) as LegacyHistory).results.map((r) => r.number)).toContain('2U-2026000001');
    const other = await c.request('/orders/unified/order_history/?username=ada', { token: c.tokens.bob });
    expect(other.status).toBe(403);
    expect((await c.request('/orders/unified/order_history/')).status).toBe(401);
  });
});

describe('GET /health (the reference’s health check)', () => {
  it('answers as /readyz does', async () => {
    const [health, ready] = await Promise.all([c.request('/health'), c.request('/readyz')]);
    expect(health.status).toBe(200);
    const [h, r] = (await Promise.all([health.json(), ready.json()])) as Array<Record<string, unknown>>;
    expect(Object.keys(h!).sort()).toEqual(Object.keys(r!).sort());
    expect(h!.status).toBe(r!.status);
  });
});
