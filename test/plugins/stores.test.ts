import { generateKeyPairSync } from 'node:crypto';
import { decodeProtectedHeader, SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '@commerce-coordinator/plugin-sdk';
import { untrustedAppStoreSigner } from '../../services/app-store/server.js';
import { DEMO } from '../../services/demo.js';
import { oidcSigner, type GooglePlayPurchaseSeed } from '../../services/google-play/server.js';
import {
  AppStoreNotificationError,
  readAppStoreNotificationBody,
  verifyAppStoreNotification,
} from '../../subgraphs/app-store/index.js';
import { PubSubPushError, verifyPubSubPush } from '../../subgraphs/google-play/index.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

// The store Plugins through the gateway, against the App Store and Google Play stand-ins over real
// HTTP: the verification Actions (as a staff member or a Service calls them, and as the mobile order
// flow's step will), and the notification verifiers the refund routes use, on the configuration the
// embedded default gives them.

let t: CommerceCoordinator;
beforeAll(async () => {
  t = await startCommerceCoordinator('stores');
}, 60_000);
afterAll(() => t?.stop());
afterEach(() => {
  t.services.appStore.admin.clearFaults();
  t.services.googlePlay.admin.clearFaults();
});

const FIELDS =
  'paymentMethod transactionId originalTransactionId productId purchasedAt regionCode storefront';
const VERIFY_IOS = `query ($input: MobilePurchaseInput!) { verifyAppStorePurchase(input: $input) { ${FIELDS} } }`;
const VERIFY_ANDROID = `query ($input: MobilePurchaseInput!) { verifyGooglePlayPurchase(input: $input) { ${FIELDS} } }`;

interface Answer {
  data?: Record<string, unknown> | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

const verifyIos = (purchaseToken: string, productId: string, token = t.tokens.staff) =>
  t.graphql(VERIFY_IOS, { input: { purchaseToken, productId } }, token) as Promise<Answer>;
const verifyAndroid = (purchaseToken: string, productId: string, token = t.tokens.staff) =>
  t.graphql(VERIFY_ANDROID, { input: { purchaseToken, productId } }, token) as Promise<Answer>;

const codeOf = (answer: Answer) => answer.errors?.[0]?.extensions?.code;

const appStoreCalls = () => t.services.appStore.admin.journal({ path: '/inApps/v1/transactions/' });
const playCalls = () => t.services.googlePlay.admin.journal({ path: '/androidpublisher/' });

let nextId = 3_000_000_000_000_000;
const transactionId = () => String(++nextId);

describe('verifyAppStorePurchase', () => {
  it('answers a completed purchase as the App Store Server API signed it', async () => {
    const { ios } = DEMO.mobilePurchases;
    const answer = await verifyIos(ios.purchaseToken, ios.productId);
    expect(answer.errors).toBeUndefined();
    expect(answer.data?.verifyAppStorePurchase).toEqual({
      paymentMethod: 'ios_iap',
      transactionId: ios.purchaseToken,
      originalTransactionId: ios.purchaseToken,
      productId: ios.productId,
      purchasedAt: new Date(t.services.appStore.transaction(ios.purchaseToken)!.purchaseDate).toISOString(),
      regionCode: null,
      storefront: 'USA',
    });
  });

  it('answers a Service as it answers staff, and refuses learners', async () => {
    const { ios } = DEMO.mobilePurchases;
    expect((await verifyIos(ios.purchaseToken, ios.productId, t.tokens.lms)).errors).toBeUndefined();
    expect(codeOf(await verifyIos(ios.purchaseToken, ios.productId, t.tokens.ada))).toBe(ErrorCode.FORBIDDEN);
  });

  it('refuses a purchase token that is no transaction id (400), without asking Apple', async () => {
    t.services.appStore.admin.resetJournal();
    for (const token of ['abc', '12 34', '1'.repeat(20), '', 'x'.repeat(5000)]) {
      const answer = await verifyIos(token, 'mobile.ios.usd149');
      expect(codeOf(answer), token.slice(0, 20)).toBe(ErrorCode.BAD_USER_INPUT);
      expect(answer.errors![0]!.extensions).toMatchObject({ field: 'purchaseToken' });
    }
    expect(appStoreCalls()).toEqual([]);
  });

  it('refuses a product id that is not an iOS product of ours (400)', async () => {
    for (const productId of ['mobile.android.usd149', 'mobile.ios.usd', 'mobile.ios.usd1.5', 'course'])
      expect(codeOf(await verifyIos(DEMO.mobilePurchases.ios.purchaseToken, productId)), productId).toBe(
        ErrorCode.BAD_USER_INPUT,
      );
  });

  it('answers PAYMENT_REQUIRED (402) for a transaction Apple does not hold', async () => {
    const answer = await verifyIos(transactionId(), 'mobile.ios.usd149');
    expect(codeOf(answer)).toBe(ErrorCode.PAYMENT_REQUIRED);
    expect(answer.errors![0]!.extensions).toMatchObject({ storeStatus: 404, storeCode: 4040010 });
  });

  it('answers PAYMENT_REQUIRED for a refunded purchase', async () => {
    const [refunded] = t.services.appStore.seed({
      transactions: [
        { productId: 'mobile.ios.usd149', price: 149_000, revocationDate: new Date().toISOString() },
      ],
    });
    const answer = await verifyIos(refunded!.transactionId, 'mobile.ios.usd149');
    expect(codeOf(answer)).toBe(ErrorCode.PAYMENT_REQUIRED);
    expect(answer.errors![0]!.message).toMatch(/refunded/);
  });

  it('answers PAYMENT_REQUIRED for another app’s transaction (Apple does not find it for ours)', async () => {
    const [other] = t.services.appStore.seed({
      transactions: [{ productId: 'mobile.ios.usd149', price: 149_000, bundleId: 'com.example.other' }],
    });
    expect(codeOf(await verifyIos(other!.transactionId, 'mobile.ios.usd149'))).toBe(
      ErrorCode.PAYMENT_REQUIRED,
    );
  });

  it('refuses a purchase of another product (400), saying which was bought', async () => {
    const [cheap] = t.services.appStore.seed({
      transactions: [{ productId: 'mobile.ios.usd9', price: 9_000 }],
    });
    const answer = await verifyIos(cheap!.transactionId, 'mobile.ios.usd149');
    expect(codeOf(answer)).toBe(ErrorCode.BAD_USER_INPUT);
    expect(answer.errors![0]!.extensions).toMatchObject({
      field: 'productId',
      purchasedProductId: 'mobile.ios.usd9',
    });
  });

  it('tries a failing App Store 3 times, then answers SERVICE_UNAVAILABLE', async () => {
    t.services.appStore.admin.resetJournal();
    t.services.appStore.admin.injectFault({ path: '/inApps/', status: 500, times: 3 });
    const { ios } = DEMO.mobilePurchases;
    const answer = await verifyIos(ios.purchaseToken, ios.productId);
    expect(codeOf(answer)).toBe(ErrorCode.SERVICE_UNAVAILABLE);
    expect(answer.errors![0]!.extensions).toMatchObject({ attempts: 3 });
    expect(appStoreCalls().map((c) => c.status)).toEqual([500, 500, 500]);
  });

  it('succeeds on the third attempt after two failures (5xx, then a dropped connection)', async () => {
    t.services.appStore.admin.resetJournal();
    t.services.appStore.admin.injectFault({ path: '/inApps/', status: 503, times: 1 });
    t.services.appStore.admin.injectFault({ path: '/inApps/', reset: true, times: 1 });
    const { ios } = DEMO.mobilePurchases;
    const answer = await verifyIos(ios.purchaseToken, ios.productId);
    expect(answer.errors).toBeUndefined();
    expect(appStoreCalls()).toHaveLength(3);
    expect(appStoreCalls()[2]!.status).toBe(200);
  });

  it('does not retry what Apple says about the purchase', async () => {
    t.services.appStore.admin.resetJournal();
    await verifyIos(transactionId(), 'mobile.ios.usd149');
    expect(appStoreCalls()).toHaveLength(1);
  });
});

describe('verifyGooglePlayPurchase', () => {
  const seed = (purchase: Partial<GooglePlayPurchaseSeed> = {}) =>
    t.services.googlePlay.seed({ purchases: [{ productId: 'mobile.android.usd149', ...purchase }] })[0]!;

  it('answers a purchased product as the Android Publisher API has it', async () => {
    const { android } = DEMO.mobilePurchases;
    const answer = await verifyAndroid(android.purchaseToken, android.productId);
    expect(answer.errors).toBeUndefined();
    expect(answer.data?.verifyGooglePlayPurchase).toEqual({
      paymentMethod: 'android_iap',
      transactionId: android.orderId,
      originalTransactionId: android.orderId,
      productId: android.productId,
      purchasedAt: new Date(
        Number(t.services.googlePlay.purchase(android.purchaseToken)!.purchaseTimeMillis),
      ).toISOString(),
      regionCode: 'US',
      storefront: null,
    });
  });

  it('answers the buyer’s region as Google has it', async () => {
    const purchase = seed({ regionCode: 'IN' });
    const answer = await verifyAndroid(purchase.purchaseToken, 'mobile.android.usd149');
    expect(answer.data?.verifyGooglePlayPurchase).toMatchObject({
      regionCode: 'IN',
      transactionId: purchase.orderId,
    });
  });

  it('refuses a token Google does not know for the product (400 BAD_USER_INPUT)', async () => {
    const answer = await verifyAndroid('not-a-real-token', 'mobile.android.usd149');
    expect(codeOf(answer)).toBe(ErrorCode.BAD_USER_INPUT);
    expect(answer.errors![0]!.extensions).toMatchObject({ storeStatus: 400, field: 'purchaseToken' });
  });

  it('refuses a token of another product: Google looks tokens up per product', async () => {
    const cheap = seed({ productId: 'mobile.android.usd9' });
    expect(codeOf(await verifyAndroid(cheap.purchaseToken, 'mobile.android.usd149'))).toBe(
      ErrorCode.BAD_USER_INPUT,
    );
  });

  it('refuses malformed input without asking Google', async () => {
    t.services.googlePlay.admin.resetJournal();
    for (const [token, productId] of [
      ['../../applications/other', 'mobile.android.usd149'],
      ['token with spaces', 'mobile.android.usd149'],
      ['t'.repeat(3000), 'mobile.android.usd149'],
      ['abc', 'mobile.ios.usd149'],
      ['abc', 'mobile.android.usd149/../x'],
    ] as const)
      expect(codeOf(await verifyAndroid(token, productId)), token.slice(0, 20)).toBe(
        ErrorCode.BAD_USER_INPUT,
      );
    expect(playCalls()).toEqual([]);
  });

  it.each([
    ['cancelled', { purchaseState: 1 as const }, /cancelled/],
    ['pending', { purchaseState: 2 as const }, /pending/],
    ['no longer held (410)', { gone: true }, /no purchase/],
    ['a license-testing purchase', { purchaseType: 0 as const }, /license-testing/],
  ])('answers PAYMENT_REQUIRED (402) for a purchase %s', async (_, state, message) => {
    const purchase = seed(state);
    const answer = await verifyAndroid(purchase.purchaseToken, 'mobile.android.usd149');
    expect(codeOf(answer)).toBe(ErrorCode.PAYMENT_REQUIRED);
    expect(answer.errors![0]!.message).toMatch(message);
  });

  it('tries a failing Google 3 times, then answers SERVICE_UNAVAILABLE', async () => {
    t.services.googlePlay.admin.resetJournal();
    t.services.googlePlay.admin.injectFault({ path: '/androidpublisher/', status: 503, times: 3 });
    const { android } = DEMO.mobilePurchases;
    const answer = await verifyAndroid(android.purchaseToken, android.productId);
    expect(codeOf(answer)).toBe(ErrorCode.SERVICE_UNAVAILABLE);
    expect(playCalls().map((c) => c.status)).toEqual([503, 503, 503]);
  });

  it('succeeds on the third attempt after two failures (5xx, then a dropped connection)', async () => {
    t.services.googlePlay.admin.resetJournal();
    t.services.googlePlay.admin.injectFault({ path: '/androidpublisher/', status: 500, times: 1 });
    t.services.googlePlay.admin.injectFault({ path: '/androidpublisher/', reset: true, times: 1 });
    const { android } = DEMO.mobilePurchases;
    const answer = await verifyAndroid(android.purchaseToken, android.productId);
    expect(answer.errors).toBeUndefined();
    expect(playCalls().map((c) => c.status)).toEqual([500, undefined, 200]);
  });

  it('answers SERVICE_UNAVAILABLE at once when Google refuses the service account', async () => {
    // A fresh client, so the token is asked for again; the token endpoint refuses it.
    t.services.googlePlay.admin.resetJournal();
    const key = JSON.parse(process.env.GOOGLE_PLAY_SERVICE_ACCOUNT_KEY!) as Record<string, string>;
    const saved = process.env.GOOGLE_PLAY_SERVICE_ACCOUNT_KEY;
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    process.env.GOOGLE_PLAY_SERVICE_ACCOUNT_KEY = JSON.stringify({
      ...key,
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    });
    try {
      const { android } = DEMO.mobilePurchases;
      const answer = await verifyAndroid(android.purchaseToken, android.productId);
      expect(codeOf(answer)).toBe(ErrorCode.SERVICE_UNAVAILABLE);
      expect(answer.errors![0]!.message).toMatch(/service account/);
      expect(t.services.googlePlay.admin.journal({ path: '/token' }).map((c) => c.status)).toEqual([400]);
      expect(playCalls()).toEqual([]);
    } finally {
      process.env.GOOGLE_PLAY_SERVICE_ACCOUNT_KEY = saved;
    }
  });
});

describe('verifyAppStoreNotification', () => {
  const refundOf = async () => {
    const [bought] = t.services.appStore.seed({
      transactions: [{ productId: 'mobile.ios.usd149', price: 149_000 }],
    });
    return t.services.appStore.refund(bought!.transactionId, { deliver: false });
  };

  const refusal = (promise: Promise<unknown>) =>
    promise.then(
      () => expect.unreachable('the notification was accepted'),
      (error: unknown) => {
        expect(error).toBeInstanceOf(AppStoreNotificationError);
        return error as AppStoreNotificationError;
      },
    );

  it('decodes a notification Apple signed, with its verified transaction', async () => {
    const { signedPayload } = await refundOf();
    const notification = await verifyAppStoreNotification(signedPayload);
    expect(notification).toMatchObject({
      notificationType: 'REFUND',
      notificationUUID: expect.stringMatching(/^[0-9a-f-]{36}$/),
      environment: 'Sandbox',
      transaction: {
        productId: 'mobile.ios.usd149',
        price: 149_000,
        currency: 'USD',
        revocationDate: expect.any(Number),
      },
    });
    expect(notification.transaction!.originalTransactionId).toBe(notification.transaction!.transactionId);
  });

  it('refuses a notification signed by a chain that does not end at the configured root', async () => {
    const { signedPayload } = await refundOf();
    const payload = JSON.parse(Buffer.from(signedPayload.split('.')[1]!, 'base64url').toString()) as object;
    const forged = await untrustedAppStoreSigner().sign(payload);
    const error = await refusal(verifyAppStoreNotification(forged));
    expect(error.extensions.code).toBe(ErrorCode.INVALID_SIGNATURE);
  });

  it('refuses a notification whose payload was changed after Apple signed it', async () => {
    const { signedPayload } = await refundOf();
    const [header, payload, signature] = signedPayload.split('.');
    const changed = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as { notificationType: string };
    changed.notificationType = 'CONSUMPTION_REQUEST';
    const tampered = `${header}.${Buffer.from(JSON.stringify(changed)).toString('base64url')}.${signature}`;
    expect((await refusal(verifyAppStoreNotification(tampered))).extensions.code).toBe(
      ErrorCode.INVALID_SIGNATURE,
    );
  });

  it('refuses a notification for another app, even signed by Apple', async () => {
    const { signedPayload } = await refundOf();
    const payload = JSON.parse(Buffer.from(signedPayload.split('.')[1]!, 'base64url').toString()) as {
      data: { bundleId: string };
    };
    payload.data.bundleId = 'com.example.other';
    const error = await refusal(verifyAppStoreNotification(await t.services.appStore.sign(payload)));
    expect(error.reason).toBe('INVALID_APP_IDENTIFIER');
  });

  it('refuses what is not a JWS at all', async () => {
    for (const junk of ['', 'a.b.c', 'not a jws', 'x'.repeat(100_000)])
      expect((await refusal(verifyAppStoreNotification(junk))).extensions.code).toMatch(
        /^(INVALID_SIGNATURE|BAD_REQUEST)$/,
      );
  });

  it('reads the signedPayload of a body, refusing malformed bodies with BAD_REQUEST', () => {
    expect(readAppStoreNotificationBody(Buffer.from('{"signedPayload":"a.b.c"}'))).toBe('a.b.c');
    for (const body of ['', 'not json', '{}', '{"signedPayload":1}', '[]'])
      expect(() => readAppStoreNotificationBody(body)).toThrow(
        expect.objectContaining({ extensions: expect.objectContaining({ code: ErrorCode.BAD_REQUEST }) }),
      );
  });
});

describe('verifyPubSubPush', () => {
  const voided = {
    purchaseToken: 'voided-token',
    orderId: 'GPA.3300-0000-0000-00001',
    productType: 2,
    refundType: 1,
  };
  const body = (messageId = '1001') =>
    t.services.googlePlay.pushBody(
      {
        version: '1.0',
        packageName: 'org.edx.mobile',
        eventTimeMillis: '1700000000000',
        voidedPurchaseNotification: voided,
      },
      { messageId },
    );

  const refusal = (promise: Promise<unknown>) =>
    promise.then(
      () => expect.unreachable('the push was accepted'),
      (error: unknown) => {
        expect(error).toBeInstanceOf(PubSubPushError);
        return error as PubSubPushError;
      },
    );

  it('reads a push Google signed for our audience', async () => {
    const push = await verifyPubSubPush(
      `Bearer ${await t.services.googlePlay.pushToken()}`,
      Buffer.from(body('42')),
    );
    expect(push).toEqual({
      messageId: '42',
      subscription: t.services.googlePlay.subscription,
      isRefundSubscription: true,
      publishTime: expect.any(String),
      notification: {
        version: '1.0',
        packageName: 'org.edx.mobile',
        eventTimeMillis: '1700000000000',
        voidedPurchaseNotification: voided,
      },
    });
  });

  it('says when the push came through another subscription', async () => {
    const other = JSON.parse(body()) as { subscription: string };
    other.subscription = 'projects/other/subscriptions/x';
    const push = await verifyPubSubPush(
      `Bearer ${await t.services.googlePlay.pushToken()}`,
      JSON.stringify(other),
    );
    expect(push.isRefundSubscription).toBe(false);
  });

  it('refuses a push without a bearer token', async () => {
    for (const authorization of [undefined, '', 'Basic abc', 'Bearer', 'Bearer a b'])
      expect((await refusal(verifyPubSubPush(authorization, body()))).extensions.code).toBe(
        ErrorCode.INVALID_SIGNATURE,
      );
  });

  it('refuses a token signed by another key, even under Google’s key id', async () => {
    const genuine = await t.services.googlePlay.pushToken();
    const { kid } = decodeProtectedHeader(genuine);
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const claims = JSON.parse(Buffer.from(genuine.split('.')[1]!, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    const forged = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: kid!, typ: 'JWT' })
      .sign(privateKey);
    expect((await refusal(verifyPubSubPush(`Bearer ${forged}`, body()))).reason).toBe('invalid-token');
    // And one under a key id Google does not serve.
    const stranger = await oidcSigner().sign(claims);
    expect((await refusal(verifyPubSubPush(`Bearer ${stranger}`, body()))).reason).toBe('invalid-token');
  });

  it('refuses an expired token (beyond the libraries’ 5 minutes of clock skew)', async () => {
    const iat = Math.floor(Date.now() / 1000) - 7200;
    const token = await t.services.googlePlay.pushToken({ iat, exp: iat + 3600 });
    const error = await refusal(verifyPubSubPush(`Bearer ${token}`, body()));
    expect(error.message).toMatch(/too late/);
    expect(error.message).not.toMatch(/pubsub-push@/);
  });

  it('refuses a token for another audience', async () => {
    const token = await t.services.googlePlay.pushToken({ aud: 'https://someone-else.example/push' });
    expect((await refusal(verifyPubSubPush(`Bearer ${token}`, body()))).message).toMatch(/audience/);
  });

  it('refuses a token from another issuer', async () => {
    const token = await t.services.googlePlay.pushToken({ iss: 'https://evil.example' });
    expect((await refusal(verifyPubSubPush(`Bearer ${token}`, body()))).extensions.code).toBe(
      ErrorCode.INVALID_SIGNATURE,
    );
  });

  it('refuses a token of another service account, or one whose email is not verified', async () => {
    const other = await t.services.googlePlay.pushToken({ email: 'someone@evil.iam.gserviceaccount.com' });
    expect((await refusal(verifyPubSubPush(`Bearer ${other}`, body()))).reason).toBe('wrong-service-account');
    const unverified = await t.services.googlePlay.pushToken({ email_verified: false });
    expect((await refusal(verifyPubSubPush(`Bearer ${unverified}`, body()))).reason).toBe(
      'wrong-service-account',
    );
  });

  it('refuses a body that is not a push of a developer notification (400)', async () => {
    const bearer = `Bearer ${await t.services.googlePlay.pushToken()}`;
    const data = (value: string) =>
      JSON.stringify({ message: { data: value, messageId: '1' }, subscription: 's' });
    for (const junk of [
      'not json',
      '{}',
      JSON.stringify({ message: { data: 'e30=' }, subscription: 's' }),
      data('%%%not base64%%%'),
      data(Buffer.from('not json').toString('base64')),
      data(Buffer.from('{"no":"packageName"}').toString('base64')),
    ])
      expect((await refusal(verifyPubSubPush(bearer, junk))).extensions.code, junk).toBe(
        ErrorCode.BAD_REQUEST,
      );
  });
});
