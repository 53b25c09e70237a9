import { DEMO, DEMO_PRICING } from './demo.js';
import type { OrderManagement } from './order-management/server.js';

/**
 * Seeds the order management stand-in's catalogue with the demo prices and discounts (DEMO_PRICING):
 * the course runs' products (a verified and a credit variant of the demo course), the program bundle
 * with its entitlements and their standalone prices, the program offers and two discount codes.
 * After the orders: ada's PayPal order redeemed the first-order code.
 */
export function seedPricingDemo(orderManagement: Pick<OrderManagement, 'catalog'>) {
  const { courses, bundle, orders } = DEMO;
  const { programCourses: program } = DEMO_PRICING;
  orderManagement.catalog.seed({
    cartDiscounts: [
      {
        key: 'welcome-25',
        permyriad: 2_500,
        requiresDiscountCode: true,
        cartPredicate: 'product.key = "edX+DemoX"',
      },
      { key: 'first-order-10', permyriad: 1_000, requiresDiscountCode: true },
      // The reference's default program offer: 10 % off every program it does not exclude.
      { key: 'relative-1000-program-offer', permyriad: 1_000, cartPredicate: 'custom.bundleId is defined' },
      {
        key: 'program-offer-data-science',
        amountCents: DEMO_PRICING.programOfferCents,
        cartPredicate: `custom.bundleId = "${bundle.bundleKey}"`,
        sortOrder: '0.9',
      },
    ],
    discountCodes: [
      { code: DEMO_PRICING.welcomeCode, cartDiscount: 'welcome-25' },
      { code: DEMO_PRICING.firstOrderCode, cartDiscount: 'first-order-10', maxApplicationsPerCustomer: 1 },
    ],
    products: [
      {
        key: 'edX+DemoX',
        name: courses.demo.name,
        variants: [
          {
            sku: courses.demo.courseId,
            attributes: { mode: 'verified', 'external-ids-variant': courses.demo.courseId },
          },
          {
            sku: DEMO_PRICING.creditSku,
            attributes: { mode: 'credit', 'external-ids-variant': courses.demo.courseId },
          },
        ],
      },
      {
        key: 'HarvardX+CS50',
        name: courses.cs50.name,
        variants: [
          {
            sku: courses.cs50.courseId,
            attributes: { mode: 'verified', 'external-ids-variant': courses.cs50.courseId },
          },
        ],
      },
      {
        key: bundle.bundleKey,
        name: bundle.title,
        variants: [
          { sku: bundle.bundleKey, key: bundle.bundleKey },
          ...Object.values(program).map((c) => ({
            sku: `${bundle.bundleKey}-${c.courseKey}`,
            key: `${bundle.bundleKey}+${c.courseKey}`,
            entitlementSku: c.entitlementSku,
          })),
        ],
      },
    ],
    standalonePrices: Object.values(program).map((c) => ({
      sku: c.entitlementSku,
      centAmount: c.priceCents,
    })),
    redemptions: [{ orderNumber: orders.adaPayPal.orderNumber, code: DEMO_PRICING.firstOrderCode }],
  });
}
