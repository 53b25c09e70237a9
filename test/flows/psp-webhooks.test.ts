import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, httpStatusOf } from '../../gateway/errors.js';
import { DEMO } from '../../services/demo.js';
import { STRIPE_WEBHOOK_SECRET } from '../../services/embedded.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { waitFor } from '../support/wait.js';

/**
 * Refunds made in the PSPs' dashboards, end to end through the gateway: Stripe's `charge.refunded` at
 * POST /stripe/webhook/ and PayPal's `PAYMENT.CAPTURE.REFUNDED` at POST /paypal/webhook/ → signal
 * payment.refunded.v1 → recordRefundTransaction on the order's payment in the order management Service.
 * Deliveries come from the PSP stand-ins themselves (signed as the PSPs sign them).
 */

let cc: CommerceCoordinator;

beforeAll(async () => {
  cc = await startCommerceCoordinator('psp-webhooks');
});

afterAll(async () => {
  await cc?.stop();
});

type Psp = 'STRIPE' | 'PAYPAL';

interface SeededOrder {
  orderId: string;
  psp: Psp;
  /** The PaymentIntent (Stripe) or capture (PayPal). */
  pspPaymentId: string;
  /** Stripe only: the PaymentIntent's charge. */
  chargeId?: string;
  lineItemIds: string[];
  courseRunKeys: string[];
  paidCents: number;
}

let seq = 0;

/** A paid and fulfilled order of Ada's, seeded in every Service as the demo's are (services/embedded.ts). */
function seedOrder(psp: Psp, prices: number[] = [14_900, 14_900]): SeededOrder {
  const n = ++seq;
  const ada = DEMO.learners.ada;
  const paidCents = prices.reduce((sum, p) => sum + p, 0);
  const orderNumber = `2U-2026${String(700_000 + n)}`;
  const courseRunKeys = prices.map((_, i) => `course-v1:WebhookX+W${n}L${i}+2026`);
  const { services } = cc;
  services.lms.seed({
    courses: courseRunKeys.map((courseId) => ({ courseId })),
    enrollments: courseRunKeys.map((courseId) => ({
      username: ada.username,
      courseId,
      mode: 'verified',
      isActive: true,
    })),
  });
  let pspPaymentId: string;
  let chargeId: string | undefined;
  if (psp === 'STRIPE') {
    const intent = services.stripe.createPaymentIntent({
      amount: paidCents,
      metadata: { order_number: orderNumber },
    });
    pspPaymentId = intent.id;
    chargeId = intent.latest_charge as string;
  } else {
    pspPaymentId = services.paypal.createCapture({ amountCents: paidCents, invoiceId: orderNumber }).id;
  }
  const [order] = services.orderManagement.seed({
    orders: [
      {
        orderNumber,
        customer: { lmsUserId: ada.lmsUserId, username: ada.username, email: ada.email },
        lineItems: prices.map((priceCents, i) => ({
          title: `Webhook course ${i}`,
          priceCents,
          courseRunKey: courseRunKeys[i],
          state: 'SUCCESS' as const,
        })),
        payment: { psp, pspPaymentId },
      },
    ],
  }).orders;
  return {
    orderId: order!.id,
    psp,
    pspPaymentId,
    chargeId,
    lineItemIds: order!.lineItems.map((l) => l.id),
    courseRunKeys,
    paidCents,
  };
}

const storedOrder = (o: SeededOrder) => cc.services.orderManagement.store.orders.get(o.orderId)!;
const refundTransactions = (o: SeededOrder) =>
  cc.services.orderManagement.store.payments
    .get(storedOrder(o).paymentInfo!.payments[0]!.id)!
    .transactions.filter((t) => t.type === 'Refund');

/** The refunds the PSP made of the order's payment, newest first. */
const pspRefundIds = (o: SeededOrder) =>
  (o.psp === 'STRIPE'
    ? cc.services.stripe.refunds(o.pspPaymentId)
    : cc.services.paypal.refunds(o.pspPaymentId)
  ).map((r) => r.id);

