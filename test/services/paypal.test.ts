import { createPublicKey, createVerify } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';
import { ApiError, CustomError, type Refund } from '@paypal/paypal-server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPayPal, type PayPalStandIn } from '../../services/paypal/server.js';
import { connectPayPal, type PayPal } from '../../subgraphs/paypal/client.js';
import { waitFor } from '../support/wait.js';

// The stand-in is driven through the official SDK, pointed at it the way the paypal Plugin points it
// at a base URL.

const WEBHOOK_ID = 'WH-STANDIN-TEST-1';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

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
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/paypal/webhook/`,
    received,
    server,
  };
}

let standIn: PayPalStandIn;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let paypal: PayPal;

const connect = (clientSecret = standIn.clientSecret) =>
  connectPayPal({ apiBase: new URL(standIn.url), clientId: standIn.clientId, clientSecret });

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error('expected an ApiError');
}

const bodyOf = (error: ApiError) =>
  error.result as {
    name: string;
    message: string;
    debug_id: string;
    details: { issue: string }[];
    links: unknown[];
  };

const refundBody = (value: string, currencyCode = 'USD') => ({ amount: { value, currencyCode } });

/** Calls verify-webhook-signature through the SDK's own request machinery (OAuth included). */
async function verify(received: Received, body = received.body): Promise<string> {
  const header = (name: string) => String(received.headers[name]);
  const request = paypal.client.getRequestBuilderFactory()(
    'POST',
    '/v1/notifications/verify-webhook-signature',
  );
  request.baseUrl('default');
  request.json({
    auth_algo: header('paypal-auth-algo'),
    cert_url: header('paypal-cert-url'),
    transmission_id: header('paypal-transmission-id'),
    transmission_sig: header('paypal-transmission-sig'),
    transmission_time: header('paypal-transmission-time'),
    webhook_id: WEBHOOK_ID,
    webhook_event: JSON.parse(body),
  });
  request.authenticate([{ oauth2: true }]);
  const { result } = await request.callAsText();
  return (JSON.parse(result) as { verification_status: string }).verification_status;
}

beforeAll(async () => {
  receiver = await startReceiver();
  standIn = await startPayPal({ webhook: { url: receiver.url, webhookId: WEBHOOK_ID } });
  paypal = connect();
});

afterAll(async () => {
  await standIn?.close();
  await new Promise((resolve) => receiver?.server.close(resolve));
});

describe('PayPal stand-in', () => {
  it('issues OAuth2 client-credentials tokens and refuses wrong credentials', async () => {
    const basic = Buffer.from(`${standIn.clientId}:${standIn.clientSecret}`).toString('base64');
    const token = await fetch(`${standIn.url}/v1/oauth2/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    expect(token.status).toBe(200);
    expect(await token.json()).toMatchObject({
      token_type: 'Bearer',
      expires_in: 32400,
      access_token: expect.any(String),
    });

    const wrong = await rejection(connect('wrong').payments.getCapturedPayment({ captureId: 'X' }));
    expect(wrong.statusCode).toBe(401);
    expect(wrong.result).toEqual({
      error: 'invalid_client',
      error_description: 'Client Authentication failed',
    });

    const bare = await fetch(`${standIn.url}/v2/payments/captures/X`);
    expect(bare.status).toBe(401);
    expect(await bare.json()).toMatchObject({ name: 'AUTHENTICATION_FAILURE' });
  });

  it('answers an expired token with invalid_token', async () => {
    const own = connect();
    const capture = standIn.createCapture({ amountCents: 100 });
    await own.payments.getCapturedPayment({ captureId: capture.id });
    standIn.expireTokens();
    const expired = await rejection(own.payments.getCapturedPayment({ captureId: capture.id }));
    expect(expired.statusCode).toBe(401);
    expect(expired.result).toEqual({
      error: 'invalid_token',
      error_description: 'Access Token not found in cache',
    });
  });

  it('shows a capture, and the order it belongs to', async () => {
    const seeded = standIn.createCapture({ amountCents: 4900, invoiceId: '2U-2026000010' });
    const { result: capture } = await paypal.payments.getCapturedPayment({ captureId: seeded.id });
    expect(capture).toMatchObject({
      id: seeded.id,
      status: 'COMPLETED',
      amount: { currencyCode: 'USD', value: '49.00' },
    });
    expect(capture.invoiceId).toBe('2U-2026000010');
    const up = capture.links!.find((l) => l.rel === 'up')!.href;
    const { result: order } = await paypal.orders.getOrder({ id: up.split('/').pop()! });
    expect(order.status).toBe('COMPLETED');
    expect(order.purchaseUnits![0]!.payments!.captures!.map((c) => c.id)).toEqual([seeded.id]);
    const missing = await rejection(paypal.payments.getCapturedPayment({ captureId: 'NOPE' }));
    expect(missing).toBeInstanceOf(CustomError);
    expect(missing.statusCode).toBe(404);
    expect(bodyOf(missing)).toMatchObject({
      name: 'RESOURCE_NOT_FOUND',
      details: [{ issue: 'INVALID_RESOURCE_ID' }],
    });
  });

  it('refunds a capture in parts and refuses a fully refunded one with CAPTURE_FULLY_REFUNDED', async () => {
    const capture = standIn.createCapture({ amountCents: 1000 });
    const { result: first, statusCode } = await paypal.payments.refundCapturedPayment({
      captureId: capture.id,
      prefer: 'return=representation',
      body: refundBody('3.00'),
    });
    expect(statusCode).toBe(201);
    expect(first).toMatchObject({ status: 'COMPLETED', amount: { currencyCode: 'USD', value: '3.00' } });
    expect(first.links!.find((l) => l.rel === 'up')!.href).toBe(
      `${standIn.url}/v2/payments/captures/${capture.id}`,
    );
    // No body: the rest. Default Prefer is return=minimal.
    const { result: rest } = await paypal.payments.refundCapturedPayment({ captureId: capture.id });
    expect(Object.keys(rest).sort()).toEqual(['id', 'links', 'status']);
    const { result: shown } = await paypal.payments.getRefund({ refundId: rest.id! });
    expect(shown.amount).toEqual({ currencyCode: 'USD', value: '7.00' });
    expect((await paypal.payments.getCapturedPayment({ captureId: capture.id })).result.status).toBe(
      'REFUNDED',
    );

    const error = await rejection(
      paypal.payments.refundCapturedPayment({ captureId: capture.id, body: refundBody('1.00') }),
    );
    expect(error).toBeInstanceOf(CustomError);
    expect(error.statusCode).toBe(422);
    expect(bodyOf(error)).toEqual({
      name: 'UNPROCESSABLE_ENTITY',
      message:
        'The requested action could not be performed, semantically incorrect, or failed business validation.',
      debug_id: expect.any(String),
      details: [
        { issue: 'CAPTURE_FULLY_REFUNDED', description: 'The capture has already been fully refunded.' },
      ],
      links: [
        {
          href: 'https://developer.paypal.com/docs/api/payments/v2/#error-CAPTURE_FULLY_REFUNDED',
          rel: 'information_link',
          method: 'GET',
        },
      ],
    });

    // The order lists the capture's refunds (how a client finds them again).
    const orderId = (await paypal.payments.getCapturedPayment({ captureId: capture.id })).result
      .links!.find((l) => l.rel === 'up')!
      .href.split('/')
      .pop()!;
    const refunds: Refund[] = (await paypal.orders.getOrder({ id: orderId })).result.purchaseUnits![0]!
      .payments!.refunds!;
    expect(refunds.map((r) => r.id)).toEqual([first.id, rest.id]);
  });

  it('refuses too large a refund, another currency, and a malformed amount', async () => {
    const capture = standIn.createCapture({ amountCents: 1000 });
    const tooLarge = await rejection(
      paypal.payments.refundCapturedPayment({ captureId: capture.id, body: refundBody('10.01') }),
    );
    expect(tooLarge.statusCode).toBe(422);
    expect(bodyOf(tooLarge).details[0]!.issue).toBe('REFUND_AMOUNT_EXCEEDED');
    const currency = await rejection(
      paypal.payments.refundCapturedPayment({ captureId: capture.id, body: refundBody('1.00', 'EUR') }),
    );
    expect(bodyOf(currency).details[0]!.issue).toBe('REFUND_CAPTURE_CURRENCY_MISMATCH');
    const precision = await rejection(
      paypal.payments.refundCapturedPayment({ captureId: capture.id, body: refundBody('1.001') }),
    );
    expect(precision.statusCode).toBe(400);
    expect(bodyOf(precision)).toMatchObject({
      name: 'INVALID_REQUEST',
      details: [{ issue: 'DECIMAL_PRECISION' }],
    });
    expect(standIn.refunds(capture.id)).toHaveLength(0);
  });

  it('answers a known PayPal-Request-Id with the refund it made, and refuses it for another request', async () => {
    const capture = standIn.createCapture({ amountCents: 2000 });
    const request = {
      captureId: capture.id,
      paypalRequestId: 'flow-1:step-2',
      prefer: 'return=representation',
    };
    const first = await paypal.payments.refundCapturedPayment({ ...request, body: refundBody('5.00') });
    const again = await paypal.payments.refundCapturedPayment({ ...request, body: refundBody('5.00') });
    expect(again.statusCode).toBe(201);
    expect(again.result.id).toBe(first.result.id);
    expect(standIn.refunds(capture.id)).toHaveLength(1);
    expect(standIn.calls(`/v2/payments/captures/${capture.id}/refund`)).toMatchObject([
      { requestId: 'flow-1:step-2', replayed: false },
      { requestId: 'flow-1:step-2', replayed: true },
    ]);
    const reused = await rejection(
      paypal.payments.refundCapturedPayment({ ...request, body: refundBody('6.00') }),
    );
    expect(reused.statusCode).toBe(422);
    expect(bodyOf(reused).details[0]!.issue).toBe('PAYPAL_REQUEST_ID_PREVIOUSLY_USED');
    expect(standIn.refunds(capture.id)).toHaveLength(1);
  });

  it('injects failures with PayPal error bodies', async () => {
    const capture = standIn.createCapture({ amountCents: 2000 });
    standIn.failNext({ path: '/v2/payments/captures/', status: 503 });
    const unavailable = await rejection(paypal.payments.getCapturedPayment({ captureId: capture.id }));
    expect(unavailable.statusCode).toBe(503);
    // The SDK parses error bodies only for the errors it declares (CustomError); this one is raw.
    expect(JSON.parse(String(unavailable.body))).toMatchObject({ name: 'SERVICE_UNAVAILABLE' });
    standIn.failNext({
      path: '/v2/payments/captures/',
      status: 422,
      issue: 'REFUND_FAILED_INSUFFICIENT_FUNDS',
    });
    const refused = await rejection(
      paypal.payments.refundCapturedPayment({ captureId: capture.id, body: refundBody('1.00') }),
    );
    expect(bodyOf(refused).details[0]!.issue).toBe('REFUND_FAILED_INSUFFICIENT_FUNDS');
    expect(standIn.refunds(capture.id)).toHaveLength(0);
  });

  it('delivers a dashboard refund as PAYMENT.CAPTURE.REFUNDED with transmission headers PayPal verifies', async () => {
    const capture = standIn.createCapture({ amountCents: 3000, invoiceId: '2U-2026000011' });
    const before = receiver.received.length;
    const { refund, event, delivery } = await standIn.refundFromDashboard(capture.id, 1250);
    expect(delivery).toMatchObject({ status: 200, body: '{"received":true}' });
    const received = receiver.received[before]!;
    expect(JSON.parse(received.body)).toEqual(event);
    expect(event).toMatchObject({
      event_type: 'PAYMENT.CAPTURE.REFUNDED',
      resource_type: 'refund',
      resource: { id: refund.id, amount: { currency_code: 'USD', value: '12.50' }, status: 'COMPLETED' },
    });
    expect(received.headers).toMatchObject({
      'paypal-auth-algo': 'SHA256withRSA',
      'paypal-cert-url': standIn.certUrl,
      'paypal-transmission-id': expect.any(String),
      'paypal-transmission-time': expect.any(String),
      'paypal-transmission-sig': expect.any(String),
    });

    expect(await verify(received)).toBe('SUCCESS');
    expect(await verify(received, received.body.replace('12.50', '99.99'))).toBe('FAILURE');

    // The signature is PayPal's scheme: RSA-SHA256 over id|time|webhook id|crc32(body), with the cert-url's key.
    const key = createPublicKey(await (await fetch(standIn.certUrl)).text());
    const verifier = createVerify('RSA-SHA256');
    verifier.update(
      `${received.headers['paypal-transmission-id']}|${received.headers['paypal-transmission-time']}|${WEBHOOK_ID}|${crc32(received.body)}`,
    );
    expect(verifier.verify(key, String(received.headers['paypal-transmission-sig']), 'base64')).toBe(true);

    await standIn.redeliver(event.id);
    const redelivered = receiver.received[before + 1]!;
    expect(redelivered.body).toBe(received.body);
    expect(redelivered.headers['paypal-transmission-id']).not.toBe(
      received.headers['paypal-transmission-id'],
    );
    expect(await verify(redelivered)).toBe('SUCCESS');
  });

  it('holds a dashboard refund’s event back when asked; a delivery says what it sent', async () => {
    const capture = standIn.createCapture({ amountCents: 3000 });
    const before = receiver.received.length;
    const { event, delivery } = await standIn.refundFromDashboard(capture.id, 1000, { deliver: false });
    expect(delivery).toBeUndefined();
    expect(receiver.received.length).toBe(before);
    const late = await standIn.redeliver(event.id);
    const received = receiver.received[before]!;
    expect(late.request.body).toBe(received.body);
    for (const [name, value] of Object.entries(late.request.headers))
      expect(received.headers[name]).toBe(value);
    expect(await verify(received)).toBe('SUCCESS');
  });

  it('holds calls until released, and counts the calls in flight', async () => {
    const path = '/v1/notifications/verify-webhook-signature';
    const hold = standIn.hold(path);
    const before = standIn.calls(path).length;
    const received = receiver.received.at(-1)!;
    const answers = Promise.all([verify(received), verify(received), verify(received)]);
    await waitFor(() => hold.held() === 3, { what: 'three verifications held' });
    hold.release();
    expect(await answers).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS']);
    const calls = standIn.calls(path).slice(before);
    expect(calls.map((c) => c.inFlight).sort()).toEqual([1, 2, 3]);
    // Released for good: later calls pass.
    expect(await verify(received)).toBe('SUCCESS');
    expect(standIn.calls(path).at(-1)!.inFlight).toBe(1);
  });
});
