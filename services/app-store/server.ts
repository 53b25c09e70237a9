import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CompactSign, decodeProtectedHeader, jwtVerify } from 'jose';
import { z } from 'zod';
import { createAdmin, readRequestBody, type Admin } from '../admin.js';
import { issueCertificate, pem, type DistinguishedName } from '../x509.js';

/**
 * A stand-in for the part of Apple's App Store the app-store Plugin uses, in Apple's wire format so the
 * official `@apple/app-store-server-library` talks to it unchanged:
 *
 * - the App Store Server API `GET /inApps/v1/transactions/{transactionId}` (Get Transaction Info),
 *   answering `{ signedTransactionInfo }`, a JWS; callers authenticate with the bearer JWT the library
 *   signs (ES256 with the In-App Purchase key, `kid` the key id, `iss` the issuer id, `aud`
 *   `appstoreconnect-v1`, `bid` the bundle id, at most an hour long), else 401 as Apple answers;
 *   Apple's error bodies `{ errorCode, errorMessage }` (4000006 invalid transaction id, 4040010 not
 *   found, 4290000 rate limit, 5000000 / 5000001 internal);
 * - App Store Server Notifications V2: `{ signedPayload }` POSTed to the configured URL (REFUND and any
 *   other type).
 *
 * Every JWS carries an x5c chain (leaf, intermediate, root) rooted at a CA the stand-in generates at
 * start, with Apple's marker extensions (1.2.840.113635.100.6.11.1 on the leaf, …6.2.1 on the
 * intermediate), so the library's SignedDataVerifier accepts it when given that root (`rootCertificate`)
 * in place of Apple Root CA - G3. It has no OCSP responder: verify with online checks off.
 *
 * A transaction's id is what the mobile app sends as its purchase token (StoreKit's Transaction.id).
 */

export interface AppStoreStandInOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** @default 'org.edx.mobile' */
  bundleId?: string;
  /** @default 'Sandbox' */
  environment?: 'Sandbox' | 'Production';
  /** Where notifications are POSTed; `setNotificationUrl` changes it. */
  notificationUrl?: string;
}

/** A purchase as the App Store holds it: seed one as if a buyer had paid in the app. */
export interface AppStoreTransactionSeed {
  /** Numeric, as Apple's are. @default a new one */
  transactionId?: string;
  /** @default transactionId (a consumable's original transaction is itself) */
  originalTransactionId?: string;
  productId: string;
  /** In milli-units of the currency (Apple's `price`): 49_990 for 49.99. */
  price: number;
  /** @default 'USD' */
  currency?: string;
  /** Apple's storefront, ISO 3166-1 alpha-3. @default 'USA' */
  storefront?: string;
  /** ISO 8601. @default now */
  purchaseDate?: string;
  /** @default the stand-in's bundle id */
  bundleId?: string;
  /** @default 'Consumable' */
  type?: 'Consumable' | 'Non-Consumable' | 'Auto-Renewable Subscription' | 'Non-Renewing Subscription';
  /** ISO 8601: the purchase was refunded (revoked) then. */
  revocationDate?: string;
}

