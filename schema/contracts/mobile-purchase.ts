import { DomainError, ErrorCode } from '@commerce-coordinator/plugin-sdk';

/**
 * The store Plugins' shared contract (app-store: `verifyAppStorePurchase`, google-play:
 * `verifyGooglePlayPurchase`): what the mobile app sends after a purchase in the store, and what a
 * verified purchase is. Both Plugins' schemas declare the same `MobilePurchaseInput` and
 * `MobilePurchase` types.
 */

export interface MobilePurchaseInput {
  /**
   * What the app received from the store: Google Play's purchase token; for the App Store, the
   * transaction id (StoreKit's `Transaction.id`), which the App Store Server API looks up.
   */
  purchaseToken: string;
  /** The store product the caller expects: `mobile.ios.usd<USD price>` / `mobile.android.usd<USD price>`. */
  productId: string;
}

export interface MobilePurchase {
  /** The order management payment method: `ios_iap` or `android_iap`. */
  paymentMethod: 'ios_iap' | 'android_iap';
  /** The store's id of the payment: Apple's transactionId, Google's orderId (GPA.…). */
  transactionId: string;
  /** What the store's refund notification names: Apple's originalTransactionId, Google's orderId. */
  originalTransactionId: string;
  productId: string;
  /** ISO 8601. */
  purchasedAt: string;
  /** Where the buyer's store account is, ISO 3166-1 alpha-2, when the store says (Google's regionCode). */
  regionCode: string | null;
  /** Apple's storefront (ISO 3166-1 alpha-3), when the store is the App Store. */
  storefront: string | null;
}

/** Store purchase tokens and product ids are short; anything longer is not one (and not sent on). */
const MAX_TOKEN_LENGTH = 2048;
const MAX_PRODUCT_ID_LENGTH = 200;

/** Checks what the caller sent before the store is asked: a BAD_USER_INPUT naming the field. */
export function checkMobilePurchaseInput(
  input: MobilePurchaseInput,
  productPattern: RegExp,
  tokenPattern: RegExp,
): MobilePurchaseInput {
  const purchaseToken = input.purchaseToken.trim();
  const productId = input.productId.trim();
  if (!purchaseToken || purchaseToken.length > MAX_TOKEN_LENGTH || !tokenPattern.test(purchaseToken))
    throw new DomainError(ErrorCode.BAD_USER_INPUT, 'purchaseToken is not a purchase token of this store', {
      field: 'purchaseToken',
    });
  if (productId.length > MAX_PRODUCT_ID_LENGTH || !productPattern.test(productId))
    throw new DomainError(ErrorCode.BAD_USER_INPUT, `productId must match ${productPattern.source}`, {
      field: 'productId',
    });
  return { purchaseToken, productId };
}

/** The store holds no completed purchase: the caller must not sell against it. */
export const paymentRequired = (store: string, reason: string, details: Record<string, unknown> = {}) =>
  new DomainError(ErrorCode.PAYMENT_REQUIRED, `${store}: ${reason}`, { store, ...details });

/** As the reference validates purchases: 3 attempts with a fixed wait between them. */
export const STORE_ATTEMPTS = 3;

/**
 * Runs `call` up to STORE_ATTEMPTS times while it fails with something other than a DomainError (the
 * store's internal errors, timeouts, connection failures), then answers SERVICE_UNAVAILABLE: the
 * caller may try again later. A DomainError (the store's answer about the purchase) is final.
 */
export async function withStoreAttempts<T>(
  store: string,
  call: () => Promise<T>,
  { waitMs, onRetry }: { waitMs: number; onRetry?: (attempt: number, error: unknown) => void },
): Promise<T> {
  let last: unknown;
  for (let attempt = 1; attempt <= STORE_ATTEMPTS; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (error instanceof DomainError) throw error;
      last = error;
      if (attempt < STORE_ATTEMPTS) {
        onRetry?.(attempt, error);
        await new Promise((resolve) => setTimeout(resolve, waitMs));
      }
    }
  }
  throw new DomainError(
    ErrorCode.SERVICE_UNAVAILABLE,
    `${store} did not answer after ${STORE_ATTEMPTS} attempts: ${describe(last)}`,
    { store, attempts: STORE_ATTEMPTS },
  );
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, 300);
