import type { IncomingHttpHeaders } from 'node:http';
import { DomainError, ErrorCode } from '../errors.js';

/**
 * The cookies the LMS signs callers in with (edx-drf-extensions' JWT cookie): the JWT split in two, so
 * that the page's JavaScript can read who is signed in (header and payload) but never the signature,
 * which the LMS sets HttpOnly.
 */
export const EDX_JWT_COOKIES = {
  headerPayload: 'edx-jwt-cookie-header-payload',
  signature: 'edx-jwt-cookie-signature',
} as const;

/** The cookies of a `Cookie` header; of a name sent twice the first counts (the most specific path). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const pair of (header ?? '').split(';')) {
    const at = pair.indexOf('=');
    if (at < 1) continue;
    const name = pair.slice(0, at).trim();
    let value = pair.slice(at + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (name && !cookies.has(name)) cookies.set(name, decodeCookieValue(value));
  }
  return cookies;
}

function decodeCookieValue(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * `JWT <header.payload.signature>` put together from the edX JWT cookies, as an Authorization header
 * would carry it; undefined when neither cookie is there. One without the other is UNAUTHENTICATED:
 * the caller meant to sign in, and an anonymous answer would hide why nothing is theirs.
 */
export function authorizationFromCookies(cookieHeader: string | undefined): string | undefined {
  const cookies = parseCookies(cookieHeader);
  const headerPayload = cookies.get(EDX_JWT_COOKIES.headerPayload);
  const signature = cookies.get(EDX_JWT_COOKIES.signature);
  if (headerPayload === undefined && signature === undefined) return undefined;
  if (!headerPayload || !signature) {
    const missing = headerPayload ? EDX_JWT_COOKIES.signature : EDX_JWT_COOKIES.headerPayload;
    throw new DomainError(
      ErrorCode.UNAUTHENTICATED,
      `The edX JWT cookies are incomplete: ${missing} is missing; sign in to the LMS again`,
    );
  }
  return `JWT ${headerPayload}.${signature}`;
}

/**
 * A request's credentials: its Authorization header, or else its edX JWT cookies. Only for requests
 * another site cannot forge with the browser's cookies: GraphQL over HTTP, where Apollo Server's CSRF
 * prevention refuses every request a page of another origin could send without a CORS preflight
 * (which the gateway never grants), and websockets opened by the gateway's own pages (`isSameOrigin`).
 */
export function requestAuthorization(headers: IncomingHttpHeaders): string | undefined {
  return headers.authorization || authorizationFromCookies(headers.cookie);
}

/**
 * True when a browser says the request comes from a page of the gateway's own origin. Browsers send
 * `Origin` with every websocket handshake and scripts cannot change it; websockets have no CORS, so
 * without this check any site could open one with the visitor's cookies.
 */
export function isSameOrigin(headers: IncomingHttpHeaders): boolean {
  const { origin, host } = headers;
  if (!origin || !host) return false;
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

/**
 * The credentials of a graphql-ws connection: the `authorization` of its `connection_init` payload, or
 * its handshake's `Authorization` header (which no page can set on a websocket), or else the edX JWT
 * cookies of its handshake, when a page of the gateway's own origin opened it.
 */
export function subscriberAuthorization(
  connectionParams: Readonly<Record<string, unknown>> | undefined,
  headers: IncomingHttpHeaders,
): string | undefined {
  if (typeof connectionParams?.authorization === 'string') return connectionParams.authorization;
  if (headers.authorization) return headers.authorization;
  return isSameOrigin(headers) ? authorizationFromCookies(headers.cookie) : undefined;
}