export const AppStoreSeedSchema = z
  .object({
    transactions: z
      .array(
        z
          .object({
            transactionId: z
              .string()
              .regex(/^\d{1,19}$/)
              .optional(),
            originalTransactionId: z
              .string()
              .regex(/^\d{1,19}$/)
              .optional(),
            productId: z.string().min(1).max(200),
            price: z.number().int().nonnegative(),
            currency: z.string().length(3).optional(),
            storefront: z.string().length(3).optional(),
            purchaseDate: z.iso.datetime().optional(),
            bundleId: z.string().min(1).optional(),
            type: z
              .enum([
                'Consumable',
                'Non-Consumable',
                'Auto-Renewable Subscription',
                'Non-Renewing Subscription',
              ])
              .optional(),
            revocationDate: z.iso.datetime().optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict() satisfies z.ZodType<{ transactions?: AppStoreTransactionSeed[] }>;

/** The decoded payload of a signedTransactionInfo (Apple's JWSTransactionDecodedPayload, the fields kept). */
export interface AppStoreTransaction {
  transactionId: string;
  originalTransactionId: string;
  bundleId: string;
  productId: string;
  purchaseDate: number;
  originalPurchaseDate: number;
  quantity: number;
  type: string;
  inAppOwnershipType: 'PURCHASED';
  signedDate: number;
  environment: string;
  transactionReason: 'PURCHASE';
  storefront: string;
  storefrontId: string;
  price: number;
  currency: string;
  appTransactionId: string;
  revocationDate?: number;
  revocationReason?: number;
}

export interface NotificationDelivery {
  status: number;
  body: string;
  /** The signedPayload sent, to send again. */
  signedPayload: string;
}

export interface AppStoreNotificationRequest {
  notificationType: string;
  subtype?: string;
  /** The transaction the notification is about. */
  transactionId: string;
  /** @default a new UUID */
  notificationUUID?: string;
}

export interface AppStoreStandIn {
  url: string;
  bundleId: string;
  environment: 'Sandbox' | 'Production';
  /** The In-App Purchase key callers sign their bearer JWTs with (PKCS #8 PEM), its id and issuer. */
  privateKey: string;
  keyId: string;
  issuerId: string;
  /** The root CA of every JWS the stand-in signs (DER), in place of Apple Root CA - G3. */
  rootCertificate: Buffer;
  admin: Admin;
  close(): Promise<void>;
  seed(data: { transactions?: AppStoreTransactionSeed[] }): AppStoreTransaction[];
  transaction(transactionId: string): AppStoreTransaction | undefined;
  /** Signs any payload as the App Store signs its JWS (x5c chain to `rootCertificate`). */
  sign(payload: object): Promise<string>;
  /** Refunds a purchase as Apple support does, then notifies REFUND (unless `deliver: false`). */
  refund(
    transactionId: string,
    options?: { deliver?: boolean; notificationUUID?: string },
  ): Promise<{ signedPayload: string; delivery?: NotificationDelivery }>;
  /** Builds, signs and (unless `deliver: false`) sends a notification about a transaction. */
  notify(
    request: AppStoreNotificationRequest,
    options?: { deliver?: boolean },
  ): Promise<{ signedPayload: string; delivery?: NotificationDelivery }>;
  /** POSTs `{ signedPayload }` to the notification URL, as Apple (re)sends one. */
  deliver(signedPayload: string): Promise<NotificationDelivery>;
  setNotificationUrl(url: string | undefined): void;
}

/** Apple's error answers, by status: https://developer.apple.com/documentation/appstoreserverapi/error_codes */
export const APPLE_ERRORS = {
  invalidTransactionId: { status: 400, errorCode: 4000006, errorMessage: 'Invalid transaction id.' },
  transactionNotFound: { status: 404, errorCode: 4040010, errorMessage: 'Transaction id not found.' },
  rateLimited: { status: 429, errorCode: 4290000, errorMessage: 'Rate limit exceeded.' },
  internal: { status: 500, errorCode: 5000000, errorMessage: 'An unknown error occurred.' },
  internalRetryable: {
    status: 503,
    errorCode: 5000001,
    errorMessage: 'An unknown error occurred. Please try again.',
  },
} as const;

function errorBody(status: number): { errorCode: number; errorMessage: string } | undefined {
  const known = Object.values(APPLE_ERRORS).find((e) => e.status === status);
  if (known) return { errorCode: known.errorCode, errorMessage: known.errorMessage };
  if (status >= 500)
    return { errorCode: APPLE_ERRORS.internal.errorCode, errorMessage: APPLE_ERRORS.internal.errorMessage };
  return undefined;
}

/** A CA chain as Apple's: root → "Apple Worldwide Developer Relations" intermediate → signing leaf. */
interface SigningChain {
  root: Buffer;
  x5c: string[];
  leafKey: KeyObject;
}

function signingChain(): SigningChain {
  const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rootKeys = ec();
  const intermediateKeys = ec();
  const leafKeys = ec();
  const rootName: DistinguishedName = {
    commonName: 'Stand-in Apple Root CA - G3',
    organizationalUnit: 'Apple Certification Authority',
    organization: 'Apple Inc.',
    country: 'US',
  };
  const intermediateName: DistinguishedName = {
    commonName: 'Stand-in Apple Worldwide Developer Relations Certification Authority',
    organizationalUnit: 'G6',
    organization: 'Apple Inc.',
    country: 'US',
  };
  const root = issueCertificate({
    subject: rootName,
    issuer: rootName,
    publicKey: rootKeys.publicKey,
    issuerKey: rootKeys.privateKey,
    ca: true,
  });
  const intermediate = issueCertificate({
    subject: intermediateName,
    issuer: rootName,
    publicKey: intermediateKeys.publicKey,
    issuerKey: rootKeys.privateKey,
    ca: true,
    markers: ['1.2.840.113635.100.6.2.1'],
  });
  const leaf = issueCertificate({
    subject: {
      commonName: 'Prod ECC Mac App Store and iTunes Store Receipt Signing',
      organizationalUnit: 'Apple Worldwide Developer Relations',
      organization: 'Apple Inc.',
      country: 'US',
    },
    issuer: intermediateName,
    publicKey: leafKeys.publicKey,
    issuerKey: intermediateKeys.privateKey,
    ca: false,
    markers: ['1.2.840.113635.100.6.11.1'],
  });
  return {
    root,
    x5c: [leaf, intermediate, root].map((der) => der.toString('base64')),
    leafKey: leafKeys.privateKey,
  };
}

/** Signs `payload` as an App Store JWS: ES256, x5c in the protected header. */
export async function signAppStoreJws(chain: Pick<SigningChain, 'x5c' | 'leafKey'>, payload: object) {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'ES256', x5c: chain.x5c })
    .sign(chain.leafKey);
}

/** A signing chain of its own, rooted at a CA nobody trusts: what a forger of notifications has. */
export function untrustedAppStoreSigner(): { root: Buffer; sign(payload: object): Promise<string> } {
  const chain = signingChain();
  return { root: chain.root, sign: (payload) => signAppStoreJws(chain, payload) };
}

let lastTransactionNumber = 2_000_000_000_000_000;
const nextTransactionId = () => String(++lastTransactionNumber);

export async function startAppStore(options: AppStoreStandInOptions = {}): Promise<AppStoreStandIn> {
  const bundleId = options.bundleId ?? 'org.edx.mobile';
  const environment = options.environment ?? 'Sandbox';
  const keyId = 'STANDIN01';
  const issuerId = randomUUID();
  const apiKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const chain = signingChain();
  const transactions = new Map<string, AppStoreTransaction>();
  let notificationUrl = options.notificationUrl;

  function createTransaction(seed: AppStoreTransactionSeed): AppStoreTransaction {
    const transactionId = seed.transactionId ?? nextTransactionId();
    if (transactions.has(transactionId)) throw new Error(`transaction ${transactionId} exists`);
    const purchaseDate = seed.purchaseDate ? Date.parse(seed.purchaseDate) : Date.now();
    const transaction: AppStoreTransaction = {
      transactionId,
      originalTransactionId: seed.originalTransactionId ?? transactionId,
      bundleId: seed.bundleId ?? bundleId,
      productId: seed.productId,
      purchaseDate,
      originalPurchaseDate: purchaseDate,
      quantity: 1,
      type: seed.type ?? 'Consumable',
      inAppOwnershipType: 'PURCHASED',
      signedDate: Date.now(),
      environment,
      transactionReason: 'PURCHASE',
      storefront: seed.storefront ?? 'USA',
      storefrontId: '143441',
      price: seed.price,
      currency: seed.currency ?? 'USD',
      appTransactionId: nextTransactionId(),
      ...(seed.revocationDate
        ? { revocationDate: Date.parse(seed.revocationDate), revocationReason: 0 }
        : {}),
    };
    transactions.set(transactionId, transaction);
    return transaction;
  }

  const signedTransaction = (transaction: AppStoreTransaction) =>
    signAppStoreJws(chain, { ...transaction, signedDate: Date.now() });

  const admin = createAdmin({
    seed: AppStoreSeedSchema,
    applySeed: (seed) => (seed.transactions ?? []).map(createTransaction),
    errorAnswer: (status) => ({ body: errorBody(status) ?? {} }),
  });

  /** The bearer JWT the library signs, checked as Apple checks it; a reason when it fails. */
  async function unauthenticated(authorization: string | undefined): Promise<string | undefined> {
    const token = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1];
    if (!token) return 'no bearer token';
    try {
      if (decodeProtectedHeader(token).kid !== keyId) return 'unknown key id';
      const { payload } = await jwtVerify(token, apiKeys.publicKey, {
        algorithms: ['ES256'],
        issuer: issuerId,
        audience: 'appstoreconnect-v1',
        requiredClaims: ['iat', 'exp'],
      });
      if (payload.bid !== bundleId) return 'wrong bundle id';
      if (payload.exp! - payload.iat! > 3600) return 'token lives longer than an hour';
      return undefined;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }

  const server = createServer(
    admin.listener(async (req, res) => {
      const path = new URL(req.url ?? '/', 'http://app-store.local').pathname;
      await readRequestBody(req);
      const answer = (status: number, body?: unknown) => {
        if (body === undefined) return void res.writeHead(status).end();
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      };
      const apiError = (error: { status: number; errorCode: number; errorMessage: string }) =>
        answer(error.status, { errorCode: error.errorCode, errorMessage: error.errorMessage });

      const match = /^\/inApps\/v1\/transactions\/([^/]*)$/.exec(path);
      if (!match || req.method !== 'GET') return answer(404, { errorMessage: 'Not Found' });
      // Apple answers 401 with no body to a missing, expired or wrongly signed token.
      if (await unauthenticated(req.headers.authorization)) return answer(401);
      const transactionId = decodeURIComponent(match[1]!);
      if (!/^\d{1,19}$/.test(transactionId)) return apiError(APPLE_ERRORS.invalidTransactionId);
      const transaction = transactions.get(transactionId);
      if (!transaction || transaction.bundleId !== bundleId)
        return apiError(APPLE_ERRORS.transactionNotFound);
      answer(200, { signedTransactionInfo: await signedTransaction(transaction) });
    }),
  );

  async function deliver(signedPayload: string): Promise<NotificationDelivery> {
    if (!notificationUrl) throw new Error('No notification URL is configured on the App Store stand-in');
    const response = await fetch(notificationUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'App Store Server Notifications' },
      body: JSON.stringify({ signedPayload }),
    });
    return { status: response.status, body: await response.text(), signedPayload };
  }

  async function notify(request: AppStoreNotificationRequest, { deliver: send = true } = {}) {
    const transaction = transactions.get(request.transactionId);
    if (!transaction) throw new Error(`No such transaction: '${request.transactionId}'`);
    const signedPayload = await signAppStoreJws(chain, {
      notificationType: request.notificationType,
      ...(request.subtype ? { subtype: request.subtype } : {}),
      notificationUUID: request.notificationUUID ?? randomUUID(),
      data: {
        appAppleId: 1_234_567_890,
        bundleId,
        bundleVersion: '1',
        environment,
        signedTransactionInfo: await signedTransaction(transaction),
      },
      version: '2.0',
      signedDate: Date.now(),
    });
    return { signedPayload, ...(send ? { delivery: await deliver(signedPayload) } : {}) };
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    bundleId,
    environment,
    privateKey: apiKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    keyId,
    issuerId,
    rootCertificate: chain.root,
    admin,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
    seed: (data) => (data.transactions ?? []).map(createTransaction),
    transaction: (id) => {
      const transaction = transactions.get(id);
      return transaction && { ...transaction };
    },
    sign: (payload) => signAppStoreJws(chain, payload),
    async refund(transactionId, options = {}) {
      const transaction = transactions.get(transactionId);
      if (!transaction) throw new Error(`No such transaction: '${transactionId}'`);
      transaction.revocationDate = Date.now();
      transaction.revocationReason = 0;
      return notify(
        { notificationType: 'REFUND', transactionId, notificationUUID: options.notificationUUID },
        { deliver: options.deliver },
      );
    },
    notify,
    deliver,
    setNotificationUrl: (next) => void (notificationUrl = next),
  };
}

/** The root certificate as PEM, the form APP_STORE_ROOT_CERTIFICATES also takes. */
export const rootCertificatePem = (der: Buffer) => pem(der);
