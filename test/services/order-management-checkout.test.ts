import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrderManagement, type OrderManagement } from '../../services/order-management/server.js';

// The checkout side of the order management stand-in (checkout.ts), called over HTTP as commercetools
// is: carts, orders from carts, payments and customers from drafts, standalone prices, custom objects,
// and the uniqueness and version checks the mobile order flow relies on.

let om: OrderManagement;
let token: string;
let customerId: string;
const SKU = 'course-v1:edX+PY101+2026';

const api = (path: string) => `${om.url}/${om.projectKey}${path}`;

async function call(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown) {
  const res = await fetch(api(path), {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const json = (await res.json()) as Record<string, unknown> & {
    results?: Array<Record<string, unknown>>;
    errors?: Array<Record<string, unknown>>;
  };
  return { status: res.status, body: json };
}

const cartDraft = (overrides: Record<string, unknown> = {}) => ({
  currency: 'USD',
  customerId,
  lineItems: [{ sku: SKU, quantity: 1, externalPrice: { currencyCode: 'USD', centAmount: 4_900 } }],
  custom: { type: { typeId: 'type', key: '2u-order' }, fields: { lmsUserId: 42, mobileOrder: true } },
  ...overrides,
});

beforeAll(async () => {
  om = await startOrderManagement({
    seed: {
      customers: [{ lmsUserId: 42, username: 'ada', email: 'ada@example.com' }],
      products: [{ sku: SKU, title: 'Python 101', usdCents: 4_900 }],
    },
  });
  const res = await fetch(`${om.url}/oauth/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${om.clientId}:${om.clientSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials',
  });
  token = ((await res.json()) as { access_token: string }).access_token;
  customerId = [...om.store.customers.values()][0]!.id;
});
afterAll(() => om?.close());

describe('carts', () => {
  it('are made from a draft with a line item by SKU at an external price, and found by key and query', async () => {
    const created = await call('POST', '/carts', cartDraft({ key: 'cart-one' }));
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      version: 1,
      key: 'cart-one',
      cartState: 'Active',
      customerId,
      customerEmail: 'ada@example.com',
      totalPrice: { centAmount: 4_900, currencyCode: 'USD' },
      custom: { fields: { lmsUserId: 42, mobileOrder: true } },
    });
    const byKey = await call('GET', '/carts/key=cart-one');
    expect(byKey.body.id).toBe(created.body.id);
    const active = await call(
      'GET',
      `/carts?where=${encodeURIComponent('customerId = :c and cartState = "Active"')}&var.c=${customerId}`,
    );
    expect(active.body.results!.map((c) => c.id)).toContain(created.body.id);
  });

  it('refuse a duplicate key, an unknown SKU and a price in another currency (400)', async () => {
    await call('POST', '/carts', cartDraft({ key: 'cart-dup' }));
    const dup = await call('POST', '/carts', cartDraft({ key: 'cart-dup' }));
    expect(dup.status).toBe(400);
    expect(dup.body.errors![0]).toMatchObject({ code: 'DuplicateField', field: 'key' });
    const unknown = await call('POST', '/carts', cartDraft({ lineItems: [{ sku: 'nope' }] }));
    expect([unknown.status, unknown.body.errors![0]!.code]).toEqual([400, 'InvalidInput']);
    const currency = await call(
      'POST',
      '/carts',
      cartDraft({ lineItems: [{ sku: SKU, externalPrice: { currencyCode: 'EUR', centAmount: 1 } }] }),
    );
    expect(currency.status).toBe(400);
  });

  it('are deleted at their version only: a stale version is 409 ConcurrentModification', async () => {
    const { body: cart } = await call('POST', '/carts', cartDraft());
    const payment = await call('POST', '/payments', {
      amountPlanned: { currencyCode: 'USD', centAmount: 4_900 },
    });
    const updated = await call('POST', `/carts/${String(cart.id)}`, {
      version: 1,
      actions: [{ action: 'addPayment', payment: { typeId: 'payment', id: payment.body.id } }],
    });
    expect(updated.body.version).toBe(2);
    const stale = await call('DELETE', `/carts/${String(cart.id)}?version=1`);
    expect(stale.status).toBe(409);
    expect(stale.body.errors![0]).toMatchObject({ code: 'ConcurrentModification', currentVersion: 2 });
    expect((await call('DELETE', `/carts/${String(cart.id)}?version=2`)).status).toBe(200);
    expect((await call('GET', `/carts/${String(cart.id)}`)).status).toBe(404);
  });
});

describe('orders from a cart', () => {
  it("take the cart's lines, payments and custom fields; the cart becomes Ordered; order numbers are unique", async () => {
    const { body: cart } = await call('POST', '/carts', cartDraft());
    const created = await call('POST', '/orders', {
      cart: { typeId: 'cart', id: cart.id },
      version: 1,
      orderNumber: '2U-2026000777',
      orderState: 'Complete',
      paymentState: 'Paid',
      shipmentState: 'Shipped',
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      orderNumber: '2U-2026000777',
      orderState: 'Complete',
      paymentState: 'Paid',
      shipmentState: 'Shipped',
      cart: { typeId: 'cart', id: cart.id },
      custom: { fields: { lmsUserId: 42, mobileOrder: true } },
    });
    expect((await call('GET', `/carts/${String(cart.id)}`)).body).toMatchObject({
      cartState: 'Ordered',
      version: 2,
    });
    // The same cart again: it is no longer active.
    const again = await call('POST', '/orders', { cart: { typeId: 'cart', id: cart.id }, version: 2 });
    expect([again.status, again.body.errors![0]!.code]).toEqual([400, 'InvalidOperation']);
    // Another cart with a number in use.
    const { body: other } = await call('POST', '/carts', cartDraft());
    const taken = await call('POST', '/orders', {
      cart: { typeId: 'cart', id: other.id },
      version: 1,
      orderNumber: '2U-2026000777',
    });
    expect(taken.status).toBe(400);
    expect(taken.body.errors![0]).toMatchObject({ code: 'DuplicateField', field: 'orderNumber' });
  });
});

describe('payments, customers, prices', () => {
  it('payment keys are unique (DuplicateField)', async () => {
    const draft = { key: 'tx-1', amountPlanned: { currencyCode: 'USD', centAmount: 100 } };
    expect((await call('POST', '/payments', draft)).status).toBe(201);
    const dup = await call('POST', '/payments', draft);
    expect(dup.status).toBe(400);
    expect(dup.body.errors![0]).toMatchObject({ code: 'DuplicateField', field: 'key' });
  });

  it('customers are made from a draft ({ customer }), one per email and key', async () => {
    const draft = { key: 'lms-user-50', email: 'grace@example.com', firstName: 'Grace' };
    const created = await call('POST', '/customers', draft);
    expect(created.status).toBe(201);
    expect(created.body.customer).toMatchObject({ email: 'grace@example.com', firstName: 'Grace' });
    expect((await call('POST', '/customers', draft)).body.errors![0]).toMatchObject({
      code: 'DuplicateField',
    });
  });

  it('standalone prices are queried by SKU', async () => {
    const res = await call(
      'GET',
      `/standalone-prices?where=${encodeURIComponent('sku = :sku and value(currencyCode = "USD")')}&var.sku=${encodeURIComponent(SKU)}`,
    );
    expect(res.body.results!.map((p) => p.value)).toEqual([
      expect.objectContaining({ centAmount: 4_900, currencyCode: 'USD' }),
    ]);
  });
});

describe('custom objects', () => {
  it('are created with version 0 only once, then updated at their version', async () => {
    const first = await call('POST', '/custom-objects', {
      container: 'c',
      key: 'k',
      value: { n: 1 },
      version: 0,
    });
    expect([first.status, first.body.version]).toEqual([201, 1]);
    const again = await call('POST', '/custom-objects', {
      container: 'c',
      key: 'k',
      value: { n: 1 },
      version: 0,
    });
    expect(again.status).toBe(409);
    expect(again.body.errors![0]).toMatchObject({ code: 'ConcurrentModification', currentVersion: 1 });
    const next = await call('POST', '/custom-objects', {
      container: 'c',
      key: 'k',
      value: { n: 2 },
      version: 1,
    });
    expect([next.status, next.body.version]).toEqual([200, 2]);
    expect((await call('GET', '/custom-objects/c/k')).body.value).toEqual({ n: 2 });
    expect((await call('GET', '/custom-objects/c/missing')).status).toBe(404);
  });
});
