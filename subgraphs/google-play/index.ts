import { definePlugin } from '@commerce-coordinator/plugin-sdk';
import type { MobilePurchaseInput } from '../../schema/contracts/mobile-purchase.js';
import { checkGooglePlay, verifyGooglePlayPurchase } from './client.js';
import { googlePlayApiConfig, googlePlayPushConfig } from './config.js';
import { handleVoidedPurchasePush } from './voided-purchases.js';

/**
 * The google-play Plugin: Google Play as a Service. The Action `verifyGooglePlayPurchase` (a step of
 * the mobile order flow) checks an in-app purchase with the Android Publisher API; notifications.ts
 * verifies the Pub/Sub pushes of real-time developer notifications for the routes that receive them.
 */

export {
  PubSubPushError,
  verifyPubSubPush,
  type DeveloperNotification,
  type PubSubPush,
} from './notifications.js';

export default definePlugin({
  name: 'google-play',
  schemaFile: new URL('./schema.graphql', import.meta.url),
  // A step of the mobile order flow; staff and Services may check a purchase directly.
  access: { Query: { verifyGooglePlayPurchase: ['staff', 'service'] } },
  resolvers: {
    Query: {
      verifyGooglePlayPurchase: (_: unknown, { input }: { input: MobilePurchaseInput }) =>
        verifyGooglePlayPurchase(input),
    },
  },
  // Pub/Sub's push carries Google's OIDC token, which the route verifies (not a Coordinator JWT).
  routes: [
    {
      method: 'POST',
      path: '/iap/android/refund/',
      handle: handleVoidedPurchasePush,
      authorization: 'service',
    },
  ],
  config: [googlePlayApiConfig, googlePlayPushConfig],
  health: { service: 'google-play', check: checkGooglePlay },
});