const activeEnrollments = (o: SeededOrder) =>
  o.courseRunKeys.map(
    (courseId) =>
      cc.services.lms.state().enrollments.find((e) => e.username === 'ada' && e.courseId === courseId)
        ?.isActive,
  );

interface ReceiverRun {
  id: string;
  status: string;
  receiver: string;
  input: Record<string, unknown>;
  output: Record<string, unknown> | null;
  steps: Array<{ action: string; status: string; implementation: string | null }>;
}

/** The receiver runs of payment.refunded.v1 about one PSP refund. */
async function receiverRuns(pspRefundId: string): Promise<ReceiverRun[]> {
  const result = await cc.graphql<{ flows: ReceiverRun[] }>(
    `query Runs { flows(name: "payment.refunded.v1", limit: 200) {
      id status receiver input output steps { action status implementation }
    } }`,
    {},
    cc.tokens.staff,
  );
  expect(result.errors).toBeUndefined();
  // The recording receiver's (the signal's other receivers, e.g. analytics, have their own runs).
  return result.data!.flows.filter(
    (f) => f.input.pspRefundId === pspRefundId && f.receiver === 'record-psp-refund',
  );
}

/** Waits for the one receiver run of a refund to complete, and answers it. */
async function recordedRun(pspRefundId: string): Promise<ReceiverRun> {
  const [run] = await waitFor(
    async () => {
      const runs = await receiverRuns(pspRefundId);
      expect(runs.map((r) => r.status)).toEqual(['COMPLETED']);
      return runs;
    },
    { what: `payment.refunded.v1 of ${pspRefundId} recorded` },
  );
  return run!;
}

/** Refunds in the PSP's dashboard; with `deliver: false` the PSP does not call the webhook (yet). */
async function refundInDashboard(
  o: SeededOrder,
  cents: number | undefined,
  options: { deliver?: boolean; status?: 'pending' } = {},
) {
  const { stripe, paypal } = cc.services;
  const made =
    o.psp === 'STRIPE'
      ? await stripe.refundFromDashboard(o.pspPaymentId, cents, options)
      : await paypal.refundFromDashboard(o.pspPaymentId, cents, options);
  return { refundId: made.refund.id, eventId: made.event.id, event: made.event, delivery: made.delivery };
}

const redeliver = (o: SeededOrder, eventId: string) =>
  o.psp === 'STRIPE' ? cc.services.stripe.redeliver(eventId) : cc.services.paypal.redeliver(eventId);

