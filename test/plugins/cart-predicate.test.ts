import { describe, expect, it } from 'vitest';
import {
  checkCartPredicate,
  parseCartPredicate,
  PredicateEvaluationError,
  predicateContextOf,
} from '../../subgraphs/order-management/cart-predicate.js';

/**
 * The cart predicate evaluator of the order-management Plugin (the reference's CartPredicateParser),
 * against one course run's product and variant.
 */

const context = predicateContextOf(
  { id: 'prod-1', key: 'edX+DemoX' },
  {
    sku: 'course-v1:edX+DemoX+2026',
    key: 'edX+DemoX+2026-verified',
    attributes: [
      { name: 'mode', value: 'verified' },
      { name: 'course-key', value: 'edX+DemoX' },
      { name: 'lob', value: { key: 'edx', label: 'edX' } },
      { name: 'price-tier', value: 3 },
      { name: 'is-featured', value: true },
    ],
  },
);

const check = (predicate: string) => checkCartPredicate(predicate, context);

describe('cart predicates', () => {
  it('compare fields with =, !=, <, >, <=, >= (numbers as numbers, strings as strings)', () => {
    expect(check('quantity = 1')).toBe(true);
    expect(check('quantity != 1')).toBe(false);
    expect(check('attributes.mode = "verified"')).toBe(true);
    expect(check('attributes.mode = "audit"')).toBe(false);
    expect(check('attributes.`price-tier` > 2')).toBe(true);
    expect(check('attributes.`price-tier` <= 2.5')).toBe(false);
    expect(check('attributes.`price-tier` >= 3 and attributes.`price-tier` < 4')).toBe(true);
    expect(check('product.key = "edX+DemoX"')).toBe(true);
    expect(check('variant.sku = "course-v1:edX+DemoX+2026"')).toBe(true);
    expect(check('variant.key = "edX+DemoX+2026-verified"')).toBe(true);
  });

  it('read enum attributes by key, and booleans as the reference does (true = 1)', () => {
    expect(check('attributes.lob = "edx"')).toBe(true);
    expect(check('attributes.`is-featured` = true')).toBe(true);
    expect(check('attributes.`is-featured` = false')).toBe(false);
  });

  it('combine with and / or / parentheses, and binding tighter than or', () => {
    expect(check('attributes.mode = "audit" or quantity = 1 and product.key = "edX+DemoX"')).toBe(true);
    expect(check('(attributes.mode = "audit" or quantity = 1) and product.key = "nope"')).toBe(false);
    expect(check('attributes.mode = "audit" or (quantity = 1 and product.key = "nope")')).toBe(false);
  });

  it('test membership with in / not in, and definedness', () => {
    expect(check('attributes.mode in ("verified", "professional")')).toBe(true);
    expect(check('attributes.mode not in ("verified", "professional")')).toBe(false);
    expect(check('attributes.mode in ()')).toBe(false);
    expect(check('custom.bundleId is defined')).toBe(false);
    expect(check('custom.bundleId is not defined')).toBe(true);
    expect(check('attributes.missing is not defined')).toBe(true);
    expect(check('attributes.mode is defined')).toBe(true);
  });

  it('evaluate lineItemCount / lineItemExists over the one line', () => {
    expect(check('lineItemCount(attributes.mode = "verified") > 0')).toBe(true);
    expect(check('lineItemExists(attributes.mode = "audit") = true')).toBe(false);
    expect(check('lineItemCount(attributes.mode = "verified") = 1 and quantity = 1')).toBe(true);
  });

  it('take the every-cart predicate as true', () => {
    expect(check('1 = 1')).toBe(true);
    expect(check(' 1=1 ')).toBe(true);
  });

  it('unescape strings', () => {
    const quoted = predicateContextOf({ id: 'p' }, { sku: 'a"b', attributes: [] });
    expect(checkCartPredicate('variant.sku = "a\\"b"', quoted)).toBe(true);
  });

  it('refuse what it cannot evaluate with a PredicateEvaluationError, never another error', () => {
    for (const bad of [
      'attributes.mode =',
      'attributes.mode = "verified" and',
      '(quantity = 1',
      'quantity = 1)',
      'attributes.mode ~ "x"',
      '"verified" = attributes.mode',
      'attributes.unknown = "x"',
      'totalPrice.centAmount > 100',
      'unknownFn(quantity = 1) = 1',
      'lineItemCount() = 1',
      'attributes.mode > 1',
      'attributes.mode = "unterminated',
      'attributes.`` = 1',
      '',
      '   ',
      '('.repeat(5000) + 'quantity = 1' + ')'.repeat(5000),
      'quantity = 1 or '.repeat(2000) + 'quantity = 1',
      '\u0000',
    ]) {
      expect(() => check(bad), bad.slice(0, 40)).toThrow(PredicateEvaluationError);
    }
  });

  it('parse the reference suite examples', () => {
    for (const predicate of [
      'quantity = 1 and attributes.mode = "verified"',
      'product.key = "TestX+CS101"',
      'attributes.`course-key` = "x"',
      'custom.bundleId is defined',
      'lineItemCount(attributes.mode in ("verified", "professional")) = 1',
    ])
      expect(() => parseCartPredicate(predicate)).not.toThrow();
  });
});
