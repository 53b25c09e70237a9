import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  startLegacyEcommerce,
  type LegacyEcommerceStandIn,
  type LegacyOrderInput,
} from '../../services/legacy-ecommerce/server.js';
import { DEFAULT_LMS_CLIENT, startLms, type LmsStandIn } from '../../services/lms/server.js';

let lms: LmsStandIn;
let ecommerce: LegacyEcommerceStandIn;
let staffToken: string;
let learnerToken: string;

const order = (n: number, username = 'ada'): LegacyOrderInput => ({
  number: `EDX-${100000 + n}`,
  username,
  datePlaced: new Date(Date.UTC(2025, 0, 1) + n * 86_400_000).toISOString(),
  lines: [
    {
      title: `Seat ${n}`,
      linePriceExclTax: '149.00',
      courseKey: `course-v1:edX+C${n}+2025`,
      certificateType: 'verified',
    },
    { title: 'Extra', linePriceExclTax: '0.50' },
  ],
});

/** A JWT from the LMS's OAuth2 provider, which ecommerce accepts. */
async function tokenFor(clientId: string, clientSecret: string) {
  const res = await fetch(`${lms.url}/oauth2/access_token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: clientId,
      client_secret: clientSecret,
      token_type: 'jwt',
    }),
  });
  return ((await res.json()) as { access_token: string }).access_token;
}

async function get(path: string, token?: string) {
  const res = await fetch(`${ecommerce.url}${path}`, {
    headers: token ? { authorization: `JWT ${token}` } : {},
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // HTML
  }
  return { status: res.status, body: body as Record<string, unknown>, headers: res.headers };
}

beforeAll(async () => {
  lms = await startLms();
  lms.seed({
    users: [{ id: 7, username: 'ada' }],
    clients: [{ clientId: 'ada-app', clientSecret: 's3cret', username: 'ada' }],
  });
  ecommerce = await startLegacyEcommerce({ jwtIssuer: lms.issuer });
  ecommerce.seed({ orders: [...Array.from({ length: 45 }, (_, i) => order(i + 1)), order(99, 'bob')] });
  staffToken = await tokenFor(DEFAULT_LMS_CLIENT.clientId, DEFAULT_LMS_CLIENT.clientSecret);
  learnerToken = await tokenFor('ada-app', 's3cret');
});

afterAll(async () => {
  await ecommerce?.close();
  await lms?.close();
});

describe('legacy ecommerce stand-in', () => {
  it('pages through a learner’s orders newest first, pages starting at 1, in the legacy order JSON', async () => {
    const first = await get('/api/v2/orders/?username=ada&page=1&page_size=20', staffToken);
    expect(first.status).toBe(200);
    expect(first.body.count).toBe(45);
    expect(first.body.previous).toBeNull();
    expect(first.body.next).toBe(`${ecommerce.url}/api/v2/orders/?username=ada&page=2&page_size=20`);
    const results = first.body.results as Array<Record<string, unknown>>;
    expect(results).toHaveLength(20);
    expect(results[0]).toMatchObject({
      number: 'EDX-100045',
      date_placed: '2025-02-15T00:00:00Z',
      currency: 'USD',
      total_excl_tax: '149.50',
      status: 'Complete',
      user: { username: 'ada', email: 'ada@example.com' },
      lines: [
        {
          title: 'Seat 45',
          quantity: 1,
          line_price_excl_tax: '149.00',
          product: {
            product_class: 'Seat',
            attribute_values: [
              { code: 'certificate_type', name: 'certificate_type', value: 'verified' },
              { code: 'course_key', name: 'course_key', value: 'course-v1:edX+C45+2025' },
            ],
          },
        },
        { title: 'Extra', line_price_excl_tax: '0.50' },
      ],
    });
    const last = await get('/api/v2/orders/?username=ada&page=3&page_size=20', staffToken);
    expect((last.body.results as unknown[]).length).toBe(5);
    expect(last.body.next).toBeNull();
    expect(await get('/api/v2/orders/?username=ada&page=4&page_size=20', staffToken)).toMatchObject({
      status: 404,
      body: { detail: 'Invalid page.' },
    });
  });

  it('lets a learner read their own orders only, and wants a JWT', async () => {
    const own = await get('/api/v2/orders/?page=1', learnerToken);
    expect(own.status).toBe(200);
    expect(own.body.count).toBe(45);
    expect(await get('/api/v2/orders/?username=bob', learnerToken)).toMatchObject({
      status: 403,
      body: { detail: 'You do not have permission to perform this action.' },
    });
    expect(await get('/api/v2/orders/?username=ada')).toMatchObject({
      status: 401,
      body: { detail: 'Authentication credentials were not provided.' },
    });
    expect((await get('/api/v2/orders/?username=ada', 'forged')).status).toBe(401);
  });

  it('serves receipt pages at /checkout/receipt/?order_number=', async () => {
    const page = await get('/checkout/receipt/?order_number=EDX-100001');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(String(page.body)).toContain('EDX-100001');
    expect((await get('/checkout/receipt/?order_number=EDX-999999')).status).toBe(404);
  });

  it('fails the next calls on demand and counts calls', async () => {
    const before = ecommerce.calls('/api/v2/orders/');
    ecommerce.failNext(1, 502, '/api/v2/orders/');
    expect((await get('/api/v2/orders/?username=ada', staffToken)).status).toBe(502);
    expect((await get('/api/v2/orders/?username=ada', staffToken)).status).toBe(200);
    expect(ecommerce.calls('/api/v2/orders/') - before).toBe(2);
  });
});
