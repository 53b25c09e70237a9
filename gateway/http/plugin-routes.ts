import type { IncomingMessage, ServerResponse } from 'node:http';
import { EDX_JWT_COOKIES, parseCookies } from '../auth/cookies.js';
import { ConfigError, domainCodeOf, ErrorCode } from '../errors.js';
import type { Plugin, PluginRuntime, Principal, RouteResponse } from '@commerce-coordinator/plugin-sdk';
import { loginRedirect, routeAuthorization, wantsLogin, type BrowserLogin } from './browser.js';
import { isPathPattern, pathParams, PathParamError, patternShape } from './route-paths.js';
import { sendError, type Route } from './server.js';

/**
 * The REST routes Plugins declare (webhooks), as HTTP routes: method checked, the caller's JWT verified
 * when present, the raw body handed over for signature checks, errors answered with a stable code.
 * Every answer varies on the credentials, and one to a request that carried them is `private`, whatever
 * the route says (`privateAnswers`).
 */
export function pluginRoutes(
  plugins: readonly Plugin[],
  deps: {
    runtime(plugin: Plugin): PluginRuntime;
    authenticate(authorization: string | undefined): Promise<Principal | undefined>;
    file: string;
    /** Sends an anonymous browser that a route answers 401 to the LMS login instead. */
    login?: BrowserLogin;
    /** The Coordinator's own paths (/graphql, /healthz, …): no Plugin route may take one over. */
    reserved?: Iterable<string>;
  },
): Map<string, Route> {
  const routes = new Map<string, Route>();
  const owners = new Map<string, string>();
  const reserved = new Set(deps.reserved ?? []);
  const problems: string[] = [];
  for (const plugin of plugins) {
    const runtime = deps.runtime(plugin);
    const byPath = new Map<string, NonNullable<Plugin['routes']>[number][]>();
    for (const route of plugin.routes ?? []) {
      // A route's aliases are paths of its own: one Plugin's alias cannot shadow another's route.
      for (const served of new Set([route.path, ...(route.aliases ?? [])])) {
        if (reserved.has(served))
          problems.push(`subgraphs.${plugin.name}: route ${served} is the Coordinator's own`);
        const owner = owners.get(patternShape(served));
        if (owner && owner !== plugin.name)
          problems.push(`subgraphs.${plugin.name}: route ${served} is already served by plugin '${owner}'`);
        owners.set(patternShape(served), plugin.name);
        const same = byPath.get(served) ?? [];
        if (same.some((r) => r.method === route.method))
          problems.push(`subgraphs.${plugin.name}: route ${route.method} ${served} is declared twice`);
        byPath.set(served, [...same, route]);
      }
    }
    for (const [served, candidates] of byPath) {
      routes.set(served, async (req, res, rawBody) => {
        // Before anything is answered, so that refusals (the CSRF check, a route's error) are covered too.
        const credentialed = privateAnswers(req, res);
        const route = candidates.find((r) => r.method === req.method);
        if (!route) {
          res.setHeader('allow', candidates.map((r) => r.method).join(', '));
          return sendError(res, ErrorCode.METHOD_NOT_ALLOWED, `${req.method} ${served} is not served`);
        }
        const path = route.path;
        let response: RouteResponse;
        try {
          const url = new URL(req.url ?? path, 'http://localhost');
          // Before the caller is verified: a malformed path is refused the same for everyone.
          let params: Record<string, string> = {};
          if (isPathPattern(served)) {
            try {
              params = pathParams(served, url.pathname);
            } catch (error) {
              if (error instanceof PathParamError)
                return sendError(res, ErrorCode.BAD_REQUEST, error.message);
              throw error;
            }
          }
          // A route whose Authorization header is the Service's own (a store's push token) verifies it itself.
          const principal =
            route.authorization === 'service' ? undefined : await deps.authenticate(routeAuthorization(req));
          response = await route.handle(
            {
              method: req.method!,
              path,
              params,
              headers: req.headers,
              query: url.searchParams,
              rawQuery: url.search.slice(1),
              rawBody,
              principal,
            },
            runtime,
          );
        } catch (error) {
          const code = domainCodeOf(error);
          if (!code) throw error;
          return sendError(res, code, (error as Error).message);
        }
        if (response.status === 401 && deps.login && wantsLogin(req)) {
          res.writeHead(302, { location: loginRedirect(req, deps.login), 'cache-control': 'no-store' });
          res.end();
          return;
        }
        res.writeHead(response.status, {
          ...(response.body === undefined || typeof response.body === 'string'
            ? {}
            : { 'content-type': 'application/json; charset=utf-8' }),
          ...answerHeaders(res, response.headers, credentialed),
        });
        res.end(
          response.body === undefined
            ? undefined
            : typeof response.body === 'string'
              ? response.body
              : JSON.stringify(response.body),
        );
      });
    }
  }
  if (problems.length) throw new ConfigError(deps.file, problems);
  return routes;
}

