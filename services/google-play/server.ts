import { generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, importSPKI, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import { createAdmin, readRequestBody, type Admin } from '../admin.js';
import { issueCertificate, pem } from '../x509.js';

/**
 * A stand-in for the part of Google the google-play Plugin uses, in Google's wire format so the
 * official `@googleapis/androidpublisher` and `google-auth-library` talk to it unchanged:
 *
 * - the OAuth 2.0 token endpoint (`POST /token`) with the service-account JWT grant
 *   (`urn:ietf:params:oauth:grant-type:jwt-bearer`): the assertion is RS256-signed by the service
 *   account's key, `iss` its email, `aud` https://oauth2.googleapis.com/token, at most an hour long, with
 *   the androidpublisher scope; answers `{ access_token, expires_in, token_type }` or Google's
 *   `{ error: 'invalid_grant', error_description }`;
 * - the Android Publisher API `purchases.products.get`
 *   (`GET /androidpublisher/v3/applications/{packageName}/purchases/products/{productId}/tokens/{token}`)
 *   with Google's error bodies (`{ error: { code, message, status, errors } }`): 401 without a valid
 *   access token, 404 for an unknown package, 400 "Invalid Value" for a token that is not one of the
 *   product's purchases, 410 for a purchase token Google no longer holds;
 * - real-time developer notifications as Pub/Sub pushes them: a POST of
 *   `{ message: { data, messageId, publishTime }, subscription }` with `Authorization: Bearer <OIDC
 *   token>` signed RS256 by a key the stand-in serves as Google does, as certificates at
 *   `/oauth2/v1/certs` and as a JWKS at `/oauth2/v3/certs`.
 */

export const GOOGLE_TOKEN_AUDIENCE = 'https://oauth2.googleapis.com/token';
export const ANDROID_PUBLISHER_SCOPE = 'https://www.googleapis.com/auth/androidpublisher';

export interface GooglePlayStandInOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** @default 'org.edx.mobile' */
  packageName?: string;
  /** Where Pub/Sub pushes real-time developer notifications, and the OIDC token's audience. */
  push?: GooglePlayPushEndpoint;
}

export interface GooglePlayPushEndpoint {
  url: string;
  /** The OIDC token's `aud` (the push subscription's configured audience). */
  audience: string;
}

/** A one-time product purchase as Google Play holds it. */
export interface GooglePlayPurchaseSeed {
  /** What the app receives from Play Billing and sends us. @default a new one */
  purchaseToken?: string;
  productId: string;
  /** Google's order id, GPA.… @default a new one */
  orderId?: string;
  /** 0 purchased, 1 canceled, 2 pending. @default 0 */
  purchaseState?: 0 | 1 | 2;
  /** 0 yet to be consumed, 1 consumed. @default 0 */
  consumptionState?: 0 | 1;
  /** ISO 3166-1 alpha-2. @default 'US' */
  regionCode?: string;
  /** ISO 8601. @default now */
  purchaseTime?: string;
  /** 0 test (license testing), 1 promo, 2 rewarded; absent for a real purchase. */
  purchaseType?: 0 | 1 | 2;
  /** Google no longer holds the token (expired): 410. */
  gone?: boolean;
}

