import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrderManagement, type OrderManagement } from '../../services/order-management/server.js';

// The stand-in's catalogue, called over HTTP as commercetools is: discount codes with their cart
// discounts expanded, product projection query and search, standalone prices, redeemed codes.

let om: OrderManagement;
let token: string;

const api = (path: string) => `${om.url}/${om.projectKey}${path}`;

async function get(path: string) {
  const res = await fetch(api(path), { headers: { authorization: `Bearer ${token}` } });
  const body = (await res.json()) as Record<string, unknown> & { results?: Array<Record<string, unknown>> };
  return { status: res.status, body, results: body.results ?? [] };
}

beforeAll(async () => {
  om = await startOrderManagement({
    seed: {
      orders: [
        {
          orderNumber: '2U-2026000001',
          customer: { lmsUserId: 42, username: 'ada', email: 'ada@example.com' },
          lineItems: [{ title: 'Python 101', priceCents: 4900, courseRunKey: 'course-v1:edX+PY101+2026' }],
        },
      ],
    },
  });
  om.catalog.seed({
    cartDiscounts: [
      {
        key: 'spring-20',
        permyriad: 2000,
        requiresDiscountCode: true,
        cartPredicate: 'attributes.mode = "verified"',
      },
      { key: 'program-50', amountCents: 5000, cartPredicate: 'custom.bundleId = "p-1"', sortOrder: '0.9' },
      { key: 'inactive', permyriad: 100, isActive: false },
    ],
    discountCodes: [{ code: 'SPRING20', cartDiscount: 'spring-20', maxApplicationsPerCustomer: 1 }],
    products: [
      {
        key: 'edX+PY101',
        name: 'Python 101',
        variants: [
          {
            sku: 'course-v1:edX+PY101+2026',
            attributes: { mode: 'verified', 'external-ids-variant': 'run-1' },
          },
          {
            sku: 'CREDIT-PY101',
            attributes: { mode: { key: 'credit', label: 'Credit' }, 'external-ids-variant': 'run-1' },
          },
        ],
      },
      {
        key: 'p-1',
        name: 'Program',
        variants: [{ sku: 'p-1' }, { sku: 'p-1-py', key: 'p-1+edX+PY101', entitlementSku: 'ENT-PY101' }],
      },
    ],
    standalonePrices: [
      { sku: 'ENT-PY101', centAmount: 4900 },
      { sku: 'OTHER', centAmount: 100 },
    ],
    redemptions: [{ orderNumber: '2U-2026000001', code: 'SPRING20' }],
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
});

afterAll(async () => {
  await om?.close();
});

describe('order management stand-in: catalogue', () => {
  it('finds a discount code by code and expands its cart discount', async () => {
    const { status, results } = await get(
      '/discount-codes?where=code%3D%3Acode&var.code=SPRING20&expand=cartDiscounts%5B*%5D',
    );
    expect(status).toBe(200);
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({
      code: 'SPRING20',
      isActive: true,
      maxApplicationsPerCustomer: 1,
      cartDiscounts: [
        { typeId: 'cart-discount', obj: { key: 'spring-20', value: { type: 'relative', permyriad: 2000 } } },
      ],
    });
    const unexpanded = await get('/discount-codes?where=code%3D%3Acode&var.code=SPRING20');
    expect((unexpanded.results[0]!.cartDiscounts as Array<{ obj?: unknown }>)[0]!.obj).toBeUndefined();
  });

  it('queries cart discounts without a code, active, sorted by sortOrder desc', async () => {
    const where = encodeURIComponent(
      'requiresDiscountCode = false and target(type = "lineItems") and isActive = true',
    );
    const { results } = await get(`/cart-discounts?where=${where}&sort=sortOrder%20desc&limit=100`);
    expect(results.map((d) => d.key)).toEqual(['program-50']);
    expect(results[0]!.value).toMatchObject({
      type: 'absolute',
      money: [{ centAmount: 5000, currencyCode: 'USD' }],
    });
  });

  it('queries a program by key with its entitlement references expanded', async () => {
    const { results } = await get(
      `/product-projections?where=${encodeURIComponent('key = :key')}&var.key=p-1&expand=${encodeURIComponent('variants[*].attributes[*].value')}`,
    );
    expect(results).toHaveLength(1);
    const variant = (
      results[0]!.variants as Array<{
        key: string;
        attributes: Array<{ name: string; value: { obj?: unknown } }>;
      }>
    )[0]!;
    expect(variant.key).toBe('p-1+edX+PY101');
    expect(variant.attributes[0]).toMatchObject({
      name: 'ref-edx-course-entitlement',
      value: { typeId: 'product', obj: { masterData: { current: { masterVariant: { sku: 'ENT-PY101' } } } } },
    });
  });

  it('searches products by variant SKU and attributes (enums by key), marking the matching variants', async () => {
    const bySku = await get(
      `/product-projections/search?filter=${encodeURIComponent('variants.sku:"CREDIT-PY101"')}&markMatchingVariants=true`,
    );
    expect(bySku.results).toHaveLength(1);
    const product = bySku.results[0] as {
      masterVariant: { isMatchingVariant: boolean };
      variants: Array<{ isMatchingVariant: boolean }>;
    };
    expect(product.masterVariant.isMatchingVariant).toBe(false);
    expect(product.variants[0]!.isMatchingVariant).toBe(true);
    const credit = await get(
      `/product-projections/search?filter=${encodeURIComponent('variants.attributes.external-ids-variant:"run-1"')}&filter=${encodeURIComponent('variants.attributes.mode:"credit"')}&markMatchingVariants=true`,
    );
    expect(credit.results).toHaveLength(1);
    expect((credit.results[0] as typeof product).variants[0]!.isMatchingVariant).toBe(true);
    const none = await get(`/product-projections/search?filter=${encodeURIComponent('variants.sku:"nope"')}`);
    expect(none.results).toEqual([]);
  });

  it('answers a malformed search filter or where 400 InvalidInput, as commercetools does', async () => {
    for (const path of [
      `/product-projections/search?filter=${encodeURIComponent('variants.sku')}`,
      `/product-projections/search?filter=${encodeURIComponent('variants.sku:unquoted')}`,
      `/product-projections/search?filter=${encodeURIComponent('variants.price:"1"')}`,
      `/standalone-prices?where=${encodeURIComponent('sku in (')}`,
      `/cart-discounts?limit=100000`,
    ]) {
      const { status, body } = await get(path);
      expect(status, path).toBe(400);
      expect((body.errors as Array<{ code: string }>)[0]!.code).toBe('InvalidInput');
    }
  });

  it('answers standalone prices by SKU', async () => {
    const { results } = await get(
      `/standalone-prices?where=${encodeURIComponent('sku in :skus')}&var.skus=ENT-PY101&var.skus=NONE`,
    );
    expect(results).toEqual([
      expect.objectContaining({ sku: 'ENT-PY101', value: expect.objectContaining({ centAmount: 4900 }) }),
    ]);
  });

  it('queries orders that redeemed a discount code, expanding it', async () => {
    const where = [
      'customerEmail = :email',
      'orderState = "Complete"',
      'discountCodes(discountCode is defined)',
    ]
      .map((w) => `where=${encodeURIComponent(w)}`)
      .join('&');
    const { results } = await get(
      `/orders?${where}&var.email=ada%40example.com&expand=${encodeURIComponent('discountCodes[*].discountCode')}`,
    );
    expect(results).toHaveLength(1);
    expect(results[0]!.discountCodes).toEqual([
      expect.objectContaining({
        discountCode: expect.objectContaining({ obj: expect.objectContaining({ code: 'SPRING20' }) }),
      }),
    ]);
  });

  it('rejects a seed naming an unknown cart discount, order or code, storing nothing of it', async () => {
    const before = om.catalog.cartDiscounts.size;
    for (const catalog of [
      {
        cartDiscounts: [{ key: 'new-1', permyriad: 10 }],
        discountCodes: [{ code: 'X', cartDiscount: 'missing' }],
      },
      {
        cartDiscounts: [{ key: 'new-2', permyriad: 10 }],
        redemptions: [{ orderNumber: '2U-2099999999', code: 'SPRING20' }],
      },
    ]) {
      const res = await fetch(`${om.url}/_admin/seed`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ catalog }),
      });
      expect(res.status).toBe(409);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('SEED_REJECTED');
    }
    expect(om.catalog.cartDiscounts.size).toBe(before);
    const invalid = await fetch(`${om.url}/_admin/seed`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ catalog: { cartDiscounts: [{ key: 'both', permyriad: 1, amountCents: 1 }] } }),
    });
    expect(invalid.status).toBe(400);
  });
});