describe.each(['STRIPE', 'PAYPAL'] as const)('a refund made in the %s dashboard', (psp) => {
  it('is recorded once on the order’s payment, and once only when the event is redelivered', async () => {
    const order = seedOrder(psp);

    const { refundId, eventId, delivery } = await refundInDashboard(order, 5_000);

    expect(delivery).toMatchObject({ status: 200 });
    expect(JSON.parse(delivery!.body)).toEqual({
      received: true,
      duplicate: false,
      refunds: [{ pspRefundId: refundId, refundStatus: 'succeeded', duplicate: false }],
    });
    const run = await recordedRun(refundId);
    expect(run).toMatchObject({
      receiver: 'record-psp-refund',
      input: { psp, pspPaymentId: order.pspPaymentId, refundedAmountCents: 5_000, currency: 'USD' },
      output: { recorded: true, orderId: order.orderId },
      steps: [{ action: 'recordRefundTransaction', status: 'COMPLETED', implementation: 'order-management' }],
    });
    expect(refundTransactions(order)).toEqual([
      expect.objectContaining({
        id: run.output!.transactionId,
        interactionId: refundId,
        amount: expect.objectContaining({ centAmount: 5_000, currencyCode: 'USD' }),
        state: 'Success',
      }),
    ]);
    // A dashboard refund is no return: nothing returned, nothing revoked.
    expect(storedOrder(order).returnInfo).toEqual([]);
    expect(activeEnrollments(order)).toEqual([true, true]);

    // The PSP delivers the same event again (it retries until it sees a 2xx): acknowledged, not recorded.
    const again = await redeliver(order, eventId);

    expect(again.status).toBe(200);
    expect(JSON.parse(again.body)).toMatchObject({ received: true, duplicate: true });
    expect(await receiverRuns(refundId)).toHaveLength(1);
    expect(refundTransactions(order)).toHaveLength(1);
    expect(pspRefundIds(order)).toEqual([refundId]);
  });

  it('after a partial return by the Coordinator: each refund recorded once, adding up to the payment', async () => {
    const order = seedOrder(psp);
    const refund = await cc.graphql<{
      requestRefund: { flow: { status: string; output: { pspRefundId: string } } };
    }>(
      `mutation Refund($input: RefundRequestInput!) { requestRefund(input: $input) { flow { status output } } }`,
      { input: { orderId: order.orderId, lineItemIds: [order.lineItemIds[0]] } },
      cc.tokens.staff,
    );
    expect(refund.data?.requestRefund.flow.status).toBe('COMPLETED');

    // The rest, from the dashboard: the webhook names the newest refund, not the Coordinator's.
    const { refundId } = await refundInDashboard(order, undefined);

    expect((await recordedRun(refundId)).output).toMatchObject({ recorded: true });
    expect(refundTransactions(order).map((t) => [t.interactionId, t.amount.centAmount])).toEqual([
      [refund.data!.requestRefund.flow.output.pspRefundId, 14_900],
      [refundId, 14_900],
    ]);
  });
});

describe('the Coordinator’s own refund, notified back by the PSP’s webhook', () => {
  it.each(['STRIPE', 'PAYPAL'] as const)('%s: is not recorded twice', async (psp) => {
    const order = seedOrder(psp);
    const refund = await cc.graphql<{
      requestRefund: { flow: { status: string; output: Record<string, unknown> } };
    }>(
      `mutation Refund($input: RefundRequestInput!) { requestRefund(input: $input) { flow { status output } } }`,
      { input: { orderId: order.orderId, lineItemIds: order.lineItemIds } },
      cc.tokens.staff,
    );
    expect(refund.data?.requestRefund.flow).toMatchObject({
      status: 'COMPLETED',
      output: { recorded: true },
    });
    const pspRefundId = String(refund.data!.requestRefund.flow.output.pspRefundId);
    expect(pspRefundIds(order)).toEqual([pspRefundId]);

    // The PSP announces every refund, the Coordinator's own included.
    const { delivery } =
      psp === 'STRIPE'
        ? await cc.services.stripe.sendEvent({
            type: 'charge.refunded',
            data: { object: cc.services.stripe.charge(order.chargeId!)! },
          })
        : await cc.services.paypal.sendEvent({
            event_type: 'PAYMENT.CAPTURE.REFUNDED',
            resource_type: 'refund',
            resource: cc.services.paypal.refunds(order.pspPaymentId)[0]!,
          });

    expect(delivery.status).toBe(200);
    const run = await recordedRun(pspRefundId);
    expect(run.output).toMatchObject({
      recorded: false,
      transactionId: refund.data!.requestRefund.flow.output.transactionId,
    });
    expect(refundTransactions(order)).toEqual([
      expect.objectContaining({
        interactionId: pspRefundId,
        amount: expect.objectContaining({ centAmount: order.paidCents }),
      }),
    ]);
  });
});

