import { z } from 'zod';
import {
  DomainError,
  ErrorCode,
  requirePrincipal,
  type ActionContext,
} from '@commerce-coordinator/plugin-sdk';
import {
  checkCartPredicate,
  EVERY_CART,
  PredicateEvaluationError,
  predicateContextOf,
} from './cart-predicate.js';
import { orderManagementClient, OrderManagementError, type Money } from './client.js';

/**
 * The read-only Actions the LMS and the frontends ask before a purchase (the reference's §5.17 and
 * credit checkout): whether a discount code applies to a course run, whether a learner may still use
 * a first-time discount, what a program costs the learner, and which variant sells a course run for
 * credit. Every answer is read from the order management Service's catalogue and discounts.
 */

// The subset of commercetools' catalogue resources these Actions read.
interface CtCartDiscount {
  id: string;
  key?: string;
  value: { type: string; permyriad?: number; money?: Money[] };
  cartPredicate: string;
  isActive: boolean;
  validFrom?: string;
  validUntil?: string;
}
interface CtDiscountCode {
  id: string;
  code: string;
  isActive: boolean;
  maxApplicationsPerCustomer?: number;
  validFrom?: string;
  validUntil?: string;
  cartDiscounts: Array<{ id: string; obj?: CtCartDiscount }>;
}
interface CtVariant {
  id: number;
  sku?: string;
  key?: string;
  attributes?: Array<{ name: string; value: unknown }>;
  isMatchingVariant?: boolean;
}
interface CtProductProjection {
  id: string;
  key?: string;
  masterVariant: CtVariant;
  variants: CtVariant[];
}
interface CtStandalonePrice {
  sku: string;
  value: Money;
}
interface Page<T> {
  results: T[];
}

/** The LMS's keys are short; anything longer is not a key, and is not sent on to the Service. */
const Key = z.string().trim().min(1).max(256);

