import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  APIException,
  AppStoreServerAPIClient,
  Environment,
  SignedDataVerifier,
  VerificationException,
  VerificationStatus,
} from '@apple/app-store-server-library';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  startAppStore,
  untrustedAppStoreSigner,
  type AppStoreStandIn,
} from '../../services/app-store/server.js';

// The App Store stand-in through Apple's official App Store Server Library, as the app-store Plugin
// uses it: the library's own client (pointed at the stand-in) and its own SignedDataVerifier, given
// the stand-in's root in place of Apple Root CA - G3.

let apple: AppStoreStandIn;
let receiver: Server;
const received: Array<{ headers: Record<string, unknown>; body: string }> = [];

beforeAll(async () => {
  apple = await startAppStore();
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  apple.setNotificationUrl(`http://127.0.0.1:${(receiver.address() as AddressInfo).port}/iap/ios/refund/`);
});
afterAll(async () => {
  await apple?.close();
  await new Promise((resolve) => receiver?.close(resolve));
});

/** The library's client, its requests sent to the stand-in. */
class StandInClient extends AppStoreServerAPIClient {
  constructor(
    private readonly base: string,
    key: { privateKey: string; keyId: string; issuerId: string; bundleId: string },
  ) {
    super(key.privateKey, key.keyId, key.issuerId, key.bundleId, Environment.SANDBOX);
  }
  protected override async makeFetchRequest(
    path: string,
    query: URLSearchParams,
    method: string,
    _body: unknown,
    headers: Record<string, string>,
  ): ReturnType<AppStoreServerAPIClient['makeFetchRequest']> {
    return (await fetch(`${this.base}${path}?${query}`, { method, headers })) as never;
  }
}

const client = (
  overrides: Partial<{ privateKey: string; keyId: string; issuerId: string; bundleId: string }> = {},
) =>
  new StandInClient(apple.url, {
    privateKey: apple.privateKey,
    keyId: apple.keyId,
    issuerId: apple.issuerId,
    bundleId: apple.bundleId,
    ...overrides,
  });
const verifier = (roots = [apple.rootCertificate], bundleId = apple.bundleId) =>
  new SignedDataVerifier(roots, false, Environment.SANDBOX, bundleId);

const apiError = (promise: Promise<unknown>) =>
  promise.then(
    () => expect.unreachable('the call succeeded'),
    (error: unknown) => {
      expect(error).toBeInstanceOf(APIException);
      return error as APIException;
    },
  );

describe('Get Transaction Info', () => {
  it('answers signedTransactionInfo, a JWS the library verifies against the stand-in root', async () => {
    const [seeded] = apple.seed({
      transactions: [{ productId: 'mobile.ios.usd49', price: 49_990, currency: 'USD', storefront: 'GBR' }],
    });
    const { signedTransactionInfo } = await client().getTransactionInfo(seeded!.transactionId);
    const transaction = await verifier().verifyAndDecodeTransaction(signedTransactionInfo!);
    expect(transaction).toMatchObject({
      transactionId: seeded!.transactionId,
      originalTransactionId: seeded!.transactionId,
      bundleId: apple.bundleId,
      productId: 'mobile.ios.usd49',
      price: 49_990,
      currency: 'USD',
      storefront: 'GBR',
      environment: 'Sandbox',
      type: 'Consumable',
      inAppOwnershipType: 'PURCHASED',
      quantity: 1,
    });
    expect(transaction.revocationDate).toBeUndefined();
  });

  it('answers 400 / 4000006 for an id that is not a transaction id', async () => {
    const error = await apiError(client().getTransactionInfo('not-a-number'));
    expect([error.httpStatusCode, error.apiError, error.errorMessage]).toEqual([
      400,
      4000006,
      'Invalid transaction id.',
    ]);
  });

  it('answers 404 / 4040010 for a transaction it does not hold, or another app’s', async () => {
    expect((await apiError(client().getTransactionInfo('1234567890'))).apiError).toBe(4040010);
    const [other] = apple.seed({
      transactions: [{ productId: 'p', price: 1_000, bundleId: 'com.example.other' }],
    });
    expect((await apiError(client().getTransactionInfo(other!.transactionId))).httpStatusCode).toBe(404);
  });

  it('answers 401 to a bearer JWT signed by another key, with another key id, issuer or bundle id', async () => {
    const [seeded] = apple.seed({ transactions: [{ productId: 'p', price: 1_000 }] });
    const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    for (const overrides of [
      { privateKey: otherKey },
      { keyId: 'OTHERKEY1' },
      { issuerId: '00000000-0000-0000-0000-000000000000' },
      { bundleId: 'com.example.other' },
    ]) {
      const error = await apiError(client(overrides).getTransactionInfo(seeded!.transactionId));
      expect(error.httpStatusCode, JSON.stringify(Object.keys(overrides))).toBe(401);
    }
  });

  it('answers 401 to an expired bearer JWT, one living over an hour, and none', async () => {
    const [seeded] = apple.seed({ transactions: [{ productId: 'p', price: 1_000 }] });
    const now = Math.floor(Date.now() / 1000);
    const sign = (iat: number, exp: number) =>
      new SignJWT({ bid: apple.bundleId })
        .setProtectedHeader({ alg: 'ES256', kid: apple.keyId, typ: 'JWT' })
        .setIssuer(apple.issuerId)
        .setAudience('appstoreconnect-v1')
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .sign(createPrivateKey(apple.privateKey));
    const call = (authorization?: string) =>
      fetch(`${apple.url}/inApps/v1/transactions/${seeded!.transactionId}`, {
        headers: authorization ? { authorization } : {},
      }).then((r) => r.status);
    expect(await call(`Bearer ${await sign(now - 60, now + 300)}`)).toBe(200);
    expect(await call(`Bearer ${await sign(now - 7200, now - 3600)}`)).toBe(401);
    expect(await call(`Bearer ${await sign(now, now + 7200)}`)).toBe(401);
    expect(await call()).toBe(401);
  });

  it('answers Apple’s error body for an injected fault', async () => {
    apple.admin.injectFault({ path: '/inApps/', status: 500 });
    const error = await apiError(client().getTransactionInfo('1'));
    expect([error.httpStatusCode, error.apiError]).toEqual([500, 5000000]);
  });

  it('takes purchases through POST /_admin/seed, refusing malformed ones', async () => {
    const seeded = await fetch(`${apple.url}/_admin/seed`, {
      method: 'POST',
      body: JSON.stringify({
        transactions: [{ transactionId: '7000000000000001', productId: 'p', price: 5_000 }],
      }),
    });
    expect(seeded.status).toBe(201);
    expect(apple.transaction('7000000000000001')).toMatchObject({ productId: 'p', price: 5_000 });
    const bad = await fetch(`${apple.url}/_admin/seed`, {
      method: 'POST',
      body: JSON.stringify({ transactions: [{ transactionId: 'abc', productId: 'p', price: 1 }] }),
    });
    expect(bad.status).toBe(400);
    const taken = await fetch(`${apple.url}/_admin/seed`, {
      method: 'POST',
      body: JSON.stringify({
        transactions: [{ transactionId: '7000000000000001', productId: 'p', price: 1 }],
      }),
    });
    expect(taken.status).toBe(409);
  });
});

