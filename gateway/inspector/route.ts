import { readdirSync, readFileSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode } from '../errors.js';
import { sendError, type Route } from '../http/server.js';

/** Where the flow inspector is served. */
export const INSPECTOR_PATH = '/inspector';

/** The page's own files: plain ES modules the browser runs as they are, so there is nothing to build. */
const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

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

interface StaticFile {
  body: Buffer;
  contentType: string;
}

/**
 * The flow inspector's routes: `/inspector/` (its page) and each of its files, read once at start-up.
 * `/inspector` redirects to `/inspector/`, so the page's relative URLs (its modules, `../graphql`)
 * also resolve behind a proxy that serves the gateway under a path.
 */
export function inspectorRoutes(): Map<string, Route> {
  const routes = new Map<string, Route>();
  for (const [path, file] of readStaticFiles(STATIC_DIR)) {
    const route = serve(file);
    routes.set(`${INSPECTOR_PATH}/${path}`, route);
    if (path === 'index.html') routes.set(`${INSPECTOR_PATH}/`, route);
  }
  routes.set(INSPECTOR_PATH, (req, res) => {
    if (!readOnly(req.method)) return refuseMethod(res, req.method);
    res.writeHead(308, { location: `${INSPECTOR_PATH}/` }).end();
  });
  return routes;
}

function serve(file: StaticFile): Route {
  return (req, res) => {
    if (!readOnly(req.method)) return refuseMethod(res, req.method);
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': file.contentType,
      'content-length': file.body.length,
    });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  };
}

const readOnly = (method: string | undefined) => method === 'GET' || method === 'HEAD';

function refuseMethod(res: Parameters<Route>[1], method: string | undefined) {
  res.setHeader('allow', 'GET, HEAD');
  sendError(
    res,
    ErrorCode.METHOD_NOT_ALLOWED,
    `${method} is not served here; the inspector's files are read-only`,
  );
}

/** Every file under `dir` with a known type, by its path relative to `dir` (`/`-separated). */
function readStaticFiles(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const contentType = CONTENT_TYPES[extname(entry.name)];
    if (!contentType) continue;
    const absolute = join(entry.parentPath, entry.name);
    files.set(relative(dir, absolute).split(sep).join('/'), { body: readFileSync(absolute), contentType });
  }
  return files;
}
