import { createLocalJWKSet, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { ConfigError, DomainError, ErrorCode } from '../errors.js';
import { createRemoteKeys, SigningKeysUnavailableError } from './jwks.js';
import type { Principal } from '@commerce-coordinator/plugin-sdk';

/** Where the keys that sign callers' JWTs come from; exactly one source. */
export interface AuthOptions {
  /** A JWKS endpoint (the LMS's `/api/user/v1/jwks` or any OIDC provider's). */
  jwksUrl?: string;
  /** A JWKS document (JSON), e.g. the LMS's public signing keys. */
  publicKeys?: string;
  /** A shared HS256 secret: development and tests only. */
  secret?: string;
  issuer?: string;
  audience?: string;
  /**
   * The OAuth clients whose client-credentials tokens stand for a Service (JWT_SERVICE_CLIENTS): by the
   * token's `client_id`, or, as the LMS issues them without one, by its application user's username.
   * @default none: every client-credentials token is read as the user it was issued for
   */
  serviceClients?: readonly string[];
}

/** A caller whose token verified. */
export interface Verified {
  principal: Principal;
  /** When the token expires, in ms since the epoch: a websocket it opened is closed then. */
  expiresAt?: number;
}

export interface Authenticator {
  /**
   * The principal of a request's `Authorization: Bearer <JWT>`, or undefined without one. A token that
   * does not verify is an error (UNAUTHENTICATED), never an anonymous request; keys that cannot be
   * fetched are SERVICE_UNAVAILABLE (the token may be good).
   */
  authenticate(authorization: string | undefined): Promise<Principal | undefined>;
  /** The same, with when the token expires. */
  verify(authorization: string | undefined): Promise<Verified | undefined>;
}

// The claims of an edX JWT (edx-drf-extensions): learners carry their LMS id and username; staff have
// `administrator`; Services authenticate with client credentials.
const claimsSchema = z.object({
  sub: z.string(),
  preferred_username: z.string().optional(),
  email: z.string().optional(),
  user_id: z.coerce.number().int().optional(),
  administrator: z.boolean().optional(),
  grant_type: z.string().optional(),
  client_id: z.string().optional(),
});

export function principalFromClaims(payload: JWTPayload, serviceClients: ReadonlySet<string>): Principal {
  const parsed = claimsSchema.safeParse(payload);
  if (!parsed.success) throw unauthenticated('The token has no subject');
  const claims = parsed.data;
  // The LMS gives client credentials to any application it registers (an enterprise customer's API
  // integration among them), each for a user of its own. Only our Services act as a Service; any other
  // client is the user its token was issued for, as the LMS reads it.
  if (claims.grant_type === 'client-credentials' || claims.grant_type === 'client_credentials') {
    const client = claims.client_id ?? claims.preferred_username;
    if (client !== undefined && serviceClients.has(client))
      return { kind: 'service', subject: claims.sub, service: client };
    if (!claims.preferred_username)
      throw unauthenticated(
        `The client ${client ?? claims.sub} is not one of the Coordinator's Services (JWT_SERVICE_CLIENTS) and its token names no user`,
      );
  }
  if (!claims.preferred_username) throw unauthenticated('The token has no preferred_username');
  if (claims.administrator)
    return {
      kind: 'staff',
      subject: claims.sub,
      username: claims.preferred_username,
      ...(claims.user_id !== undefined ? { lmsUserId: claims.user_id } : {}),
      ...(claims.email ? { email: claims.email } : {}),
    };
  if (claims.user_id === undefined) throw unauthenticated("A learner's token must carry user_id");
  return {
    kind: 'learner',
    subject: claims.sub,
    username: claims.preferred_username,
    lmsUserId: claims.user_id,
    ...(claims.email ? { email: claims.email } : {}),
  };
}

export function createAuthenticator(options: AuthOptions): Authenticator {
  const sources = [options.jwksUrl, options.publicKeys, options.secret].filter((s) => s !== undefined);
  if (sources.length !== 1)
    throw new ConfigError('environment', [
      'set exactly one of JWT_JWKS_URL, JWT_PUBLIC_KEYS or JWT_SECRET to verify callers',
    ]);
  // Every source as a key resolver, so one verify call serves them all.
  let key: JWTVerifyGetKey;
  if (options.jwksUrl) key = createRemoteKeys(new URL(options.jwksUrl));
  else if (options.publicKeys) {
    try {
      key = createLocalJWKSet(JSON.parse(options.publicKeys) as Parameters<typeof createLocalJWKSet>[0]);
    } catch (error) {
      throw new ConfigError('environment', [
        `JWT_PUBLIC_KEYS: not a JWKS document (${(error as Error).message})`,
      ]);
    }
  } else {
    const secret = new TextEncoder().encode(options.secret);
    key = () => secret;
  }
  const serviceClients = new Set(options.serviceClients);
  const verifyOptions = {
    // A token without an expiry would be good for ever; the LMS's always carry one.
    requiredClaims: ['exp'],
    ...(options.issuer ? { issuer: options.issuer } : {}),
    ...(options.audience ? { audience: options.audience } : {}),
  };

  const verify = async (authorization: string | undefined): Promise<Verified | undefined> => {
    if (!authorization) return undefined;
    const match = /^(?:Bearer|JWT)\s+(\S+)$/i.exec(authorization);
    if (!match) throw unauthenticated('Authorization must be "Bearer <JWT>"');
    try {
      const { payload } = await jwtVerify(match[1]!, key, verifyOptions);
      return { principal: principalFromClaims(payload, serviceClients), expiresAt: payload.exp! * 1000 };
    } catch (error) {
      if (error instanceof DomainError) throw error;
      // The LMS's keys cannot be read: the token may be good, so the caller is told to retry.
      if (error instanceof SigningKeysUnavailableError)
        throw new DomainError(ErrorCode.SERVICE_UNAVAILABLE, error.message);
      throw unauthenticated(`The token is not valid: ${(error as Error).message}`);
    }
  };
  return { verify, authenticate: async (authorization) => (await verify(authorization))?.principal };
}

const unauthenticated = (message: string) => new DomainError(ErrorCode.UNAUTHENTICATED, message);
