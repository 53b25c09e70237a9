import {
  APIException,
  AppStoreServerAPIClient,
  Environment,
  SignedDataVerifier,
  VerificationException,
  type JWSTransactionDecodedPayload,
} from '@apple/app-store-server-library';
import { DomainError, ErrorCode } from '@commerce-coordinator/plugin-sdk';
import {
  checkMobilePurchaseInput,
  paymentRequired,
  withStoreAttempts,
  type MobilePurchase,
  type MobilePurchaseInput,
} from '../../schema/contracts/mobile-purchase.js';
import {
  appStoreApiConfig,
  appStoreVerificationConfig,
  type AppStoreApiConfig,
  type AppStoreVerificationConfig,
} from './config.js';

/**
 * The app-store Plugin's one client of Apple, through the official App Store Server Library: the App
 * Store Server API's Get Transaction Info, and the SignedDataVerifier that checks every JWS Apple signs
 * (the transactions it answers and the notifications it sends) against the configured root
 * certificates. The reference validated receipts with verifyReceipt, which Apple deprecated; the
 * transaction id the app sends is looked up instead.
 */

export const IOS_PRODUCT_ID = /^mobile\.ios\.usd\d{1,7}$/;
/** Apple's transaction ids are numeric (up to 19 digits: an unsigned 64-bit number). */
const TRANSACTION_ID = /^\d{1,19}$/;

const STORE = 'App Store';

/**
 * The library's client, talking to the configured base URL (Apple's production or sandbox API, or the
 * stand-in) with a timeout: the library derives the URL from the environment alone, and sets no
 * timeout of its own.
 */
