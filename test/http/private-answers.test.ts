import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DomainError,
  ErrorCode,
  type Plugin,
  type PluginRuntime,
  type Principal,
  type Route,
} from '@commerce-coordinator/plugin-sdk';
import { silentLogger } from '../../gateway/log.js';
import { pluginRoutes } from '../../gateway/http/plugin-routes.js';
import { createHttpServer } from '../../gateway/http/server.js';
import frontendApps from '../../subgraphs/frontend-apps/index.js';

/**
 * An answer to a request that carried credentials (an Authorization header, or the edX JWT cookies a
 * browser sends by itself) is the caller's own: whatever a Plugin route says of caching, the gateway
 * marks it `private` (a browser may keep it, a CDN or proxy may not) and `Vary: Authorization, Cookie`.
 * The receipt redirect is the case in point: a Stripe receipt URL is a capability link to the payment.
 */

const RECEIPT_URL = 'https://pay.stripe.com/receipts/payment/CAcaFwoVYWNjdF9hZGE';
const ORIGIN = 'https://apps.example.com';

const routes: Route[] = [
  {
    // A route that believes its answer is the same for everyone.
    method: 'GET',
    path: '/catalog/public/',
    handle: async () => ({
      status: 200,
      headers: { 'Cache-Control': 'public, s-maxage=600, max-age=60, proxy-revalidate', Vary: 'Accept' },
      body: { catalog: [] },
    }),
  },
  { method: 'GET', path: '/catalog/plain/', handle: async () => ({ status: 200, body: { ok: true } }) },
  {
    method: 'GET',
    path: '/catalog/missing/',
    handle: async () => {
      throw new DomainError(ErrorCode.NOT_FOUND, 'No such thing');
    },
  },
  { method: 'POST', path: '/catalog/change/', handle: async () => ({ status: 204 }) },
];
const catalog = { name: 'catalog', routes } as unknown as Plugin;

const runtime = {
  runFilter: async () => ({ flowId: 'flow-1', status: 'COMPLETED', output: { url: RECEIPT_URL } }),
} as unknown as PluginRuntime;

const ada: Principal = { kind: 'learner', lmsUserId: 3, username: 'ada' } as Principal;
const TOKEN = 'aaa.bbb.ccc';
const cookies = 'edx-jwt-cookie-header-payload=aaa.bbb; edx-jwt-cookie-signature=ccc; csrftoken=t1';

let server: Server;
let base: string;

beforeAll(async () => {
  server = createHttpServer({
    apollo: undefined as never,
    context: async () => ({}) as never,
    routes: pluginRoutes([frontendApps, catalog], {
      runtime: () => runtime,
      authenticate: async (authorization) =>
        authorization === `Bearer ${TOKEN}` || authorization === `JWT ${TOKEN}` ? ada : undefined,
      file: 'rover.yaml',
    }),
    draining: () => false,
    logger: silentLogger,
    corsOrigins: [ORIGIN],
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
});

const call = (path: string, init: RequestInit = {}) =>
  fetch(`${base}${path}`, { redirect: 'manual', ...init });
const varyOf = (res: Response) =>
  (res.headers.get('vary') ?? '')
    .split(',')
    .map((v) => v.trim().toLowerCase())
    .filter(Boolean);
const directivesOf = (res: Response) =>
  (res.headers.get('cache-control') ?? '')
    .split(',')
    .map((v) => v.trim().toLowerCase())
    .filter(Boolean);

const RECEIPT = '/orders/unified/order_receipt/?order_number=2U-2026000001';

describe('the receipt redirect', () => {
  it.each([
    ['the edX JWT cookies', { cookie: cookies }],
    ['an Authorization header', { authorization: `Bearer ${TOKEN}` }],
  ])('signed in by %s is private, kept a month by the browser only', async (_, headers) => {
    const res = await call(RECEIPT, { headers });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(RECEIPT_URL);
    expect(res.headers.get('cache-control')).toBe('private, max-age=2591000');
    expect(varyOf(res)).toEqual(expect.arrayContaining(['authorization', 'cookie']));
  });
});

describe('a Plugin route answering a credentialed request', () => {
  it('cannot make it shared-cacheable: public, s-maxage and proxy-revalidate are dropped', async () => {
    const res = await call('/catalog/public/', { headers: { cookie: cookies } });
    expect(res.status).toBe(200);
    expect(directivesOf(res)).toEqual(['private', 'max-age=60']);
    // The route's own Vary is kept beside the credentials'.
    expect(varyOf(res)).toEqual(['accept', 'authorization', 'cookie']);
  });

  it('is private even when the route says nothing of caching', async () => {
    const res = await call('/catalog/plain/', { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(directivesOf(res)).toEqual(['private']);
  });

  it('is private when refused, by the route or by the gateway (a cookie POST without its CSRF header)', async () => {
    const missing = await call('/catalog/missing/', { headers: { cookie: cookies } });
    expect(missing.status).toBe(404);
    expect(directivesOf(missing)).toEqual(['private']);
    const forged = await call('/catalog/change/', { method: 'POST', headers: { cookie: cookies } });
    expect(forged.status).toBe(403);
    expect(directivesOf(forged)).toEqual(['private']);
    expect(varyOf(forged)).toEqual(expect.arrayContaining(['authorization', 'cookie']));
  });

  it('counts a credential that does not verify, or one edX cookie alone, as credentials', async () => {
    const invalid = await call('/catalog/public/', { headers: { authorization: 'Bearer forged' } });
    expect(directivesOf(invalid)).toEqual(['private', 'max-age=60']);
    const half = await call('/catalog/public/', {
      headers: { cookie: 'edx-jwt-cookie-signature=ccc' },
    });
    expect(half.status).toBe(401);
    expect(directivesOf(half)).toEqual(['private']);
  });

  it("keeps CORS's Vary: Origin", async () => {
    const res = await call('/catalog/plain/', { headers: { cookie: cookies, origin: ORIGIN } });
    expect(varyOf(res)).toEqual(['origin', 'authorization', 'cookie']);
    expect(directivesOf(res)).toEqual(['private']);
  });
});

describe('a Plugin route answering an anonymous request', () => {
  it("keeps the route's caching, and still varies on the credentials a shared cache must key on", async () => {
    const res = await call('/catalog/public/', { headers: { cookie: 'theme=dark' } });
    expect(res.headers.get('cache-control')).toBe('public, s-maxage=600, max-age=60, proxy-revalidate');
    expect(varyOf(res)).toEqual(['accept', 'authorization', 'cookie']);
    const plain = await call('/catalog/plain/');
    expect(plain.headers.get('cache-control')).toBeNull();
  });
});
