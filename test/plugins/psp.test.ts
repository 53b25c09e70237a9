import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionResult } from 'graphql';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executePlugin } from '../support/plugins.js';
import { domainCodeOf, ErrorCode, httpStatusOf } from '../../gateway/errors.js';
import { composeSupergraph } from '../../gateway/federation/compose.js';
import { silentLogger } from '../../gateway/log.js';
import {
  type Plugin,
  type PluginRuntime,
  type Principal,
  type Route,
  type RouteRequest,
} from '@commerce-coordinator/plugin-sdk';
import { startPayPal, type PayPalStandIn } from '../../services/paypal/server.js';
import { startStripe, type StripeStandIn } from '../../services/stripe/server.js';
import paypalPlugin from '../../subgraphs/paypal/index.js';
import { VerificationGate } from '../../subgraphs/paypal/verification.js';
import stripePlugin from '../../subgraphs/stripe/index.js';
import { waitFor } from '../support/wait.js';

// Each plugin's schema executed as the gateway executes it, and each webhook route's handle() called
// with a runtime that records what it publishes, against the Service stand-ins over real HTTP.

const STRIPE_WEBHOOK_SECRET = 'whsec_psp_plugin_test';
const PAYPAL_WEBHOOK_ID = 'WH-PSP-PLUGIN-TEST';

interface Published {
  signal: string;
  payload: Record<string, unknown>;
  id: string;
}

/** Our own PluginRuntime, stubbed: it records publishes and dedupes ids, as the real one does. */
function recordingRuntime(): { runtime: PluginRuntime; published: Published[] } {
  const published: Published[] = [];
  const runtime: PluginRuntime = {
    logger: silentLogger,
    async publish(signal, payload, { id }) {
      const duplicate = published.some((p) => p.id === id);
      published.push({ signal, payload, id });
      return { duplicate };
    },
    runFilter: () => Promise.reject(new Error('not used by the PSP plugins')),
    variation: async (_flag, _principal, defaultValue) => defaultValue,
  };
  return { runtime, published };
}

