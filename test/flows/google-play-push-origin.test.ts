import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type PluginRuntime, type RouteRequest } from '@commerce-coordinator/plugin-sdk';
import { startGooglePlay, type GooglePlayStandIn } from '../../services/google-play/server.js';
import googlePlayPlugin from '../../subgraphs/google-play/index.js';
import { googlePlayPushConfig } from '../../subgraphs/google-play/config.js';
import {
  handleVoidedPurchasePush,
  MOBILE_PAYMENT_REFUNDED_SIGNAL,
} from '../../subgraphs/google-play/voided-purchases.js';
import { problemsOf } from '../support/config-problems.js';

/**
 * Where a Google Play refund push may come from. A token Google signed for our audience proves only
 * that *some* push subscription sent it: any Google Cloud project can create one towards our endpoint.
 * Only the push subscription's service account (GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL) and the refund
 * subscription (GOOGLE_PLAY_REFUND_SUBSCRIPTION) tell ours apart, so both are required: a push is never
 * turned into mobile.payment.refunded.v1 (a full refund recorded, the course revoked) without them.
 */

const AUDIENCE = 'https://coordinator.example/iap/android/refund/';
const ATTACKER = {
  email: 'pusher@attacker-project.iam.gserviceaccount.com',
  subscription: 'projects/attacker-project/subscriptions/push-to-coordinator',
};

let play: GooglePlayStandIn;
const published: Array<{ signal: string; payload: Record<string, unknown> }> = [];
const runtime = {
  logger: { warn: () => undefined, error: () => undefined, info: () => undefined, debug: () => undefined },
  publish: async (signal: string, payload: Record<string, unknown>) => {
    published.push({ signal, payload });
    return { duplicate: false };
  },
} as unknown as PluginRuntime;

const configured = () => ({
  GOOGLE_PUBSUB_AUDIENCE: AUDIENCE,
  GOOGLE_PUBSUB_CERTS_URL: play.certsUrl,
  GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL: play.pushServiceAccountEmail,
  GOOGLE_PLAY_REFUND_SUBSCRIPTION: play.subscription,
});
const saved = { ...process.env };

beforeAll(async () => {
  play = await startGooglePlay({ push: { url: 'http://127.0.0.1:9/unused', audience: AUDIENCE } });
});
afterAll(async () => {
  process.env = saved;
  await play?.close();
});
beforeEach(() => {
  published.length = 0;
  Object.assign(process.env, configured());
});

/** A full refund's push for an order of the sender's choosing, through `subscription`. */
const forgedBody = (subscription: string) =>
  JSON.stringify({
    ...(JSON.parse(
      play.pushBody({
        version: '1.0',
        packageName: play.packageName,
        eventTimeMillis: String(Date.now()),
        voidedPurchaseNotification: {
          purchaseToken: 'forged-token',
          orderId: 'GPA.0000-forged-0001',
          productType: 2,
          refundType: 1,
        },
      }),
    ) as object),
    subscription,
  });

const push = async (body: string, email: string) => {
  const token = await play.pushToken({ email });
  return handleVoidedPurchasePush(
    {
      method: 'POST',
      path: '/iap/android/refund/',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      query: new URLSearchParams(),
      rawQuery: '',
      rawBody: Buffer.from(body),
    } satisfies RouteRequest,
    runtime,
  );
};

describe('the push configuration', () => {
  it('requires the push service account and the refund subscription, naming them and what to set', () => {
    const problems = problemsOf(() => googlePlayPushConfig({ GOOGLE_PUBSUB_AUDIENCE: AUDIENCE }));
    expect(problems).toEqual([
      expect.stringMatching(
        /^GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL is not set: set it to the email of the push subscription's service account/,
      ),
      expect.stringMatching(
        /^GOOGLE_PLAY_REFUND_SUBSCRIPTION is not set: set it to the full name of the push subscription .*projects\/<project>\/subscriptions\/<subscription>/,
      ),
    ]);
  });

  it('refuses a refund subscription that is not a subscription name', () => {
    expect(
      problemsOf(() =>
        googlePlayPushConfig({ ...configured(), GOOGLE_PLAY_REFUND_SUBSCRIPTION: 'play-refunds' }),
      ),
    ).toEqual([
      expect.stringMatching(/^GOOGLE_PLAY_REFUND_SUBSCRIPTION is invalid \(not a subscription name/),
    ]);
  });

  it("is one of the Plugin's configuration checks (production refuses to start without it)", () => {
    const env = { ...configured(), GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL: undefined };
    const problems = (googlePlayPlugin.config ?? []).flatMap((reader) => problemsOf(() => reader(env)));
    expect(problems).toContainEqual(expect.stringMatching(/^GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL is not set/));
  });
});

describe('a Google Play push', () => {
  it.each([
    ['the push service account is', ['GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL']],
    ['the refund subscription is', ['GOOGLE_PLAY_REFUND_SUBSCRIPTION']],
    ['neither is', ['GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL', 'GOOGLE_PLAY_REFUND_SUBSCRIPTION']],
  ])('while %s configured is refused 403, from anyone, and nothing is published', async (_, unset) => {
    for (const name of unset) delete process.env[name];
    for (const [body, email] of [
      [forgedBody(ATTACKER.subscription), ATTACKER.email],
      [forgedBody(play.subscription), play.pushServiceAccountEmail],
    ] as const) {
      const answer = await push(body, email);
      expect(answer).toMatchObject({ status: 403, body: { code: 'INVALID_SIGNATURE' } });
    }
    expect(published).toEqual([]);
  });

  it("from another project's service account is refused 403, whatever subscription it names", async () => {
    for (const subscription of [ATTACKER.subscription, play.subscription]) {
      const answer = await push(forgedBody(subscription), ATTACKER.email);
      expect(answer).toMatchObject({ status: 403, body: { code: 'INVALID_SIGNATURE' } });
    }
    expect(published).toEqual([]);
  });

  it('from our service account through another subscription is answered 200 and ignored', async () => {
    const answer = await push(forgedBody(ATTACKER.subscription), play.pushServiceAccountEmail);
    expect(answer).toMatchObject({ status: 200, body: { received: true, ignored: 'subscription' } });
    expect(published).toEqual([]);
  });

  it('from our service account through the refund subscription is published', async () => {
    const answer = await push(forgedBody(play.subscription), play.pushServiceAccountEmail);
    expect(answer).toMatchObject({ status: 200, body: { received: true, duplicate: false } });
    expect(published).toMatchObject([
      { signal: MOBILE_PAYMENT_REFUNDED_SIGNAL, payload: { transactionIds: ['GPA.0000-forged-0001'] } },
    ]);
  });
});
