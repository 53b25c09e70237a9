import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEnv } from '../../gateway/env.js';
import { ConfigError } from '../../gateway/errors.js';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';

/**
 * CORS over real HTTP: only the origins of CORS_ORIGINS get CORS headers (with credentials), their
 * preflights are answered on /graphql and the REST routes, another origin's preflight is refused; a
 * Coordinator without CORS_ORIGINS sends no CORS header at all.
 */

const LMS = 'https://courses.example.com';
const EVIL = 'https://evil.example.net';
let t: TestCoordinator;
let plain: TestCoordinator;

beforeAll(async () => {
  t = await startTestCoordinator('cors', { redis: false, overrides: { corsOrigins: [LMS] } });
  plain = await startTestCoordinator('cors-off', { redis: false });
});

afterAll(async () => {
  await t?.stop();
  await plain?.stop();
});

const preflight = (url: string, origin: string) =>
  fetch(url, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type, authorization',
    },
  });

const query = (url: string, origin: string) =>
  fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { origin, 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ __typename }' }),
  });

describe('CORS', () => {
  it('answers a listed origin’s preflight on /graphql and on a REST route, with credentials', async () => {
    for (const path of ['/graphql', '/healthz']) {
      const res = await preflight(`${t.url}${path}`, LMS);
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBe(LMS);
      expect(res.headers.get('access-control-allow-credentials')).toBe('true');
      expect(res.headers.get('access-control-allow-methods')).toContain('POST');
      expect(res.headers.get('access-control-allow-headers')).toContain('authorization');
      expect(res.headers.get('vary')).toContain('Origin');
    }
    const res = await query(t.url, LMS);
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(LMS);
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
  });

  it('refuses another origin’s preflight (403 FORBIDDEN) and gives its requests no CORS header', async () => {
    const res = await preflight(`${t.url}/graphql`, EVIL);
    expect(res.status).toBe(403);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(await res.json()).toMatchObject({ code: 'FORBIDDEN' });
    const answer = await query(t.url, EVIL);
    expect(answer.headers.get('access-control-allow-origin')).toBeNull();
    expect(answer.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('sends no CORS header without CORS_ORIGINS', async () => {
    const res = await query(plain.url, LMS);
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('refuses a CORS_ORIGINS entry that is not an origin', () => {
    expect(() => readEnv({ CORS_ORIGINS: `${LMS}, courses.example.com/path` })).toThrow(ConfigError);
    expect(readEnv({ CORS_ORIGINS: `${LMS}, http://localhost:3000` }).CORS_ORIGINS).toEqual([
      LMS,
      'http://localhost:3000',
    ]);
  });
});
