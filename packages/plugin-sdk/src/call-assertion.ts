import { createHash, createHmac, randomUUID, webcrypto } from 'node:crypto';
import { errors as joseErrors, jwtVerify } from 'jose';
import { z } from 'zod';
import { principalSchema, type Principal } from './principal.js';

/**
 * The gateway's signed assertion of one call to a remote subgraph: who calls (the verified principal),
 * for which flow step, to which subgraph, and over exactly which request body. A remote subgraph builds
 * the ActionContext from nothing else, so whoever can reach it cannot claim a caller or a flow step.
 *
 * The wire form is a compact HS256 JWT (typ `coordinator-call+jwt`) in one header, signed with a
 * secret the gateway shares with its remote subgraphs.
 */
export const CALL_ASSERTION_HEADER = 'x-coordinator-assertion';

/** Keeps assertions apart from callers' JWTs, even if someone gave both the same secret. */
const ASSERTION_TYPE = 'coordinator-call+jwt';
const ISSUER = 'commerce-coordinator';

/** How long an assertion is valid: it is signed just before its request is sent. */
export const CALL_ASSERTION_LIFETIME_S = 60;
/**
 * The clock skew tolerated between the gateway and a subgraph, on `iat` and `exp`: enough for hosts
 * kept by NTP, small next to the lifetime.
 */
export const CALL_ASSERTION_LEEWAY_S = 5;
/** HS256 keys shorter than its 256-bit hash are weak (RFC 7518 §3.2). */
export const MIN_SIGNING_SECRET_BYTES = 32;

export const stepIdentitySchema = z.object({
  flowId: z.string().min(1),
  stepIndex: z.number().int().min(0),
  attempt: z.number().int().min(1),
  idempotencyKey: z.string().min(1),
});
/** Which flow step a call serves; the idempotency key is the same on every retry and after recovery. */
export type StepIdentity = z.infer<typeof stepIdentitySchema>;

/** What a call carries to an Action: its caller and, for a flow step, the step. */
export interface ActionCall {
  principal?: Principal;
  step?: StepIdentity;
}

const claimsSchema = z.object({
  principal: principalSchema.optional(),
  step: stepIdentitySchema.optional(),
  bodySha256: z.string().min(1),
  jti: z.string().min(1),
  iat: z.number(),
});

/** The problem with a signing secret, or undefined when it will do. */
export function signingSecretProblem(secret: unknown): string | undefined {
  if (typeof secret !== 'string' || !secret) return 'is required';
  const bytes = Buffer.byteLength(secret, 'utf8');
  return bytes < MIN_SIGNING_SECRET_BYTES
    ? `must be at least ${MIN_SIGNING_SECRET_BYTES} bytes, not ${bytes}`
    : undefined;
}

const bodyHash = (body: string | Uint8Array) => createHash('sha256').update(body).digest('base64url');

export interface CallSigner {
  /** The assertion of `call` to the subgraph `audience`, bound to exactly these body bytes. */
  sign(call: ActionCall, audience: string, body: string | Uint8Array): string;
}

/**
 * Signs assertions with node:crypto's HMAC: the compact JWS is a few lines, and costs a tenth of
 * jose's asynchronous WebCrypto signing on a path every subgraph fetch takes. `secret` must already be
 * checked with `signingSecretProblem`.
 */
export function createCallSigner(secret: string, options: { now?: () => number } = {}): CallSigner {
  const key = Buffer.from(secret, 'utf8');
  const now = options.now ?? (() => Date.now());
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: ASSERTION_TYPE })).toString('base64url');
  return {
    sign(call, audience, body) {
      const iat = Math.floor(now() / 1000);
      const claims = {
        iss: ISSUER,
        aud: audience,
        iat,
        exp: iat + CALL_ASSERTION_LIFETIME_S,
        jti: randomUUID(),
        ...(call.principal ? { principal: call.principal } : {}),
        ...(call.step ? { step: call.step } : {}),
        bodySha256: bodyHash(body),
      };
      const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
      return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
    },
  };
}

export type CallVerification = { ok: true; call: ActionCall } | { ok: false; reason: string };

export interface CallVerifier {
  /** Checks the assertion of a call received with exactly `body`; each assertion is accepted once. */
  verify(assertion: string | undefined, body: Uint8Array): Promise<CallVerification>;
}

/**
 * Verifies assertions addressed to the subgraph `audience` (with jose: the algorithm, type, issuer,
 * audience and times). A verifier remembers the ids of the assertions it accepted until they expire,
 * so a captured call cannot be sent again to this server, even unchanged.
 */
export function createCallVerifier(options: {
  secret: string;
  audience: string;
  now?: () => number;
}): CallVerifier {
  // Imported once: jose would import a raw key again on every call.
  const key = webcrypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(options.secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['verify'],
  );
  const now = options.now ?? (() => Date.now());
  // Assertion id → the end of its validity (s): `iat` + the lifetime, whatever its `exp`, as
  // `maxTokenAge` refuses it after that. Insertion order is close to that order, so sweeping from the
  // front drops only ids no longer valid, and the map holds about a lifetime's worth of calls.
  const accepted = new Map<string, number>();
  const refuse = (reason: string): CallVerification => ({ ok: false, reason });
  return {
    async verify(assertion, body) {
      if (!assertion) return refuse(`no ${CALL_ASSERTION_HEADER} header`);
      const at = now();
      let payload;
      try {
        ({ payload } = await jwtVerify(assertion, await key, {
          algorithms: ['HS256'],
          typ: ASSERTION_TYPE,
          issuer: ISSUER,
          audience: options.audience,
          maxTokenAge: CALL_ASSERTION_LIFETIME_S,
          requiredClaims: ['exp', 'jti'],
          clockTolerance: CALL_ASSERTION_LEEWAY_S,
          currentDate: new Date(at),
        }));
      } catch (error) {
        return refuse(reasonOf(error));
      }
      const claims = claimsSchema.safeParse(payload);
      if (!claims.success) return refuse('its claims are malformed');
      if (claims.data.bodySha256 !== bodyHash(body))
        return refuse('it was signed for another body (operation or variables)');
      const seconds = at / 1000;
      for (const [id, until] of accepted) {
        if (until + CALL_ASSERTION_LEEWAY_S >= seconds) break;
        accepted.delete(id);
      }
      if (accepted.has(claims.data.jti)) return refuse('it was already used');
      accepted.set(claims.data.jti, claims.data.iat + CALL_ASSERTION_LIFETIME_S);
      const { principal, step } = claims.data;
      return { ok: true, call: { ...(principal ? { principal } : {}), ...(step ? { step } : {}) } };
    },
  };
}

function reasonOf(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'it has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return 'it is addressed to another subgraph';
    if (error.claim === 'iat') return 'it was issued in the future (check the clocks)';
    return `its ${error.claim} claim is not valid`;
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed)
    return 'its signature does not verify (another secret, or changed claims)';
  return 'it is not a valid assertion';
}
