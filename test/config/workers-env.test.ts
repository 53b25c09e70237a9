import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { readEnv } from '../../gateway/env.js';
import { ConfigError } from '../../gateway/errors.js';

const REDIS_URL = 'redis://127.0.0.1:6379';

/** The problems readEnv reports for `vars`, or [] when it accepts them. */
function problems(vars: Record<string, string>): readonly string[] {
  try {
    readEnv(vars);
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.problems;
  }
}

describe('WORKERS', () => {
  it('is 1 unless set; a number, or auto for one per core', () => {
    expect(readEnv({}).WORKERS).toBe(1);
    expect(readEnv({ WORKERS: '3', REDIS_URL }).WORKERS).toBe(3);
    expect(readEnv({ WORKERS: 'auto', REDIS_URL }).WORKERS).toBe(availableParallelism());
  });

  it('refuses 0, fractions and words', () => {
    expect(problems({ WORKERS: '0', REDIS_URL })).toEqual(['WORKERS: must be 1 or more, or auto']);
    expect(problems({ WORKERS: '1.5', REDIS_URL })).toEqual(['WORKERS: must be a whole number or auto']);
    expect(problems({ WORKERS: 'many', REDIS_URL })).toEqual(['WORKERS: must be a whole number or auto']);
  });

  it('more than 1 needs REDIS_URL: the in-process bus cannot span processes', () => {
    expect(problems({ WORKERS: '2' })).toEqual([
      'WORKERS: more than 1 needs REDIS_URL: the in-process signal bus and event feed cannot span worker processes',
    ]);
    expect(problems({ WORKERS: '1' })).toEqual([]);
  });
});
