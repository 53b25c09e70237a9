import { definePlugin } from '@commerce-coordinator/plugin-sdk';
import type { MobilePurchaseInput } from '../../schema/contracts/mobile-purchase.js';
import { checkAppStore, verifyAppStorePurchase } from './client.js';
import { appStoreApiConfig, appStoreVerificationConfig } from './config.js';
import { handleAppleRefundNotification } from './refund-notifications.js';

/**
 * The app-store Plugin: Apple's App Store as a Service. The Action `verifyAppStorePurchase` (a step of
 * the mobile order flow) checks an in-app purchase with the App Store Server API; notifications.ts
 * verifies App Store Server Notifications V2 for the routes that receive them.
 */

export {
  AppStoreNotificationError,
  readAppStoreNotificationBody,
  verifyAppStoreNotification,
  type AppStoreNotification,
} from './notifications.js';

export default definePlugin({
  name: 'app-store',
  schemaFile: new URL('./schema.graphql', import.meta.url),
  // A step of the mobile order flow; staff and Services may check a purchase directly.
  access: { Query: { verifyAppStorePurchase: ['staff', 'service'] } },
  resolvers: {
    Query: {
      verifyAppStorePurchase: (_: unknown, { input }: { input: MobilePurchaseInput }) =>
        verifyAppStorePurchase(input),
    },
  },
  routes: [{ method: 'POST', path: '/iap/ios/refund/', handle: handleAppleRefundNotification }],
  config: [appStoreApiConfig, appStoreVerificationConfig],
  health: { service: 'app-store', check: checkAppStore },
});