function parse<T>(schema: z.ZodType<T>, input: unknown): T {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new DomainError(ErrorCode.BAD_USER_INPUT, `${issue.path.join('.') || 'input'}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * A catalogue read: the Service's answer, or SERVICE_UNAVAILABLE when it did not answer or failed —
 * a price or a discount is never made up from a missing answer.
 */
async function read<T>(what: string, request: { execute(): Promise<{ body: unknown }> }): Promise<T> {
  try {
    return await orderManagementClient().execute<T>(what, request);
  } catch (error) {
    if (error instanceof DomainError) throw error;
    const status = error instanceof OrderManagementError ? ` (${error.status})` : '';
    throw new DomainError(
      ErrorCode.SERVICE_UNAVAILABLE,
      `The order management Service could not answer ${what}${status}: ${(error as Error).message}`,
    );
  }
}

const api = () => orderManagementClient().api;
/** A value inside a search filter's double quotes. */
const quoted = (value: string) => `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

const now = () => Date.now();
const within = (from?: string, until?: string) =>
  (!from || Date.parse(from) <= now()) && (!until || now() <= Date.parse(until));

/** Whether any Complete order of the customer (by id or email) redeemed `code`. */
async function usedCode(code: string, customer: { id: string } | { email: string }): Promise<boolean> {
  const where = [
    'id' in customer ? 'customerId = :customer' : 'customerEmail = :customer',
    'orderState = "Complete"',
    'discountCodes(discountCode is defined)',
  ];
  const page = await read<Page<{ discountCodes?: Array<{ discountCode: { obj?: { code?: string } } }> }>>(
    'GET /orders (discounted)',
    api()
      .orders()
      .get({
        queryArgs: {
          where,
          'var.customer': 'id' in customer ? customer.id : customer.email,
          expand: ['discountCodes[*].discountCode'],
          limit: 500,
        },
      }),
  );
  // Every code of every order (the reference read only each order's first).
  return page.results.some((order) =>
    (order.discountCodes ?? []).some((d) => d.discountCode.obj?.code === code),
  );
}

const FirstTimeInput = z.object({ email: z.email().max(254), code: Key });

/**
 * Whether the customer with this email has not yet used `code` on a completed order. Fails open, as
 * the reference: when the Service cannot tell, the learner is eligible (`checked: false` says so on
 * the flow record). An unconfigured Service still fails SERVICE_UNAVAILABLE: that is no outage.
 */
export async function firstTimeDiscountEligible(input: unknown) {
  const { email, code } = parse(FirstTimeInput, input);
  orderManagementClient();
  try {
    return { isEligible: !(await usedCode(code, { email })), checked: true };
  } catch (error) {
    if (error instanceof DomainError && error.extensions.code === ErrorCode.SERVICE_UNAVAILABLE)
      return { isEligible: true, checked: false, reason: error.message };
    throw error;
  }
}

/** The product and variant that sell `sku` (a course run key), or undefined. */
async function productOfSku(
  sku: string,
): Promise<{ product: CtProductProjection; variant: CtVariant } | undefined> {
  const page = await read<Page<CtProductProjection>>(
    'GET /product-projections/search',
    api()
      .productProjections()
      .search()
      .get({ queryArgs: { filter: [`variants.sku:${quoted(sku)}`], markMatchingVariants: true } }),
  );
  for (const product of page.results)
    for (const variant of [product.masterVariant, ...product.variants])
      if (variant.isMatchingVariant !== false && variant.sku === sku) return { product, variant };
  return undefined;
}

const DiscountCodeInput = z.object({ code: Key, courseRunKey: Key });

/**
 * Whether a discount code can apply to a course run, and its percentage: the code and its cart
 * discount active and valid now, a relative discount; a code limited per customer not yet used by
 * the caller; the cart discount's predicate met by the course run's product (a predicate this Plugin
 * cannot evaluate is skipped, as the reference does). An unknown code is BAD_USER_INPUT.
 */
export async function discountCodeApplicability(input: unknown, ctx: ActionContext) {
  const { code, courseRunKey } = parse(DiscountCodeInput, input);
  const caller = requirePrincipal(ctx.principal);
  // A Service asks for no one in particular: no customer's redemptions to check.
  const lmsUserId = caller.kind === 'service' ? undefined : caller.lmsUserId;
  const page = await read<Page<CtDiscountCode>>(
    'GET /discount-codes',
    api()
      .discountCodes()
      .get({
        queryArgs: { where: 'code = :code', 'var.code': code, expand: ['cartDiscounts[*]'], limit: 1 },
      }),
  );
  const found = page.results[0];
  const cartDiscount = found?.cartDiscounts[0]?.obj;
  if (!found || !cartDiscount) throw new DomainError(ErrorCode.BAD_USER_INPUT, 'Discount code not found');
  const discountPercentage =
    cartDiscount.value.type === 'relative' ? (cartDiscount.value.permyriad ?? 0) / 10_000 : 0;
  const checks: string[] = [];
  let isApplicable =
    found.isActive &&
    cartDiscount.isActive &&
    discountPercentage > 0 &&
    within(found.validFrom, found.validUntil) &&
    within(cartDiscount.validFrom, cartDiscount.validUntil);
  if (!isApplicable) checks.push('inactive, expired or not a percentage');

  if (isApplicable && (found.maxApplicationsPerCustomer ?? 0) > 0 && lmsUserId !== undefined) {
    const customers = await read<Page<{ id: string }>>(
      'GET /customers',
      api()
        .customers()
        .get({
          queryArgs: {
            where: 'custom(fields(lmsUserId = :lmsUserId))',
            'var.lmsUserId': String(lmsUserId),
            limit: 2,
          },
        }),
    );
    const customer = customers.results[0];
    if (customer && (await usedCode(code, { id: customer.id }))) {
      isApplicable = false;
      checks.push('already used by this customer');
    }
  }

  let predicateSkipped: string | undefined;
  if (isApplicable && cartDiscount.cartPredicate.replace(/\s+/g, '') !== EVERY_CART.replace(/\s+/g, '')) {
    const sold = await productOfSku(courseRunKey);
    if (sold) {
      try {
        isApplicable = checkCartPredicate(
          cartDiscount.cartPredicate,
          predicateContextOf(sold.product, sold.variant),
        );
        if (!isApplicable) checks.push('the course run does not meet the cart predicate');
      } catch (error) {
        if (!(error instanceof PredicateEvaluationError)) throw error;
        // The reference bypasses a predicate it cannot evaluate; the flow record keeps why.
        predicateSkipped = error.message;
      }
    } else predicateSkipped = `no product sells ${courseRunKey}`;
  }
  return {
    isApplicable,
    discountPercentage,
    notApplicableBecause: checks.length ? checks.join('; ') : null,
    predicateSkipped: predicateSkipped ?? null,
  };
}

/** The reference's default program offer, applied to every program its predicate does not exclude. */
export const DEFAULT_PROGRAM_OFFER_KEY = 'relative-1000-program-offer';

/** The program ids a cart discount's predicate names (`custom.bundleId = "…"` or `!= "…"`). */
function bundleIdsOf(predicate: string): string[] {
  return [...predicate.matchAll(/custom\.bundleId\s*(?:!=|=)\s*"([^"]+)"/g)].map((m) => m[1]!);
}

/**
 * The program's offer among the code-less cart discounts: one whose predicate names the program,
 * else the default offer unless its predicate names (excludes) the program.
 */
export function programOfferOf(
  discounts: readonly CtCartDiscount[],
  bundleKey: string,
): CtCartDiscount | undefined {
  const named = discounts.find(
    (d) => d.key !== DEFAULT_PROGRAM_OFFER_KEY && bundleIdsOf(d.cartPredicate ?? '').includes(bundleKey),
  );
  if (named) return named;
  const fallback = discounts.find((d) => d.key === DEFAULT_PROGRAM_OFFER_KEY);
  if (!fallback || bundleIdsOf(fallback.cartPredicate ?? '').includes(bundleKey)) return undefined;
  return fallback;
}

/** The course key of a program variant's key `<program>+<course key>` (the reference's regex). */
function courseKeyOfVariant(variantKey: string): string {
  return /^([a-f0-9-]+|[a-zA-Z]+)\+(.+)$/.exec(variantKey)?.[2] ?? '';
}

const ProgramPriceInput = z.object({
  bundleKey: Key,
  // The LMS passes the courses the learner still has to buy; a program has a few dozen at most.
  courseKeys: z.array(Key).max(100).default([]),
});

/**
 * What the learner pays for a program: the standalone prices of the entitlements of the courses
 * they still need, minus the program's offer (absolute cents or a permyriad), never below zero.
 */
export async function programPriceInfo(input: unknown) {
  const { bundleKey, courseKeys } = parse(ProgramPriceInput, input);
  if (!courseKeys.length) throw new DomainError(ErrorCode.BAD_USER_INPUT, 'No course keys provided');

  const programs = await read<Page<CtProductProjection>>(
    'GET /product-projections',
    api()
      .productProjections()
      .get({
        queryArgs: {
          where: 'key = :key',
          'var.key': bundleKey,
          expand: ['masterVariant.attributes[*].value', 'variants[*].attributes[*].value'],
          limit: 1,
        },
      }),
  );
  const program = programs.results[0];
  const entitlements: Array<{ sku: string; courseKey: string }> = [];
  const variants = program ? [program.masterVariant, ...program.variants] : [];
  for (const variant of variants) {
    const reference = variant.attributes?.find((a) => a.name === 'ref-edx-course-entitlement')?.value as
      { obj?: { masterData?: { current?: { masterVariant?: { sku?: string } } } } } | undefined;
    const sku = reference?.obj?.masterData?.current?.masterVariant?.sku;
    if (sku) entitlements.push({ sku, courseKey: courseKeyOfVariant(variant.key ?? '') });
  }
  if (!entitlements.length)
    throw new DomainError(ErrorCode.NOT_FOUND, `No program variants found for program ${bundleKey}`);

  const wanted = new Set(courseKeys);
  const skus = [...new Set(entitlements.filter((e) => wanted.has(e.courseKey)).map((e) => e.sku))];
  if (!skus.length)
    throw new DomainError(
      ErrorCode.BAD_USER_INPUT,
      `None of the course keys is a course of program ${bundleKey}`,
    );

  const [offers, prices] = await Promise.all([
    read<Page<CtCartDiscount>>(
      'GET /cart-discounts',
      api()
        .cartDiscounts()
        .get({
          queryArgs: {
            where: 'requiresDiscountCode = false and target(type = "lineItems") and isActive = true',
            sort: 'sortOrder desc',
            limit: 100,
          },
        }),
    ),
    read<Page<CtStandalonePrice>>(
      'GET /standalone-prices',
      api()
        .standalonePrices()
        .get({ queryArgs: { where: 'sku in :skus', 'var.skus': skus, limit: 500 } }),
    ),
  ]);
  // One price per entitlement (a SKU may have prices in several currencies: USD is the catalogue's).
  const priceOf = new Map<string, Money>();
  for (const price of prices.results) {
    const kept = priceOf.get(price.sku);
    if (!kept || (kept.currencyCode !== 'USD' && price.value.currencyCode === 'USD'))
      priceOf.set(price.sku, price.value);
  }
  const missing = skus.filter((sku) => !priceOf.has(sku));
  if (missing.length)
    throw new DomainError(ErrorCode.NOT_FOUND, `No standalone price for entitlement ${missing.join(', ')}`);
  const currencies = new Set([...priceOf.values()].map((m) => m.currencyCode));
  if (currencies.size > 1)
    throw new DomainError(
      ErrorCode.CONFLICT,
      `The entitlements are priced in several currencies: ${[...currencies].join(', ')}`,
    );
  const currency = [...currencies][0]!;
  const totalCents = [...priceOf.values()].reduce((sum, m) => sum + m.centAmount, 0);

  const offer = programOfferOf(offers.results, bundleKey);
  let discountedCents = totalCents;
  if (offer?.value.type === 'absolute') {
    const amount = offer.value.money?.find((m) => m.currencyCode === currency) ?? offer.value.money?.[0];
    discountedCents -= amount?.centAmount ?? 0;
  } else if (offer?.value.type === 'relative')
    discountedCents -= Math.round((totalCents * (offer.value.permyriad ?? 0)) / 10_000);
  discountedCents = Math.max(discountedCents, 0);

  return {
    bundleKey,
    currency,
    totalInclTaxExclDiscountsCents: totalCents,
    totalInclTaxCents: discountedCents,
    // Dollars, as the reference answers (cents / 100).
    totalInclTaxExclDiscounts: totalCents / 100,
    totalInclTax: discountedCents / 100,
    offerKey: offer?.key ?? null,
  };
}

const CreditInput = z.object({ courseRunKey: Key });

/**
 * The variant that sells a course run for credit (attributes `external-ids-variant` = the run,
 * `mode` = credit): its SKU is what the payment page is asked for. None is BAD_USER_INPUT.
 */
export async function creditVariant(input: unknown) {
  const { courseRunKey } = parse(CreditInput, input);
  const page = await read<Page<CtProductProjection>>(
    'GET /product-projections/search',
    api()
      .productProjections()
      .search()
      .get({
        queryArgs: {
          filter: [
            `variants.attributes.external-ids-variant:${quoted(courseRunKey)}`,
            'variants.attributes.mode:"credit"',
          ],
          markMatchingVariants: true,
        },
      }),
  );
  const attribute = (variant: CtVariant, name: string) => {
    const value = variant.attributes?.find((a) => a.name === name)?.value;
    return value && typeof value === 'object' && 'key' in value ? (value as { key: unknown }).key : value;
  };
  for (const product of page.results)
    for (const variant of [product.masterVariant, ...product.variants])
      if (
        variant.isMatchingVariant &&
        variant.sku &&
        attribute(variant, 'external-ids-variant') === courseRunKey &&
        attribute(variant, 'mode') === 'credit'
      )
        return { courseRunKey, creditSku: variant.sku };
  throw new DomainError(
    ErrorCode.BAD_USER_INPUT,
    `No credit variant found for course_run_key=${courseRunKey}`,
  );
}
