import { describe, expect, it } from 'vitest';
import { compareIds } from '../../gateway/events/redis-feed.js';

describe('feed cursors (stream ids) compare as numbers', () => {
  it.each([
    ['9-0', '10-0', -1],
    ['10-0', '9-0', 1],
    ['1700000000000-9', '1700000000000-10', -1],
    ['1700000000001-0', '1700000000000-99', 1],
    ['1700000000000-5', '1700000000000-5', 0],
    ['0010-0', '9-0', 1],
    ['10-007', '10-7', 0],
    ['0-0', '0-1', -1],
  ])('%s vs %s → %i', (a, b, expected) => {
    expect(compareIds(a, b)).toBe(expected);
    expect(compareIds(b, a)).toBe(-expected || 0);
  });

  it('orders like BigInt comparison over random ids', () => {
    const id = () => `${Math.floor(Math.random() * 1e13)}-${Math.floor(Math.random() * 20)}`;
    const big = (s: string) => s.split('-').map(BigInt) as [bigint, bigint];
    for (let i = 0; i < 2_000; i++) {
      const [a, b] = [id(), id()];
      const [[am, as], [bm, bs]] = [big(a), big(b)];
      const expected = am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
      expect(compareIds(a, b), `${a} vs ${b}`).toBe(expected);
    }
  });
});
