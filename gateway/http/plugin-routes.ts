import { ConfigError, domainCodeOf, ErrorCode } from '../errors.js';
import type { Plugin, PluginRuntime, Principal, RouteResponse } from '@commerce-coordinator/plugin-sdk';
import { loginRedirect, routeAuthorization, wantsLogin, type BrowserLogin } from './browser.js';
import { isPathPattern, pathParams, PathParamError, patternShape } from './route-paths.js';
import { sendError, type Route } from './server.js';

/**
 * The REST routes Plugins declare (webhooks), as HTTP routes: method checked, the caller's JWT verified
 * when present, the raw body handed over for signature checks, errors answered with a stable code.
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
          ...response.headers,
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
