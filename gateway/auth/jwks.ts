import { createLocalJWKSet, errors, type JWTVerifyGetKey } from 'jose';

/** The signing keys could not be fetched, and none fetched before can answer: an outage, not a bad token. */
export class SigningKeysUnavailableError extends Error {
  override readonly name = 'SigningKeysUnavailableError';
}

export interface RemoteKeysOptions {
  /** Keys older than this are fetched again, by the next verification. @default 10 minutes */
  maxAgeMs?: number;
  /**
   * After an attempt to fetch the keys, how long until the next one: for a token of a key the set
   * lacks (a rotation) and after a failure. @default 30 s
   */
  cooldownMs?: number;
  /** How long one fetch may take. @default 5 s */
  timeoutMs?: number;
}

/**
 * The keys of a JWKS endpoint (the LMS's), as jose's `createRemoteJWKSet` serves them, but kept
 * through an outage of the endpoint. jose refetches old keys (10 minutes) for every verification
 * and fails it when the fetch fails, and tries again at once for the next one: while the LMS's
 * endpoint is down every caller was refused and every request of the gateway became one to the
 * endpoint. Here the keys fetched last stay in use until a fetch succeeds (a key the LMS withdraws
 * goes at the first fetch that lists it no more), at most one fetch runs at once, and a failed one is
 * not tried again within the cooldown. Without any keys yet, a verification fails with
 * SigningKeysUnavailableError.
 */
export function createRemoteKeys(url: URL, options: RemoteKeysOptions = {}): JWTVerifyGetKey {
  const maxAgeMs = options.maxAgeMs ?? 10 * 60_000;
  const cooldownMs = options.cooldownMs ?? 30_000;
  const timeoutMs = options.timeoutMs ?? 5_000;
  let keys: JWTVerifyGetKey | undefined;
  let fetchedAt = -Infinity;
  let attemptedAt = -Infinity;
  /** Why the last fetch failed; undefined once one succeeded. */
  let failure: string | undefined;
  let pending: Promise<void> | undefined;

  const fetchKeys = async () => {
    attemptedAt = Date.now();
    try {
      // Not following redirects, as jose does not: the keys come from the configured URL only.
      const response = await fetch(url, {
        redirect: 'manual',
        headers: { accept: 'application/json, application/jwk-set+json' },
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (response.status !== 200) throw new Error(`it answered HTTP ${response.status}`);
      // createLocalJWKSet checks the document is a key set.
      keys = createLocalJWKSet((await response.json()) as Parameters<typeof createLocalJWKSet>[0]);
      fetchedAt = Date.now();
      failure = undefined;
    } catch (error) {
      failure = (error as Error).message;
    }
  };
  const refresh = () => (pending ??= fetchKeys().finally(() => (pending = undefined)));
  const coolingDown = () => Date.now() - attemptedAt < cooldownMs;
  const unavailable = () =>
    new SigningKeysUnavailableError(
      `The signing keys cannot be fetched from JWT_JWKS_URL (${failure ?? 'no answer yet'}); retry later`,
    );

  return async (header, token) => {
    if (pending) await pending;
    else if ((!keys || Date.now() - fetchedAt >= maxAgeMs) && !coolingDown()) await refresh();
    if (!keys) throw unavailable();
    try {
      return await keys(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
      // A key the set lacks: the LMS may have rotated since the keys were fetched.
      if (!coolingDown()) await refresh();
      else if (pending) await pending;
      // Not knowing whether the key exists is an outage too, not a forged token.
      if (failure !== undefined) throw unavailable();
      return keys(header, token);
    }
  };
}
