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
  },
): Map<string, Route> {
  const routes = new Map<string, Route>();
  const owners = new Map<string, string>();
  const problems: string[] = [];
  for (const plugin of plugins) {
    const runtime = deps.runtime(plugin);
    const byPath = new Map<string, NonNullable<Plugin['routes']>[number][]>();
    for (const route of plugin.routes ?? []) {
      const owner = owners.get(patternShape(route.path));
      if (owner && owner !== plugin.name)
        problems.push(`subgraphs.${plugin.name}: route ${route.path} is already served by plugin '${owner}'`);
      owners.set(patternShape(route.path), plugin.name);
      byPath.set(route.path, [...(byPath.get(route.path) ?? []), route]);
    }
    for (const [path, candidates] of byPath) {
      routes.set(path, async (req, res, rawBody) => {
        const route = candidates.find((r) => r.method === req.method);
        if (!route) {
          res.setHeader('allow', candidates.map((r) => r.method).join(', '));
          return sendError(res, ErrorCode.METHOD_NOT_ALLOWED, `${req.method} ${path} is not served`);
        }
        let response: RouteResponse;
        try {
          const url = new URL(req.url ?? path, 'http://localhost');
          // Before the caller is verified: a malformed path is refused the same for everyone.
          let params: Record<string, string> = {};
          if (isPathPattern(path)) {
            try {
              params = pathParams(path, url.pathname);
            } catch (error) {
              if (error instanceof PathParamError)
                return sendError(res, ErrorCode.BAD_REQUEST, error.message);
              throw error;
            }
          }
          const principal = await deps.authenticate(routeAuthorization(req));
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
