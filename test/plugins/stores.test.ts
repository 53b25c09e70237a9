import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

// The store Plugins' Actions through the gateway, against the App Store and Google Play stand-ins
// over real HTTP.

let t: CommerceCoordinator;
beforeAll(async () => {
  t = await startCommerceCoordinator('stores');
}, 60_000);
afterAll(() => t?.stop());

const VERIFY_IOS = /* GraphQL */ `
  query ($input: MobilePurchaseInput!) {
    verifyAppStorePurchase(input: $input) {
      paymentMethod
      transactionId
      originalTransactionId
      productId
      purchasedAt
      regionCode
      storefront
    }
  }
`;
const VERIFY_ANDROID = /* GraphQL */ `
  query ($input: MobilePurchaseInput!) {
    verifyGooglePlayPurchase(input: $input) {
      paymentMethod
      transactionId
      originalTransactionId
      productId
      purchasedAt
      regionCode
      storefront
    }
  }
`;

describe('verifyAppStorePurchase', () => {
  it('answers the demo purchase', async () => {
    const { ios } = DEMO.mobilePurchases;
    const result = await t.graphql(
      VERIFY_IOS,
      { input: { purchaseToken: ios.purchaseToken, productId: ios.productId } },
      t.tokens.staff,
    );
    expect(result.errors).toBeUndefined();
    expect(result.data?.verifyAppStorePurchase).toMatchObject({
      paymentMethod: 'ios_iap',
      transactionId: ios.purchaseToken,
    });
  });
});

describe('verifyGooglePlayPurchase', () => {
  it('answers the demo purchase', async () => {
    const { android } = DEMO.mobilePurchases;
    const result = await t.graphql(
      VERIFY_ANDROID,
      { input: { purchaseToken: android.purchaseToken, productId: android.productId } },
      t.tokens.staff,
    );
    expect(result.errors).toBeUndefined();
    expect(result.data?.verifyGooglePlayPurchase).toMatchObject({
      paymentMethod: 'android_iap',
      transactionId: android.orderId,
      regionCode: 'US',
    });
  });
});
