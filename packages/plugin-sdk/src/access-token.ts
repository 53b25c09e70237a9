import { z } from 'zod';

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

/**
 * The token request of an OAuth2 client-credentials grant as edX's OAuth provider (the LMS,
 * django-oauth-toolkit) takes it, asking for a JWT: what the Services behind the LMS accept.
 */
export function clientCredentialsRequest(credentials: {
  clientId: string;
  clientSecret: string;
}): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: credentials.clientId,
      client_secret: credentials.clientSecret,
      token_type: 'jwt',
    }),
  };
}

const tokenAnswerSchema = z.object({ access_token: z.string().min(1), expires_in: z.number().positive() });

/** The token of an OAuth2 token answer (RFC 6749 §5.1), or undefined when the body is not one. */
export function issuedTokenOf(body: unknown): IssuedToken | undefined {
  const answer = tokenAnswerSchema.safeParse(body);
  return answer.success
    ? { value: answer.data.access_token, expiresInSeconds: answer.data.expires_in }
    : undefined;
}
