import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { compilePredicate, PredicateError, type Variables } from './predicate.js';
import { CtError, type Money, type OrderManagementStore, type Reference } from './store.js';

/**
 * The catalogue and discounts of the order management stand-in, as commercetools answers for them:
 * discount codes (with their cart discounts expanded), cart discounts, product projections (queried by
 * `where=` and searched by `filter=`, entitlement references expanded), standalone prices, and the
 * discount codes redeemed on orders (`discountCodes[*].discountCode`).
 *
 *   GET /{projectKey}/discount-codes?where=code=:code&var.code=…&expand=cartDiscounts[*]
 *   GET /{projectKey}/cart-discounts?where=…&sort=sortOrder desc
 *   GET /{projectKey}/product-projections?where=key=:key&expand=variants[*].attributes[*].value
 *   GET /{projectKey}/product-projections/search?filter=variants.sku:"…"&markMatchingVariants=true
 *   GET /{projectKey}/standalone-prices?where=sku in :skus
 */

export const CatalogSeedSchema = z
  .object({
    /** Cart discounts: relative (`permyriad`) or absolute (`amountCents`). */
    cartDiscounts: z
      .array(
        z
          .object({
            key: z.string().min(1),
            name: z.string().optional(),
            permyriad: z.number().int().min(0).max(10_000).optional(),
            amountCents: z.number().int().min(0).optional(),
            currency: z.string().length(3).optional(),
            cartPredicate: z.string().optional(),
            requiresDiscountCode: z.boolean().optional(),
            isActive: z.boolean().optional(),
            sortOrder: z.string().optional(),
            validFrom: z.iso.datetime().optional(),
            validUntil: z.iso.datetime().optional(),
          })
          .strict()
          .refine((d) => (d.permyriad === undefined) !== (d.amountCents === undefined), {
            message: 'a cart discount has either permyriad or amountCents',
          }),
      )
      .optional(),
    discountCodes: z
      .array(
        z
          .object({
            code: z.string().min(1),
            /** The key of its cart discount (seeded in the same or an earlier seed). */
            cartDiscount: z.string().min(1),
            isActive: z.boolean().optional(),
            maxApplicationsPerCustomer: z.number().int().min(0).optional(),
            validFrom: z.iso.datetime().optional(),
            validUntil: z.iso.datetime().optional(),
          })
          .strict(),
      )
      .optional(),
    products: z
      .array(
        z
          .object({
            id: z.string().min(1).optional(),
            key: z.string().min(1),
            name: z.string().min(1),
            variants: z
              .array(
                z
                  .object({
                    sku: z.string().min(1),
                    key: z.string().min(1).optional(),
                    attributes: z.record(z.string(), z.unknown()).optional(),
                    /** A program's variant: the SKU of the course entitlement product it references. */
                    entitlementSku: z.string().min(1).optional(),
                  })
                  .strict(),
              )
              .min(1),
          })
          .strict(),
      )
      .optional(),
    standalonePrices: z
      .array(
        z
          .object({
            sku: z.string().min(1),
            centAmount: z.number().int().min(0),
            currency: z.string().length(3).optional(),
          })
          .strict(),
      )
      .optional(),
    /** Discount codes redeemed on seeded orders (by order number): what the first-time check reads. */
    redemptions: z
      .array(z.object({ orderNumber: z.string().min(1), code: z.string().min(1) }).strict())
      .optional(),
  })
  .strict();
export type CatalogSeed = z.input<typeof CatalogSeedSchema>;

