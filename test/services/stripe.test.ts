import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseStripeParams, startStripe, type StripeStandIn } from '../../services/stripe/server.js';

// The stand-in is driven through the official SDK, as the stripe Plugin drives Stripe.

const WEBHOOK_SECRET = 'whsec_stand_in_test';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A webhook endpoint that keeps what it receives and answers 200. */
async function startReceiver(): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"received":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/stripe/webhook/`,
    received,
    server,
  };
}

let standIn: StripeStandIn;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let stripe: Stripe;

const sdk = (key: string, maxNetworkRetries = 0) =>
  new Stripe(key, {
    host: '127.0.0.1',
    port: new URL(standIn.url).port,
    protocol: 'http',
    maxNetworkRetries,
    telemetry: false,
  });

async function rejection(promise: Promise<unknown>): Promise<InstanceType<typeof Stripe.errors.StripeError>> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof Stripe.errors.StripeError) return error;
    throw error;
  }
  throw new Error('expected a StripeError');
}

beforeAll(async () => {
  receiver = await startReceiver();
  standIn = await startStripe({ webhook: { url: receiver.url, secret: WEBHOOK_SECRET } });
  stripe = sdk(standIn.secretKey);
});

afterAll(async () => {
  await standIn?.close();
  await new Promise((resolve) => receiver?.server.close(resolve));
});

describe('Stripe stand-in', () => {
  it('parses form bodies with bracket notation as Stripe does', () => {
    expect(
      parseStripeParams('payment_intent=pi_1&amount=500&metadata[order_number]=2U-1&expand[0]=charge'),
    ).toEqual({
      payment_intent: 'pi_1',
      amount: '500',
      metadata: { order_number: '2U-1' },
      expand: ['charge'],
    });
    expect(parseStripeParams('expand[]=a&expand[]=b&__proto__[x]=1')).toEqual({ expand: ['a', 'b'] });
  });

  it('answers a PaymentIntent with its latest charge expanded, whose receipt_url is a receipt page', async () => {
    const seeded = standIn.createPaymentIntent({ amount: 4900, metadata: { order_number: '2U-2026000001' } });
    const intent = await stripe.paymentIntents.retrieve(seeded.id, { expand: ['latest_charge'] });
    expect(intent).toMatchObject({ id: seeded.id, object: 'payment_intent', amount: 4900, currency: 'usd' });
    expect(intent.status).toBe('succeeded');
    expect(intent.metadata).toEqual({ order_number: '2U-2026000001' });
    const charge = intent.latest_charge as Stripe.Charge;
    expect(charge).toMatchObject({
      object: 'charge',
      amount: 4900,
      payment_intent: seeded.id,
      refunded: false,
    });
    const page = await fetch(charge.receipt_url!);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('$49.00');
    expect((await stripe.charges.retrieve(charge.id)).id).toBe(charge.id);
    expect((await stripe.charges.list({ payment_intent: seeded.id })).data.map((c) => c.id)).toEqual([
      charge.id,
    ]);
  });

  it('refunds a PaymentIntent in parts, lists the refunds newest first, and refuses a refunded charge', async () => {
    const { id } = standIn.createPaymentIntent({ amount: 1000 });
    const first = await stripe.refunds.create({
      payment_intent: id,
      amount: 300,
      metadata: { order_number: '2U-2026000002' },
    });
    expect(first).toMatchObject({ object: 'refund', amount: 300, payment_intent: id, status: 'succeeded' });
    expect(first.metadata).toEqual({ order_number: '2U-2026000002' });
    const rest = await stripe.refunds.create({ payment_intent: id });
    expect(rest.amount).toBe(700);
    const listed = await stripe.refunds.list({ payment_intent: id, limit: 1 });
    expect(listed.data.map((r) => r.id)).toEqual([rest.id]);
    expect(listed.has_more).toBe(true);
    const charge = standIn.charge(first.charge as string)!;
    expect(charge).toMatchObject({ amount_refunded: 1000, refunded: true });

    const error = await rejection(stripe.refunds.create({ payment_intent: id, amount: 100 }));
    expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(error.statusCode).toBe(400);
    expect(error.code).toBe('charge_already_refunded');
    expect(error.message).toBe(`Charge ${charge.id} has already been refunded.`);
    expect(error.raw).toMatchObject({
      type: 'invalid_request_error',
      doc_url: expect.stringContaining('charge-already-refunded'),
    });
  });

  it("lists a charge's refunds only when expanded (latest_charge.refunds): its first 10, newest first", async () => {
    const { id } = standIn.createPaymentIntent({ amount: 5000 });
    const plain = await stripe.paymentIntents.retrieve(id, { expand: ['latest_charge'] });
    expect((plain.latest_charge as Stripe.Charge).refunds).toBeUndefined();
    for (let i = 1; i <= 11; i++) await stripe.refunds.create({ payment_intent: id, amount: i * 10 });
    const intent = await stripe.paymentIntents.retrieve(id, { expand: ['latest_charge.refunds'] });
    const charge = intent.latest_charge as Stripe.Charge;
    expect(charge).toMatchObject({ object: 'charge', amount_refunded: 660 });
    expect(charge.refunds).toMatchObject({
      object: 'list',
      has_more: true,
      url: `/v1/charges/${charge.id}/refunds`,
    });
    expect(charge.refunds!.data.map((r) => r.id)).toEqual(
      standIn
        .refunds(id)
        .slice(0, 10)
        .map((r) => r.id),
    );
    const retrieved = await stripe.charges.retrieve(charge.id, { expand: ['refunds'] });
    expect(retrieved.refunds!.data).toHaveLength(10);
  });

  it('refuses a refund larger than what is left, and an unknown PaymentIntent', async () => {
    const { id } = standIn.createPaymentIntent({ amount: 1000 });
    await stripe.refunds.create({ payment_intent: id, amount: 600 });
    const tooLarge = await rejection(stripe.refunds.create({ payment_intent: id, amount: 500 }));
    expect(tooLarge).toMatchObject({ statusCode: 400, code: 'amount_too_large', param: 'amount' });
    expect(tooLarge.message).toBe(
      'Refund amount ($5.00) is greater than unrefunded amount on charge ($4.00)',
    );
    const missing = await rejection(stripe.refunds.create({ payment_intent: 'pi_missing', amount: 100 }));
    expect(missing).toMatchObject({
      code: 'resource_missing',
      message: "No such payment_intent: 'pi_missing'",
    });
    const notFound = await rejection(stripe.paymentIntents.retrieve('pi_missing'));
    expect(notFound).toMatchObject({ statusCode: 404, code: 'resource_missing' });
  });

  it('retrieves a refund by id as it is now, and answers resource_missing 404 for one it does not have', async () => {
    const { id } = standIn.createPaymentIntent({ amount: 1000 });
    const { refund } = await standIn.refundFromDashboard(id, 400, { status: 'pending', deliver: false });
    await standIn.settleRefund(refund.id, 'succeeded', { deliver: false });
    expect(await stripe.refunds.retrieve(refund.id)).toMatchObject({
      id: refund.id,
      object: 'refund',
      amount: 400,
      currency: 'usd',
      status: 'succeeded',
      payment_intent: id,
    });
    const missing = await rejection(stripe.refunds.retrieve('re_huge_1'));
    expect(missing).toMatchObject({
      statusCode: 404,
      type: 'StripeInvalidRequestError',
      code: 'resource_missing',
      param: 'id',
      message: "No such refund: 're_huge_1'",
    });
  });

  it('replays a request with the same Idempotency-Key and parameters, refunding once', async () => {
    const { id } = standIn.createPaymentIntent({ amount: 2000 });
    const params = { payment_intent: id, amount: 500, metadata: { order_number: '2U-1' } };
    const first = await stripe.refunds.create(params, { idempotencyKey: 'refund-key-1' });
    const again = await stripe.refunds.create(
      { metadata: { order_number: '2U-1' }, amount: 500, payment_intent: id },
      { idempotencyKey: 'refund-key-1' },
    );
    expect(again.id).toBe(first.id);
    expect(first.lastResponse.headers['idempotent-replayed']).toBeUndefined();
    expect(again.lastResponse.headers['idempotent-replayed']).toBe('true');
    expect(again.lastResponse.headers['original-request']).toBe(first.lastResponse.requestId);
    expect(standIn.refunds(id)).toHaveLength(1);
    expect(standIn.calls('/v1/refunds').filter((c) => c.idempotencyKey === 'refund-key-1')).toMatchObject([
      { method: 'POST', status: 200, replayed: false },
      { method: 'POST', status: 200, replayed: true },
    ]);
  });

  it('refuses the same Idempotency-Key with different parameters', async () => {
    const { id } = standIn.createPaymentIntent({ amount: 2000 });
    await stripe.refunds.create({ payment_intent: id, amount: 500 }, { idempotencyKey: 'refund-key-2' });
    const error = await rejection(
      stripe.refunds.create({ payment_intent: id, amount: 600 }, { idempotencyKey: 'refund-key-2' }),
    );
    expect(error).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
    expect(error).toMatchObject({ statusCode: 400, rawType: 'idempotency_error' });
    expect(error.message).toContain("Try using a key other than 'refund-key-2'");
    expect(standIn.refunds(id)).toHaveLength(1);
  });

  it('replays the saved answer of a call whose response was lost, so the retry refunds nothing more', async () => {
    const { id } = standIn.createPaymentIntent({ amount: 2000 });
    standIn.failNext({ method: 'POST', path: '/v1/refunds', dropResponse: true });
    // The SDK retries a dropped connection once, with the same Idempotency-Key.
    const refund = await stripe.refunds.create(
      { payment_intent: id, amount: 700 },
      { idempotencyKey: 'lost-1' },
    );
    expect(refund.amount).toBe(700);
    expect(standIn.refunds(id)).toHaveLength(1);
    expect(standIn.calls('/v1/refunds').filter((c) => c.idempotencyKey === 'lost-1')).toMatchObject([
      { status: -1, replayed: false },
      { status: 200, replayed: true },
    ]);
  });

  it('injects failures with Stripe error bodies', async () => {
    const { id } = standIn.createPaymentIntent({ amount: 2000 });
    standIn.failNext({ path: '/v1/refunds', status: 402 });
    const declined = await rejection(stripe.refunds.create({ payment_intent: id, amount: 100 }));
    expect(declined).toBeInstanceOf(Stripe.errors.StripeCardError);
    expect(declined).toMatchObject({ code: 'card_declined', decline_code: 'generic_decline' });
    standIn.failNext({ path: '/v1/refunds', status: 500 });
    const retrying = sdk(standIn.secretKey, 1);
    const refund = await retrying.refunds.create({ payment_intent: id, amount: 100 });
    expect(refund.amount).toBe(100);
    expect(standIn.refunds(id)).toHaveLength(1);
  });

  it('injects a 5xx from in front of the API that says Stripe-Should-Retry: false; the same key then refunds', async () => {
    const { id } = standIn.createPaymentIntent({ amount: 2000 });
    standIn.failNext({ method: 'POST', path: '/v1/refunds', status: 503, shouldRetry: false });
    const retrying = sdk(standIn.secretKey, 2);
    const refund = () =>
      retrying.refunds.create({ payment_intent: id, amount: 100 }, { idempotencyKey: 'unavailable-1' });

    const error = await rejection(refund());

    expect(error).toBeInstanceOf(Stripe.errors.StripeAPIError);
    expect(error).toMatchObject({ statusCode: 503, type: 'StripeAPIError' });
    expect(error.headers?.['stripe-should-retry']).toBe('false');
    // The SDK gave up at once, and nothing was saved under the key: the caller's retry refunds.
    expect(standIn.calls('/v1/refunds').filter((c) => c.idempotencyKey === 'unavailable-1')).toHaveLength(1);
    expect(standIn.refunds(id)).toEqual([]);
    expect((await refund()).amount).toBe(100);
    expect(standIn.refunds(id)).toHaveLength(1);
  });

  it('answers 401 with Stripe bodies for a missing or wrong secret key', async () => {
    const wrong = await rejection(sdk('sk_test_wrong_key_123456').refunds.list());
    expect(wrong).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    expect(wrong).toMatchObject({ statusCode: 401, rawType: 'invalid_request_error' });
    expect(wrong.message).toMatch(/^Invalid API Key provided: sk_test_\*+3456$/);
    const bare = await fetch(`${standIn.url}/v1/refunds`);
    expect(bare.status).toBe(401);
    expect(((await bare.json()) as { error: { message: string } }).error.message).toMatch(
      /^You did not provide an API key/,
    );
    const unknown = await fetch(`${standIn.url}/v1/nothing`, {
      headers: { authorization: `Bearer ${standIn.secretKey}` },
    });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
  });

  it('delivers a dashboard refund as a charge.refunded event signed with the Stripe-Signature scheme', async () => {
    const { id } = standIn.createPaymentIntent({ amount: 3000 });
    const before = receiver.received.length;
    const { refund, event, delivery } = await standIn.refundFromDashboard(id, 1200);
    expect(delivery).toEqual({ status: 200, body: '{"received":true}' });
    expect(refund).toMatchObject({ amount: 1200, payment_intent: id });
    const { headers, body } = receiver.received[before]!;
    const verified = Stripe.webhooks.constructEvent(
      body,
      headers['stripe-signature'] as string,
      WEBHOOK_SECRET,
    );
    expect(verified.id).toBe(event.id);
    expect(verified.type).toBe('charge.refunded');
    const charge = verified.data.object as Stripe.Charge;
    expect(charge).toMatchObject({ payment_intent: id, amount_refunded: 1200, refunded: false });
    expect(headers['stripe-signature']).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(() =>
      Stripe.webhooks.constructEvent(body, headers['stripe-signature'] as string, 'whsec_other'),
    ).toThrow(Stripe.errors.StripeSignatureVerificationError);

    await standIn.redeliver(event.id);
    const redelivered = receiver.received[before + 1]!;
    expect(
      Stripe.webhooks.constructEvent(
        redelivered.body,
        redelivered.headers['stripe-signature'] as string,
        WEBHOOK_SECRET,
      ).id,
    ).toBe(event.id);
  });

  it('holds a dashboard refund’s event back when asked, and sends it later', async () => {
    const { id } = standIn.createPaymentIntent({ amount: 5000 });
    const before = receiver.received.length;
    const first = await standIn.refundFromDashboard(id, 2000, { deliver: false });
    const second = await standIn.refundFromDashboard(id, 3000, { deliver: false });
    expect(first.delivery).toBeUndefined();
    expect(receiver.received.length).toBe(before);

    // Delivered late, the first event's Charge is as it was then; Stripe now lists both refunds.
    expect((await standIn.redeliver(first.event.id)).status).toBe(200);
    const late = Stripe.webhooks.constructEvent(
      receiver.received[before]!.body,
      receiver.received[before]!.headers['stripe-signature'] as string,
      WEBHOOK_SECRET,
    );
    expect(late.id).toBe(first.event.id);
    expect(late.data.object).toMatchObject({ amount_refunded: 2000, refunded: false });
    const charge = (late.data.object as Stripe.Charge).id;
    expect((await stripe.refunds.list({ charge })).data.map((r) => r.id)).toEqual([
      second.refund.id,
      first.refund.id,
    ]);
  });

  it('settles a pending dashboard refund with a charge.refund.updated event; a failed one is refundable again', async () => {
    const { id } = standIn.createPaymentIntent({ amount: 4000 });
    const pending = await standIn.refundFromDashboard(id, 1500, { status: 'pending' });
    expect(pending.refund).toMatchObject({ status: 'pending', amount: 1500 });
    expect(standIn.charge(pending.refund.charge as string)).toMatchObject({ amount_refunded: 1500 });

    const before = receiver.received.length;
    const settled = await standIn.settleRefund(pending.refund.id, 'succeeded');
    expect(settled.delivery).toMatchObject({ status: 200 });
    const { headers, body } = receiver.received[before]!;
    const event = Stripe.webhooks.constructEvent(body, headers['stripe-signature'] as string, WEBHOOK_SECRET);
    expect(event).toMatchObject({
      id: settled.event.id,
      type: 'charge.refund.updated',
      data: {
        object: { id: pending.refund.id, object: 'refund', status: 'succeeded', payment_intent: id },
        previous_attributes: { status: 'pending' },
      },
    });
    expect((await stripe.refunds.retrieve(pending.refund.id)).status).toBe('succeeded');
    await expect(standIn.settleRefund(pending.refund.id, 'failed')).rejects.toThrow(/not pending/);

    const failing = await standIn.refundFromDashboard(id, 2500, { status: 'pending' });
    const failed = await standIn.settleRefund(failing.refund.id, 'failed', { deliver: false });
    expect(failed.delivery).toBeUndefined();
    expect(failed.refund).toMatchObject({ status: 'failed', failure_reason: expect.any(String) });
    expect(standIn.charge(failing.refund.charge as string)).toMatchObject({
      amount_refunded: 1500,
      refunded: false,
    });
    expect((await stripe.refunds.create({ payment_intent: id, amount: 2500 })).amount).toBe(2500);
  });
});
