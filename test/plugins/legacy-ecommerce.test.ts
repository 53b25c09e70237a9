import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Plugin } from '@commerce-coordinator/plugin-sdk';
import { startLegacyEcommerce, type LegacyEcommerceStandIn } from '../../services/legacy-ecommerce/server.js';
import { DEFAULT_LMS_CLIENT, startLms, type LmsStandIn } from '../../services/lms/server.js';
import { createLegacyEcommercePlugin, toMinorUnits } from '../../subgraphs/legacy-ecommerce/index.js';
import { codes, learner, runAction, staff } from './run-action.js';

let lms: LmsStandIn;
let ecommerce: LegacyEcommerceStandIn;
let plugin: Plugin;
const env = () => ({
  LEGACY_ECOMMERCE_URL: ecommerce.url,
  LEGACY_ECOMMERCE_OAUTH_URL: lms.url,
  LEGACY_ECOMMERCE_CLIENT_ID: DEFAULT_LMS_CLIENT.clientId,
  LEGACY_ECOMMERCE_CLIENT_SECRET: DEFAULT_LMS_CLIENT.clientSecret,
  LEGACY_ECOMMERCE_PAGE_SIZE: '20',
});

const DAY = 86_400_000;
const START = Date.UTC(2025, 0, 1);

const ORDERS = `query($username: String!, $since: String) {
  legacyOrders(username: $username, since: $since) {
    number datePlaced status currency totalExclTaxCents discountCents paymentProcessor username email receiptUrl
    lines { title quantity status linePriceExclTaxCents courseKey certificateType productClass }
  }
}`;
const RECEIPT = `query($orderNumber: String!) { legacyReceiptUrl(orderNumber: $orderNumber) { url } }`;

type Orders = { legacyOrders: Array<{ number: string; datePlaced: string; totalExclTaxCents: number }> };

beforeAll(async () => {
  lms = await startLms();
  ecommerce = await startLegacyEcommerce({ jwtIssuer: lms.issuer });
  // 50 orders for ada, one a day from 2025-01-02; the newest is EDX-100050.
  ecommerce.seed({
    orders: [
      ...Array.from({ length: 50 }, (_, i) => ({
        number: `EDX-${100001 + i}`,
        username: 'ada',
        datePlaced: new Date(START + (i + 1) * DAY).toISOString(),
        lines: [
          {
            title: `Seat in Course ${i}`,
            linePriceExclTax: '149.00',
            courseKey: `course-v1:edX+C${i}+2025`,
            certificateType: 'verified',
          },
          { title: 'Donation', linePriceExclTax: '0.99', productClass: 'Donation' },
        ],
      })),
      { number: 'EDX-200001', username: 'bob', datePlaced: new Date(START).toISOString(), lines: [] },
    ],
  });
  plugin = createLegacyEcommercePlugin({ env: env() });
});

afterAll(async () => {
  await ecommerce?.close();
  await lms?.close();
});

