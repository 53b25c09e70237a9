/**
 * The demo catalogue, learners and orders the embedded default starts with: enough to run every
 * Purchase Flow from Apollo Sandbox by following README.md, which refers to these names and numbers.
 */

const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString();

export const DEMO = {
  learners: {
    ada: { lmsUserId: 3, username: 'ada', email: 'ada@example.com', name: 'Ada Lovelace' },
    bob: { lmsUserId: 4, username: 'bob', email: 'bob@example.com', name: 'Bob Hopper' },
  },
  staff: { lmsUserId: 2, username: 'staff', email: 'staff@example.com', name: 'Support Staff' },
  courses: {
    demo: { courseId: 'course-v1:edX+DemoX+2026', name: 'Demonstration Course' },
    cs50: { courseId: 'course-v1:HarvardX+CS50+2026', name: 'Introduction to Computer Science' },
  },
  /** A program bundle sold as an entitlement (the LMS knows courses by UUID). */
  bundle: { bundleKey: '0f5b7c2e-4d1a-4a8e-9c3b-2d6f1e8a7b90', title: 'Data Science Program' },
  orders: {
    /** Ada, paid with Stripe, both lines fulfilled: refund one line of it. */
    adaStripe: { id: '6a1f0c7e-1d2b-4c3a-9e8f-000000000001', orderNumber: '2U-2026000001' },
    /** Ada, paid with PayPal, fulfilled. */
    adaPayPal: { id: '6a1f0c7e-1d2b-4c3a-9e8f-000000000002', orderNumber: '2U-2026000002' },
    /** Bob, paid with Stripe, just placed: fulfill it. */
    bobPlaced: { id: '6a1f0c7e-1d2b-4c3a-9e8f-000000000003', orderNumber: '2U-2026000003' },
    /** Bob, flagged by the sanctions check. */
    bobSanctioned: { id: '6a1f0c7e-1d2b-4c3a-9e8f-000000000004', orderNumber: '2U-2026000004' },
    /** Ada, paid with an enrollment code: no successful payment, so no receipt. */
    adaUnpaid: { id: '6a1f0c7e-1d2b-4c3a-9e8f-000000000005', orderNumber: '2U-2026000005' },
  },
  legacyOrders: { adaRecent: 'EDX-100001', adaOld: 'EDX-100002' },
  /**
   * In-app purchases of the demo course (USD 149) in the mobile apps, not yet ordered: what the app
   * sends as its purchase token (App Store: the transaction id; Google Play: the purchase token).
   */
  mobilePurchases: {
    ios: { purchaseToken: '2000000000149001', productId: 'mobile.ios.usd149', price: 149_000 },
    android: {
      purchaseToken: 'demo-play-token-ada-0001.AO-J1OxDemoCourse149',
      orderId: 'GPA.3300-0149-0001-00001',
      productId: 'mobile.android.usd149',
    },
  },
  /**
   * What the mobile apps sell (the courses' USD standalone prices; store products
   * mobile.<ios|android>.usd149) and the order-number counter, past the demo orders above.
   */
  mobile: {
    prices: { 'course-v1:edX+DemoX+2026': 14_900, 'course-v1:HarvardX+CS50+2026': 14_900 },
    orderNumberCounter: { year: 2026, counter: 5 },
  },
} as const;

export const demoOrderAge = { adaStripe: 20, adaPayPal: 10, bobPlaced: 0, bobSanctioned: 1, adaUnpaid: 5 };
export { daysAgo };

/**
 * The demo catalogue's prices and discounts (services/demo-pricing.ts seeds them): what the discount
 * code, first-time discount, program price and credit checkout examples of README.md read.
 */
export const DEMO_PRICING = {
  /** 25 % off courses of the demo course's product (its cart predicate names it). */
  welcomeCode: 'WELCOME25',
  /** 10 % off a first order, once per customer: ada redeemed it on 2U-2026000002. */
  firstOrderCode: 'FIRSTORDER10',
  /** Course keys of the program's two courses, and their entitlements' standalone prices. */
  programCourses: {
    demo: { courseKey: 'edX+DemoX', entitlementSku: 'ENT-EDX-DEMOX', priceCents: 14_900 },
    cs50: { courseKey: 'HarvardX+CS50', entitlementSku: 'ENT-HARVARDX-CS50', priceCents: 19_900 },
  },
  /** The program's own offer: $50 off (an absolute cart discount naming the bundle). */
  programOfferCents: 5_000,
  /** The variant selling the demo course run for credit. */
  creditSku: 'CREDIT-EDX-DEMOX-2026',
} as const;