class ConfiguredAppStoreClient extends AppStoreServerAPIClient {
  private readonly base: string;
  private readonly timeoutMs: number;
  constructor(config: AppStoreApiConfig) {
    super(
      config.privateKey,
      config.keyId,
      config.issuerId,
      config.bundleId,
      environmentOf(config.environment),
    );
    this.base = config.apiBase.href.replace(/\/+$/, '');
    this.timeoutMs = config.timeoutMs;
  }
  protected override async makeFetchRequest(
    path: string,
    query: URLSearchParams,
    method: string,
    body: string | Buffer | undefined,
    headers: Record<string, string>,
  ): ReturnType<AppStoreServerAPIClient['makeFetchRequest']> {
    const search = query.toString();
    const response = await fetch(`${this.base}${path}${search ? `?${search}` : ''}`, {
      method,
      body: typeof body === 'string' || body === undefined ? body : new Uint8Array(body),
      headers,
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    // The library reads ok, status and json() only, which a WHATWG Response has as node-fetch's does.
    return response as unknown as Awaited<ReturnType<AppStoreServerAPIClient['makeFetchRequest']>>;
  }
}

const environmentOf = (environment: 'Production' | 'Sandbox') =>
  environment === 'Production' ? Environment.PRODUCTION : Environment.SANDBOX;

/** One instance per configuration: built at first use, rebuilt when the environment changed. */
function cached<C, T>(build: (config: C) => T): (config: C) => T {
  let last: { key: string; value: T } | undefined;
  return (config) => {
    const key = JSON.stringify(config, (_, v: unknown) =>
      Buffer.isBuffer(v) ? v.toString('base64') : v instanceof URL ? v.href : v,
    );
    if (last?.key !== key) last = { key, value: build(config) };
    return last.value;
  };
}

const client = cached((config: AppStoreApiConfig) => new ConfiguredAppStoreClient(config));

export const signedDataVerifier = cached(
  (config: AppStoreVerificationConfig) =>
    new SignedDataVerifier(
      config.rootCertificates,
      config.onlineChecks,
      environmentOf(config.environment),
      config.bundleId,
      config.appAppleId,
    ),
);

/**
 * The App Store's answer as the Action's caller should see it: about the purchase (unknown, invalid
 * id) a DomainError; Apple refusing our credentials a SERVICE_UNAVAILABLE at once (retrying cannot
 * help); anything else (5xx, rate limit, timeout, connection) unchanged, to be tried again.
 */
function asDomainError(error: unknown, transactionId: string): unknown {
  if (!(error instanceof APIException)) return error;
  const details = { store: STORE, storeStatus: error.httpStatusCode, storeCode: error.apiError ?? undefined };
  if (error.httpStatusCode === 400)
    return new DomainError(
      ErrorCode.BAD_USER_INPUT,
      `${STORE}: ${error.errorMessage ?? 'invalid transaction id'}`,
      {
        ...details,
        field: 'purchaseToken',
      },
    );
  if (error.httpStatusCode === 404)
    return paymentRequired(STORE, `no purchase with transaction id ${transactionId}`, details);
  if (error.httpStatusCode === 401 || error.httpStatusCode === 403)
    return new DomainError(
      ErrorCode.SERVICE_UNAVAILABLE,
      `${STORE} refused the Coordinator's API key (${error.httpStatusCode}): check APP_STORE_PRIVATE_KEY, APP_STORE_KEY_ID, APP_STORE_ISSUER_ID and APP_STORE_BUNDLE_ID`,
      details,
    );
  return error;
}

async function transactionInfo(transactionId: string): Promise<JWSTransactionDecodedPayload> {
  const config = appStoreApiConfig();
  const verifier = signedDataVerifier(appStoreVerificationConfig());
  const signed = await withStoreAttempts(
    STORE,
    async () => {
      try {
        const response = await client(config).getTransactionInfo(transactionId);
        if (!response.signedTransactionInfo) throw new Error('the answer has no signedTransactionInfo');
        return response.signedTransactionInfo;
      } catch (error) {
        throw asDomainError(error, transactionId);
      }
    },
    { waitMs: config.retryWaitMs },
  );
  try {
    return await verifier.verifyAndDecodeTransaction(signed);
  } catch (error) {
    // Not Apple's signature, or another app's or environment's transaction: nothing to trust in it.
    const status = error instanceof VerificationException ? error.status : undefined;
    throw new DomainError(
      ErrorCode.SERVICE_UNAVAILABLE,
      `${STORE}: the transaction's signature does not verify`,
      {
        store: STORE,
        verificationStatus: status,
      },
    );
  }
}

/**
 * Verifies that the App Store holds a completed, unrefunded purchase of `productId` under the
 * transaction id the app sent (`purchaseToken`).
 */
export async function verifyAppStorePurchase(input: MobilePurchaseInput): Promise<MobilePurchase> {
  const { purchaseToken, productId } = checkMobilePurchaseInput(input, IOS_PRODUCT_ID, TRANSACTION_ID);
  const transaction = await transactionInfo(purchaseToken);
  if (transaction.productId !== productId)
    throw new DomainError(
      ErrorCode.BAD_USER_INPUT,
      `${STORE}: the purchase is of ${String(transaction.productId)}, not ${productId}`,
      { store: STORE, field: 'productId', purchasedProductId: transaction.productId },
    );
  if (transaction.revocationDate !== undefined)
    throw paymentRequired(STORE, 'the purchase was refunded', {
      revokedAt: new Date(transaction.revocationDate).toISOString(),
    });
  if (transaction.transactionId === undefined || transaction.purchaseDate === undefined)
    throw paymentRequired(STORE, 'the transaction is not a completed purchase');
  return {
    paymentMethod: 'ios_iap',
    transactionId: transaction.transactionId,
    originalTransactionId: transaction.originalTransactionId ?? transaction.transactionId,
    productId,
    purchasedAt: new Date(transaction.purchaseDate).toISOString(),
    regionCode: null,
    storefront: transaction.storefront ?? null,
  };
}

/** /readyz: an authenticated call Apple answers without a purchase (an unknown transaction id is a 404). */
export async function checkAppStore(): Promise<void> {
  try {
    await client(appStoreApiConfig()).getTransactionInfo('0');
  } catch (error) {
    if (error instanceof APIException && (error.httpStatusCode === 404 || error.httpStatusCode === 400))
      return;
    throw error;
  }
}