describe('a webhook call the PSP did not sign', () => {
  it('Stripe: 403, nothing recorded; the genuine delivery of the same event is recorded once', async () => {
    const order = seedOrder('STRIPE');
    const { refundId, eventId, event } = await refundInDashboard(order, 2_500, { deliver: false });
    const body = JSON.stringify(event, null, 2);
    const timestamp = Math.floor(Date.now() / 1000);
    const forged = createHmac('sha256', 'whsec_not_the_endpoint_secret')
      .update(`${timestamp}.${body}`)
      .digest('hex');

    const response = await cc.request('/stripe/webhook/', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'stripe-signature': `t=${timestamp},v1=${forged}` },
      body,
    });

    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ code: ErrorCode.INVALID_SIGNATURE });
    const unsigned = await cc.request('/stripe/webhook/', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(unsigned.status).toBe(403);
    expect(await receiverRuns(refundId)).toEqual([]);
    expect(refundTransactions(order)).toEqual([]);

    // Stripe's own delivery of that event is recorded (the refusal above cost nothing).
    expect((await cc.services.stripe.redeliver(eventId)).status).toBe(200);
    await recordedRun(refundId);
    expect(refundTransactions(order).map((t) => t.interactionId)).toEqual([refundId]);
  });

  it('PayPal: 403, nothing recorded; the genuine delivery of the same event is recorded once', async () => {
    const order = seedOrder('PAYPAL');
    const { refundId, eventId, event } = await refundInDashboard(order, 2_500, { deliver: false });
    const transmission = {
      'paypal-auth-algo': 'SHA256withRSA',
      'paypal-cert-url': cc.services.paypal.certUrl,
      'paypal-transmission-id': randomUUID(),
      'paypal-transmission-time': new Date().toISOString(),
      'paypal-transmission-sig': randomBytes(256).toString('base64'),
    };

    const response = await cc.request('/paypal/webhook/', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...transmission },
      body: JSON.stringify(event),
    });

    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ code: ErrorCode.INVALID_SIGNATURE });
    const { 'paypal-transmission-sig': _, ...unsigned } = transmission;
    const withoutSignature = await cc.request('/paypal/webhook/', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...unsigned },
      body: JSON.stringify(event),
    });
    expect(withoutSignature.status).toBe(403);
    expect(await receiverRuns(refundId)).toEqual([]);
    expect(refundTransactions(order)).toEqual([]);

    expect((await cc.services.paypal.redeliver(eventId)).status).toBe(200);
    await recordedRun(refundId);
    expect(refundTransactions(order).map((t) => t.interactionId)).toEqual([refundId]);
  });
});

describe('a Stripe charge.refunded delivered late, after several refunds of its charge', () => {
  it('records every refund of the charge once; the other events and redeliveries record nothing more', async () => {
    const order = seedOrder('STRIPE', [2_500, 2_500]);
    const first = await refundInDashboard(order, 2_000, { deliver: false });
    const second = await refundInDashboard(order, 3_000, { deliver: false });

    // Stripe was unable to reach the endpoint; the first event arrives when both refunds exist.
    const late = await redeliver(order, first.eventId);

    expect(late.status).toBe(200);
    expect(JSON.parse(late.body)).toMatchObject({ received: true, duplicate: false });
    await recordedRun(first.refundId);
    await recordedRun(second.refundId);
    const recorded = () =>
      refundTransactions(order)
        .map((t) => [t.interactionId, t.amount.centAmount, t.state])
        .sort((a, b) => Number(a[1]) - Number(b[1]));
    expect(recorded()).toEqual([
      [first.refundId, 2_000, 'Success'],
      [second.refundId, 3_000, 'Success'],
    ]);

    for (const eventId of [second.eventId, first.eventId]) {
      const again = await redeliver(order, eventId);
      expect(again.status).toBe(200);
      expect(JSON.parse(again.body)).toMatchObject({ received: true, duplicate: true });
    }
    expect(await receiverRuns(first.refundId)).toHaveLength(1);
    expect(await receiverRuns(second.refundId)).toHaveLength(1);
    expect(recorded()).toHaveLength(2);
  });
});

