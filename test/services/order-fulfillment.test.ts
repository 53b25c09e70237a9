import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FULFILLMENT_SIGNATURE_HEADER,
  FULFILLMENT_TIMESTAMP_HEADER,
  startOrderFulfillment,
  type OrderFulfillmentStandIn,
} from '../../services/order-fulfillment/server.js';
import { signatureProblem } from '../../subgraphs/order-fulfillment/signature.js';
import { waitFor } from '../support/wait.js';

// The Order Fulfillment stand-in over HTTP, as the Plugin (and the real service's callers) meet it: its
// API key, its validation, its idempotency, and completion webhooks the Plugin's check accepts.

const SECRET = 'a-shared-secret-for-the-stand-in-test';
let of: OrderFulfillmentStandIn;
let receiver: ReturnType<typeof createServer>;
const received: Array<{ headers: IncomingMessage['headers']; raw: Buffer }> = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, raw: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  of = await startOrderFulfillment({
    webhook: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, secret: SECRET },
  });
});
afterAll(async () => {
  await of?.close();
  await new Promise((resolve) => receiver?.close(resolve));
});

const line = (overrides: Record<string, unknown> = {}) => ({
  order_id: 'order-1',
  order_number: '2U-2026000901',
  line_item_id: 'li-1',
  item_quantity: 1,
  fulfillment_type: 'entitlement',
  course_id: '5bd0e8e5-0b16-4a4b-9e4f-9f0b8f1e2a10',
  course_mode: 'verified',
  edx_lms_user_id: 41,
  edx_lms_username: 'grace',
  email_opt_in: false,
  provider_id: null,
  source_system: 'commercetools',
  lob: 'edx',
  ...overrides,
});

const post = (path: string, body: unknown, key: string | null = of.apiKey) =>
  fetch(`${of.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key === null ? {} : { 'x-edx-api-key': key }) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

describe('the Order Fulfillment stand-in', () => {
  it('answers 401 without the API key and 403 with a wrong one, and does nothing', async () => {
    expect((await post('/api/fulfill-order/', line(), null)).status).toBe(401);
    expect((await post('/api/fulfill-order/', line(), 'wrong')).status).toBe(403);
    expect((await post('/api/revoke-line/', {}, 'wrong')).status).toBe(403);
    expect(of.fulfillments()).toEqual([]);
  });

  it("refuses what the reference's serializers refuse, with DRF's field errors", async () => {
    const bad = await post('/api/fulfill-order/', line({ lob: undefined, course_mode: '' }));
    expect(bad.status).toBe(400);
    expect(Object.keys((await bad.json()) as object).sort()).toEqual(['course_mode', 'lob']);
    expect((await post('/api/fulfill-order/', '{not json')).status).toBe(400);
    expect((await post('/api/revoke-line/', { edx_lms_username: 'grace' })).status).toBe(400);
    expect(of.fulfillments()).toEqual([]);
  });

  it('fulfills a line once, and reports it once on a webhook the Plugin accepts', async () => {
    of.seed({ autoReport: false });
    const first = await post('/api/fulfill-order/', line());
    const again = await post('/api/fulfill-order/', line());
    expect([first.status, again.status]).toEqual([200, 200]);
    expect(of.fulfillments()).toHaveLength(1);
    expect(received).toHaveLength(0);
    expect((await of.deliverPending()).map((d) => d.status)).toEqual([200]);
    expect(await of.deliverPending()).toEqual([]);
    expect(received).toHaveLength(1);
    const [delivery] = received;
    const body = JSON.parse(delivery!.raw.toString('utf8')) as { detail: Record<string, unknown> };
    expect(body.detail).toEqual({
      fulfillment_type: 'entitlement',
      is_fulfilled: true,
      entitlement_uuid: expect.stringMatching(/^[0-9a-f-]{36}$/),
      order_id: 'order-1',
      line_item_id: 'li-1',
    });
    const headers = {
      timestamp: delivery!.headers[FULFILLMENT_TIMESTAMP_HEADER],
      signature: delivery!.headers[FULFILLMENT_SIGNATURE_HEADER],
    };
    expect(signatureProblem(delivery!.raw, headers, SECRET)).toBeUndefined();
    expect(signatureProblem(delivery!.raw, headers, 'another-secret-of-some-length')).toBeDefined();

    // Asked again once reported: reported again, with the same entitlement.
    await post('/api/fulfill-order/', line());
    expect((await of.deliverPending()).map((d) => d.status)).toEqual([200]);
    const redelivered = JSON.parse(received.at(-1)!.raw.toString('utf8')) as { detail: unknown };
    expect(redelivered.detail).toEqual(body.detail);
    of.seed({ autoReport: true });
  });

  it('reports a course it is told to fail as not fulfilled, without an entitlement UUID', async () => {
    of.seed({ failing: ['course-v1:NavyX+COBOL+2026'] });
    const before = received.length;
    await post(
      '/api/fulfill-order/',
      line({ line_item_id: 'li-2', fulfillment_type: 'enrollment', course_id: 'course-v1:NavyX+COBOL+2026' }),
    );
    await waitFor(() => received.length === before + 1, { what: 'the report' });
    const body = JSON.parse(received.at(-1)!.raw.toString('utf8')) as { detail: Record<string, unknown> };
    expect(body.detail).toEqual({
      fulfillment_type: 'enrollment',
      is_fulfilled: false,
      order_id: 'order-1',
      line_item_id: 'li-2',
    });
  });

  it('revokes a line once, however often asked', async () => {
    const revoke = {
      edx_lms_username: 'grace',
      course_run_key: 'course-v1:NavyX+COBOL+2026',
      course_mode: 'verified',
      lob: 'edx',
    };
    const first = (await (await post('/api/revoke-line/', revoke)).json()) as Record<string, unknown>;
    const again = (await (await post('/api/revoke-line/', revoke)).json()) as Record<string, unknown>;
    expect(first).toMatchObject({ revoked: true, already_revoked: false });
    expect(again).toMatchObject({ revoked: true, already_revoked: true });
    expect(of.revocations()).toEqual([revoke]);
  });
});