interface Versioned {
  id: string;
  version: number;
  createdAt: string;
  lastModifiedAt: string;
}
export interface CartDiscount extends Versioned {
  key: string;
  name: Record<string, string>;
  value:
    | { type: 'relative'; permyriad: number }
    | { type: 'absolute'; money: Money[]; applicationMode: 'ProportionateDistribution' };
  cartPredicate: string;
  target: { type: 'lineItems'; predicate: string };
  sortOrder: string;
  isActive: boolean;
  requiresDiscountCode: boolean;
  stackingMode: 'Stacking';
  validFrom?: string;
  validUntil?: string;
}
export interface DiscountCode extends Versioned {
  code: string;
  cartDiscounts: Reference[];
  isActive: boolean;
  maxApplicationsPerCustomer?: number;
  cartPredicate?: string;
  groups: string[];
  references: Reference[];
  validFrom?: string;
  validUntil?: string;
}
export interface Variant {
  id: number;
  sku: string;
  key?: string;
  attributes: Array<{ name: string; value: unknown }>;
  prices: unknown[];
  images: unknown[];
  isMatchingVariant?: boolean;
}
export interface ProductProjection extends Versioned {
  key: string;
  name: Record<string, string>;
  slug: Record<string, string>;
  productType: Reference;
  masterVariant: Variant;
  variants: Variant[];
  published: boolean;
  hasStagedChanges: boolean;
}
export interface StandalonePrice extends Versioned {
  sku: string;
  value: Money;
  active: boolean;
}

type CatalogKind = 'discount-codes' | 'cart-discounts' | 'product-projections' | 'standalone-prices';
export const CATALOG_RESOURCES: readonly string[] = [
  'discount-codes',
  'cart-discounts',
  'product-projections',
  'standalone-prices',
];

const money = (centAmount: number, currencyCode: string): Money => ({
  type: 'centPrecision',
  currencyCode,
  centAmount,
  fractionDigits: 2,
});
const clone = <T>(value: T): T => structuredClone(value);
const MAX_LIMIT = 500;

export class OrderManagementCatalog {
  readonly cartDiscounts = new Map<string, CartDiscount>();
  readonly discountCodes = new Map<string, DiscountCode>();
  readonly products = new Map<string, ProductProjection>();
  constructor(
    private readonly store: OrderManagementStore,
    /** Shared with the checkout side, whose products' prices the same endpoint answers. */
    readonly standalonePrices = new Map<string, StandalonePrice>(),
  ) {}

  private table(kind: CatalogKind): Map<string, unknown> {
    switch (kind) {
      case 'discount-codes':
        return this.discountCodes;
      case 'cart-discounts':
        return this.cartDiscounts;
      case 'product-projections':
        return this.products;
      default:
        return this.standalonePrices;
    }
  }

