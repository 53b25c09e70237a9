import { startLegacyEcommerce, type LegacyEcommerceStandIn } from './legacy-ecommerce/server.js';
import { DEFAULT_LMS_CLIENT, startLms, type LmsStandIn } from './lms/server.js';
import { startOrderManagement, type OrderManagement } from './order-management/server.js';
import { startPayPal, type PayPalStandIn } from './paypal/server.js';
import { startStripe, type StripeStandIn } from './stripe/server.js';
import { startAppStore, type AppStoreStandIn } from './app-store/server.js';
import { startGooglePlay, type GooglePlayStandIn } from './google-play/server.js';
import { startOrderFulfillment, type OrderFulfillmentStandIn } from './order-fulfillment/server.js';
import { DEMO, daysAgo, demoOrderAge } from './demo.js';
import { startBraze, type BrazeStandIn } from './braze/server.js';
import { startSegment, type SegmentStandIn } from './segment/server.js';
import { seedPricingDemo } from './demo-pricing.js';

/** Every Service stand-in, started together, with the configuration the plugins read to reach them. */
export interface ServiceStandIns {
  /** The plugins' environment variables pointing at these stand-ins. */
  env: Record<string, string>;
  orderManagement: OrderManagement;
  stripe: StripeStandIn;
  paypal: PayPalStandIn;
  lms: LmsStandIn;
  legacyEcommerce: LegacyEcommerceStandIn;
  appStore: AppStoreStandIn;
  googlePlay: GooglePlayStandIn;
  /** The learner email Service (Braze's role): keeps every Canvas send. */
  braze: BrazeStandIn;
  /** The analytics Service (Segment's role): keeps every event. */
  segment: SegmentStandIn;
  orderFulfillment: OrderFulfillmentStandIn;
  /** Points the PSPs', the stores' and the Order Fulfillment service's webhooks at a running Coordinator. */
  connectWebhooks(coordinatorUrl: string): void;
  close(): Promise<void>;
}

/** The stand-ins, in the order they start. */
export const STAND_IN_NAMES = [
  'orderManagement',
  'stripe',
  'paypal',
  'lms',
  'legacyEcommerce',
  'appStore',
  'googlePlay',
  'orderFulfillment',
  'braze',
  'segment',
] as const;
export type StandInName = (typeof STAND_IN_NAMES)[number];

export const STRIPE_WEBHOOK_SECRET = 'whsec_standin_webhook_secret';
export const PAYPAL_WEBHOOK_ID = 'WH-STANDIN-0001';
/** The audience the Google Play stand-in's Pub/Sub push puts in its OIDC tokens. */
export const GOOGLE_PUBSUB_AUDIENCE = 'commerce-coordinator-play-notifications';
/** Where the stores' notifications go (the paths the reference's iap app serves). */
export const APP_STORE_NOTIFICATION_PATH = '/iap/ios/refund/';
export const GOOGLE_PLAY_PUSH_PATH = '/iap/android/refund/';
/** The shared secret the Order Fulfillment service signs its completion webhooks with. */
export const ORDER_FULFILLMENT_WEBHOOK_SECRET = 'of-standin-webhook-secret';
/** The Braze Canvases the learner email Plugin triggers (the reference's two). */
export const BRAZE_ORDER_CONFIRMATION_CANVAS_ID = 'canvas-order-confirmation';
export const BRAZE_FULFILLMENT_ERROR_CANVAS_ID = 'canvas-fulfillment-error';

/**
 * Starts the stand-ins of every Service the commerce plugins wrap, on free ports. With `demo`, seeds
 * the demo catalogue, learners and orders of services/demo.ts, consistent across the Services (the
 * orders' payments exist at their PSP, the learners in the LMS).
 */