describe('legacy-ecommerce plugin: legacyOrders', () => {
  it('reads every page (pages from 1), newest first, amounts in minor units', async () => {
    const before = ecommerce.calls('/api/v2/orders/');
    const result = await runAction<Orders>(plugin, ORDERS, { username: 'ada' }, { principal: staff });
    expect(result.errors).toBeUndefined();
    expect(ecommerce.calls('/api/v2/orders/') - before).toBe(3);
    const orders = result.data!.legacyOrders;
    expect(orders).toHaveLength(50);
    expect(orders.map((o) => o.number).slice(0, 2)).toEqual(['EDX-100050', 'EDX-100049']);
    expect(orders.at(-1)!.number).toBe('EDX-100001');
    expect(orders[0]).toEqual({
      number: 'EDX-100050',
      datePlaced: new Date(START + 50 * DAY).toISOString(),
      status: 'Complete',
      currency: 'USD',
      totalExclTaxCents: 14_999,
      discountCents: 0,
      paymentProcessor: 'cybersource-rest',
      username: 'ada',
      email: 'ada@example.com',
      receiptUrl: `${ecommerce.url}/checkout/receipt/?order_number=EDX-100050`,
      lines: [
        {
          title: 'Seat in Course 49',
          quantity: 1,
          status: 'Complete',
          linePriceExclTaxCents: 14_900,
          courseKey: 'course-v1:edX+C49+2025',
          certificateType: 'verified',
          productClass: 'Seat',
        },
        {
          title: 'Donation',
          quantity: 1,
          status: 'Complete',
          linePriceExclTaxCents: 99,
          courseKey: null,
          certificateType: null,
          productClass: 'Donation',
        },
      ],
    });
  });

  it('stops paging at the cutoff', async () => {
    const before = ecommerce.calls('/api/v2/orders/');
    // Orders of the last 10 days of the history: all on the first page of 20.
    const since = new Date(START + 41 * DAY).toISOString();
    const result = await runAction<Orders>(plugin, ORDERS, { username: 'ada', since }, { principal: staff });
    expect(ecommerce.calls('/api/v2/orders/') - before).toBe(1);
    expect(result.data!.legacyOrders.map((o) => o.number)).toEqual(
      Array.from({ length: 10 }, (_, i) => `EDX-${100050 - i}`),
    );
    // A cutoff on the second page reads two pages.
    const twoPages = await runAction<Orders>(
      plugin,
      ORDERS,
      { username: 'ada', since: new Date(START + 21 * DAY).toISOString() },
      { principal: staff },
    );
    expect(twoPages.data!.legacyOrders).toHaveLength(30);
    expect(ecommerce.calls('/api/v2/orders/') - before).toBe(3);
  });

  it('lets a learner read their own orders only; rejects a bad cutoff', async () => {
    const own = await runAction<Orders>(
      plugin,
      ORDERS,
      { username: 'bob' },
      { principal: learner(8, 'bob') },
    );
    expect(own.data!.legacyOrders.map((o) => o.number)).toEqual(['EDX-200001']);
    expect(
      codes(await runAction(plugin, ORDERS, { username: 'ada' }, { principal: learner(8, 'bob') })),
    ).toEqual(['FORBIDDEN']);
    expect(codes(await runAction(plugin, ORDERS, { username: 'ada' }))).toEqual(['UNAUTHENTICATED']);
    expect(
      codes(await runAction(plugin, ORDERS, { username: 'ada', since: 'last week' }, { principal: staff })),
    ).toEqual(['BAD_USER_INPUT']);
  });

  it('answers SERVICE_UNAVAILABLE when legacy ecommerce fails', async () => {
    ecommerce.failNext(1, 503, '/api/v2/orders/');
    expect(codes(await runAction(plugin, ORDERS, { username: 'ada' }, { principal: staff }))).toEqual([
      'SERVICE_UNAVAILABLE',
    ]);
  });

  it('names the missing variables when the configuration is incomplete', async () => {
    const result = await runAction(
      createLegacyEcommercePlugin({ env: {} }),
      ORDERS,
      { username: 'ada' },
      { principal: staff },
    );
    expect(result.errors![0]!.message).toContain('LEGACY_ECOMMERCE_URL is not set');
    expect(result.errors![0]!.message).toContain('LEGACY_ECOMMERCE_CLIENT_SECRET is not set');
  });
});

describe('legacy-ecommerce plugin: legacyReceiptUrl', () => {
  it('gives the receipt page of legacy order numbers, NOT_FOUND for others', async () => {
    // A step of the receipt flow: learners run that flow, not this Action.
    expect(
      (await runAction(plugin, RECEIPT, { orderNumber: 'EDX-100004' }, { principal: learner(7, 'ada') }))
        .errors?.[0]?.extensions?.code,
    ).toBe('FORBIDDEN');
    expect(
      await runAction(plugin, RECEIPT, { orderNumber: 'EDX-100004' }, { principal: staff }),
    ).toMatchObject({
      data: { legacyReceiptUrl: { url: `${ecommerce.url}/checkout/receipt/?order_number=EDX-100004` } },
    });
    const page = await fetch(`${ecommerce.url}/checkout/receipt/?order_number=EDX-100004`);
    expect(page.status).toBe(200);
    for (const orderNumber of ['EDX-1234567', '2U-2026000123', 'edx-100004', 'EDX-', 'XEDX-1'])
      expect(codes(await runAction(plugin, RECEIPT, { orderNumber }, { principal: staff }))).toEqual([
        'NOT_FOUND',
      ]);
  });

  it('uses LEGACY_ECOMMERCE_RECEIPT_URL_BASE when set', async () => {
    const custom = createLegacyEcommercePlugin({
      env: { ...env(), LEGACY_ECOMMERCE_RECEIPT_URL_BASE: 'https://orders.example.com/receipt?n=' },
    });
    expect(await runAction(custom, RECEIPT, { orderNumber: 'EDX-1' }, { principal: staff })).toMatchObject({
      data: { legacyReceiptUrl: { url: 'https://orders.example.com/receipt?n=EDX-1' } },
    });
  });
});

describe('toMinorUnits', () => {
  it('converts decimal strings exactly, by the currency’s precision', () => {
    expect(toMinorUnits('149.00', 'USD')).toBe(14_900);
    expect(toMinorUnits('0.5', 'USD')).toBe(50);
    expect(toMinorUnits('10', 'USD')).toBe(1_000);
    expect(toMinorUnits('-3.21', 'USD')).toBe(-321);
    expect(toMinorUnits('1.005', 'USD')).toBe(101);
    expect(toMinorUnits('1500', 'JPY')).toBe(1_500);
    expect(() => toMinorUnits('abc', 'USD')).toThrow('not a decimal amount');
  });
});