  seed(seed: CatalogSeed | undefined) {
    const created = {
      cartDiscounts: [] as CartDiscount[],
      discountCodes: [] as DiscountCode[],
      products: [] as ProductProjection[],
      standalonePrices: [] as StandalonePrice[],
    };
    if (!seed) return created;
    // Every reference is checked before anything is stored: a rejected seed leaves nothing behind.
    const discountKeys = new Set([
      ...[...this.cartDiscounts.values()].map((d) => d.key),
      ...(seed.cartDiscounts ?? []).map((d) => d.key),
    ]);
    const codes = new Set([
      ...[...this.discountCodes.values()].map((c) => c.code),
      ...(seed.discountCodes ?? []).map((c) => c.code),
    ]);
    for (const c of seed.discountCodes ?? [])
      if (!discountKeys.has(c.cartDiscount))
        throw new CtError(400, 'InvalidInput', `No cart discount with key '${c.cartDiscount}'.`);
    for (const r of seed.redemptions ?? [])
      if (!codes.has(r.code) || ![...this.store.orders.values()].some((o) => o.orderNumber === r.orderNumber))
        throw new CtError(400, 'InvalidInput', `No order ${r.orderNumber} or discount code ${r.code}.`);
    const now = new Date().toISOString();
    const versioned = () => ({ id: randomUUID(), version: 1, createdAt: now, lastModifiedAt: now });
    for (const d of seed.cartDiscounts ?? []) {
      const discount: CartDiscount = {
        ...versioned(),
        key: d.key,
        name: { 'en-US': d.name ?? d.key },
        value:
          d.permyriad !== undefined
            ? { type: 'relative', permyriad: d.permyriad }
            : {
                type: 'absolute',
                money: [money(d.amountCents!, d.currency ?? 'USD')],
                applicationMode: 'ProportionateDistribution',
              },
        cartPredicate: d.cartPredicate ?? '1 = 1',
        target: { type: 'lineItems', predicate: '1 = 1' },
        sortOrder: d.sortOrder ?? String(0.1 + this.cartDiscounts.size / 1000),
        isActive: d.isActive ?? true,
        requiresDiscountCode: d.requiresDiscountCode ?? false,
        stackingMode: 'Stacking',
        ...(d.validFrom ? { validFrom: d.validFrom } : {}),
        ...(d.validUntil ? { validUntil: d.validUntil } : {}),
      };
      this.cartDiscounts.set(discount.id, discount);
      created.cartDiscounts.push(discount);
    }
    for (const c of seed.discountCodes ?? []) {
      const discount = [...this.cartDiscounts.values()].find((d) => d.key === c.cartDiscount);
      if (!discount) throw new CtError(400, 'InvalidInput', `No cart discount with key '${c.cartDiscount}'.`);
      const code: DiscountCode = {
        ...versioned(),
        code: c.code,
        cartDiscounts: [{ typeId: 'cart-discount', id: discount.id }],
        isActive: c.isActive ?? true,
        ...(c.maxApplicationsPerCustomer !== undefined
          ? { maxApplicationsPerCustomer: c.maxApplicationsPerCustomer }
          : {}),
        groups: [],
        references: [],
        ...(c.validFrom ? { validFrom: c.validFrom } : {}),
        ...(c.validUntil ? { validUntil: c.validUntil } : {}),
      };
      this.discountCodes.set(code.id, code);
      created.discountCodes.push(code);
    }
    for (const p of seed.products ?? []) {
      const variants = p.variants.map((v, i): Variant => ({
        id: i + 1,
        sku: v.sku,
        ...(v.key ? { key: v.key } : {}),
        attributes: [
          ...Object.entries(v.attributes ?? {}).map(([name, value]) => ({ name, value })),
          ...(v.entitlementSku
            ? [{ name: 'ref-edx-course-entitlement', value: this.entitlementRef(v.entitlementSku) }]
            : []),
        ],
        prices: [],
        images: [],
      }));
      const product: ProductProjection = {
        ...versioned(),
        ...(p.id ? { id: p.id } : {}),
        key: p.key,
        name: { 'en-US': p.name },
        slug: { 'en-US': p.key.toLowerCase().replace(/[^a-z0-9]+/g, '-') },
        productType: { typeId: 'product-type', id: 'product-type-edx' },
        masterVariant: variants[0]!,
        variants: variants.slice(1),
        published: true,
        hasStagedChanges: false,
      };
      this.products.set(product.id, product);
      created.products.push(product);
    }
    for (const s of seed.standalonePrices ?? []) {
      const price: StandalonePrice = {
        ...versioned(),
        sku: s.sku,
        value: money(s.centAmount, s.currency ?? 'USD'),
        active: true,
      };
      this.standalonePrices.set(price.id, price);
      created.standalonePrices.push(price);
    }
    for (const r of seed.redemptions ?? []) {
      const order = [...this.store.orders.values()].find((o) => o.orderNumber === r.orderNumber);
      const code = [...this.discountCodes.values()].find((c) => c.code === r.code);
      if (!order || !code)
        throw new CtError(400, 'InvalidInput', `No order ${r.orderNumber} or discount code ${r.code}.`);
      const redeemed = order as typeof order & { discountCodes?: unknown[] };
      redeemed.discountCodes = [
        ...(redeemed.discountCodes ?? []),
        { discountCode: { typeId: 'discount-code', id: code.id }, state: 'MatchesCart' },
      ];
    }
    return created;
  }

