import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  gatewayEnv,
  isRunning,
  killGateways,
  portOpen,
  spawnGateway,
  type GatewayProcess,
} from '../support/gateway-process.js';
import { signToken } from '../../gateway/auth/tokens.js';
import { DEVELOPMENT_JWT_SECRET } from '../../gateway/env.js';
import { freePort } from '../support/redis.js';

/** A token as `npm run token` prints it on the embedded default. */
const developmentToken = (subject: Parameters<typeof signToken>[1]) =>
  signToken(DEVELOPMENT_JWT_SECRET, subject);

const graphql = async (url: string, query: string, token: string) => {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  return {
    status: res.status,
    body: (await res.json()) as { data?: Record<string, unknown>; errors?: unknown },
  };
};

/**
 * README's first command, `npm ci && npm start`: the `start` script (`tsx launcher/main.ts`) with no
 * DATABASE_URL and no REDIS_URL, on the repository's own rover.yaml, connections.yaml and flags.json.
 * Only where it keeps its data and its ports differ, so it can run beside anything else.
 */
describe('npm start on the embedded defaults', () => {
  let dataDir: string;
  let port: number;
  let postgresPort: number;
  let gateway: GatewayProcess;

  const start = () =>
    spawnGateway({
      port,
      // `npm start` runs `tsx launcher/main.ts`; npx runs the same local binary the same way.
      command: ['npx', 'tsx', 'launcher/main.ts'],
      // Its own process group: whatever npx, tsx and the gateway start is killed with it in afterAll.
      group: true,
      env: gatewayEnv({
        DATA_DIR: dataDir,
        PORT: String(port),
        EMBEDDED_POSTGRES_PORT: String(postgresPort),
        SERVICES: undefined,
      }),
    });

  /** The embedded server's pid, from the lock file PostgreSQL keeps in its data directory. */
  const postmasterPid = async () =>
    Number((await readFile(join(dataDir, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0]);

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'cc-embedded-'));
    // Run as root, PostgreSQL runs as the postgres user, which must reach the data directory.
    await chmod(dataDir, 0o755);
    port = await freePort();
    postgresPort = await freePort();
  });

  afterAll(async () => {
    await killGateways();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('serves /healthz, /readyz, the Sandbox and GraphQL on an embedded PostgreSQL within 30 s', async () => {
    const startedAt = Date.now();
    gateway = start();
    await gateway.ready(30_000);
    const healthz = await fetch(`${gateway.url}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.json()).toEqual({ status: 'ok' });
    const readyz = await fetch(`${gateway.url}/readyz`);
    expect(readyz.status).toBe(200);
    // Every Service stand-in answers its Plugin's health check as the real Service would.
    const ok = { status: 'ok' };
    expect(await readyz.json()).toEqual({
      status: 'ready',
      checks: { database: true, bus: true, flags: true, supergraph: true },
      services: {
        'order-management': ok,
        stripe: ok,
        paypal: ok,
        lms: ok,
        'legacy-ecommerce': ok,
        'app-store': ok,
        'google-play': ok,
      },
      config: { hash: expect.stringMatching(/^[0-9a-f]{16}$/), loadedAt: expect.any(String) },
    });

    const sandbox = await fetch(`${gateway.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(sandbox.status).toBe(200);
    expect(sandbox.headers.get('content-type')).toMatch(/^text\/html/);
    const page = await sandbox.text();
    expect(page).toContain('embeddable-sandbox.cdn.apollographql.com');
    expect(page).toContain(`initialEndpoint`);

    // The Service stand-ins run with the demo data: ada's order history merges both systems.
    const ada = await developmentToken({ kind: 'learner', lmsUserId: 3, username: 'ada' });
    const history = await graphql(
      gateway.url,
      '{ orderHistory(input: {}) { history { orderNumber system } flow { status } } }',
      ada,
    );
    expect(history.status).toBe(200);
    const result = history.body.data!.orderHistory as { history: unknown[]; flow: { status: string } };
    expect(result.flow.status).toBe('COMPLETED');
    expect(result.history).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ orderNumber: 'EDX-100001', system: 'LEGACY' }),
        expect.objectContaining({ orderNumber: '2U-2026000001', system: 'COORDINATOR' }),
      ]),
    );
    expect(Date.now() - startedAt).toBeLessThan(30_000);

    // On the PostgreSQL it started itself, under DATA_DIR.
    expect(await portOpen(postgresPort)).toBe(true);
    expect(existsSync(join(dataDir, 'postgres', 'PG_VERSION'))).toBe(true);
    expect(gateway.output()).toContain('"msg":"embedded PostgreSQL is running"');
    expect(gateway.gatewayPid()).toBeGreaterThan(0);
  }, 45_000);

  it('stops cleanly on SIGTERM: exit code 0, and the embedded PostgreSQL is stopped', async () => {
    expect(gateway).toBeDefined();
    const pid = gateway.gatewayPid()!;
    const postgres = await postmasterPid();
    expect(isRunning(postgres)).toBe(true);
    process.kill(pid, 'SIGTERM');
    // npx → tsx → the gateway: the exit code of the whole command is the gateway's.
    expect(await gateway.exited).toEqual({ code: 0, signal: null });
    expect(gateway.output()).toContain('"msg":"coordinator stopped"');
    expect(isRunning(pid)).toBe(false);
    expect(isRunning(postgres)).toBe(false);
    expect(await portOpen(postgresPort)).toBe(false);
    expect(await portOpen(port)).toBe(false);
    // PostgreSQL shut down cleanly: it removes its lock file.
    expect(existsSync(join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);
  });

  it('starts again on the same data directory, and stops again on SIGTERM', async () => {
    gateway = start();
    await gateway.ready(30_000);
    // The cluster initialised by the first start is reused, with its data.
    expect(gateway.output()).not.toContain('initialising the embedded PostgreSQL data directory');
    // The flow the first start recorded is still there.
    const staff = await developmentToken({ kind: 'staff', username: 'staff' });
    const flows = await graphql(gateway.url, '{ flows(limit: 1) { name } }', staff);
    expect(flows.body).toEqual({ data: { flows: [{ name: 'order.history.requested.v1' }] } });
    const postgres = await postmasterPid();

    process.kill(gateway.gatewayPid()!, 'SIGTERM');
    expect(await gateway.exited).toEqual({ code: 0, signal: null });
    expect(gateway.output()).toContain('"msg":"coordinator stopped"');
    expect(isRunning(postgres)).toBe(false);
    expect(await portOpen(postgresPort)).toBe(false);
  }, 45_000);
});
