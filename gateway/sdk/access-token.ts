/** An access token as a Service's OAuth endpoint answers it. */
export interface IssuedToken {
  value: string;
  expiresInSeconds: number;
}

export interface AccessToken {
  /** The current token, fetched when there is none or it is about to expire. */
  get(): Promise<string>;
  /** Forgets the token (the Service refused it: revoked, or expired early). */
  invalidate(): void;
}

/**
 * Keeps a Service's OAuth access token (client credentials) until shortly before it expires.
 * Concurrent callers share one request for a new token; a failed request is not cached.
 */
export function accessToken(
  issue: () => Promise<IssuedToken>,
  options: { marginMs?: number } = {},
): AccessToken {
  const marginMs = options.marginMs ?? 60_000;
  let current: { value: string; renewAt: number } | undefined;
  let pending: Promise<string> | undefined;
  return {
    get() {
      if (current && Date.now() < current.renewAt) return Promise.resolve(current.value);
      pending ??= issue()
        .then((token) => {
          current = {
            value: token.value,
            renewAt: Date.now() + Math.max(0, token.expiresInSeconds * 1000 - marginMs),
          };
          return token.value;
        })
        .finally(() => (pending = undefined));
      return pending;
    },
    invalidate() {
      current = undefined;
    },
  };
}