describe('a pending Stripe refund that settles later', () => {
  it.each([
    ['succeeded', 'Success'],
    ['failed', 'Failure'],
  ] as const)('%s: recorded Pending, then %s, once each', async (settlement, state) => {
    const order = seedOrder('STRIPE');
    const { refundId, eventId, delivery } = await refundInDashboard(order, 1_500, { status: 'pending' });
    expect(delivery).toMatchObject({ status: 200 });
    await waitFor(
      () =>
        expect(refundTransactions(order)).toEqual([
          expect.objectContaining({ interactionId: refundId, state: 'Pending' }),
        ]),
      { what: 'the pending refund recorded' },
    );

    const settled = await cc.services.stripe.settleRefund(refundId, settlement);

    expect(settled.delivery).toMatchObject({ status: 200 });
    expect(JSON.parse(settled.delivery!.body)).toMatchObject({ received: true, duplicate: false });
    await waitFor(
      () =>
        expect(refundTransactions(order)).toEqual([
          expect.objectContaining({
            interactionId: refundId,
            state,
            amount: expect.objectContaining({ centAmount: 1_500 }),
          }),
        ]),
      { what: `the refund recorded ${state}` },
    );
    // The charge.refunded event again, now listing the settled refund: already committed.
    const again = await redeliver(order, eventId);
    expect(JSON.parse(again.body)).toMatchObject({ received: true, duplicate: true });
    await waitFor(async () =>
      expect((await receiverRuns(refundId)).map((r) => r.status)).toEqual(['COMPLETED', 'COMPLETED']),
    );
    expect(refundTransactions(order)).toHaveLength(1);
  });
});

describe('a signed Stripe event the Plugin cannot read', () => {
  it('is 400 BAD_REQUEST, never a 500', async () => {
    const { delivery } = await cc.services.stripe.sendEvent({
      type: 'charge.refunded',
      data: {} as { object: Record<string, unknown> },
    });
    expect(delivery.status).toBe(400);
    expect(JSON.parse(delivery.body)).toMatchObject({ code: ErrorCode.BAD_REQUEST });
  });
});

describe('a Stripe-Signature outside the 300 s tolerance', () => {
  it.each([
    ['in the future', 600],
    ['in the past', -600],
  ])('%s: 403 INVALID_SIGNATURE, nothing recorded', async (_, offset) => {
    const order = seedOrder('STRIPE');
    const { refundId, event } = await refundInDashboard(order, 1_000, { deliver: false });
    const body = JSON.stringify(event, null, 2);
    const signature = Stripe.webhooks.generateTestHeaderString({
      payload: body,
      secret: STRIPE_WEBHOOK_SECRET,
      timestamp: Math.floor(Date.now() / 1000) + offset,
    });

    const response = await cc.request('/stripe/webhook/', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'stripe-signature': signature },
      body,
    });

    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ code: ErrorCode.INVALID_SIGNATURE });
    expect(await receiverRuns(refundId)).toEqual([]);
    expect(refundTransactions(order)).toEqual([]);
  });
});

