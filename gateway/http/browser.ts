import type { IncomingMessage } from 'node:http';
import { authorizationFromCookies, parseCookies } from '../auth/cookies.js';
import { DomainError, ErrorCode } from '../errors.js';

/** Where an anonymous browser is sent to sign in, and the Coordinator's own public base URL. */
export interface BrowserLogin {
  /** The LMS login page, e.g. `https://courses.example.com/login`. */
  loginUrl: string;
  /** The Coordinator's URL as browsers reach it (`PUBLIC_URL`): `next` is built on it, never on Host. */
  publicUrl: string;
}

/** The cookie and header of edX's CSRF protection (Django's): a cookie caller must echo the cookie. */
export const CSRF_COOKIE = 'csrftoken';
export const CSRF_HEADER = 'x-csrftoken';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A REST route's credentials: the Authorization header, or else the edX JWT cookies. A request that
 * changes something with cookies alone must carry `X-CSRFToken` equal to the `csrftoken` cookie: a
 * page of another site can make the browser send the cookies, but can neither read the cookie nor set
 * the header (FORBIDDEN otherwise).
 */
export function routeAuthorization(req: IncomingMessage): string | undefined {
  if (req.headers.authorization) return req.headers.authorization;
  const fromCookies = authorizationFromCookies(req.headers.cookie);
  if (fromCookies && !SAFE_METHODS.has(req.method ?? 'GET')) {
    const expected = parseCookies(req.headers.cookie).get(CSRF_COOKIE);
    const sent = req.headers[CSRF_HEADER];
    if (!expected || sent !== expected)
      throw new DomainError(
        ErrorCode.FORBIDDEN,
        `A ${req.method} signed in by cookies needs the ${CSRF_HEADER} header equal to the ${CSRF_COOKIE} cookie`,
      );
  }
  return fromCookies;
}

/** A browser navigating (a GET that accepts HTML) without credentials: sent to sign in, not told 401. */
export function wantsLogin(req: IncomingMessage): boolean {
  return (
    req.method === 'GET' &&
    /\btext\/html\b/.test(req.headers.accept ?? '') &&
    !req.headers.authorization &&
    authorizationFromCookies(req.headers.cookie) === undefined
  );
}

/**
 * The LMS login URL with `next` back to this request at the Coordinator's public URL. Only the path
 * and query of the request are kept, so neither a Host header nor a `//other.site` path can send the
 * browser anywhere else after the login.
 */
export function loginRedirect(req: IncomingMessage, login: BrowserLogin): string {
  const asked = new URL(req.url ?? '/', 'http://localhost');
  const next = `${login.publicUrl.replace(/\/+$/, '')}${asked.pathname}${asked.search}`;
  const url = new URL(login.loginUrl);
  url.searchParams.set('next', next);
  return url.toString();
}
