// @ts-check
// GraphQL over HTTP to the gateway's /graphql, signed in as the session says. JSON bodies only: with the
// edX cookies, that is what lets the gateway tell this page from a form another site posts (Apollo
// Server's CSRF prevention refuses the requests a browser sends cross-site without a preflight).
import { authorization } from './session.js';

/** The gateway's GraphQL endpoint, beside the page (`/inspector/` → `/graphql`). */
export const GRAPHQL_URL = new URL('../graphql', location.href);

/** Dispatched on the window when the gateway no longer knows the caller. */
export const SIGNED_OUT = 'inspector:signed-out';

/** An error the gateway answered with: its public code and message. */
export class ApiError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
  }
}

/**
 * Runs an operation; resolves with its data, rejects with the first error's code and message.
 * @param {string} query
 * @param {Record<string, unknown>} [variables]
 * @returns {Promise<any>}
 */
export async function graphql(query, variables = {}) {
  /** @type {Record<string, string>} */
  const headers = { 'content-type': 'application/json' };
  const auth = authorization();
  if (auth) headers.authorization = auth;
  let response;
  try {
    response = await fetch(GRAPHQL_URL, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
      credentials: 'same-origin',
    });
  } catch (error) {
    throw new ApiError('UNREACHABLE', `The gateway cannot be reached: ${String(error)}`);
  }
  /** @type {{ data?: any, errors?: Array<{ message?: string, extensions?: { code?: string } }> }} */
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`HTTP_${response.status}`, `The gateway answered ${response.status} without JSON`);
  }
  const [first] = body.errors ?? [];
  if (!first) return body.data;
  const error = new ApiError(first.extensions?.code ?? 'UNKNOWN', first.message ?? 'Unknown error');
  // A token that expired while the page was open: the page asks to sign in again.
  if (error.code === 'UNAUTHENTICATED') dispatchEvent(new CustomEvent(SIGNED_OUT, { detail: error }));
  throw error;
}