describe('a PayPal webhook call that can be refused without asking PayPal', () => {
  it('costs no verify-webhook-signature call, whatever is wrong with it', async () => {
    const order = seedOrder('PAYPAL');
    const { refundId, event } = await refundInDashboard(order, 1_000, { deliver: false });
    const body = JSON.stringify(event);
    const minutes = (n: number) => new Date(Date.now() + n * 60_000).toISOString();
    const certPath = new URL(cc.services.paypal.certUrl).pathname;
    const plausible: Record<string, string> = {
      'paypal-auth-algo': 'SHA256withRSA',
      'paypal-cert-url': cc.services.paypal.certUrl,
      'paypal-transmission-id': randomUUID(),
      'paypal-transmission-time': minutes(0),
      'paypal-transmission-sig': randomBytes(256).toString('base64'),
    };
    const without = (name: string) =>
      Object.fromEntries(Object.entries(plausible).filter(([h]) => h !== name));
    const cases: Array<[string, Record<string, string>, string, ErrorCode]> = [
      ...Object.keys(plausible).map((h): [string, Record<string, string>, string, ErrorCode] => [
        `without ${h}`,
        without(h),
        body,
        ErrorCode.INVALID_SIGNATURE,
      ]),
      [
        'a transmission id that is no id',
        { ...plausible, 'paypal-transmission-id': 'x; drop' },
        body,
        ErrorCode.INVALID_SIGNATURE,
      ],
      [
        'a transmission time that is no time',
        { ...plausible, 'paypal-transmission-time': 'yesterday' },
        body,
        ErrorCode.INVALID_SIGNATURE,
      ],
      [
        'sent 10 minutes ago',
        { ...plausible, 'paypal-transmission-time': minutes(-10) },
        body,
        ErrorCode.INVALID_SIGNATURE,
      ],
      [
        'sent 10 minutes ahead',
        { ...plausible, 'paypal-transmission-time': minutes(10) },
        body,
        ErrorCode.INVALID_SIGNATURE,
      ],
      [
        'a signature too short to be RSA',
        { ...plausible, 'paypal-transmission-sig': Buffer.from('not a signature').toString('base64') },
        body,
        ErrorCode.INVALID_SIGNATURE,
      ],
      [
        'a signature that is not base64',
        { ...plausible, 'paypal-transmission-sig': '%%% not base64 %%%' },
        body,
        ErrorCode.INVALID_SIGNATURE,
      ],
      [
        'an unknown signing algorithm',
        { ...plausible, 'paypal-auth-algo': 'none' },
        body,
        ErrorCode.INVALID_SIGNATURE,
      ],
      [
        'a certificate off PayPal',
        { ...plausible, 'paypal-cert-url': `https://paypal.example.com${certPath}` },
        body,
        ErrorCode.INVALID_SIGNATURE,
      ],
      [
        'a certificate on a look-alike host',
        { ...plausible, 'paypal-cert-url': `https://api.paypal.com.example.net${certPath}` },
        body,
        ErrorCode.INVALID_SIGNATURE,
      ],
      [
        'a certificate on PayPal over http',
        { ...plausible, 'paypal-cert-url': `http://api.paypal.com${certPath}` },
        body,
        ErrorCode.INVALID_SIGNATURE,
      ],
      [
        'a certificate URL that is no URL',
        { ...plausible, 'paypal-cert-url': 'api.paypal.com' },
        body,
        ErrorCode.INVALID_SIGNATURE,
      ],
      ['a body that is not JSON', plausible, 'not json', ErrorCode.BAD_REQUEST],
      ['a body that is not a PayPal event', plausible, '{"hello":"world"}', ErrorCode.BAD_REQUEST],
      [
        'a refund event without its refund',
        plausible,
        JSON.stringify({ ...event, resource: {} }),
        ErrorCode.BAD_REQUEST,
      ],
    ];
    const verifications = () => cc.services.paypal.calls('/v1/notifications/verify-webhook-signature').length;
    const before = verifications();

    const answers = [];
    for (const [what, headers, payload] of cases) {
      const calls = verifications();
      const response = await cc.request('/paypal/webhook/', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: payload,
      });
      const { code } = (await response.json()) as { code: string };
      answers.push({ what, status: response.status, code, verifications: verifications() - calls });
    }

    expect(answers).toEqual(
      cases.map(([what, , , code]) => ({ what, status: httpStatusOf(code), code, verifications: 0 })),
    );
    expect(await receiverRuns(refundId)).toEqual([]);
    // The genuine delivery, later, is verified by PayPal and recorded.
    expect((await redeliver(order, event.id)).status).toBe(200);
    expect(verifications()).toBe(before + 1);
    await recordedRun(refundId);
  });
});
