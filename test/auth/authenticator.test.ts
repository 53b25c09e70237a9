import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../gateway/auth/authenticator.js';
import { signToken } from '../../gateway/auth/tokens.js';
import { ConfigError } from '../../gateway/errors.js';

const SECRET = 'a-secret-of-sixteen-or-more';

/** The public code of what `run` rejects with. */
const codeOf = (run: Promise<unknown>) =>
  run.then(
    () => 'resolved',
    (error: { extensions?: { code?: string } }) => error.extensions?.code ?? String(error),
  );

describe('callers are verified from their JWT', () => {
  const auth = createAuthenticator({ secret: SECRET, serviceClients: ['lms'] });

  it('maps a learner, a staff member and a Service to their principal', async () => {
    const learner = await signToken(SECRET, { kind: 'learner', lmsUserId: 7, username: 'ada', email: 'a@x' });
    expect(await auth.authenticate(`Bearer ${learner}`)).toEqual({
      kind: 'learner',
      subject: 'ada',
      lmsUserId: 7,
      username: 'ada',
      email: 'a@x',
    });
    const staff = await signToken(SECRET, { kind: 'staff', username: 'grace' });
    expect(await auth.authenticate(`JWT ${staff}`)).toMatchObject({ kind: 'staff', username: 'grace' });
    const service = await signToken(SECRET, { kind: 'service', clientId: 'lms' });
    expect(await auth.authenticate(`Bearer ${service}`)).toEqual({
      kind: 'service',
      subject: 'lms',
      service: 'lms',
    });
  });

  it("reads another client's credentials as the user they were issued for", async () => {
    const issued = (claims: Record<string, unknown>) =>
      new SignJWT({ grant_type: 'client-credentials', ...claims })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('an-anonymous-id')
        .setExpirationTime('1m')
        .sign(new TextEncoder().encode(SECRET));
    const worker = await issued({ preferred_username: 'discovery_worker', administrator: true });
    expect(await auth.authenticate(`Bearer ${worker}`)).toMatchObject({
      kind: 'staff',
      username: 'discovery_worker',
    });
    const integration = await issued({ client_id: 'acme', preferred_username: 'acme_admin', user_id: 12 });
    expect(await auth.authenticate(`Bearer ${integration}`)).toMatchObject({
      kind: 'learner',
      lmsUserId: 12,
    });
    // A listed client, named by its application user as the LMS's tokens carry no client_id.
    const lms = await issued({ preferred_username: 'lms' });
    expect(await auth.authenticate(`Bearer ${lms}`)).toEqual({
      kind: 'service',
      subject: 'an-anonymous-id',
      service: 'lms',
    });
    const unnamed = await signToken(SECRET, { kind: 'service', clientId: 'not-ours' });
    expect(await codeOf(auth.authenticate(`Bearer ${unnamed}`))).toBe('UNAUTHENTICATED');
  });

  it('treats a request without a token as anonymous', async () => {
    expect(await auth.authenticate(undefined)).toBeUndefined();
  });

  it('refuses a token signed with another key, an expired one, a malformed header and a learner without user_id', async () => {
    const other = await signToken('another-secret-of-sixteen', { kind: 'staff', username: 'eve' });
    expect(await codeOf(auth.authenticate(`Bearer ${other}`))).toBe('UNAUTHENTICATED');
    const expired = await signToken(SECRET, { kind: 'staff', username: 'old' }, { expiresIn: '-1m' });
    expect(await codeOf(auth.authenticate(`Bearer ${expired}`))).toBe('UNAUTHENTICATED');
    expect(await codeOf(auth.authenticate('Basic dXNlcjpwYXNz'))).toBe('UNAUTHENTICATED');
    const noId = await new SignJWT({ preferred_username: 'x' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('x')
      .sign(new TextEncoder().encode(SECRET));
    expect(await codeOf(auth.authenticate(`Bearer ${noId}`))).toBe('UNAUTHENTICATED');
  });

  it('refuses a token without an expiry: it would be good for ever', async () => {
    const forever = await new SignJWT({ preferred_username: 'ada', user_id: 3 })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('ada')
      .setIssuedAt()
      .sign(new TextEncoder().encode(SECRET));
    await expect(auth.authenticate(`Bearer ${forever}`)).rejects.toMatchObject({
      message: 'The token is not valid: missing required "exp" claim',
      extensions: { code: 'UNAUTHENTICATED' },
    });
  });

  it('checks issuer and audience when configured', async () => {
    const strict = createAuthenticator({ secret: SECRET, issuer: 'https://lms', audience: 'coordinator' });
    const good = await signToken(
      SECRET,
      { kind: 'staff', username: 's' },
      { issuer: 'https://lms', audience: 'coordinator' },
    );
    expect(await strict.authenticate(`Bearer ${good}`)).toMatchObject({ kind: 'staff' });
    const wrongAudience = await signToken(
      SECRET,
      { kind: 'staff', username: 's' },
      { issuer: 'https://lms', audience: 'other' },
    );
    expect(await codeOf(strict.authenticate(`Bearer ${wrongAudience}`))).toBe('UNAUTHENTICATED');
  });

  it('refuses a configuration with no key source, or two, or a JWKS that is not JSON', () => {
    expect(() => createAuthenticator({})).toThrow(ConfigError);
    expect(() => createAuthenticator({ secret: SECRET, jwksUrl: 'http://x/jwks' })).toThrow(ConfigError);
    expect(() => createAuthenticator({ publicKeys: '{not json' })).toThrow(/JWT_PUBLIC_KEYS/);
  });
});

describe('RS256 keys from a JWKS document or a JWKS URL', () => {
  let server: Server;
  let jwksUrl: string;
  let sign: (claims: Record<string, unknown>) => Promise<string>;
  let jwks: string;

  beforeAll(async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    jwks = JSON.stringify({ keys: [jwk] });
    sign = (claims) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setSubject('s')
        .setExpirationTime('5m')
        .sign(privateKey);
    server = createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(jwks),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('verifies with the public keys given inline and fetched from the URL', async () => {
    const jwt = await sign({ preferred_username: 'ada', user_id: 3 });
    for (const auth of [createAuthenticator({ publicKeys: jwks }), createAuthenticator({ jwksUrl })])
      expect(await auth.authenticate(`Bearer ${jwt}`)).toMatchObject({ kind: 'learner', lmsUserId: 3 });
  });

  it('refuses an HS256 token when only RS256 public keys are trusted', async () => {
    const forged = await signToken(SECRET, { kind: 'staff', username: 'mallory' });
    expect(await codeOf(createAuthenticator({ jwksUrl }).authenticate(`Bearer ${forged}`))).toBe(
      'UNAUTHENTICATED',
    );
  });
});
