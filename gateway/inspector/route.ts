import { fileURLToPath } from 'node:url';
import type { Route } from '../http/server.js';
import { staticPageRoutes } from '../http/static-files.js';

/** Where the flow inspector is served. */
export const INSPECTOR_PATH = '/inspector';

/** The page's own files: plain ES modules the browser runs as they are, so there is nothing to build. */
const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));

/**
 * The page may load its own files and talk to the gateway's /graphql (HTTP and websocket), nothing
 * else: no inline script runs even if a record's text reached the markup, and no other site may frame
 * it (its buttons act on flows).
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/** The flow inspector's routes: `/inspector/` (its page) and each of its files. */
export function inspectorRoutes(): Map<string, Route> {
  return staticPageRoutes({
    path: INSPECTOR_PATH,
    dirs: [STATIC_DIR],
    headers: SECURITY_HEADERS,
    name: 'the inspector',
  });
}
