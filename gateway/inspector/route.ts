import { fileURLToPath } from 'node:url';
import type { Route } from '../http/server.js';
import { pageSecurityHeaders, staticPageRoutes } from '../http/static-files.js';

/** Where the flow inspector is served. */
export const INSPECTOR_PATH = '/inspector';

/** The page's own files: plain ES modules the browser runs as they are, so there is nothing to build. */
const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));

/** The inspector's buttons act on flows: no other site may frame it, and nothing loads from elsewhere. */
const SECURITY_HEADERS = pageSecurityHeaders();

/** The flow inspector's routes: `/inspector/` (its page) and each of its files. */
export function inspectorRoutes(): Map<string, Route> {
  return staticPageRoutes({
    path: INSPECTOR_PATH,
    dirs: [STATIC_DIR],
    headers: SECURITY_HEADERS,
    name: 'the inspector',
  });
}