  /** A reference to the entitlement product whose master variant has `sku` (created when absent). */
  private entitlementRef(sku: string): Reference {
    const existing = [...this.products.values()].find((p) => p.masterVariant.sku === sku);
    if (existing) return { typeId: 'product', id: existing.id };
    const now = new Date().toISOString();
    const product: ProductProjection = {
      id: randomUUID(),
      version: 1,
      createdAt: now,
      lastModifiedAt: now,
      key: `entitlement-${sku}`,
      name: { 'en-US': `Entitlement ${sku}` },
      slug: { 'en-US': `entitlement-${sku.toLowerCase()}` },
      productType: { typeId: 'product-type', id: 'product-type-edx-entitlement' },
      masterVariant: { id: 1, sku, attributes: [], prices: [], images: [] },
      variants: [],
      published: true,
      hasStagedChanges: false,
    };
    this.products.set(product.id, product);
    return { typeId: 'product', id: product.id };
  }

  /** Answers a catalogue GET (`rest` is what follows the resource in the path), or undefined. */
  answer(resource: string, rest: readonly string[], params: URLSearchParams): unknown {
    if (!CATALOG_RESOURCES.includes(resource)) return undefined;
    const kind = resource as CatalogKind;
    if (kind === 'product-projections' && rest.length === 1 && rest[0] === 'search')
      return this.search(params);
    if (rest.length === 1) {
      const found = this.table(kind).get(rest[0]!);
      if (!found)
        throw new CtError(404, 'ResourceNotFound', `The Resource with ID '${rest[0]}' was not found.`);
      return this.expand(found, params.getAll('expand'));
    }
    if (rest.length) return undefined;
    return this.query(kind, params);
  }

  private page(params: URLSearchParams) {
    const limit = Number(params.get('limit') ?? 20);
    const offset = Number(params.get('offset') ?? 0);
    if (!Number.isInteger(limit) || limit < 0 || limit > MAX_LIMIT)
      throw new CtError(400, 'InvalidInput', `The limit must be an integer between 0 and ${MAX_LIMIT}.`);
    if (!Number.isInteger(offset) || offset < 0)
      throw new CtError(400, 'InvalidInput', 'The offset must be a non-negative integer.');
    return { limit, offset };
  }

  private query(kind: CatalogKind, params: URLSearchParams) {
    const { limit, offset } = this.page(params);
    const variables = new Map<string, string[]>();
    for (const [name, value] of params)
      if (name.startsWith('var.'))
        variables.set(name.slice(4), [...(variables.get(name.slice(4)) ?? []), value]);
    let matchers: Array<(r: unknown) => boolean>;
    try {
      matchers = params.getAll('where').map((where) => compilePredicate(where, variables as Variables));
    } catch (error) {
      if (error instanceof PredicateError)
        throw new CtError(400, 'InvalidInput', `Malformed parameter: where: ${error.message}`);
      throw error;
    }
    let results = [...this.table(kind).values()].filter((r) => matchers.every((m) => m(r)));
    for (const sort of params.getAll('sort').reverse()) {
      const [field, direction] = sort.trim().split(/\s+/) as [string, string | undefined];
      const sign = direction?.toLowerCase() === 'desc' ? -1 : 1;
      const value = (r: unknown) => String((r as Record<string, unknown>)[field] ?? '');
      results = [...results].sort((a, b) => sign * value(a).localeCompare(value(b)));
    }
    const page = results.slice(offset, offset + limit).map((r) => this.expand(r, params.getAll('expand')));
    return { limit, offset, count: page.length, total: results.length, results: page };
  }

  /**
   * Product projection search: every `filter` must be met by some variant of a product (commercetools
   * filters products), and with `markMatchingVariants` a variant is marked when it meets them all.
   */
  private search(params: URLSearchParams) {
    const { limit, offset } = this.page(params);
    const filters = params.getAll('filter').map(parseFilter);
    const mark = params.get('markMatchingVariants') === 'true';
    const results: ProductProjection[] = [];
    for (const product of this.products.values()) {
      const variants = [product.masterVariant, ...product.variants];
      if (!filters.every((f) => variants.some((v) => f(product, v)))) continue;
      const copy = clone(product);
      if (mark)
        for (const v of [copy.masterVariant, ...copy.variants])
          v.isMatchingVariant = filters.every((f) => f(product, v));
      results.push(copy);
    }
    const page = results.slice(offset, offset + limit);
    return { limit, offset, count: page.length, total: results.length, results: page, facets: {} };
  }

