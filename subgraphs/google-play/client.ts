import { androidpublisher, type androidpublisher_v3 } from '@googleapis/androidpublisher';
import { JWT } from 'google-auth-library';
import { DomainError, ErrorCode } from '@commerce-coordinator/plugin-sdk';
import {
  checkMobilePurchaseInput,
  paymentRequired,
  withStoreAttempts,
  type MobilePurchase,
  type MobilePurchaseInput,
} from '../../schema/contracts/mobile-purchase.js';
import { googlePlayApiConfig, type GooglePlayApiConfig } from './config.js';

/**
 * The google-play Plugin's one client of Google, through the official `@googleapis/androidpublisher`
 * with `google-auth-library`'s service-account JWT credentials: `purchases.products.get` for one-time
 * products. What Google answers is mapped here to what the Action promises.
 */

export const ANDROID_PRODUCT_ID = /^mobile\.android\.usd\d{1,7}$/;
/** Play purchase tokens are opaque: URL-safe text, never blanks or slashes. */
const PURCHASE_TOKEN = /^[A-Za-z0-9._\-:]+$/;
const SCOPE = 'https://www.googleapis.com/auth/androidpublisher';
/** Where google-auth-library sends every service-account JWT grant, whatever the key file says. */
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

const STORE = 'Google Play';

/** One API client per configuration: built at first use, rebuilt when the environment changed. */
let cachedClient:
  { key: string; api: androidpublisher_v3.Androidpublisher; auth: JWT; tokenUrl: string } | undefined;

function client(config: GooglePlayApiConfig) {
  const key = JSON.stringify([config.apiBase.href, config.serviceAccount]);
  if (cachedClient?.key === key) return cachedClient;
  const auth = new JWT({
    email: config.serviceAccount.client_email,
    key: config.serviceAccount.private_key,
    keyId: config.serviceAccount.private_key_id,
    scopes: [SCOPE],
  });
  // The library sends the grant to Google's token URL; a key file naming another token_uri (the
  // stand-in's) is honoured by sending it there instead.
  const tokenUrl = config.serviceAccount.token_uri ?? GOOGLE_TOKEN_URL;
  if (tokenUrl !== GOOGLE_TOKEN_URL)
    auth.transporter.interceptors.request.add({
      resolved: async (options) => {
        if (String(options.url) === GOOGLE_TOKEN_URL) options.url = new URL(tokenUrl);
        return options;
      },
    });
  const api = androidpublisher({ version: 'v3', auth, rootUrl: config.apiBase.href });
  cachedClient = { key, api, auth, tokenUrl };
  return cachedClient;
}

/** A gaxios error's parts, without importing gaxios (the libraries' own copy throws it). */
interface HttpFailure {
  status?: number;
  url: string;
  reason?: string;
  message: string;
}

function httpFailureOf(error: unknown): HttpFailure | undefined {
  if (!(error instanceof Error) || !('config' in error)) return undefined;
  const { config, response } = error as Error & {
    config?: { url?: unknown };
    response?: { status?: number; data?: { error?: { errors?: Array<{ reason?: string }> } } };
  };
  return {
    status: response?.status,
    url: String(config?.url ?? ''),
    reason: response?.data?.error?.errors?.[0]?.reason,
    message: error.message,
  };
}

/**
 * Google's answer as the Action's caller should see it: about the purchase a DomainError; a refusal of
 * our credentials (by the token endpoint or the API) or an unknown package a SERVICE_UNAVAILABLE at once;
 * anything else (5xx, quota, timeout, connection) unchanged, to be tried again.
 */
function asDomainError(error: unknown, tokenUrl: string): unknown {
  const failure = httpFailureOf(error);
  if (!failure?.status) return error;
  const details = { store: STORE, storeStatus: failure.status, storeReason: failure.reason };
  const credentials = () =>
    new DomainError(
      ErrorCode.SERVICE_UNAVAILABLE,
      `${STORE} refused the Coordinator's service account (${failure.status}): check GOOGLE_PLAY_SERVICE_ACCOUNT_KEY and its access in the Play Console`,
      details,
    );
  if (failure.url.startsWith(tokenUrl))
    return failure.status >= 500 || failure.status === 429 ? error : credentials();
  if (failure.status === 401 || failure.status === 403) return credentials();
  if (failure.status === 404 && failure.reason === 'applicationNotFound')
    return new DomainError(
      ErrorCode.SERVICE_UNAVAILABLE,
      `${STORE} knows no app by GOOGLE_PLAY_PACKAGE_NAME`,
      details,
    );
  if (failure.status === 400)
    return new DomainError(
      ErrorCode.BAD_USER_INPUT,
      `${STORE}: the purchase token is not one of this product's purchases`,
      {
        ...details,
        field: 'purchaseToken',
      },
    );
  if (failure.status === 404 || failure.status === 410)
    return paymentRequired(STORE, 'Google Play holds no purchase for this token', details);
  return error;
}

const PURCHASE_STATES: Record<number, string> = {
  1: 'the purchase was cancelled',
  2: 'the purchase is pending',
};

/**
 * Verifies that Google Play holds a purchased (not cancelled, not pending) one-time purchase of
 * `productId` under the purchase token the app sent.
 */
export async function verifyGooglePlayPurchase(input: MobilePurchaseInput): Promise<MobilePurchase> {
  const { purchaseToken, productId } = checkMobilePurchaseInput(input, ANDROID_PRODUCT_ID, PURCHASE_TOKEN);
  const config = googlePlayApiConfig();
  const { api, tokenUrl } = client(config);
  const purchase = await withStoreAttempts(
    STORE,
    async () => {
      try {
        const response = await api.purchases.products.get(
          { packageName: config.packageName, productId, token: purchaseToken },
          // One attempt per call: withStoreAttempts retries, as for the App Store.
          { retry: false, timeout: config.timeoutMs },
        );
        return response.data;
      } catch (error) {
        throw asDomainError(error, tokenUrl);
      }
    },
    { waitMs: config.retryWaitMs },
  );
  if (purchase.productId && purchase.productId !== productId)
    throw new DomainError(
      ErrorCode.BAD_USER_INPUT,
      `${STORE}: the purchase is of ${purchase.productId}, not ${productId}`,
      {
        store: STORE,
        field: 'productId',
        purchasedProductId: purchase.productId,
      },
    );
  const state = purchase.purchaseState ?? 0;
  if (state !== 0)
    throw paymentRequired(STORE, PURCHASE_STATES[state] ?? `purchase state ${state}`, {
      purchaseState: state,
    });
  if (purchase.purchaseType === 0 && !config.acceptTestPurchases)
    throw paymentRequired(STORE, 'a license-testing purchase, which costs nothing, is not accepted here', {
      purchaseType: 0,
    });
  if (!purchase.orderId || !purchase.purchaseTimeMillis)
    throw paymentRequired(STORE, 'the purchase has no order id or purchase time');
  return {
    paymentMethod: 'android_iap',
    transactionId: purchase.orderId,
    originalTransactionId: purchase.orderId,
    productId,
    purchasedAt: new Date(Number(purchase.purchaseTimeMillis)).toISOString(),
    regionCode: purchase.regionCode ?? null,
    storefront: null,
  };
}

/** /readyz: a token from the token endpoint, which proves the service account is accepted. */
export async function checkGooglePlay(): Promise<void> {
  const config = googlePlayApiConfig();
  await client(config).auth.getAccessToken();
}
