import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { execute, parse, type ExecutionResult } from 'graphql';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { domainCodeOf, ErrorCode } from '../../gateway/errors.js';
import { composeSupergraph } from '../../gateway/federation/compose.js';
import { silentLogger } from '../../gateway/log.js';
import {
  createActionContext,
  type Plugin,
  type PluginRuntime,
  type Route,
  type RouteRequest,
} from '../../gateway/sdk/plugin.js';
import type { Principal } from '../../gateway/sdk/principal.js';
import { startPayPal, type PayPalStandIn } from '../../services/paypal/server.js';
import { startStripe, type StripeStandIn } from '../../services/stripe/server.js';
import paypalPlugin from '../../subgraphs/paypal/index.js';
import stripePlugin from '../../subgraphs/stripe/index.js';

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
  return (await execute({
    schema: plugin.schema,
    document: parse(document),
    variableValues: variables,
    contextValue: createActionContext(identity, []),
  })) as ExecutionResult<T>;
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
  redeliver(eventId: string): Promise<{ status: number }>;
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
    expect(codeOf(await refund(id, 0))).toBe(ErrorCode.BAD_USER_INPUT);
    expect(psp.refundsAtPsp(id)).toHaveLength(0);
    expect((await refund(id, 100, { principal: staff, flowId: '' })).errors).toBeUndefined();
    expect((await refund(id, 100, { principal: learner })).errors).toBeUndefined();
    expect(psp.refundsAtPsp(id)).toHaveLength(2);
  });

  it('publishes payment.refunded.v1 for a dashboard refund, with the event id as signal id', async () => {
    const id = psp.pay(4000);
    const before = psp.published.length;
    const { refundId, eventId, status } = await psp.dashboardRefund(id, 1250);
    expect(status).toBe(200);
    expect(psp.published.slice(before)).toEqual([
      {
        signal: 'payment.refunded.v1',
        id: eventId,
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
    const { eventId } = await psp.dashboardRefund(id, 500);
    expect((await psp.redeliver(eventId)).status).toBe(200);
    const published = psp.published.slice(before);
    expect(published.map((p) => p.id)).toEqual([eventId, eventId]);
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

  it('refuses a bad signature with 403 invalid_signature, a signed non-JSON body with 400', async () => {
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
    expect(forged).toMatchObject({ status: 403, body: { code: 'invalid_signature' } });
    const unsigned = await route.handle(webhookRequest(route, {}, body), runtime);
    expect(unsigned).toMatchObject({ status: 403, body: { code: 'invalid_signature' } });
    const garbage = await route.handle(webhookRequest(route, signed('not json'), 'not json'), runtime);
    expect(garbage).toMatchObject({ status: 400, body: { code: 'invalid_payload' } });
    expect(published).toEqual([]);
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
      expect(domainCodeOf(errorOf(result)!.originalError)).toBeUndefined();
    } finally {
      process.env.STRIPE_SECRET_KEY = key;
    }
  });
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

  it('refuses a call PayPal does not verify, or without transmission headers, with 400', async () => {
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
    const headers = {
      'paypal-auth-algo': 'SHA256withRSA',
      'paypal-cert-url': paypalStandIn.certUrl,
      'paypal-transmission-id': 'b2384410-0000-11ef-0000-000000000000',
      'paypal-transmission-sig': Buffer.from('forged').toString('base64'),
      'paypal-transmission-time': new Date().toISOString(),
    };
    const forged = await route.handle(webhookRequest(route, headers, body), runtime);
    expect(forged).toMatchObject({ status: 400, body: { code: 'invalid_signature' } });
    const bare = await route.handle(webhookRequest(route, {}, body), runtime);
    expect(bare).toMatchObject({ status: 400, body: { code: 'invalid_signature' } });
    const garbage = await route.handle(webhookRequest(route, headers, 'not json'), runtime);
    expect(garbage).toMatchObject({ status: 400, body: { code: 'invalid_payload' } });
    expect(published).toEqual([]);
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
      'paypal: PayPalCapture @join__field(graph: PAYPAL, requires: "lmsUserId pspOrderId")',
    );
  });
});
