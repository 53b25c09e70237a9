import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loginRedirect } from '../../gateway/http/browser.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

/**
 * The browser routes (receipt links, the payment page) over real HTTP: the LMS's edX JWT cookies sign
 * the learner in; an anonymous browser is sent to the LMS login with `next` at the Coordinator's public
 * URL (whatever Host says); an API client still gets 401 JSON; a cookie-only POST needs X-CSRFToken.
 */

const LOGIN = 'https://courses.example.com/login';
const PUBLIC = 'https://commerce.example.com';
let cc: CommerceCoordinator;

beforeAll(async () => {
  cc = await startCommerceCoordinator('browser-routes', {
    overrides: { browserLogin: { loginUrl: LOGIN, publicUrl: PUBLIC } },
  });
});

afterAll(async () => {
  await cc?.stop();
});

const cookiesOf = (jwt: string) => {
  const [header, payload, signature] = jwt.split('.');
  return `edx-jwt-cookie-header-payload=${header}.${payload}; edx-jwt-cookie-signature=${signature}`;
};
const RECEIPT = '/orders/unified/order_receipt/?order_number=2U-2026000002';

describe('browser routes', () => {
  it('accept the edX JWT cookies as the LMS sets them', async () => {
    const res = await cc.request(RECEIPT, { headers: { cookie: cookiesOf(cc.tokens.ada) } });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBeTruthy();
  });

  it('send an anonymous browser to the LMS login with next at the public URL, never at Host', async () => {
    const res = await cc.request(RECEIPT, {
      headers: {
        accept: 'text/html,application/xhtml+xml',
        host: 'evil.example.net',
        'x-forwarded-host': 'evil.example.net',
      },
    });
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).toBe(LOGIN);
    expect(location.searchParams.get('next')).toBe(`${PUBLIC}${RECEIPT}`);
  });

  it('keep a `//other.site` request path on the public URL', () => {
    const req = { url: '//evil.example.net/lms/payment_page_redirect/?sku=1' } as IncomingMessage;
    const next = new URL(loginRedirect(req, { loginUrl: LOGIN, publicUrl: PUBLIC })).searchParams.get('next');
    expect(next).toBe(`${PUBLIC}/lms/payment_page_redirect/?sku=1`);
  });

  it('still answer an API client 401 JSON', async () => {
    const res = await cc.request('/lms/payment_page_redirect/?sku=8CF08E5', {
      headers: { accept: 'application/json' },
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('refuse a forged cross-site POST carrying the cookies without X-CSRFToken, and accept it with one', async () => {
    const staff = cookiesOf(cc.tokens.orderManagement);
    const body = JSON.stringify({ id: 'csrf-1', detail: { id: '6a1f0c7e-1d2b-4c3a-9e8f-000000000004' } });
    const forged = await cc.request('/order-management/sanctioned', {
      method: 'POST',
      headers: {
        cookie: `${staff}; csrftoken=t0k3n`,
        'content-type': 'text/plain',
        origin: 'https://evil.example.net',
      },
      body,
    });
    expect(forged.status).toBe(403);
    expect(await forged.json()).toMatchObject({
      code: 'FORBIDDEN',
      message: expect.stringContaining('x-csrftoken'),
    });
    const wrong = await cc.request('/order-management/sanctioned', {
      method: 'POST',
      headers: {
        cookie: `${staff}; csrftoken=t0k3n`,
        'x-csrftoken': 'other',
        'content-type': 'application/json',
      },
      body,
    });
    expect(wrong.status).toBe(403);
    const same = await cc.request('/order-management/sanctioned', {
      method: 'POST',
      headers: {
        cookie: `${staff}; csrftoken=t0k3n`,
        'x-csrftoken': 't0k3n',
        'content-type': 'application/json',
      },
      body,
    });
    expect(same.status).not.toBe(403);
    expect(same.status).toBeLessThan(300);
  });
});