/** A webhook endpoint in front of a plugin route, as the gateway serves it. */
async function serveRoute(route: Route, runtime: PluginRuntime): Promise<{ url: string; server: Server }> {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://gateway.test');
    try {
      const response = await route.handle(
        {
          method: req.method!,
          path: url.pathname,
          headers: req.headers,
          query: url.searchParams,
          rawQuery: url.search.slice(1),
          rawBody: Buffer.concat(chunks),
        },
        runtime,
      );
      res
        .writeHead(response.status, { 'content-type': 'application/json' })
        .end(JSON.stringify(response.body));
    } catch (error) {
      res
        .writeHead(500, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: String(error) }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${route.path}`, server };
}

const routeOf = (plugin: Plugin) => plugin.routes![0]!;

const webhookRequest = (route: Route, headers: Record<string, string>, body: string): RouteRequest => ({
  method: 'POST',
  path: route.path,
  headers,
  query: new URLSearchParams(),
  rawQuery: '',
  rawBody: Buffer.from(body),
});

const service: Principal = { kind: 'service', subject: 'coordinator', service: 'commerce-coordinator' };
const staff: Principal = { kind: 'staff', subject: 'staff-1', username: 'grace' };
const learner: Principal = { kind: 'learner', subject: 'learner-7', lmsUserId: 7, username: 'ada' };

interface CallOptions {
  principal?: Principal | null;
  /** null: no idempotency key. */
  key?: string | null;
  flowId?: string;
}

let keys = 0;
async function run<T = Record<string, unknown>>(
  plugin: Plugin,
  document: string,
  variables: Record<string, unknown>,
  options: CallOptions = {},
): Promise<ExecutionResult<T>> {
  const principal = options.principal === undefined ? service : options.principal;
  const identity = {
    principal: principal ?? undefined,
    idempotencyKey: options.key === null ? undefined : (options.key ?? `psp-test-key-${++keys}`),
    flowId: options.flowId ?? 'flow-psp-test',
  };
  return executePlugin<T>(plugin.schema, document, variables, identity);
}

const errorOf = (result: ExecutionResult) => result.errors?.[0];
const codeOf = (result: ExecutionResult) => errorOf(result)?.extensions?.code;

interface PaymentRefund {
  pspRefundId: string;
  refundedAmountCents: number;
  refundStatus: string;
  refundCreatedAt: string;
}

let stripeStandIn: StripeStandIn;
let paypalStandIn: PayPalStandIn;
const stripeRuntime = recordingRuntime();
const paypalRuntime = recordingRuntime();
const receivers: Server[] = [];
const savedEnv = { ...process.env };

beforeAll(async () => {
  const stripeEndpoint = await serveRoute(routeOf(stripePlugin), stripeRuntime.runtime);
  const paypalEndpoint = await serveRoute(routeOf(paypalPlugin), paypalRuntime.runtime);
  receivers.push(stripeEndpoint.server, paypalEndpoint.server);
  stripeStandIn = await startStripe({ webhook: { url: stripeEndpoint.url, secret: STRIPE_WEBHOOK_SECRET } });
  paypalStandIn = await startPayPal({ webhook: { url: paypalEndpoint.url, webhookId: PAYPAL_WEBHOOK_ID } });
  Object.assign(process.env, {
    STRIPE_API_BASE: stripeStandIn.url,
    STRIPE_SECRET_KEY: stripeStandIn.secretKey,
    STRIPE_WEBHOOK_SECRET,
    PAYPAL_API_BASE: paypalStandIn.url,
    PAYPAL_CLIENT_ID: paypalStandIn.clientId,
    PAYPAL_CLIENT_SECRET: paypalStandIn.clientSecret,
    PAYPAL_WEBHOOK_ID,
  });
  delete process.env.PAYPAL_ACTIVITY_URL_BASE;
});

afterAll(async () => {
  process.env = savedEnv;
  await stripeStandIn?.close();
  await paypalStandIn?.close();
  await Promise.all(receivers.map((s) => new Promise((resolve) => s.close(resolve))));
});

/** What differs between the two PSPs; everything else is one suite. */
interface Psp {
  name: 'STRIPE' | 'PAYPAL';
  plugin: Plugin;
  refund: string;
  receipt: string;
  published: Published[];
  /** A paid payment of `cents`; its PSP id. */
  pay(cents: number): string;
  refundsAtPsp(pspPaymentId: string): { id: string }[];
  /** The return each refund of the payment names at the PSP, by refund id. */
  returnsAtPsp(pspPaymentId: string): Record<string, unknown>;
  dashboardRefund(
    pspPaymentId: string,
    cents?: number,
  ): Promise<{ refundId: string; eventId: string; status: number }>;
  redeliver(eventId: string): Promise<{ status: number; body: string }>;
  failNext(status: number, times: number): void;
  /** How many times the SDK sends a call that fails with a 5xx (it retries some). */
  attemptsOn5xx: number;
  refusedCode: string;
}

const psps: Psp[] = [
  {
    name: 'STRIPE',
    plugin: stripePlugin,
    refund: 'refundStripePayment',
    receipt: 'stripeReceiptUrl',
    published: stripeRuntime.published,
    pay: (cents) => stripeStandIn.createPaymentIntent({ amount: cents }).id,
    refundsAtPsp: (id) => stripeStandIn.refunds(id),
    returnsAtPsp: (id) =>
      Object.fromEntries(
        stripeStandIn.refunds(id).map((r) => [r.id, (r.metadata as Record<string, unknown>).return_id]),
      ),
    async dashboardRefund(id, cents) {
      const { refund, event, delivery } = await stripeStandIn.refundFromDashboard(id, cents);
      return { refundId: refund.id, eventId: event.id, status: delivery!.status };
    },
    redeliver: (eventId) => stripeStandIn.redeliver(eventId),
    failNext: (status, times) => stripeStandIn.failNext({ path: '/v1/refunds', status, times }),
    attemptsOn5xx: 3,
    refusedCode: 'amount_too_large',
  },
  {
    name: 'PAYPAL',
    plugin: paypalPlugin,
    refund: 'refundPayPalPayment',
    receipt: 'payPalReceiptUrl',
    published: paypalRuntime.published,
    pay: (cents) => paypalStandIn.createCapture({ amountCents: cents }).id,
    refundsAtPsp: (id) => paypalStandIn.refunds(id),
    returnsAtPsp: (id) => Object.fromEntries(paypalStandIn.refunds(id).map((r) => [r.id, r.custom_id])),
    async dashboardRefund(id, cents) {
      const { refund, event, delivery } = await paypalStandIn.refundFromDashboard(id, cents);
      return { refundId: refund.id, eventId: event.id, status: delivery!.status };
    },
    redeliver: (eventId) => paypalStandIn.redeliver(eventId),
    failNext: (status, times) => paypalStandIn.failNext({ path: '/v2/payments/captures/', status, times }),
    attemptsOn5xx: 1,
    refusedCode: 'REFUND_AMOUNT_EXCEEDED',
  },
];

describe.each(psps)('$name plugin', (psp) => {
  const refund = (pspPaymentId: string, refundAmountCents: number, options: CallOptions = {}) =>
    run<Record<string, PaymentRefund>>(
      psp.plugin,
      `mutation ($input: RefundPaymentInput!) {
        ${psp.refund}(input: $input) { pspRefundId refundedAmountCents refundStatus refundCreatedAt }
      }`,
      { input: { pspPaymentId, refundAmountCents, currency: 'USD', orderNumber: '2U-2026000123' } },
      options,
    );

  it('refunds a payment and answers the PaymentRefund contract', async () => {
    const id = psp.pay(5000);
    const result = await refund(id, 1500);
    expect(result.errors).toBeUndefined();
    const refunded = result.data![psp.refund]!;
    expect(refunded).toEqual({
      pspRefundId: psp.refundsAtPsp(id)[0]!.id,
      refundedAmountCents: 1500,
      refundStatus: 'succeeded',
      refundCreatedAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
    });
    expect(Math.abs(Date.parse(refunded.refundCreatedAt) - Date.now())).toBeLessThan(60_000);
  });

  it('refunds once when a step is retried with the same idempotency key', async () => {
    const id = psp.pay(5000);
    const first = await refund(id, 2000, { key: `flow-1:step-2:${psp.name}` });
    const retried = await refund(id, 2000, { key: `flow-1:step-2:${psp.name}` });
    expect(retried.data).toEqual(first.data);
    expect(psp.refundsAtPsp(id)).toHaveLength(1);
    // Another step (another key) is another refund.
    await refund(id, 1000);
    expect(psp.refundsAtPsp(id)).toHaveLength(2);
  });

  it('answers the existing refund of a payment the PSP already fully refunded, never refunding twice', async () => {
    const id = psp.pay(3000);
    const { refundId } = await psp.dashboardRefund(id);
    const result = await refund(id, 1000);
    expect(result.errors).toBeUndefined();
    expect(result.data![psp.refund]).toMatchObject({
      pspRefundId: refundId,
      refundedAmountCents: 3000,
      refundStatus: 'succeeded',
    });
    expect(psp.refundsAtPsp(id)).toHaveLength(1);
  });

  it('names the return at the PSP; a fully refunded payment answers the return’s own refund, never another’s', async () => {
    const id = psp.pay(3000);
    const forReturn = (returnId: string, refundAmountCents: number, options: CallOptions = {}) =>
      run<Record<string, PaymentRefund>>(
        psp.plugin,
        `mutation ($input: RefundPaymentInput!) {
          ${psp.refund}(input: $input) { pspRefundId refundedAmountCents }
        }`,
        {
          input: {
            pspPaymentId: id,
            refundAmountCents,
            currency: 'USD',
            orderNumber: '2U-2026000124',
            returnId,
          },
        },
        options,
      );
    const own = (await forReturn('ret-own', 1000)).data![psp.refund]!.pspRefundId;
    // Another return refunds the rest: the payment is fully refunded, by that return's refund last.
    const other = (await forReturn('ret-other', 2000)).data![psp.refund]!.pspRefundId;
    expect(psp.returnsAtPsp(id)).toEqual({ [own]: 'ret-own', [other]: 'ret-other' });

    // The first return's step again, under a key the PSP no longer keeps: its own refund answers.
    const again = await forReturn('ret-own', 1000, { key: `forgotten-key-${psp.name}` });
    expect(again.errors).toBeUndefined();
    expect(again.data![psp.refund]).toEqual({ pspRefundId: own, refundedAmountCents: 1000 });

    // A third return, with something or nothing left to get: every refund is another return's.
    for (const cents of [500, 0]) {
      const third = await forReturn('ret-third', cents);
      expect(codeOf(third)).toBe(ErrorCode.CONFLICT);
      expect(errorOf(third)!.extensions).toMatchObject({
        psp: psp.name.toLowerCase(),
        pspCode: psp.name === 'STRIPE' ? 'charge_already_refunded' : 'CAPTURE_FULLY_REFUNDED',
        pspRefundIds: expect.arrayContaining([own, other]),
      });
      expect(errorOf(third)!.message).toContain('none is for return ret-third');
    }
    expect(psp.refundsAtPsp(id)).toHaveLength(2);
  });

  it('answers IDEMPOTENCY_KEY_REUSED when a key comes back with another amount', async () => {
    const id = psp.pay(5000);
    await refund(id, 1000, { key: `reused-${psp.name}` });
    const reused = await refund(id, 1200, { key: `reused-${psp.name}` });
    expect(codeOf(reused)).toBe(ErrorCode.IDEMPOTENCY_KEY_REUSED);
    expect(psp.refundsAtPsp(id)).toHaveLength(1);
  });

  it('turns a PSP rejection into CONFLICT with pspCode, an unknown payment into NOT_FOUND', async () => {
    const id = psp.pay(1000);
    const refused = await refund(id, 1001);
    expect(codeOf(refused)).toBe(ErrorCode.CONFLICT);
    expect(errorOf(refused)!.extensions).toMatchObject({ pspCode: psp.refusedCode });
    expect(domainCodeOf(errorOf(refused)!.originalError)).toBe(ErrorCode.CONFLICT);
    const unknown = await refund(psp.name === 'STRIPE' ? 'pi_unknown' : 'UNKNOWNCAPTURE1', 100);
    expect(codeOf(unknown)).toBe(ErrorCode.NOT_FOUND);
    expect(psp.refundsAtPsp(id)).toHaveLength(0);
  });

  it('lets a PSP outage through as a retryable (non-domain) error', async () => {
    const id = psp.pay(1000);
    psp.failNext(503, psp.attemptsOn5xx);
    const result = await refund(id, 100, { key: `outage-${psp.name}` });
    expect(errorOf(result)!.message).toMatch(/503|unknown error/i);
    expect(domainCodeOf(errorOf(result)!.originalError)).toBeUndefined();
    expect(psp.refundsAtPsp(id)).toHaveLength(0);
    // The engine's retry of the step, with the same key, then refunds.
    expect((await refund(id, 100, { key: `outage-${psp.name}` })).errors).toBeUndefined();
    expect(psp.refundsAtPsp(id)).toHaveLength(1);
  });

  it('lets staff and Services refund outside a flow, learners only as a flow step', async () => {
    const id = psp.pay(5000);
    expect(codeOf(await refund(id, 100, { principal: learner, flowId: '' }))).toBe(ErrorCode.FORBIDDEN);
    expect(codeOf(await refund(id, 100, { principal: null, flowId: '' }))).toBe(ErrorCode.UNAUTHENTICATED);
    expect(codeOf(await refund(id, 100, { principal: staff, flowId: '', key: null }))).toBe(
      ErrorCode.BAD_USER_INPUT,
    );
    // Nothing left to refund by the record, while the PSP has not refunded it all: they disagree.
    expect(codeOf(await refund(id, 0))).toBe(ErrorCode.CONFLICT);
    expect(psp.refundsAtPsp(id)).toHaveLength(0);
    expect((await refund(id, 100, { principal: staff, flowId: '' })).errors).toBeUndefined();
    expect((await refund(id, 100, { principal: learner })).errors).toBeUndefined();
    expect(psp.refundsAtPsp(id)).toHaveLength(2);
  });

  it('publishes payment.refunded.v1 for a dashboard refund, identified by the refund and its status', async () => {
    const id = psp.pay(4000);
    const before = psp.published.length;
    const { refundId, status } = await psp.dashboardRefund(id, 1250);
    expect(status).toBe(200);
    expect(psp.published.slice(before)).toEqual([
      {
        signal: 'payment.refunded.v1',
        id: `${psp.name}:${refundId}:succeeded`,
        payload: {
          psp: psp.name,
          pspPaymentId: id,
          pspRefundId: refundId,
          refundedAmountCents: 1250,
          currency: 'USD',
          refundStatus: 'succeeded',
          refundCreatedAt: expect.stringMatching(/Z$/),
        },
      },
    ]);
  });

  it('publishes a redelivered webhook again with the same id, for the runtime to drop', async () => {
    const id = psp.pay(4000);
    const before = psp.published.length;
    const { refundId, eventId } = await psp.dashboardRefund(id, 500);
    const again = await psp.redeliver(eventId);
    expect(again.status).toBe(200);
    expect(JSON.parse(again.body)).toEqual({
      received: true,
      duplicate: true,
      refunds: [{ pspRefundId: refundId, refundStatus: 'succeeded', duplicate: true }],
    });
    const published = psp.published.slice(before);
    expect(published.map((p) => p.id)).toEqual([
      `${psp.name}:${refundId}:succeeded`,
      `${psp.name}:${refundId}:succeeded`,
    ]);
    expect(published[1]!.payload).toEqual(published[0]!.payload);
  });
});

describe('stripe plugin specifics', () => {
  const route = routeOf(stripePlugin);
  const signed = (body: string, secret = STRIPE_WEBHOOK_SECRET) => ({
    'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload: body, secret }),
  });

  it('answers the charge receipt_url, and NOT_FOUND for an unknown payment', async () => {
    const { id } = stripeStandIn.createPaymentIntent({ amount: 2500 });
    const query = 'query ($id: String!) { stripeReceiptUrl(pspPaymentId: $id) { url } }';
    const result = await run<{ stripeReceiptUrl: { url: string } }>(
      stripePlugin,
      query,
      { id },
      { flowId: '' },
    );
    const { url } = result.data!.stripeReceiptUrl;
    expect(url).toMatch(new RegExp(`^${stripeStandIn.url}/receipts/payment/`));
    expect((await fetch(url)).status).toBe(200);
    expect(codeOf(await run(stripePlugin, query, { id: 'pi_unknown' }))).toBe(ErrorCode.NOT_FOUND);
    expect(codeOf(await run(stripePlugin, query, { id }, { principal: learner, flowId: '' }))).toBe(
      ErrorCode.FORBIDDEN,
    );
  });

  it('refuses a bad signature with 403 INVALID_SIGNATURE, a signed non-JSON body with 400 BAD_REQUEST', async () => {
    const { runtime, published } = recordingRuntime();
    const body = JSON.stringify({
      id: 'evt_forged',
      object: 'event',
      type: 'charge.refunded',
      data: { object: {} },
    });
    const forged = await route.handle(
      webhookRequest(route, signed(body, 'whsec_someone_else'), body),
      runtime,
    );
    expect(forged).toMatchObject({ status: 403, body: { code: ErrorCode.INVALID_SIGNATURE } });
    const unsigned = await route.handle(webhookRequest(route, {}, body), runtime);
    expect(unsigned).toMatchObject({ status: 403, body: { code: ErrorCode.INVALID_SIGNATURE } });
    const garbage = await route.handle(webhookRequest(route, signed('not json'), 'not json'), runtime);
    expect(garbage).toMatchObject({ status: 400, body: { code: ErrorCode.BAD_REQUEST } });
    expect(published).toEqual([]);
  });

  it('refuses a Stripe-Signature whose timestamp is more than 300 s away, ahead as well as behind', async () => {
    const { runtime, published } = recordingRuntime();
    const body = JSON.stringify({ id: 'evt_t', object: 'event', type: 'ping', data: { object: {} } });
    const at = (offset: number) => ({
      'stripe-signature': Stripe.webhooks.generateTestHeaderString({
        payload: body,
        secret: STRIPE_WEBHOOK_SECRET,
        timestamp: Math.floor(Date.now() / 1000) + offset,
      }),
    });
    const answers = [];
    for (const offset of [-3600, -310, 310, 3600, 86_400 * 365])
      answers.push((await route.handle(webhookRequest(route, at(offset), body), runtime)).status);
    expect(answers).toEqual([403, 403, 403, 403, 403]);
    // Within the tolerance either way: accepted (and ignored, as a type not handled).
    for (const offset of [-200, 200])
      expect(await route.handle(webhookRequest(route, at(offset), body), runtime)).toMatchObject({
        status: 200,
      });
    // Two timestamps: which one was signed is ambiguous.
    const twice = `${at(0)['stripe-signature']},t=${Math.floor(Date.now() / 1000) + 3600}`;
    expect(
      await route.handle(webhookRequest(route, { 'stripe-signature': twice }, body), runtime),
    ).toMatchObject({ status: 403, body: { code: ErrorCode.INVALID_SIGNATURE } });
    expect(published).toEqual([]);
  });

  it('answers 400 BAD_REQUEST to every signed event it cannot read, never a 500', async () => {
    const { runtime, published } = recordingRuntime();
    const event = (type: string, object: unknown) => ({
      id: 'evt_bad',
      object: 'event',
      type,
      data: { object },
    });
    const refund = {
      id: 're_1',
      object: 'refund',
      amount: 100,
      currency: 'usd',
      status: 'succeeded',
      created: 1_700_000_000,
      payment_intent: 'pi_1',
      charge: 'ch_1',
    };
    const shapes: Array<[string, unknown]> = [
      ['null', null],
      ['a list', []],
      ['a string', 'charge.refunded'],
      ['no id or type', {}],
      ['a type that is no string', { id: 'evt_1', type: 7, data: { object: {} } }],
      ['no data', { id: 'evt_1', object: 'event', type: 'charge.refunded' }],
      ['no data.object', { id: 'evt_1', object: 'event', type: 'charge.refunded', data: {} }],
      ['a null data.object', event('charge.refunded', null)],
      ['a charge without id', event('charge.refunded', { object: 'charge', amount_refunded: 100 })],
      ['a charge whose id is a number', event('charge.refunded', { id: 42, object: 'charge' })],
      ['a refund event about a charge', event('charge.refund.updated', { id: 'ch_1', object: 'charge' })],
      ['a refund without amount', event('charge.refund.updated', { ...refund, amount: undefined })],
      ['a refund of "100" cents', event('refund.updated', { ...refund, amount: '100' })],
      ['a refund of -5 cents', event('refund.updated', { ...refund, amount: -5 })],
      ['a refund of 1.5 cents', event('refund.updated', { ...refund, amount: 1.5 })],
      ['a refund without currency', event('refund.failed', { ...refund, currency: undefined })],
      ['a refund created "yesterday"', event('charge.refund.updated', { ...refund, created: 'yesterday' })],
      ['a thin event', { id: 'evt_1', object: 'v2.core.event', type: 'v1.charge.refunded' }],
    ];
    const answers = [];
    for (const [what, shape] of shapes) {
      const body = JSON.stringify(shape);
      const response = await route
        .handle(webhookRequest(route, signed(body), body), runtime)
        .catch((error: unknown) => ({ status: 500, body: { code: String(error) } }));
      answers.push({ what, status: response.status, code: (response.body as { code?: string })?.code });
    }
    expect(answers).toEqual(shapes.map(([what]) => ({ what, status: 400, code: ErrorCode.BAD_REQUEST })));
    expect(published).toEqual([]);
  });

  it('publishes every refund of a charge.refunded delivered late, oldest first, each once', async () => {
    const { id } = stripeStandIn.createPaymentIntent({ amount: 5000 });
    const first = await stripeStandIn.refundFromDashboard(id, 2000, { deliver: false });
    const second = await stripeStandIn.refundFromDashboard(id, 3000, { deliver: false });
    const before = stripeRuntime.published.length;

    const late = await stripeStandIn.redeliver(first.event.id);

    expect(late.status).toBe(200);
    expect(JSON.parse(late.body)).toEqual({
      received: true,
      duplicate: false,
      refunds: [
        { pspRefundId: first.refund.id, refundStatus: 'succeeded', duplicate: false },
        { pspRefundId: second.refund.id, refundStatus: 'succeeded', duplicate: false },
      ],
    });
    expect(stripeRuntime.published.slice(before).map((p) => [p.id, p.payload.refundedAmountCents])).toEqual([
      [`STRIPE:${first.refund.id}:succeeded`, 2000],
      [`STRIPE:${second.refund.id}:succeeded`, 3000],
    ]);
    const own = await stripeStandIn.redeliver(second.event.id);
    expect(JSON.parse(own.body)).toMatchObject({ received: true, duplicate: true });
  });

  it('publishes a pending refund again when it settles, under its new status', async () => {
    const { id } = stripeStandIn.createPaymentIntent({ amount: 5000 });
    const pending = await stripeStandIn.refundFromDashboard(id, 1000, { status: 'pending' });
    const before = stripeRuntime.published.length;
    const settled = await stripeStandIn.settleRefund(pending.refund.id, 'failed');
    expect(settled.delivery).toMatchObject({ status: 200 });
    // The same refund announced by the newer refund events: already published.
    const { delivery } = await stripeStandIn.sendEvent({
      type: 'refund.failed',
      data: { object: settled.refund },
    });
    expect(JSON.parse(delivery.body)).toMatchObject({ received: true, duplicate: true });
    expect(stripeRuntime.published.slice(before).map((p) => [p.id, p.payload.refundStatus])).toEqual([
      [`STRIPE:${pending.refund.id}:failed`, 'failed'],
      [`STRIPE:${pending.refund.id}:failed`, 'failed'],
    ]);
  });

  it('answers 503 SERVICE_UNAVAILABLE when Stripe cannot list the refunds, for Stripe to retry', async () => {
    const { id } = stripeStandIn.createPaymentIntent({ amount: 3000 });
    const { refund, event } = await stripeStandIn.refundFromDashboard(id, 1000, { deliver: false });
    // The SDK's own retries (maxNetworkRetries: 2) all fail.
    stripeStandIn.failNext({ method: 'GET', path: '/v1/refunds', status: 500, times: 3 });
    const before = stripeRuntime.published.length;
    const outage = await stripeStandIn.redeliver(event.id);
    expect(outage.status).toBe(503);
    expect(JSON.parse(outage.body)).toMatchObject({ code: ErrorCode.SERVICE_UNAVAILABLE });
    expect(stripeRuntime.published.length).toBe(before);
    expect((await stripeStandIn.redeliver(event.id)).status).toBe(200);
    expect(stripeRuntime.published.slice(before).map((p) => p.id)).toEqual([`STRIPE:${refund.id}:succeeded`]);
  });

  it('answers 200 and ignores event types it does not handle (the reference answered 422)', async () => {
    const before = stripeRuntime.published.length;
    const { delivery } = await stripeStandIn.sendEvent({
      type: 'payment_intent.succeeded',
      data: { object: { id: 'pi_x', object: 'payment_intent' } },
    });
    expect(delivery.status).toBe(200);
    expect(JSON.parse(delivery.body)).toEqual({ received: true, ignored: 'payment_intent.succeeded' });
    expect(stripeRuntime.published.length).toBe(before);
  });

  it('names the missing variable when Stripe is not configured', async () => {
    const key = process.env.STRIPE_SECRET_KEY;
    delete process.env.STRIPE_SECRET_KEY;
    try {
      const result = await run(stripePlugin, 'query { stripeReceiptUrl(pspPaymentId: "pi_1") { url } }', {});
      expect(errorOf(result)!.message).toContain('STRIPE_SECRET_KEY is not set');
      // A Service that is not configured cannot be reached: the caller may retry once it is.
      expect(domainCodeOf(errorOf(result)!.originalError)).toBe('SERVICE_UNAVAILABLE');
    } finally {
      process.env.STRIPE_SECRET_KEY = key;
    }
  });
});

/** Transmission headers PayPal could have sent (a fresh id, the stand-in's certificate), but did not sign. */
const plausibleTransmission = (): Record<string, string> => ({
  'paypal-auth-algo': 'SHA256withRSA',
  'paypal-cert-url': paypalStandIn.certUrl,
  'paypal-transmission-id': randomUUID(),
  'paypal-transmission-sig': randomBytes(256).toString('base64'),
  'paypal-transmission-time': new Date().toISOString(),
});

/** A refund resource as PAYMENT.CAPTURE.REFUNDED carries it, of a capture of the stand-in's. */
const forgedRefund = () => ({
  id: 'FORGEDREFUND',
  amount: { currency_code: 'USD', value: '10.00' },
  status: 'COMPLETED',
  create_time: new Date().toISOString(),
  links: [{ rel: 'up', href: `${paypalStandIn.url}/v2/payments/captures/FORGEDCAPTURE`, method: 'GET' }],
});

describe('paypal plugin specifics', () => {
  const route = routeOf(paypalPlugin);

  it('answers the activity page of a capture, from PAYPAL_ACTIVITY_URL_BASE', async () => {
    const query = 'query ($id: String!) { payPalReceiptUrl(pspPaymentId: $id) { url } }';
    const result = await run<{ payPalReceiptUrl: { url: string } }>(paypalPlugin, query, {
      id: '8MC585209K746392H',
    });
    expect(result.data!.payPalReceiptUrl.url).toBe(
      'https://www.paypal.com/activity/payment/8MC585209K746392H',
    );
    process.env.PAYPAL_ACTIVITY_URL_BASE = 'https://www.sandbox.paypal.com/activity/payment';
    try {
      const sandbox = await run<{ payPalReceiptUrl: { url: string } }>(paypalPlugin, query, { id: 'ABC' });
      expect(sandbox.data!.payPalReceiptUrl.url).toBe('https://www.sandbox.paypal.com/activity/payment/ABC');
    } finally {
      delete process.env.PAYPAL_ACTIVITY_URL_BASE;
    }
  });

  it('refuses a call PayPal does not verify, or without transmission headers, with 403; a body that is not JSON with 400', async () => {
    const { runtime, published } = recordingRuntime();
    const capture = paypalStandIn.createCapture({ amountCents: 1000 });
    const body = JSON.stringify({
      id: 'WH-FORGED',
      event_type: 'PAYMENT.CAPTURE.REFUNDED',
      resource: {
        id: 'FORGEDREFUND',
        amount: { currency_code: 'USD', value: '10.00' },
        status: 'COMPLETED',
        create_time: new Date().toISOString(),
        links: [
          { rel: 'up', href: `${paypalStandIn.url}/v2/payments/captures/${capture.id}`, method: 'GET' },
        ],
      },
    });
    const headers = plausibleTransmission();
    const forged = await route.handle(webhookRequest(route, headers, body), runtime);
    expect(forged).toMatchObject({ status: 403, body: { code: ErrorCode.INVALID_SIGNATURE } });
    const bare = await route.handle(webhookRequest(route, {}, body), runtime);
    expect(bare).toMatchObject({ status: 403, body: { code: ErrorCode.INVALID_SIGNATURE } });
    const garbage = await route.handle(webhookRequest(route, headers, 'not json'), runtime);
    expect(garbage).toMatchObject({ status: 400, body: { code: ErrorCode.BAD_REQUEST } });
    expect(published).toEqual([]);
  });

  it('answers 400 BAD_REQUEST to a signed refund event it cannot read, without asking PayPal', async () => {
    const capture = paypalStandIn.createCapture({ amountCents: 1000 });
    const refund = {
      id: 'REFUND0000000001',
      amount: { currency_code: 'USD', value: '10.00' },
      status: 'COMPLETED',
      create_time: new Date().toISOString(),
      links: [{ rel: 'up', href: `${paypalStandIn.url}/v2/payments/captures/${capture.id}`, method: 'GET' }],
    };
    const resources: Array<[string, Record<string, unknown>]> = [
      ['nothing', {}],
      ['an id that is a number', { ...refund, id: 7 }],
      ['no amount', { ...refund, amount: undefined }],
      ['an amount of "ten"', { ...refund, amount: { currency_code: 'USD', value: 'ten' } }],
      ['an amount finer than cents', { ...refund, amount: { currency_code: 'USD', value: '1.001' } }],
      ['a currency that is none', { ...refund, amount: { currency_code: 'dollars', value: '1.00' } }],
      ['no links', { ...refund, links: undefined }],
      [
        'no link up to a capture',
        { ...refund, links: [{ rel: 'self', href: `${paypalStandIn.url}/v2/payments/refunds/R` }] },
      ],
      ['links that are no list', { ...refund, links: 'up' }],
      ['a create_time of "yesterday"', { ...refund, create_time: 'yesterday' }],
    ];
    const verifications = () => paypalStandIn.calls('/v1/notifications/verify-webhook-signature').length;
    const before = paypalRuntime.published.length;
    const calls = verifications();
    const answers = [];
    for (const [what, resource] of resources) {
      const { delivery } = await paypalStandIn.sendEvent({
        event_type: 'PAYMENT.CAPTURE.REFUNDED',
        resource_type: 'refund',
        resource,
      });
      answers.push({
        what,
        status: delivery.status,
        code: (JSON.parse(delivery.body) as { code?: string }).code,
      });
    }
    expect(answers).toEqual(resources.map(([what]) => ({ what, status: 400, code: ErrorCode.BAD_REQUEST })));
    expect(verifications()).toBe(calls);
    expect(paypalRuntime.published.length).toBe(before);
  });

  it('has at most PAYPAL_WEBHOOK_MAX_VERIFICATIONS verify calls in flight; beyond, 429 with Retry-After', async () => {
    const { runtime, published } = recordingRuntime();
    process.env.PAYPAL_WEBHOOK_MAX_VERIFICATIONS = '3';
    const path = '/v1/notifications/verify-webhook-signature';
    const hold = paypalStandIn.hold(path);
    const before = paypalStandIn.calls(path).length;
    try {
      const body = JSON.stringify({
        id: 'WH-BURST',
        event_type: 'PAYMENT.CAPTURE.REFUNDED',
        resource: forgedRefund(),
      });
      const burst = Array.from({ length: 8 }, () =>
        route.handle(webhookRequest(route, plausibleTransmission(), body), runtime),
      );
      const settled: Array<{ status: number; headers?: Record<string, string>; body?: unknown }> = [];
      for (const answer of burst) void answer.then((r) => settled.push(r));
      await waitFor(() => hold.held() === 3 && settled.length === 5, {
        what: '3 verifications held, 5 refused',
      });
      expect(settled).toEqual(
        Array.from({ length: 5 }, () => ({
          status: httpStatusOf(ErrorCode.TOO_MANY_REQUESTS),
          headers: { 'retry-after': expect.stringMatching(/^\d+$/) },
          body: { code: ErrorCode.TOO_MANY_REQUESTS, message: expect.any(String) },
        })),
      );
      hold.release();
      const answers = await Promise.all(burst);
      expect(answers.map((a) => a.status).sort()).toEqual([403, 403, 403, 429, 429, 429, 429, 429]);
      const calls = paypalStandIn.calls(path).slice(before);
      expect(calls).toHaveLength(3);
      expect(Math.max(...calls.map((c) => c.inFlight))).toBeLessThanOrEqual(3);
      expect(published).toEqual([]);
    } finally {
      hold.release();
      delete process.env.PAYPAL_WEBHOOK_MAX_VERIFICATIONS;
    }
  });

  it('answers 503 SERVICE_UNAVAILABLE when PayPal cannot verify now, and asks again on the retry', async () => {
    const capture = paypalStandIn.createCapture({ amountCents: 1000 });
    const { refund, event } = await paypalStandIn.refundFromDashboard(capture.id, 400, { deliver: false });
    paypalStandIn.failNext({ path: '/v1/notifications/verify-webhook-signature', status: 503 });
    const before = paypalRuntime.published.length;
    const outage = await paypalStandIn.redeliver(event.id);
    expect(outage.status).toBe(503);
    expect(JSON.parse(outage.body)).toMatchObject({ code: ErrorCode.SERVICE_UNAVAILABLE });
    // The same transmission again: the failed call was not remembered.
    const again = await route.handle(
      webhookRequest(route, outage.request.headers, outage.request.body),
      paypalRuntime.runtime,
    );
    expect(again).toMatchObject({ status: 200, body: { received: true, duplicate: false } });
    expect(paypalRuntime.published.slice(before).map((p) => p.id)).toEqual([`PAYPAL:${refund.id}:succeeded`]);
  });

  it('answers a transmission it already verified without asking PayPal again', async () => {
    const path = '/v1/notifications/verify-webhook-signature';
    const capture = paypalStandIn.createCapture({ amountCents: 2000 });
    const { refund, delivery } = await paypalStandIn.refundFromDashboard(capture.id, 700);
    expect(delivery).toMatchObject({ status: 200 });
    const calls = paypalStandIn.calls(path).length;
    const before = paypalRuntime.published.length;

    // The very same transmission again (a replay, or a proxy retrying): PayPal's answer is remembered.
    const again = await route.handle(
      webhookRequest(route, delivery!.request.headers, delivery!.request.body),
      paypalRuntime.runtime,
    );
    expect(again).toMatchObject({ status: 200, body: { received: true, duplicate: true } });
    expect(paypalStandIn.calls(path)).toHaveLength(calls);
    expect(paypalRuntime.published.slice(before).map((p) => p.id)).toEqual([`PAYPAL:${refund.id}:succeeded`]);

    // So is a refusal; another body under the same headers is another transmission.
    const { runtime } = recordingRuntime();
    const forged = plausibleTransmission();
    const body = JSON.stringify({
      id: 'WH-REPLAY',
      event_type: 'PAYMENT.CAPTURE.REFUNDED',
      resource: forgedRefund(),
    });
    for (let i = 0; i < 3; i++)
      expect(await route.handle(webhookRequest(route, forged, body), runtime)).toMatchObject({ status: 403 });
    expect(paypalStandIn.calls(path)).toHaveLength(calls + 1);
    const tampered = delivery!.request.body.replace('"7.00"', '"17.00"');
    expect(
      await route.handle(webhookRequest(route, delivery!.request.headers, tampered), runtime),
    ).toMatchObject({ status: 403, body: { code: ErrorCode.INVALID_SIGNATURE } });
    expect(paypalStandIn.calls(path)).toHaveLength(calls + 2);
  });

  it('answers 200 and ignores event types it does not handle', async () => {
    const before = paypalRuntime.published.length;
    const { delivery } = await paypalStandIn.sendEvent({
      event_type: 'PAYMENT.CAPTURE.COMPLETED',
      resource_type: 'capture',
      resource: { id: 'X' },
    });
    expect(delivery.status).toBe(200);
    expect(JSON.parse(delivery.body)).toEqual({ received: true, ignored: 'PAYMENT.CAPTURE.COMPLETED' });
    expect(paypalRuntime.published.length).toBe(before);
  });
});

describe('the PayPal verification gate', () => {
  /** A verify call the test settles itself, counting how often the gate made it. */
  function verifier() {
    const pending: Array<(verified: boolean) => void> = [];
    let calls = 0;
    return {
      verify: () => {
        calls++;
        return new Promise<boolean>((resolve) => pending.push(resolve));
      },
      settle: (verified: boolean) => pending.splice(0).forEach((resolve) => resolve(verified)),
      get calls() {
        return calls;
      },
    };
  }
  const later = Date.now() + 3_600_000;

  it('remembers at most cacheSize verdicts, the least recently used going first', async () => {
    const gate = new VerificationGate({ maxInFlight: 10, cacheSize: 2 });
    const v = verifier();
    const asked = ['a', 'b', 'a', 'c'].map((key) => gate.verdict(key, later, v.verify));
    v.settle(true);
    expect(await Promise.all(asked)).toEqual([true, true, true, true]);
    // 'a' was asked once (then answered from memory); 'c' pushed out 'b', the least recently used.
    expect(v.calls).toBe(3);
    expect(gate.size).toBe(2);
    expect(await gate.verdict('a', later, v.verify)).toBe(true);
    expect(v.calls).toBe(3);
    const b = gate.verdict('b', later, v.verify);
    v.settle(false);
    expect(await b).toBe(false);
    expect(v.calls).toBe(4);
  });

  it('forgets a verdict once its transmission is out of its window, and never keeps a failed call', async () => {
    const gate = new VerificationGate({ maxInFlight: 10 });
    const v = verifier();
    const first = gate.verdict('t', Date.now() + 1_000, v.verify);
    v.settle(true);
    await first;
    const expired = gate.verdict('t', later, v.verify, Date.now() + 2_000);
    v.settle(false);
    expect(await expired).toBe(false);
    expect(v.calls).toBe(2);

    const failing = gate.verdict('u', later, () => Promise.reject(new Error('PayPal is down')));
    await expect(failing).rejects.toThrow('PayPal is down');
    const retried = gate.verdict('u', later, v.verify);
    v.settle(true);
    expect(await retried).toBe(true);
    expect(v.calls).toBe(3);
  });

  it('is busy while maxInFlight calls are under way; a transmission already in flight waits for its call', async () => {
    const gate = new VerificationGate({ maxInFlight: 2 });
    const v = verifier();
    const x = gate.verdict('x', later, v.verify);
    const y = gate.verdict('y', later, v.verify);
    expect(gate.verdict('z', later, v.verify)).toBe('busy');
    const xAgain = gate.verdict('x', later, v.verify);
    expect(xAgain).not.toBe('busy');
    v.settle(true);
    expect(await Promise.all([x, y, xAgain])).toEqual([true, true, true]);
    expect(v.calls).toBe(2);
    const z = gate.verdict('z', later, v.verify);
    v.settle(false);
    expect(await z).toBe(false);
  });
});

interface PaymentReference {
  pspPaymentId: string;
  lmsUserId?: number;
  pspOrderId?: string | null;
}

/** `OrderPayment` references resolved as the gateway resolves them (`_entities`), outside a flow by default. */
const readPayments = (
  plugin: Plugin,
  field: 'stripe' | 'paypal',
  selection: string,
  references: PaymentReference[],
  options: CallOptions = {},
) =>
  run<{ _entities: Array<Record<string, Record<string, unknown> | null> | null> }>(
    plugin,
    `query ($r: [_Any!]!) { _entities(representations: $r) { ... on OrderPayment { ${field} ${selection} } } }`,
    { r: references.map((r) => ({ __typename: 'OrderPayment', ...r })) },
    { flowId: '', key: null, ...options },
  );

const stripeRefund = (pspPaymentId: string, refundAmountCents: number) =>
  run(
    stripePlugin,
    'mutation ($input: RefundPaymentInput!) { refundStripePayment(input: $input) { pspRefundId } }',
    { input: { pspPaymentId, refundAmountCents, currency: 'USD' } },
  );
const payPalRefund = (pspPaymentId: string, refundAmountCents: number) =>
  run(
    paypalPlugin,
    'mutation ($input: RefundPaymentInput!) { refundPayPalPayment(input: $input) { pspRefundId } }',
    { input: { pspPaymentId, refundAmountCents, currency: 'USD' } },
  );

describe('an order payment at its PSP (OrderPayment.stripe, OrderPayment.paypal)', () => {
  it('stripe: the PaymentIntent with its charge and every refund, newest first; one read per distinct payment', async () => {
    const intent = stripeStandIn.createPaymentIntent({ amount: 10_000 });
    // More refunds than an expanded list holds (10): the others are paged through.
    for (let i = 1; i <= 12; i++) expect((await stripeRefund(intent.id, 100 * i)).errors).toBeUndefined();
    const other = stripeStandIn.createPaymentIntent({ amount: 500 });
    const before = stripeStandIn.calls().length;
    const owner = learner.kind === 'learner' ? learner.lmsUserId : 0;
    const result = await readPayments(
      stripePlugin,
      'stripe',
      '{ status amountCents amountRefundedCents currency receiptUrl refunds { pspRefundId refundedAmountCents refundStatus } }',
      [
        { pspPaymentId: intent.id, lmsUserId: owner },
        { pspPaymentId: other.id, lmsUserId: owner },
        { pspPaymentId: intent.id, lmsUserId: owner },
        { pspPaymentId: 'PAYPALCAPTURE0001', lmsUserId: owner },
      ],
      { principal: staff },
    );
    expect(result.errors).toBeUndefined();
    const [first, second, again, notStripe] = result.data!._entities.map((e) => e!.stripe);
    expect(first).toEqual({
      status: 'succeeded',
      amountCents: 10_000,
      amountRefundedCents: 7_800,
      currency: 'USD',
      receiptUrl: stripeStandIn.charge(String(intent.latest_charge))!.receipt_url,
      refunds: stripeStandIn.refunds(intent.id).map((r) => ({
        pspRefundId: r.id,
        refundedAmountCents: r.amount,
        refundStatus: 'succeeded',
      })),
    });
    expect((first!.refunds as unknown[]).length).toBe(12);
    expect(again).toEqual(first);
    expect(second).toMatchObject({ amountCents: 500, amountRefundedCents: 0, refunds: [] });
    expect(notStripe).toBeNull();
    // Each PaymentIntent read once (with its charge and first 10 refunds), then the first one's other refunds.
    expect(
      stripeStandIn
        .calls()
        .slice(before)
        .map((c) => c.path)
        .sort(),
    ).toEqual([`/v1/payment_intents/${intent.id}`, `/v1/payment_intents/${other.id}`, '/v1/refunds'].sort());
  });

  it('paypal: the capture and its refunds from its PayPal order in one call; two without the order', async () => {
    const orderId = 'PSPTESTPAYPALORD1';
    const capture = paypalStandIn.createCapture({ amountCents: 6_000, orderId });
    expect((await payPalRefund(capture.id, 1_000)).errors).toBeUndefined();
    expect((await payPalRefund(capture.id, 500)).errors).toBeUndefined();
    const selection =
      '{ status amountCents currency activityUrl refunds { pspRefundId refundedAmountCents refundStatus } }';
    const expected = {
      status: 'PARTIALLY_REFUNDED',
      amountCents: 6_000,
      currency: 'USD',
      activityUrl: `https://www.paypal.com/activity/payment/${capture.id}`,
      refunds: paypalStandIn.refunds(capture.id).map((r) => ({
        pspRefundId: r.id,
        refundedAmountCents: Math.round(Number((r.amount as { value: string }).value) * 100),
        refundStatus: 'succeeded',
      })),
    };
    const paths = (from: number) =>
      paypalStandIn
        .calls()
        .slice(from)
        .map((c) => c.path);

    let before = paypalStandIn.calls().length;
    const withOrder = await readPayments(
      paypalPlugin,
      'paypal',
      selection,
      [
        { pspPaymentId: capture.id, lmsUserId: 7, pspOrderId: orderId },
        { pspPaymentId: 'pi_not_paypal', lmsUserId: 7, pspOrderId: null },
      ],
      { principal: staff },
    );
    expect(withOrder.errors).toBeUndefined();
    expect(withOrder.data!._entities.map((e) => e!.paypal)).toEqual([expected, null]);
    expect(paths(before)).toEqual([`/v2/checkout/orders/${orderId}`]);

    // Without the order's id (or with another order's), the capture names its order.
    for (const pspOrderId of [null, 'PSPTESTOTHERORDER']) {
      before = paypalStandIn.calls().length;
      const without = await readPayments(
        paypalPlugin,
        'paypal',
        selection,
        [{ pspPaymentId: capture.id, lmsUserId: 7, pspOrderId }],
        { principal: staff },
      );
      expect(without.errors).toBeUndefined();
      expect(without.data!._entities[0]!.paypal).toEqual(expected);
      expect(paths(before).slice(-2)).toEqual([
        `/v2/payments/captures/${capture.id}`,
        `/v2/checkout/orders/${orderId}`,
      ]);
    }

    const unknown = await readPayments(paypalPlugin, 'paypal', '{ status }', [
      { pspPaymentId: 'UNKNOWNCAPTURE99', lmsUserId: 7 },
    ]);
    expect(codeOf(unknown)).toBe(ErrorCode.NOT_FOUND);
    expect(unknown.data!._entities[0]!.paypal).toBeNull();
  });

  it.each([
    {
      field: 'stripe' as const,
      plugin: stripePlugin,
      pay: () => stripeStandIn.createPaymentIntent({ amount: 700 }).id,
    },
    {
      field: 'paypal' as const,
      plugin: paypalPlugin,
      pay: () => paypalStandIn.createCapture({ amountCents: 700 }).id,
    },
  ])('$field: for staff, Services and the learner whose order it paid', async ({ field, plugin, pay }) => {
    const pspPaymentId = pay();
    const owned = { pspPaymentId, lmsUserId: 7 };
    const read = (principal: Principal | null, reference: PaymentReference = owned, flowId = '') =>
      readPayments(plugin, field, '{ status }', [reference], { principal, flowId });
    for (const principal of [staff, service, learner]) {
      const result = await read(principal);
      expect(result.errors).toBeUndefined();
      expect(result.data!._entities[0]![field]).toEqual({ status: expect.any(String) });
    }
    const otherLearner: Principal = {
      kind: 'learner',
      subject: 'learner-8',
      lmsUserId: 8,
      username: 'bob',
    };
    expect(codeOf(await read(otherLearner))).toBe(ErrorCode.FORBIDDEN);
    // A reference without its owner is not the gateway's: no learner reads it.
    expect(codeOf(await read(learner, { pspPaymentId }))).toBe(ErrorCode.FORBIDDEN);
    expect(codeOf(await read(null))).toBe(ErrorCode.UNAUTHENTICATED);
  });
});

