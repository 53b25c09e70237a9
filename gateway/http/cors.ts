import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode } from '../errors.js';
import { sendError } from './server.js';

/** The request headers a listed origin's page may send: credentials, Apollo's CSRF header, tracing. */
const ALLOWED_HEADERS =
  'authorization, content-type, apollo-require-preflight, x-apollo-operation-name, x-csrftoken, x-request-id, traceparent';

/**
 * CORS for the origins of `CORS_ORIGINS` only (exact `scheme://host[:port]`), with credentials: their
 * pages may call /graphql and the REST routes with the LMS's cookies. Any other origin gets no CORS
 * header, so a browser does not let its page read an answer. Returns true when it answered the request
 * (a preflight).
 */
export function handleCors(req: IncomingMessage, res: ServerResponse, origins: ReadonlySet<string>): boolean {
  const origin = req.headers.origin;
  if (!origins.size || !origin) return false;
  const allowed = origins.has(origin);
  const preflight = req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
  res.setHeader('vary', 'Origin');
  if (allowed) {
    res.setHeader('access-control-allow-origin', origin);
    res.setHeader('access-control-allow-credentials', 'true');
  }
  if (!preflight) return false;
  if (!allowed) {
    sendError(res, ErrorCode.FORBIDDEN, `Origin ${origin} is not in CORS_ORIGINS`);
    return true;
  }
  res.writeHead(204, {
    'access-control-allow-methods': 'GET, POST, OPTIONS',
    'access-control-allow-headers': ALLOWED_HEADERS,
    'access-control-max-age': '600',
  });
  res.end();
  return true;
}
