import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ErrorCode } from '../errors.js';
import { sendError, type Route } from '../http/server.js';
import { pageSecurityHeaders, staticPageRoutes } from '../http/static-files.js';

/** Where the bundled explorer is served. */
export const EXPLORER_PATH = '/explorer';

/** What scripts/bundle-explorer.ts wrote (git-ignored; made after every install). */
const BUNDLE_DIR = fileURLToPath(new URL('./bundle/', import.meta.url));

/**
 * GraphiQL talks to this gateway's /graphql only. Its editors set style attributes, so inline styles
 * are allowed; scripts are not.
 */
const SECURITY_HEADERS = pageSecurityHeaders({
  'style-src': "'self' 'unsafe-inline'",
  'img-src': "'self' data:",
  'font-src': "'self' data:",
});

/**
 * The explorer's routes: GraphiQL, bundled and served from this origin, for developers whose browser
 * cannot reach Apollo Sandbox's CDN. Without a bundle (an install that skipped its scripts) the page
 * says how to make one.
 */
export function explorerRoutes(bundleDir = BUNDLE_DIR): Map<string, Route> {
  if (!existsSync(`${bundleDir}index.html`)) {
    const missing: Route = (_req, res) =>
      sendError(
        res,
        ErrorCode.SERVICE_UNAVAILABLE,
        'The explorer is not built: run `npm run build:explorer` (every `npm ci` does it)',
      );
    return new Map([
      [EXPLORER_PATH, missing],
      [`${EXPLORER_PATH}/`, missing],
    ]);
  }
  return staticPageRoutes({
    path: EXPLORER_PATH,
    dirs: [bundleDir],
    headers: SECURITY_HEADERS,
    name: 'the explorer',
  });
}
