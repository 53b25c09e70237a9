import { readdirSync, readFileSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { ErrorCode } from '../errors.js';
import { sendError, type Route } from './server.js';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

interface StaticFile {
  body: Buffer;
  contentType: string;
}

/** CSP directives a page may widen; everything else is the policy every page gets. */
type PageSources = Partial<Record<'style-src' | 'img-src' | 'font-src', string>>;

/**
 * The headers of a page the gateway serves: it may load its own files and talk to the gateway's
 * /graphql (HTTP and websocket), nothing else; no inline script runs even if a record's text reached
 * the markup, and no other site may frame it.
 */
export function pageSecurityHeaders(sources: PageSources = {}): Readonly<Record<string, string>> {
  const directives: Record<string, string> = {
    'default-src': "'none'",
    'script-src': "'self'",
    'style-src': "'self'",
    'img-src': "'self'",
    ...sources,
    'connect-src': "'self'",
    'base-uri': "'none'",
    'form-action': "'none'",
    'frame-ancestors': "'none'",
  };
  return {
    'content-security-policy': Object.entries(directives)
      .map(([name, value]) => `${name} ${value}`)
      .join('; '),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-cache',
  };
}

export interface StaticPage {
  /** Where the page is served: `<path>/` is its index.html, `<path>` redirects there. */
  path: string;
  /** The directories whose files it serves (read once, at start-up), later ones winning. */
  dirs: readonly string[];
  /** Headers on every answer (a content security policy, say). */
  headers: Readonly<Record<string, string>>;
  /** Said to a client that tries to change something. */
  name: string;
}

/**
 * The read-only routes of a page of static files. The bare path redirects to `<path>/`, so the page's
 * relative URLs (its modules, `../graphql`) also resolve behind a proxy that serves the gateway under
 * a path.
 */
export function staticPageRoutes(page: StaticPage): Map<string, Route> {
  const routes = new Map<string, Route>();
  for (const dir of page.dirs)
    for (const [path, file] of readStaticFiles(dir)) {
      const route = serve(file, page);
      routes.set(`${page.path}/${path}`, route);
      if (path === 'index.html') routes.set(`${page.path}/`, route);
    }
  routes.set(page.path, (req, res) => {
    if (!readOnly(req.method)) return refuseMethod(res, req.method, page);
    res.writeHead(308, { location: `${page.path}/` }).end();
  });
  return routes;
}

function serve(file: StaticFile, page: StaticPage): Route {
  return (req, res) => {
    if (!readOnly(req.method)) return refuseMethod(res, req.method, page);
    res.writeHead(200, {
      ...page.headers,
      'content-type': file.contentType,
      'content-length': file.body.length,
    });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  };
}

const readOnly = (method: string | undefined) => method === 'GET' || method === 'HEAD';

function refuseMethod(res: Parameters<Route>[1], method: string | undefined, page: StaticPage) {
  res.setHeader('allow', 'GET, HEAD');
  sendError(
    res,
    ErrorCode.METHOD_NOT_ALLOWED,
    `${method} is not served here; ${page.name}'s files are read-only`,
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