/** What a Plugin route's answer depends on besides its URL: the credentials routes read (`routeAuthorization`). */
const CREDENTIAL_HEADERS = ['Authorization', 'Cookie'];
/** Directives that let a shared cache store an answer, or that only shared caches read. */
const SHARED_CACHE_DIRECTIVE = /^(public|private|s-maxage|proxy-revalidate)(=|$)/i;

/** Whether a request carried credentials: an Authorization header, or any of the edX JWT cookies. */
function carriesCredentials(req: IncomingMessage): boolean {
  if (req.headers.authorization !== undefined) return true;
  const cookies = parseCookies(req.headers.cookie);
  return Object.values(EDX_JWT_COOKIES).some((name) => cookies.has(name));
}

/**
 * Sets what every answer of a Plugin route carries before the route runs: `Vary: Authorization, Cookie`
 * (a shared cache must never answer one caller with what another was answered), and, when the request
 * carried credentials, `Cache-Control: private` (a browser may keep the answer, a CDN or proxy may not;
 * a browser route signs learners in from cookies, which mark nothing private to a cache). Returns
 * whether it did the latter.
 */
function privateAnswers(req: IncomingMessage, res: ServerResponse): boolean {
  res.setHeader('vary', mergeVary(res.getHeader('vary'), CREDENTIAL_HEADERS));
  const credentialed = carriesCredentials(req);
  if (credentialed) res.setHeader('cache-control', 'private');
  return credentialed;
}

/**
 * A route's own headers, made safe: its `Vary` joins the gateway's, and to a credentialed request its
 * `Cache-Control` keeps what the browser reads (max-age, no-store, …) behind `private`, without what
 * would let a shared cache store it (`public`, `s-maxage`, `proxy-revalidate`). Header names are
 * case-insensitive: a route's `Cache-Control` is the same header as `cache-control`.
 */
function answerHeaders(
  res: ServerResponse,
  headers: Record<string, string> | undefined,
  credentialed: boolean,
): Record<string, string> {
  const answer: Record<string, string> = {};
  let vary: string | undefined;
  let cacheControl: string | undefined;
  for (const [name, value] of Object.entries(headers ?? {})) {
    const lower = name.toLowerCase();
    if (lower === 'vary') vary = value;
    else if (lower === 'cache-control') cacheControl = value;
    else answer[name] = value;
  }
  answer.vary = mergeVary(vary, [String(res.getHeader('vary') ?? '')]);
  if (credentialed) {
    const kept = (cacheControl ?? '')
      .split(',')
      .map((directive) => directive.trim())
      .filter((directive) => directive && !SHARED_CACHE_DIRECTIVE.test(directive));
    answer['cache-control'] = ['private', ...kept].join(', ');
  } else if (cacheControl !== undefined) answer['cache-control'] = cacheControl;
  return answer;
}

/** The field names of Vary values, each once, in order (`*` stays `*`). */
function mergeVary(first: unknown, rest: readonly string[]): string {
  const names = new Map<string, string>();
  for (const value of [first, ...rest])
    for (const name of String(value ?? '').split(','))
      if (name.trim() && !names.has(name.trim().toLowerCase()))
        names.set(name.trim().toLowerCase(), name.trim());
  return names.has('*') ? '*' : [...names.values()].join(', ');
}