describe('App Store Server Notifications V2', () => {
  it('POSTs { signedPayload } of a REFUND the library verifies, the transaction revoked', async () => {
    const [bought] = apple.seed({ transactions: [{ productId: 'mobile.ios.usd149', price: 149_000 }] });
    received.length = 0;
    const { delivery } = await apple.refund(bought!.transactionId, { notificationUUID: 'uuid-refund-1' });
    expect(delivery?.status).toBe(200);
    expect(received).toHaveLength(1);
    expect(received[0]!.headers['content-type']).toBe('application/json');
    const { signedPayload } = JSON.parse(received[0]!.body) as { signedPayload: string };
    const notification = await verifier().verifyAndDecodeNotification(signedPayload);
    expect(notification).toMatchObject({
      notificationType: 'REFUND',
      notificationUUID: 'uuid-refund-1',
      version: '2.0',
      data: { bundleId: apple.bundleId, environment: 'Sandbox' },
    });
    const transaction = await verifier().verifyAndDecodeTransaction(
      notification.data!.signedTransactionInfo!,
    );
    expect(transaction).toMatchObject({
      transactionId: bought!.transactionId,
      originalTransactionId: bought!.transactionId,
      price: 149_000,
      currency: 'USD',
      revocationDate: expect.any(Number),
    });
    // The API answers the refund too.
    const info = await client().getTransactionInfo(bought!.transactionId);
    expect(
      (await verifier().verifyAndDecodeTransaction(info.signedTransactionInfo!)).revocationDate,
    ).toBeDefined();
  });

  it('sends other notification types too, each with its own UUID', async () => {
    const [bought] = apple.seed({ transactions: [{ productId: 'p', price: 1_000 }] });
    const first = await apple.notify(
      { notificationType: 'CONSUMPTION_REQUEST', transactionId: bought!.transactionId },
      { deliver: false },
    );
    const second = await apple.notify(
      { notificationType: 'CONSUMPTION_REQUEST', transactionId: bought!.transactionId },
      { deliver: false },
    );
    const [a, b] = await Promise.all(
      [first, second].map((n) => verifier().verifyAndDecodeNotification(n.signedPayload)),
    );
    expect(a!.notificationType).toBe('CONSUMPTION_REQUEST');
    expect(a!.notificationUUID).not.toBe(b!.notificationUUID);
  });

  it('signs with a chain the library rejects when given another root, or when it is another CA’s', async () => {
    const [bought] = apple.seed({ transactions: [{ productId: 'p', price: 1_000 }] });
    const { signedPayload } = await apple.notify(
      { notificationType: 'REFUND', transactionId: bought!.transactionId },
      { deliver: false },
    );
    const forger = untrustedAppStoreSigner();
    const status = (promise: Promise<unknown>) =>
      promise.then(
        () => undefined,
        (e: unknown) => (e instanceof VerificationException ? e.status : e),
      );
    expect(await status(verifier([forger.root]).verifyAndDecodeNotification(signedPayload))).toBe(
      VerificationStatus.VERIFICATION_FAILURE,
    );
    const payload = JSON.parse(Buffer.from(signedPayload.split('.')[1]!, 'base64url').toString()) as object;
    expect(await status(verifier().verifyAndDecodeNotification(await forger.sign(payload)))).toBe(
      VerificationStatus.VERIFICATION_FAILURE,
    );
    expect(
      await status(
        verifier([apple.rootCertificate], 'com.example.other').verifyAndDecodeNotification(signedPayload),
      ),
    ).toBe(VerificationStatus.INVALID_APP_IDENTIFIER);
  });
});
