import type { AddressInfo } from 'node:net';
import { request, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Plugin, PluginRuntime, RouteRequest } from '@commerce-coordinator/plugin-sdk';
import { silentLogger } from '../../gateway/log.js';
import { pluginRoutes } from '../../gateway/http/plugin-routes.js';
import { createHttpServer } from '../../gateway/http/server.js';
import { routeLabel } from '../../gateway/observability/labels.js';
import { compilePatterns, MAX_PARAM_LENGTH } from '../../gateway/http/route-paths.js';

/**
 * Plugin routes whose path has parameters (`/x/:key/`), over real HTTP through the gateway's own
 * server and route table: exact paths win, segments arrive decoded, anything that is not one plain
 * segment is refused 400 (never reaching the route), and a path no route has stays a 404.
 */

const seen: Array<{ route: string; params: RouteRequest['params']; query: string }> = [];
const echo = (route: string) => ({
  method: 'GET' as const,
  path: route,
  async handle(request: RouteRequest) {
    seen.push({ route, params: request.params, query: request.rawQuery });
    return { status: 200, body: { route, params: request.params ?? {} } };
  },
});

const plugin = (name: string, routes: ReturnType<typeof echo>[]) => ({ name, routes }) as unknown as Plugin;

let server: Server;
let base: string;

beforeAll(async () => {
  const routes = pluginRoutes(
    [
      plugin('programs', [
        echo('/lms/program-price-info/:bundleKey/'),
        // An exact path under the same prefix: it wins over the pattern.
        echo('/lms/program-price-info/featured/'),
        echo('/lms/credit/checkout/:courseRunKey/'),
        echo('/catalog/:org/:course/runs/'),
        echo('/catalog/:org/featured/runs/'),
        // Would match /graphql: the server's own paths are never a pattern's.
        echo('/:anything'),
      ]),
    ],
    {
      runtime: () => ({}) as PluginRuntime,
      authenticate: async () => undefined,
      file: 'rover.yaml',
    },
  );
  server = createHttpServer({
    apollo: undefined as never,
    context: async () => ({}) as never,
    routes,
    draining: () => false,
    logger: silentLogger,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
});

const get = async (path: string) => {
  const res = await fetch(`${base}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

describe('route paths with parameters', () => {
  it('hand the segment to the route as request.params, the query as it was', async () => {
    const { status, body } = await get('/lms/program-price-info/0f5b7c2e-4d1a/?course_key=a&course_key=b');
    expect(status).toBe(200);
    expect(body).toEqual({
      route: '/lms/program-price-info/:bundleKey/',
      params: { bundleKey: '0f5b7c2e-4d1a' },
    });
    expect(seen.at(-1)?.query).toBe('course_key=a&course_key=b');
  });

  it('let an exact path win over a pattern it also matches, at any position', async () => {
    expect((await get('/lms/program-price-info/featured/')).body.route).toBe(
      '/lms/program-price-info/featured/',
    );
    expect((await get('/catalog/edX/featured/runs/')).body.route).toBe('/catalog/:org/featured/runs/');
    expect((await get('/catalog/edX/DemoX/runs/')).body).toEqual({
      route: '/catalog/:org/:course/runs/',
      params: { org: 'edX', course: 'DemoX' },
    });
  });

  it('decode percent-encoded segments (a course run key with : and +, encoded or not)', async () => {
    const key = 'course-v1:edX+DemoX+2026';
    for (const path of [key, encodeURIComponent(key)]) {
      const { status, body } = await get(`/lms/credit/checkout/${path}/`);
      expect(status).toBe(200);
      expect(body.params).toEqual({ courseRunKey: key });
    }
    expect((await get('/lms/credit/checkout/caf%C3%A9/')).body.params).toEqual({ courseRunKey: 'café' });
  });

  it('answer a path no route has 404, as before: wrong depth, an empty segment, no trailing slash', async () => {
    for (const path of [
      '/lms/program-price-info/',
      '/lms/program-price-info//',
      '/lms/program-price-info/abc',
      '/lms/program-price-info/abc/extra/',
      '/lms/nothing/here/',
    ]) {
      const { status, body } = await get(path);
      expect(status, path).toBe(404);
      expect(body.code).toBe('NOT_FOUND');
    }
  });

  it('refuse an encoded slash, traversal, control characters and bad encoding 400 before the route runs', async () => {
    const before = seen.length;
    for (const segment of ['a%2Fb', '%2e%2e%2F%2e%2e%2Fetc', 'a%5Cb', '%00', 'a%0Ab', '%E0%A4%A', '%']) {
      const { status, body } = await get(`/lms/credit/checkout/${segment}/`);
      expect(status, segment).toBe(400);
      expect(body.code).toBe('BAD_REQUEST');
    }
    expect(seen.length).toBe(before);
  });

  it('never hand a dot segment to a route: the path is normalised before it is matched', async () => {
    // Sent as is (fetch would normalise it first), as a hostile client would.
    const raw = (path: string) =>
      new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
        const req = request(`${base}${path}`, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end();
      });
    expect((await raw('/lms/credit/checkout/%2e%2e/')).status).toBe(404);
    expect((await raw('/lms/credit/checkout/./')).status).toBe(404);
    const climbed = await raw('/lms/credit/checkout/../../program-price-info/x/');
    expect(climbed.body).toEqual({
      route: '/lms/program-price-info/:bundleKey/',
      params: { bundleKey: 'x' },
    });
  });

  it('refuse a huge segment 400, and survive one far over any limit', async () => {
    const long = 'x'.repeat(MAX_PARAM_LENGTH + 1);
    expect((await get(`/lms/credit/checkout/${long}/`)).status).toBe(400);
    expect((await get(`/lms/credit/checkout/${'x'.repeat(MAX_PARAM_LENGTH)}/`)).status).toBe(200);
    const huge = await fetch(`${base}/lms/credit/checkout/${'%41'.repeat(5000)}/`);
    expect(huge.status).toBe(400);
  });

  it('never let a pattern take the GraphQL endpoint', async () => {
    expect((await get('/other')).body.route).toBe('/:anything');
    const res = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    });
    // Reaches the GraphQL handler (here without Apollo: a 500), never the Plugin route.
    expect(seen.some((s) => s.route === '/:anything' && s.params?.anything === 'graphql')).toBe(false);
    expect(res.status).not.toBe(200);
  });

  it('label metrics with the pattern, never the raw path', () => {
    const routes = new Map([['/lms/credit/checkout/:courseRunKey/', 1]]);
    const patterns = compilePatterns(routes);
    const label = routeLabel(
      '/lms/credit/checkout/anything/',
      new Set(routes.keys()),
      (p) => patterns.find(p)?.pattern,
    );
    expect(label).toBe('/lms/credit/checkout/:courseRunKey/');
    expect(routeLabel('/other/', new Set(routes.keys()), (p) => patterns.find(p)?.pattern)).toBe(
      '(unmatched)',
    );
  });

  it('refuse two Plugins serving the same pattern under different parameter names', () => {
    expect(() =>
      pluginRoutes([plugin('a', [echo('/x/:one/')]), plugin('b', [echo('/x/:two/')])], {
        runtime: () => ({}) as PluginRuntime,
        authenticate: async () => undefined,
        file: 'rover.yaml',
      }),
    ).toThrow(/already served by plugin 'a'/);
  });
});
