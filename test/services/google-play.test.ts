import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { androidpublisher } from '@googleapis/androidpublisher';
import { JWT, OAuth2Client } from 'google-auth-library';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGooglePlay, type GooglePlayStandIn } from '../../services/google-play/server.js';

// The Google Play stand-in through Google's official clients, as the google-play Plugin uses them:
// google-auth-library's service-account JWT credentials (its grant sent to the stand-in's token
// endpoint, which the key file names), @googleapis/androidpublisher's purchases.products.get, and
// OAuth2Client.verifyIdToken for Pub/Sub's push tokens.

const AUDIENCE = 'https://coordinator.example/iap/android/refund/';
let google: GooglePlayStandIn;
let receiver: Server;
const pushed: Array<{ authorization?: string; body: string }> = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      pushed.push({ authorization: req.headers.authorization, body: Buffer.concat(chunks).toString() });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  google = await startGooglePlay({
    push: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/push`, audience: AUDIENCE },
  });
});
afterAll(async () => {
  await google?.close();
  await new Promise((resolve) => receiver?.close(resolve));
});

/** The JWT credentials of a key file, their grant sent where the file's token_uri says. */
function credentials(keyFile = JSON.parse(google.serviceAccountKey) as Record<string, string>) {
  const auth = new JWT({
    email: keyFile.client_email,
    key: keyFile.private_key,
    scopes: ['https://www.googleapis.com/auth/androidpublisher'],
  });
  auth.transporter.interceptors.request.add({
    resolved: async (options) => {
      if (String(options.url) === 'https://oauth2.googleapis.com/token')
        options.url = new URL(keyFile.token_uri!);
      return options;
    },
  });
  return auth;
}

const publisher = (auth = credentials()) =>
  androidpublisher({ version: 'v3', auth, rootUrl: `${google.url}/` });

const statusOf = (promise: Promise<unknown>) =>
  promise.then(
    () => 200,
    (error: { status?: number; response?: { status?: number } }) => error.response?.status ?? error.status,
  );

describe('purchases.products.get', () => {
  it('answers a ProductPurchase to a client with a token from the JWT grant', async () => {
    const [seeded] = google.seed({ purchases: [{ productId: 'mobile.android.usd149', regionCode: 'DE' }] });
    google.admin.resetJournal();
    const { data } = await publisher().purchases.products.get({
      packageName: google.packageName,
      productId: 'mobile.android.usd149',
      token: seeded!.purchaseToken,
    });
    expect(data).toEqual({
      kind: 'androidpublisher#productPurchase',
      purchaseTimeMillis: expect.stringMatching(/^\d{13}$/),
      purchaseState: 0,
      consumptionState: 0,
      developerPayload: '',
      orderId: expect.stringMatching(/^GPA\.\d{4}-\d{4}-\d{4}-\d{5}$/),
      acknowledgementState: 1,
      productId: 'mobile.android.usd149',
      quantity: 1,
      regionCode: 'DE',
    });
    expect(
      google.admin.journal().map((e) => `${e.method} ${e.path.split('/tokens/')[0]} ${e.status}`),
    ).toEqual([
      'POST /token 200',
      `GET /androidpublisher/v3/applications/${google.packageName}/purchases/products/mobile.android.usd149 200`,
    ]);
  });

  it('answers Google’s errors: 400 unknown token, 404 unknown package, 410 gone, 401 without a token', async () => {
    const [gone] = google.seed({ purchases: [{ productId: 'p1', gone: true }] });
    const api = publisher();
    const get = (packageName: string, productId: string, token: string) =>
      statusOf(api.purchases.products.get({ packageName, productId, token }, { retry: false }));
    expect(await get(google.packageName, 'p1', 'unknown')).toBe(400);
    expect(await get('com.example.other', 'p1', gone!.purchaseToken)).toBe(404);
    expect(await get(google.packageName, 'p1', gone!.purchaseToken)).toBe(410);
    const anonymous = await fetch(
      `${google.url}/androidpublisher/v3/applications/${google.packageName}/purchases/products/p1/tokens/x`,
    );
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ error: { code: 401, status: 'UNAUTHENTICATED' } });
  });

  it('refuses the grant of a key it does not know, or of another account', async () => {
    const keyFile = JSON.parse(google.serviceAccountKey) as Record<string, string>;
    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    for (const forged of [
      { ...keyFile, private_key: otherKey },
      { ...keyFile, client_email: 'intruder@evil.iam.gserviceaccount.com' },
    ]) {
      const error = await credentials(forged)
        .getAccessToken()
        .then(
          () => expect.unreachable('a token was issued'),
          (e: { response?: { status?: number; data?: { error?: string } } }) => e,
        );
      expect(error.response?.status).toBe(400);
      expect(error.response?.data?.error).toBe('invalid_grant');
    }
  });

  it('answers Google’s error body for an injected fault', async () => {
    google.admin.injectFault({ path: '/androidpublisher/', status: 503 });
    const error = await publisher()
      .purchases.products.get(
        { packageName: google.packageName, productId: 'p', token: 't' },
        { retry: false },
      )
      .then(
        () => undefined,
        (e: { response?: { data?: unknown } }) => e.response?.data,
      );
    expect(error).toMatchObject({ error: { code: 503, status: 'UNAVAILABLE' } });
  });

  it('takes purchases through POST /_admin/seed', async () => {
    const response = await fetch(`${google.url}/_admin/seed`, {
      method: 'POST',
      body: JSON.stringify({
        purchases: [{ purchaseToken: 'seeded-over-http', productId: 'p2', purchaseState: 1 }],
      }),
    });
    expect(response.status).toBe(201);
    expect(google.purchase('seeded-over-http')).toMatchObject({ productId: 'p2', purchaseState: 1 });
    const bad = await fetch(`${google.url}/_admin/seed`, {
      method: 'POST',
      body: JSON.stringify({ purchases: [{ productId: 'p2', purchaseState: 7 }] }),
    });
    expect(bad.status).toBe(400);
  });
});

describe('Pub/Sub push of real-time developer notifications', () => {
  it('pushes a voidedPurchaseNotification with an OIDC token google-auth-library verifies', async () => {
    const [bought] = google.seed({ purchases: [{ productId: 'mobile.android.usd149' }] });
    pushed.length = 0;
    const { delivery } = await google.voidPurchase(
      { purchaseToken: bought!.purchaseToken, orderId: bought!.orderId },
      { messageId: 'm-1' },
    );
    expect(delivery?.status).toBe(204);
    expect(pushed).toHaveLength(1);
    const body = JSON.parse(pushed[0]!.body) as {
      message: { data: string; messageId: string; publishTime: string };
      subscription: string;
    };
    expect(body).toMatchObject({ message: { messageId: 'm-1' }, subscription: google.subscription });
    expect(JSON.parse(Buffer.from(body.message.data, 'base64').toString())).toEqual({
      version: '1.0',
      packageName: google.packageName,
      eventTimeMillis: expect.stringMatching(/^\d+$/),
      voidedPurchaseNotification: {
        purchaseToken: bought!.purchaseToken,
        orderId: bought!.orderId,
        productType: 2,
        refundType: 1,
      },
    });
    const idToken = pushed[0]!.authorization!.replace(/^Bearer /, '');
    const verifier = new OAuth2Client({ endpoints: { oauth2FederatedSignonPemCertsUrl: google.certsUrl } });
    const ticket = await verifier.verifyIdToken({ idToken, audience: AUDIENCE });
    expect(ticket.getPayload()).toMatchObject({
      iss: 'https://accounts.google.com',
      aud: AUDIENCE,
      email: google.pushServiceAccountEmail,
      email_verified: true,
    });
    // The purchase is voided at Google too.
    expect(google.purchase(bought!.purchaseToken)!.purchaseState).toBe(1);
  });

  it('serves the same key as a JWKS', async () => {
    const token = await google.pushToken();
    const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(google.jwksUrl)), {
      issuer: 'https://accounts.google.com',
      audience: AUDIENCE,
    });
    expect(payload.email).toBe(google.pushServiceAccountEmail);
  });

  it('leaves a partially refunded purchase purchased', async () => {
    const [bought] = google.seed({ purchases: [{ productId: 'mobile.android.usd149' }] });
    await google.voidPurchase(
      { purchaseToken: bought!.purchaseToken, orderId: bought!.orderId, refundType: 2 },
      { deliver: false },
    );
    expect(google.purchase(bought!.purchaseToken)!.purchaseState).toBe(0);
  });
});
