import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createAuthenticator } from '../../gateway/auth/authenticator.js';
import { startTestCoordinator } from '../support/coordinator.js';

/**
 * The LMS's JWKS endpoint (JWT_JWKS_URL) going down is an outage of ours, not a bad token. Before, a
 * caller with a good token was told UNAUTHENTICATED ("The token is not valid: Expected 200 OK…"), so
 * frontends signed learners out; once the keys were ten minutes old every request waited on a fetch
 * of them again, and each failed fetch was tried again by the very next request, so an endpoint that
 * was down got a request from the gateway for every request the gateway got.
 */

interface Signer {
  jwk: JWK;
  sign(claims: Record<string, unknown>): Promise<string>;
}

async function signer(kid: string): Promise<Signer> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  return {
    jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' },
    sign: (claims) => signWith(privateKey, kid, claims),
  };
}
const signWith = (key: CryptoKey, kid: string, claims: Record<string, unknown>) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid })
    .setSubject('s')
    .setExpirationTime('1h')
    .sign(key);

let server: Server;
let jwksUrl: string;
/** What the endpoint answers: the keys, or a status without them. */
const endpoint: { keys: JWK[]; status: number; requests: number } = { keys: [], status: 200, requests: 0 };
let first: Signer;
let second: Signer;

beforeAll(async () => {
  [first, second] = await Promise.all([signer('k1'), signer('k2')]);
  server = createServer((_req, res) => {
    endpoint.requests += 1;
    if (endpoint.status !== 200) return res.writeHead(endpoint.status).end('down');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: endpoint.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
afterEach(() => {
  vi.useRealTimers();
  Object.assign(endpoint, { keys: [first.jwk], status: 200, requests: 0 });
});

const codeOf = (run: Promise<unknown>) =>
  run.then(
    () => 'resolved',
    (error: { extensions?: { code?: string } }) => error.extensions?.code ?? String(error),
  );
const learner = { preferred_username: 'ada', user_id: 3 };
const MINUTE = 60_000;

describe('a JWKS endpoint that is down', () => {
  it('leaves the keys fetched before in use, also once they are old', async () => {
    Object.assign(endpoint, { keys: [first.jwk], status: 200, requests: 0 });
    vi.useFakeTimers({ toFake: ['Date'] });
    const auth = createAuthenticator({ jwksUrl });
    const token = await first.sign(learner);
    expect(await auth.authenticate(`Bearer ${token}`)).toMatchObject({ kind: 'learner', lmsUserId: 3 });
    endpoint.status = 503;
    vi.setSystemTime(Date.now() + 11 * MINUTE);
    expect(await auth.authenticate(`Bearer ${token}`)).toMatchObject({ kind: 'learner', lmsUserId: 3 });
    // Tried again now and then, not by every request.
    const asked = endpoint.requests;
    for (let i = 0; i < 10; i++) await auth.authenticate(`Bearer ${token}`);
    expect(endpoint.requests - asked).toBeLessThanOrEqual(1);
  });

  it('is SERVICE_UNAVAILABLE to callers while no keys were ever fetched, and asked once per cooldown', async () => {
    Object.assign(endpoint, { keys: [first.jwk], status: 503, requests: 0 });
    const auth = createAuthenticator({ jwksUrl });
    const token = await first.sign(learner);
    const codes = [];
    for (let i = 0; i < 10; i++) codes.push(await codeOf(auth.authenticate(`Bearer ${token}`)));
    expect(codes).toEqual(Array(10).fill('SERVICE_UNAVAILABLE'));
    expect(endpoint.requests).toBe(1);
  });

  it('answers GraphQL callers 503 SERVICE_UNAVAILABLE, not 401: their token may be good', async () => {
    Object.assign(endpoint, { keys: [first.jwk], status: 503, requests: 0 });
    const t = await startTestCoordinator('trust-jwks-outage', {
      overrides: { auth: { jwksUrl, serviceClients: ['lms'] } },
    });
    try {
      const res = await fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await first.sign(learner)}` },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      expect(res.status).toBe(503);
      const body = (await res.json()) as { errors: Array<{ extensions: { code: string } }> };
      expect(body.errors[0]!.extensions.code).toBe('SERVICE_UNAVAILABLE');
    } finally {
      await t.stop();
    }
  });
});

describe('a JWKS endpoint that is up', () => {
  it('finds a new key when a token needs it, and drops the key the endpoint no longer lists', async () => {
    Object.assign(endpoint, { keys: [first.jwk], status: 200, requests: 0 });
    vi.useFakeTimers({ toFake: ['Date'] });
    const auth = createAuthenticator({ jwksUrl });
    const old = await first.sign(learner);
    expect(await codeOf(auth.authenticate(`Bearer ${old}`))).toBe('resolved');
    // The LMS rotates: the new key signs, the old one is withdrawn.
    endpoint.keys = [second.jwk];
    vi.setSystemTime(Date.now() + MINUTE);
    expect(await codeOf(auth.authenticate(`Bearer ${await second.sign(learner)}`))).toBe('resolved');
    expect(await codeOf(auth.authenticate(`Bearer ${old}`))).toBe('UNAUTHENTICATED');
    // A token no key verifies is UNAUTHENTICATED, as before.
    const forged = await signWith((await generateKeyPair('RS256')).privateKey, 'k2', learner);
    expect(await codeOf(auth.authenticate(`Bearer ${forged}`))).toBe('UNAUTHENTICATED');
  });
});