export async function startServiceStandIns(
  options: {
    demo?: boolean;
    redisUrl?: string;
    eventStream?: string;
    /** Fixed ports; a free one for each left out. */
    ports?: Partial<Record<StandInName, number>>;
  } = {},
): Promise<ServiceStandIns> {
  const started: Array<{ close(): Promise<void> }> = [];
  const port = (name: StandInName) => options.ports?.[name] ?? 0;
  try {
    const orderManagement = await startOrderManagement({ port: port('orderManagement') });
    started.push(orderManagement);
    const stripe = await startStripe({ port: port('stripe') });
    started.push(stripe);
    const paypal = await startPayPal({ port: port('paypal') });
    started.push(paypal);
    const lms = await startLms({
      port: port('lms'),
      redisUrl: options.redisUrl,
      eventStream: options.eventStream,
    });
    started.push(lms);
    const legacyEcommerce = await startLegacyEcommerce({
      port: port('legacyEcommerce'),
      jwtIssuer: lms.issuer,
    });
    started.push(legacyEcommerce);
    const appStore = await startAppStore({ port: port('appStore') });
    started.push(appStore);
    const googlePlay = await startGooglePlay({ port: port('googlePlay') });
    started.push(googlePlay);
    const orderFulfillment = await startOrderFulfillment({ port: port('orderFulfillment') });
    started.push(orderFulfillment);
    const braze = await startBraze({
      port: port('braze'),
      canvasIds: [BRAZE_ORDER_CONFIRMATION_CANVAS_ID, BRAZE_FULFILLMENT_ERROR_CANVAS_ID],
    });
    started.push(braze);
    const segment = await startSegment({ port: port('segment') });
    started.push(segment);

    if (options.demo ?? true) {
      seedDemo({ orderManagement, stripe, paypal, lms, legacyEcommerce });
      seedDemoMobilePurchases({ appStore, googlePlay });
    }

    const env: Record<string, string> = {
      ORDER_MANAGEMENT_URL: orderManagement.url,
      ORDER_MANAGEMENT_PROJECT_KEY: orderManagement.projectKey,
      ORDER_MANAGEMENT_CLIENT_ID: orderManagement.clientId,
      ORDER_MANAGEMENT_CLIENT_SECRET: orderManagement.clientSecret,
      RETIREMENT_SALT: 'embedded-retirement-salt',
      STRIPE_API_BASE: stripe.url,
      STRIPE_SECRET_KEY: stripe.secretKey,
      STRIPE_WEBHOOK_SECRET,
      PAYPAL_API_BASE: paypal.url,
      PAYPAL_CLIENT_ID: paypal.clientId,
      PAYPAL_CLIENT_SECRET: paypal.clientSecret,
      PAYPAL_WEBHOOK_ID,
      LMS_URL: lms.url,
      LMS_CLIENT_ID: DEFAULT_LMS_CLIENT.clientId,
      LMS_CLIENT_SECRET: DEFAULT_LMS_CLIENT.clientSecret,
      ...(options.redisUrl ? { LMS_EVENT_BUS_REDIS_URL: options.redisUrl } : {}),
      ...(options.eventStream ? { LMS_EVENT_BUS_STREAM: options.eventStream } : {}),
      LEGACY_ECOMMERCE_URL: legacyEcommerce.url,
      LEGACY_ECOMMERCE_OAUTH_URL: lms.url,
      LEGACY_ECOMMERCE_CLIENT_ID: DEFAULT_LMS_CLIENT.clientId,
      LEGACY_ECOMMERCE_CLIENT_SECRET: DEFAULT_LMS_CLIENT.clientSecret,
      COMMERCE_FRONTEND_URL: `${orderManagement.url}/checkout/`,
      LEGACY_BASKET_URL: `${legacyEcommerce.url}/basket/add/`,
      APP_STORE_API_BASE: appStore.url,
      APP_STORE_ENVIRONMENT: appStore.environment,
      APP_STORE_PRIVATE_KEY: appStore.privateKey,
      APP_STORE_KEY_ID: appStore.keyId,
      APP_STORE_ISSUER_ID: appStore.issuerId,
      APP_STORE_BUNDLE_ID: appStore.bundleId,
      APP_STORE_ROOT_CERTIFICATES: appStore.rootCertificate.toString('base64'),
      // The stand-in's chain has no OCSP responder; its certificates are checked at the signing date.
      APP_STORE_ONLINE_CHECKS: 'false',
      APP_STORE_RETRY_WAIT_MS: '100',
      GOOGLE_PLAY_API_BASE: `${googlePlay.url}/`,
      GOOGLE_PLAY_PACKAGE_NAME: googlePlay.packageName,
      GOOGLE_PLAY_SERVICE_ACCOUNT_KEY: googlePlay.serviceAccountKey,
      GOOGLE_PLAY_RETRY_WAIT_MS: '100',
      GOOGLE_PUBSUB_AUDIENCE,
      GOOGLE_PUBSUB_CERTS_URL: googlePlay.certsUrl,
      GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL: googlePlay.pushServiceAccountEmail,
      GOOGLE_PLAY_REFUND_SUBSCRIPTION: googlePlay.subscription,
      ORDER_FULFILLMENT_URL: orderFulfillment.url,
      ORDER_FULFILLMENT_API_KEY: orderFulfillment.apiKey,
      ORDER_FULFILLMENT_WEBHOOK_SECRET,
      BRAZE_API_URL: braze.url,
      BRAZE_API_KEY: braze.apiKey,
      BRAZE_ORDER_CONFIRMATION_CANVAS_ID,
      BRAZE_FULFILLMENT_ERROR_CANVAS_ID,
      // Once-per-order emails are remembered in Redis when there is one (the stream's namespace).
      ...(options.redisUrl ? { NOTIFICATIONS_REDIS_URL: options.redisUrl } : {}),
      ...(options.eventStream ? { NOTIFICATIONS_KEY_PREFIX: `${options.eventStream}:notifications:` } : {}),
      SEGMENT_HOST: segment.url,
      SEGMENT_WRITE_KEY: segment.writeKey,
    };
    return {
      env,
      orderManagement,
      stripe,
      paypal,
      lms,
      legacyEcommerce,
      appStore,
      googlePlay,
      orderFulfillment,
      braze,
      segment,
      connectWebhooks(coordinatorUrl) {
        stripe.setWebhook({ url: `${coordinatorUrl}/stripe/webhook/`, secret: STRIPE_WEBHOOK_SECRET });
        paypal.setWebhook({ url: `${coordinatorUrl}/paypal/webhook/`, webhookId: PAYPAL_WEBHOOK_ID });
        appStore.setNotificationUrl(`${coordinatorUrl}${APP_STORE_NOTIFICATION_PATH}`);
        googlePlay.setPush({
          url: `${coordinatorUrl}${GOOGLE_PLAY_PUSH_PATH}`,
          audience: GOOGLE_PUBSUB_AUDIENCE,
        });
        orderFulfillment.setWebhook({
          url: `${coordinatorUrl}/order-fulfillment/fulfillment-response-webhook`,
          secret: ORDER_FULFILLMENT_WEBHOOK_SECRET,
        });
      },
      close: () => closeAll(started),
    };
  } catch (error) {
    await closeAll(started);
    throw error;
  }
}