describe('the two PSP subgraphs', () => {
  it('compose: the refund Actions share RefundPaymentInput and PaymentRefund; both extend OrderPayment', () => {
    const sdl = (name: string) =>
      readFileSync(new URL(`../../subgraphs/${name}/schema.graphql`, import.meta.url), 'utf8');
    const { supergraphSdl } = composeSupergraph([
      // The owner of OrderPayment, whose learner and PayPal order the PSP subgraphs require.
      { name: 'order-management', url: 'http://om.test/graphql', typeDefs: sdl('order-management') },
      { name: 'stripe', url: 'http://stripe.test/graphql', typeDefs: sdl('stripe') },
      { name: 'paypal', url: 'http://paypal.test/graphql', typeDefs: sdl('paypal') },
    ]);
    expect(supergraphSdl).toContain('refundStripePayment(input: RefundPaymentInput!): PaymentRefund!');
    expect(supergraphSdl).toContain('refundPayPalPayment(input: RefundPaymentInput!): PaymentRefund!');
    expect(supergraphSdl).toContain(
      'stripe: StripePayment @join__field(graph: STRIPE, requires: "lmsUserId")',
    );
    expect(supergraphSdl).toContain(
      'paypal: PayPalCapture @join__field(graph: PAYPAL, requires: "lmsUserId pspOrderId psp")',
    );
  });
});
