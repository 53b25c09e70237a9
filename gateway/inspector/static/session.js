// @ts-check
// Who is signed in: a token pasted into the page, kept in this tab's sessionStorage (gone when the tab
// closes, never sent to another tab), or else the LMS's edX JWT cookies, which the browser sends by
// itself and whose signature the page cannot read (HttpOnly).

const TOKEN_KEY = 'coordinator.inspector.token';
const HEADER_PAYLOAD_COOKIE = 'edx-jwt-cookie-header-payload';

/** @typedef {{ via: 'token' | 'cookies', claims: Record<string, unknown> | undefined }} Credentials */

/** @returns {string | null} */
export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** @param {string} token */
export function keepToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * How this tab's requests are signed in.
 * @returns {Credentials}
 */
export function credentials() {
  const token = storedToken();
  if (token) return { via: 'token', claims: claimsOf(token) };
  const cookie = document.cookie
    .split(';')
    .map((c) => c.trim())
    .find((c) => c.startsWith(`${HEADER_PAYLOAD_COOKIE}=`));
  return {
    via: 'cookies',
    claims: cookie ? claimsOf(cookie.slice(HEADER_PAYLOAD_COOKIE.length + 1)) : undefined,
  };
}

/**
 * The Authorization header of a request, when a token was pasted; with the cookies, none.
 * @returns {string | undefined}
 */
export function authorization() {
  const token = storedToken();
  return token ? `Bearer ${token}` : undefined;
}

/**
 * A JWT's claims, for showing who is signed in (the gateway verifies them; the page only reads them).
 * @param {string} jwt `header.payload[.signature]`
 * @returns {Record<string, unknown> | undefined}
 */
function claimsOf(jwt) {
  try {
    const payload = decodeURIComponent(jwt).split('.')[1];
    if (!payload) return undefined;
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The signed-in caller in a few words, from the claims of an edX JWT.
 * @param {Record<string, unknown> | undefined} claims
 */
export function callerName(claims) {
  if (!claims) return 'signed in with the LMS';
  if (claims.grant_type === 'client-credentials' || claims.grant_type === 'client_credentials')
    return `service ${String(claims.client_id ?? claims.sub)}`;
  const kind = claims.administrator ? 'staff' : 'learner';
  return `${kind} ${String(claims.preferred_username ?? claims.sub)}`;
}