async function closeAll(started: ReadonlyArray<{ close(): Promise<void> }>) {
  await Promise.allSettled([...started].reverse().map((s) => s.close()));
}

/** The PayPal order of ada's PayPal payment. */
const DEMO_PAYPAL_ORDER = 'DEMOPAYPALORDER02';

function seedDemo(s: {
  orderManagement: OrderManagement;
  stripe: StripeStandIn;
  paypal: PayPalStandIn;
  lms: LmsStandIn;
  legacyEcommerce: LegacyEcommerceStandIn;
}) {
  const { learners, staff, courses, bundle, orders, legacyOrders } = DEMO;
  s.lms.seed({
    users: [
      { id: learners.ada.lmsUserId, username: 'ada', email: learners.ada.email, name: learners.ada.name },
      { id: learners.bob.lmsUserId, username: 'bob', email: learners.bob.email, name: learners.bob.name },
      { id: staff.lmsUserId, username: staff.username, email: staff.email, name: staff.name, isStaff: true },
    ],
    courses: Object.values(courses).map((c) => ({ ...c, modes: ['audit', 'verified'] })),
    // Ada's first order was fulfilled: its enrollments carry the order's attributes, as fulfillment writes them.
    enrollments: [
      { courseId: courses.demo.courseId, lineItemId: 'li-ada-1-demo' },
      { courseId: courses.cs50.courseId, lineItemId: 'li-ada-1-cs50' },
    ].map(({ courseId, lineItemId }) => ({
      username: 'ada',
      courseId,
      mode: 'verified',
      isActive: true,
      attributes: [
        { namespace: 'order', name: 'order_id', value: orders.adaStripe.id },
        { namespace: 'order', name: 'order_number', value: orders.adaStripe.orderNumber },
        { namespace: 'order', name: 'line_item_id', value: lineItemId },
      ],
    })),
  });
  const [adaStripe] = s.stripe.seed({
    paymentIntents: [
      { id: 'pi_demo_ada_0001', amount: 29_800, metadata: { order_number: orders.adaStripe.orderNumber } },
    ],
  });
  s.stripe.seed({
    paymentIntents: [
      { id: 'pi_demo_bob_0003', amount: 49_900, metadata: { order_number: orders.bobPlaced.orderNumber } },
    ],
  });
  const [adaPayPal] = s.paypal.seed({
    captures: [
      {
        id: 'DEMOCAPTURE0002',
        orderId: DEMO_PAYPAL_ORDER,
        amountCents: 14_900,
        invoiceId: orders.adaPayPal.orderNumber,
      },
    ],
  });
  const ada = { lmsUserId: learners.ada.lmsUserId, username: 'ada', email: learners.ada.email };
  const bob = { lmsUserId: learners.bob.lmsUserId, username: 'bob', email: learners.bob.email };
  s.orderManagement.seed({
    orders: [
      {
        ...orders.adaStripe,
        createdAt: daysAgo(demoOrderAge.adaStripe),
        customer: ada,
        lineItems: [
          {
            id: 'li-ada-1-demo',
            title: courses.demo.name,
            priceCents: 14_900,
            courseRunKey: courses.demo.courseId,
            state: 'SUCCESS',
          },
          {
            id: 'li-ada-1-cs50',
            title: courses.cs50.name,
            priceCents: 14_900,
            courseRunKey: courses.cs50.courseId,
            state: 'SUCCESS',
          },
        ],
        payment: { psp: 'STRIPE', pspPaymentId: String(adaStripe!.id) },
      },
      {
        ...orders.adaPayPal,
        createdAt: daysAgo(demoOrderAge.adaPayPal),
        customer: ada,
        lineItems: [
          {
            id: 'li-ada-2-cs50',
            title: courses.cs50.name,
            priceCents: 14_900,
            courseRunKey: courses.cs50.courseId,
            state: 'SUCCESS',
          },
        ],
        // The PayPal order too, as checkout records it (the payment's interfaceId).
        payment: { psp: 'PAYPAL', pspPaymentId: String(adaPayPal!.id), pspOrderId: DEMO_PAYPAL_ORDER },
      },
      {
        ...orders.bobPlaced,
        createdAt: daysAgo(demoOrderAge.bobPlaced),
        customer: bob,
        lineItems: [
          {
            id: 'li-bob-3-demo',
            title: courses.demo.name,
            priceCents: 14_900,
            courseRunKey: courses.demo.courseId,
          },
          { id: 'li-bob-3-bundle', title: bundle.title, priceCents: 35_000, bundleKey: bundle.bundleKey },
        ],
        payment: { psp: 'STRIPE', pspPaymentId: 'pi_demo_bob_0003' },
      },
      {
        ...orders.bobSanctioned,
        createdAt: daysAgo(demoOrderAge.bobSanctioned),
        customer: bob,
        sanctioned: true,
        lineItems: [
          {
            id: 'li-bob-4-cs50',
            title: courses.cs50.name,
            priceCents: 14_900,
            courseRunKey: courses.cs50.courseId,
          },
        ],
      },
      {
        ...orders.adaUnpaid,
        createdAt: daysAgo(demoOrderAge.adaUnpaid),
        customer: ada,
        lineItems: [
          {
            id: 'li-ada-5-demo',
            title: courses.demo.name,
            priceCents: 0,
            courseRunKey: courses.demo.courseId,
            state: 'SUCCESS',
          },
        ],
      },
    ],
  });
  // The catalogue the mobile apps sell from, and the order numbers after the demo orders'.
  s.orderManagement.seed({
    products: Object.values(courses).map((c) => ({
      sku: c.courseId,
      title: c.name,
      usdCents: DEMO.mobile.prices[c.courseId],
    })),
    customObjects: [{ container: 'coordinator', key: 'order-number', value: DEMO.mobile.orderNumberCounter }],
  });
  seedPricingDemo(s.orderManagement);
  s.legacyEcommerce.seed({
    orders: [
      {
        number: legacyOrders.adaRecent,
        username: 'ada',
        email: learners.ada.email,
        datePlaced: daysAgo(60),
        paymentProcessor: 'cybersource',
        lines: [
          {
            title: 'Legacy Course',
            linePriceExclTax: '99.00',
            courseKey: 'course-v1:edX+Legacy+2025',
            certificateType: 'verified',
          },
        ],
      },
      {
        number: legacyOrders.adaOld,
        username: 'ada',
        email: learners.ada.email,
        datePlaced: daysAgo(400),
        paymentProcessor: 'cybersource',
        lines: [{ title: 'Older Legacy Course', linePriceExclTax: '49.00' }],
      },
    ],
  });
}

/** The demo's in-app purchases, at the store each was made in (services/demo.ts). */
function seedDemoMobilePurchases(s: { appStore: AppStoreStandIn; googlePlay: GooglePlayStandIn }) {
  const { ios, android } = DEMO.mobilePurchases;
  s.appStore.seed({
    transactions: [{ transactionId: ios.purchaseToken, productId: ios.productId, price: ios.price }],
  });
  s.googlePlay.seed({
    purchases: [
      { purchaseToken: android.purchaseToken, orderId: android.orderId, productId: android.productId },
    ],
  });
}
