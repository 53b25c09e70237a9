import { getOperationAST, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { repeatedSelections } from '../../gateway/federation/repeated-selections.js';

const count = (source: string) => {
  const document = parse(source);
  return repeatedSelections(document, getOperationAST(document)!);
};

describe('repeatedSelections', () => {
  it('counts one response name as validation merges it: fragments, inline fragments, aliases', () => {
    expect(count('{ a b c }')).toBe(1);
    expect(count('{ a a ... on Query { a } ...F } fragment F on Query { a x: a }')).toBe(4);
    // An alias is its own response name.
    expect(count('{ x: a y: a z: a }')).toBe(1);
  });

  it("merges same-named fields' selections, however deep", () => {
    expect(count('{ o { a } o { a } o { b } }')).toBe(3);
    expect(count('{ o { p { a } } o { p { a } } ...F } fragment F on Query { o { p { a } } }')).toBe(3);
  });

  it('ends on a fragment cycle (validation refuses it) and on an exponential expansion', () => {
    expect(count('{ ...A } fragment A on Query { a ...B } fragment B on Query { a ...A }')).toBe(2);
    const chain = Array.from(
      { length: 30 },
      (_, i) => `fragment F${i} on Query { a ...F${i + 1} ...F${i + 1} }`,
    );
    const started = performance.now();
    // 2^30 spreads if walked out: the walk stops at its budget, having counted far past any limit.
    expect(count(`{ ...F0 } ${chain.join(' ')} fragment F30 on Query { a }`)).toBeGreaterThan(1_000);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