export const GooglePlaySeedSchema = z
  .object({
    purchases: z
      .array(
        z
          .object({
            purchaseToken: z.string().min(1).max(1000).optional(),
            productId: z.string().min(1).max(200),
            orderId: z.string().min(1).optional(),
            purchaseState: z.union([z.literal(0), z.literal(1), z.literal(2)]).optional(),
            consumptionState: z.union([z.literal(0), z.literal(1)]).optional(),
            regionCode: z.string().length(2).optional(),
            purchaseTime: z.iso.datetime().optional(),
            purchaseType: z.union([z.literal(0), z.literal(1), z.literal(2)]).optional(),
            gone: z.boolean().optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict() satisfies z.ZodType<{ purchases?: GooglePlayPurchaseSeed[] }>;

/** A ProductPurchase as purchases.products.get answers it. */
export interface ProductPurchase {
  kind: 'androidpublisher#productPurchase';
  purchaseTimeMillis: string;
  purchaseState: number;
  consumptionState: number;
  developerPayload: string;
  orderId: string;
  purchaseType?: number;
  acknowledgementState: number;
  productId: string;
  quantity: number;
  regionCode: string;
}

interface Purchase {
  token: string;
  purchase: ProductPurchase;
  gone: boolean;
}

export interface PushDelivery {
  status: number;
  body: string;
  /** What was pushed: to push the same message again (Pub/Sub redelivers at least once). */
  request: { authorization: string; body: string };
}

export interface VoidedPurchase {
  purchaseToken: string;
  orderId: string;
  /** 1 subscription, 2 one-time product. @default 2 */
  productType?: 1 | 2;
  /** 1 full refund, 2 quantity-based partial refund. @default 1 */
  refundType?: 1 | 2;
}

/** What an OIDC token of Pub/Sub's push carries; tests override any of it. */
export interface PushTokenClaims {
  iss?: string;
  aud?: string;
  email?: string;
  email_verified?: boolean;
  sub?: string;
  azp?: string;
  iat?: number;
  exp?: number;
}

export interface GooglePlayStandIn {
  url: string;
  packageName: string;
  /** The service account's key file, as Google Cloud gives it (JSON). */
  serviceAccountKey: string;
  serviceAccountEmail: string;
  /** Pub/Sub's push service account: the `email` of every push's OIDC token. */
  pushServiceAccountEmail: string;
  /** The full name of the push subscription the notifications come through. */
  subscription: string;
  /** PEM certificates by key id (what https://www.googleapis.com/oauth2/v1/certs serves). */
  certsUrl: string;
  /** A JWKS (what https://www.googleapis.com/oauth2/v3/certs serves). */
  jwksUrl: string;
  admin: Admin;
  close(): Promise<void>;
  seed(data: { purchases?: GooglePlayPurchaseSeed[] }): Array<ProductPurchase & { purchaseToken: string }>;
  purchase(purchaseToken: string): ProductPurchase | undefined;
  /** An OIDC token as Pub/Sub signs it for a push, with any claim overridden. */
  pushToken(claims?: PushTokenClaims): Promise<string>;
  /** The push body of a real-time developer notification. */
  pushBody(notification: Record<string, unknown>, options?: { messageId?: string }): string;
  /** Voids (refunds) a purchase, then pushes its voidedPurchaseNotification (unless `deliver: false`). */
  voidPurchase(
    voided: VoidedPurchase,
    options?: { deliver?: boolean; messageId?: string },
  ): Promise<{ body: string; delivery?: PushDelivery }>;
  /** Pushes a body with a fresh OIDC token (or the one given). */
  push(body: string, authorization?: string): Promise<PushDelivery>;
  setPush(push: GooglePlayPushEndpoint | undefined): void;
}

const googleError = (code: number, message: string, status: string, reason: string) => ({
  error: { code, message, errors: [{ message, domain: 'global', reason }], status },
});

const ERRORS: Record<number, ReturnType<typeof googleError>> = {
  400: googleError(400, 'Invalid Value', 'INVALID_ARGUMENT', 'invalid'),
  401: googleError(
    401,
    'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
    'UNAUTHENTICATED',
    'required',
  ),
  404: googleError(
    404,
    'No application was found for the given package name.',
    'NOT_FOUND',
    'applicationNotFound',
  ),
  410: googleError(410, 'The purchase token is no longer valid.', 'GONE', 'purchaseTokenNoLongerValid'),
  429: googleError(429, 'Quota exceeded.', 'RESOURCE_EXHAUSTED', 'rateLimitExceeded'),
  500: googleError(500, 'Internal error encountered.', 'INTERNAL', 'backendError'),
  503: googleError(503, 'The service is currently unavailable.', 'UNAVAILABLE', 'backendError'),
};

const errorAnswer = (status: number) =>
  ERRORS[status] ??
  googleError(status, `Error ${status}`, status >= 500 ? 'INTERNAL' : 'FAILED_PRECONDITION', 'failed');

let lastOrder = 1000;
const digits = (n: number) => Array.from(randomBytes(n), (b) => String(b % 10)).join('');
/** Google's order ids: GPA.dddd-dddd-dddd-ddddd. */
const nextOrderId = () => `GPA.${String(3000 + (++lastOrder % 1000))}-${digits(4)}-${digits(4)}-${digits(5)}`;
/** Play purchase tokens are long opaque strings. */
const nextPurchaseToken = () =>
  `${randomBytes(12).toString('base64url')}.AO-J1O${randomBytes(48).toString('base64url')}`;

export async function startGooglePlay(options: GooglePlayStandInOptions = {}): Promise<GooglePlayStandIn> {
  const packageName = options.packageName ?? 'org.edx.mobile';
  let push = options.push;
  const serviceAccount = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const serviceAccountEmail = 'commerce-coordinator@standin-project.iam.gserviceaccount.com';
  const pushServiceAccountEmail = 'pubsub-push@standin-project.iam.gserviceaccount.com';
  const subscription = 'projects/standin-project/subscriptions/play-refunds-push';
  const oidc = oidcSigner();
  const accessTokens = new Map<string, { expiresAt: number; scopes: string[] }>();
  const purchases = new Map<string, Purchase>();
  let url = '';

  function createPurchase(seed: GooglePlayPurchaseSeed) {
    const token = seed.purchaseToken ?? nextPurchaseToken();
    if (purchases.has(token)) throw new Error('purchase token exists');
    const purchase: ProductPurchase = {
      kind: 'androidpublisher#productPurchase',
      purchaseTimeMillis: String(seed.purchaseTime ? Date.parse(seed.purchaseTime) : Date.now()),
      purchaseState: seed.purchaseState ?? 0,
      consumptionState: seed.consumptionState ?? 0,
      developerPayload: '',
      orderId: seed.orderId ?? nextOrderId(),
      ...(seed.purchaseType === undefined ? {} : { purchaseType: seed.purchaseType }),
      acknowledgementState: 1,
      productId: seed.productId,
      quantity: 1,
      regionCode: seed.regionCode ?? 'US',
    };
    purchases.set(token, { token, purchase, gone: seed.gone ?? false });
    return { ...purchase, purchaseToken: token };
  }

  const admin = createAdmin({
    seed: GooglePlaySeedSchema,
    applySeed: (seed) => (seed.purchases ?? []).map(createPurchase),
    errorAnswer: (status) => ({ body: errorAnswer(status) }),
  });

  const serviceAccountPublic = await importSPKI(
    serviceAccount.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    'RS256',
  );

  /** The JWT grant, checked as Google's token endpoint checks it. */
  async function grant(form: URLSearchParams): Promise<{ status: number; body: unknown }> {
    const invalid = (error: string, description: string) => ({
      status: 400,
      body: { error, error_description: description },
    });
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer')
      return invalid('unsupported_grant_type', 'Invalid grant_type: ' + (form.get('grant_type') ?? ''));
    const assertion = form.get('assertion') ?? '';
    try {
      const { payload } = await jwtVerify(assertion, serviceAccountPublic, {
        algorithms: ['RS256'],
        issuer: serviceAccountEmail,
        audience: GOOGLE_TOKEN_AUDIENCE,
        requiredClaims: ['iat', 'exp'],
      });
      if (payload.exp! - payload.iat! > 3600)
        return invalid(
          'invalid_grant',
          'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.',
        );
      const scopes = String(payload.scope ?? '')
        .split(' ')
        .filter(Boolean);
      if (!scopes.length)
        return invalid('invalid_scope', 'Invalid OAuth scope or ID token audience provided.');
      const token = `ya29.${randomBytes(32).toString('base64url')}`;
      accessTokens.set(token, { expiresAt: Date.now() + 3599_000, scopes });
      return { status: 200, body: { access_token: token, expires_in: 3599, token_type: 'Bearer' } };
    } catch {
      let issuer: unknown;
      try {
        issuer = decodeJwt(assertion).iss;
      } catch {
        return invalid('invalid_grant', 'Invalid JWT: the assertion is not a JWT.');
      }
      return issuer === serviceAccountEmail
        ? invalid('invalid_grant', 'Invalid JWT Signature.')
        : invalid('invalid_grant', 'Invalid grant: account not found');
    }
  }

  const authorized = (authorization: string | undefined) => {
    const token = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1];
    const issued = token ? accessTokens.get(token) : undefined;
    return !!issued && issued.expiresAt > Date.now() && issued.scopes.includes(ANDROID_PUBLISHER_SCOPE);
  };

  const server = createServer(
    admin.listener(async (req, res) => {
      const target = new URL(req.url ?? '/', 'http://google.local');
      const path = target.pathname;
      const raw = (await readRequestBody(req)).toString('utf8');
      const answer = (status: number, body: unknown) =>
        res
          .writeHead(status, { 'content-type': 'application/json; charset=UTF-8' })
          .end(JSON.stringify(body));

      if (req.method === 'POST' && path === '/token') {
        const { status, body } = await grant(new URLSearchParams(raw));
        return answer(status, body);
      }
      if (req.method === 'GET' && path === '/oauth2/v1/certs') {
        res.setHeader('cache-control', 'public, max-age=300');
        return answer(200, { [oidc.kid]: oidc.certificatePem });
      }
      if (req.method === 'GET' && path === '/oauth2/v3/certs') {
        res.setHeader('cache-control', 'public, max-age=300');
        return answer(200, { keys: [oidc.jwk] });
      }
      const match =
        /^\/androidpublisher\/v3\/applications\/([^/]+)\/purchases\/products\/([^/]+)\/tokens\/([^/]+)$/.exec(
          path,
        );
      if (!match || req.method !== 'GET')
        return answer(404, googleError(404, 'Not Found', 'NOT_FOUND', 'notFound'));
      if (!authorized(req.headers.authorization)) return answer(401, ERRORS[401]);
      const [app, productId, token] = match.slice(1).map(decodeURIComponent) as [string, string, string];
      if (app !== packageName) return answer(404, ERRORS[404]);
      const found = purchases.get(token);
      // A token is looked up among the product's purchases: another product's is as unknown as garbage.
      if (!found || found.purchase.productId !== productId) return answer(400, ERRORS[400]);
      if (found.gone) return answer(410, ERRORS[410]);
      answer(200, found.purchase);
    }),
  );

  async function pushToken(claims: PushTokenClaims = {}) {
    if (!push && !claims.aud)
      throw new Error('No push endpoint (audience) is configured on the Google Play stand-in');
    return oidc.sign({
      iss: 'https://accounts.google.com',
      aud: push?.audience,
      azp: '112233445566778899000',
      email: pushServiceAccountEmail,
      email_verified: true,
      sub: '112233445566778899000',
      ...claims,
    });
  }

  function pushBody(
    notification: Record<string, unknown>,
    { messageId = String(Date.now()) + randomBytes(2).readUInt16BE() } = {},
  ) {
    const publishTime = new Date().toISOString();
    return JSON.stringify({
      message: {
        data: Buffer.from(JSON.stringify(notification)).toString('base64'),
        messageId,
        message_id: messageId,
        publishTime,
        publish_time: publishTime,
      },
      subscription,
    });
  }

  async function deliver(body: string, authorization?: string): Promise<PushDelivery> {
    if (!push) throw new Error('No push endpoint is configured on the Google Play stand-in');
    const bearer = authorization ?? `Bearer ${await pushToken()}`;
    const response = await fetch(push.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: bearer,
        'user-agent': 'APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)',
      },
      body,
    });
    return { status: response.status, body: await response.text(), request: { authorization: bearer, body } };
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    packageName,
    serviceAccountKey: JSON.stringify({
      type: 'service_account',
      project_id: 'standin-project',
      private_key_id: randomUUID().replaceAll('-', ''),
      private_key: serviceAccount.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      client_email: serviceAccountEmail,
      client_id: '100000000000000000001',
      token_uri: `${url}/token`,
    }),
    serviceAccountEmail,
    pushServiceAccountEmail,
    subscription,
    certsUrl: `${url}/oauth2/v1/certs`,
    jwksUrl: `${url}/oauth2/v3/certs`,
    admin,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
    seed: (data) => (data.purchases ?? []).map(createPurchase),
    purchase: (token) => {
      const found = purchases.get(token);
      return found && { ...found.purchase };
    },
    pushToken,
    pushBody,
    async voidPurchase(voided, { deliver: send = true, messageId } = {}) {
      const found = purchases.get(voided.purchaseToken);
      if (found && (voided.refundType ?? 1) === 1) found.purchase.purchaseState = 1;
      const body = pushBody(
        {
          version: '1.0',
          packageName,
          eventTimeMillis: String(Date.now()),
          voidedPurchaseNotification: {
            purchaseToken: voided.purchaseToken,
            orderId: voided.orderId,
            productType: voided.productType ?? 2,
            refundType: voided.refundType ?? 1,
          },
        },
        messageId ? { messageId } : {},
      );
      return { body, ...(send ? { delivery: await deliver(body) } : {}) };
    },
    push: deliver,
    setPush: (next) => void (push = next),
  };
}

/** Google's OIDC signing key: RS256, served as a certificate and as a JWK under one key id. */
interface OidcSigner {
  kid: string;
  certificatePem: string;
  jwk: Record<string, unknown>;
  sign(claims: PushTokenClaims & Record<string, unknown>): Promise<string>;
}

export function oidcSigner(): OidcSigner {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomBytes(20).toString('hex');
  const name = { commonName: 'accounts.google.com' };
  const certificatePem = pem(
    issueCertificate({ subject: name, issuer: name, publicKey, issuerKey: privateKey, ca: false }),
  );
  return {
    kid,
    certificatePem,
    jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' },
    sign: (claims) => signOidc(privateKey, kid, claims),
  };
}

async function signOidc(key: KeyObject, kid: string, claims: PushTokenClaims & Record<string, unknown>) {
  const now = Math.floor(Date.now() / 1000);
  const { iat = now, exp = iat + 3600, ...rest } = claims;
  return new SignJWT({ ...rest, iat, exp }).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(key);
}
