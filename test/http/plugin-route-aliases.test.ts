import { describe, expect, it } from 'vitest';
import type { Plugin, Route } from '@commerce-coordinator/plugin-sdk';
import { pluginRoutes } from '../../gateway/http/plugin-routes.js';
import { problemsOf } from '../support/config-problems.js';

// A Plugin route's aliases are paths it owns like its own: no Plugin may take over another's path,
// nor one of the Coordinator's (/graphql, /healthz, …), through an alias.

const route = (path: string, aliases?: string[], method: Route['method'] = 'POST'): Route => ({
  method,
  path,
  ...(aliases ? { aliases } : {}),
  handle: async () => ({ status: 204 }),
});
const plugin = (name: string, routes: Route[]) => ({ name, routes }) as unknown as Plugin;

const build = (plugins: Plugin[], reserved: string[] = ['/graphql', '/healthz']) =>
  pluginRoutes(plugins, {
    runtime: () => ({}) as never,
    authenticate: async () => undefined,
    file: 'rover.yaml',
    reserved,
  });

describe('Plugin route aliases', () => {
  it('serves a route at its path and at each alias', () => {
    const routes = build([plugin('om', [route('/order-management/fulfill', ['/commercetools/fulfill'])])]);
    expect([...routes.keys()].sort()).toEqual(['/commercetools/fulfill', '/order-management/fulfill']);
  });

  it("refuses an alias that is another Plugin's route, or a route that is another's alias", () => {
    const problems = problemsOf(() =>
      build([
        plugin('om', [route('/order-management/fulfill', ['/orders/fulfill'])]),
        plugin('other', [route('/orders/fulfill')]),
      ]),
    );
    expect(problems.join('\n')).toContain("route /orders/fulfill is already served by plugin 'om'");
  });

  it("refuses an alias that is one of the Coordinator's own paths", () => {
    const problems = problemsOf(() => build([plugin('om', [route('/x', ['/graphql']), route('/healthz')])]));
    expect(problems.join('\n')).toContain("route /graphql is the Coordinator's own");
    expect(problems.join('\n')).toContain("route /healthz is the Coordinator's own");
  });

  it('refuses one method declared twice at a path (a route and an alias of another)', () => {
    const problems = problemsOf(() => build([plugin('om', [route('/a', ['/b']), route('/b')])]));
    expect(problems.join('\n')).toContain('route POST /b is declared twice');
    // Two methods at one path are one route each.
    expect(problemsOf(() => build([plugin('om', [route('/a'), route('/a', undefined, 'GET')])]))).toEqual([]);
  });
});