  /** Expands `variants[*].attributes[*].value` (product references) and `cartDiscounts[*]`. */
  expand<T>(resource: T, paths: readonly string[]): T {
    if (!paths.length) return resource;
    const copy = clone(resource) as Record<string, unknown>;
    const resolve = (ref: unknown) => {
      const r = ref as Reference | undefined;
      if (!r || typeof r !== 'object' || typeof r.id !== 'string') return;
      if (r.typeId === 'cart-discount') {
        const found = this.cartDiscounts.get(r.id);
        if (found) r.obj = clone(found);
      } else if (r.typeId === 'discount-code') {
        const found = this.discountCodes.get(r.id);
        if (found) r.obj = clone(found);
      } else if (r.typeId === 'product') {
        const found = this.products.get(r.id);
        // A product reference expands to the Product (current and staged data), not the projection.
        if (found)
          r.obj = {
            id: found.id,
            version: found.version,
            key: found.key,
            masterData: {
              published: true,
              current: {
                name: found.name,
                slug: found.slug,
                masterVariant: found.masterVariant,
                variants: found.variants,
              },
              staged: {
                name: found.name,
                slug: found.slug,
                masterVariant: found.masterVariant,
                variants: found.variants,
              },
            },
          };
      }
    };
    for (const path of paths) {
      if (path === 'cartDiscounts[*]')
        for (const ref of (copy.cartDiscounts as unknown[]) ?? []) resolve(ref);
      if (path === 'discountCodes[*].discountCode')
        for (const entry of (copy.discountCodes as Array<{ discountCode?: unknown }>) ?? [])
          resolve(entry.discountCode);
      if (path === 'masterVariant.attributes[*].value')
        for (const a of (copy.masterVariant as Variant | undefined)?.attributes ?? []) resolve(a.value);
      if (path === 'variants[*].attributes[*].value')
        for (const v of (copy.variants as Variant[] | undefined) ?? [])
          for (const a of v.attributes) resolve(a.value);
    }
    return copy as T;
  }
}

/** One `filter=` of product projection search: `variants.sku:"x"` or `variants.attributes.<name>:"x","y"`. */
function parseFilter(source: string): (product: ProductProjection, variant: Variant) => boolean {
  const match = /^\s*([A-Za-z][\w.-]*)\s*:\s*(.+)$/.exec(source);
  if (!match) throw new CtError(400, 'InvalidInput', `Malformed parameter: filter: '${source}'`);
  const [, field, rawValues] = match as unknown as [string, string, string];
  const values: string[] = [];
  const valuePattern = /\s*"((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  valuePattern.lastIndex = 0;
  while (valuePattern.lastIndex < rawValues.length) {
    const at = valuePattern.lastIndex;
    const v = valuePattern.exec(rawValues);
    if (!v || valuePattern.lastIndex === at)
      throw new CtError(400, 'InvalidInput', `Malformed parameter: filter: '${source}'`);
    values.push(JSON.parse(`"${v[1]}"`) as string);
    if (v[2] === '') break;
  }
  if (!values.length) throw new CtError(400, 'InvalidInput', `Malformed parameter: filter: '${source}'`);
  const read = (product: ProductProjection, variant: Variant): unknown => {
    if (field === 'key') return product.key;
    if (field === 'variants.sku') return variant.sku;
    if (field === 'variants.key') return variant.key;
    if (field.startsWith('variants.attributes.')) {
      const name = field.slice('variants.attributes.'.length);
      const value = variant.attributes.find((a) => a.name === name)?.value;
      // An enum attribute is filtered by its key.
      return value && typeof value === 'object' && 'key' in value ? (value as { key: unknown }).key : value;
    }
    throw new CtError(400, 'InvalidInput', `Malformed parameter: filter: unknown field '${field}'`);
  };
  return (product, variant) => {
    const value = read(product, variant);
    return value !== undefined && values.includes(String(value));
  };
}
