import { readFile, chmod, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayEnv, isRunning, killGateways, portOpen, spawnGateway } from '../support/gateway-process.js';
import { freePort } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

/**
 * Ctrl-C in a terminal: the terminal sends SIGINT to its whole foreground process group, so npx, tsx,
 * the gateway and anything they started receive it at once. The gateway must stop as on SIGTERM, its
 * embedded PostgreSQL still serving the drain, and leave no process behind.
 */
describe('Ctrl-C on the embedded defaults', () => {
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'cc-interrupt-'));
    // Run as root, PostgreSQL runs as the postgres user, which must reach the data directory.
    await chmod(dataDir, 0o755);
  });

  afterAll(async () => {
    await killGateways();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('SIGINT to the process group stops it cleanly: exit 0, no error, PostgreSQL stopped', async () => {
    const { gateway, postgres, postgresPort } = await startEmbedded(dataDir);

    process.kill(-gateway.child.pid!, 'SIGINT');

    const exited = await gateway.exited;
    const output = gateway.output();
    expect(exited, output).toEqual({ code: 0, signal: null });
    expect(output).toContain('"signal":"SIGINT"');
    expect(output).toContain('"msg":"coordinator stopped"');
    expect(output).not.toMatch(/unhandled|uncaught|terminating connection|"level":50/i);
    expect(isRunning(postgres)).toBe(false);
    expect(await portOpen(postgresPort)).toBe(false);
    // PostgreSQL shut down cleanly, after the gateway's drain: it removes its lock file.
    expect(existsSync(join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);
  }, 60_000);

  it('a gateway killed outright (SIGKILL) still takes its PostgreSQL down', async () => {
    const { gateway, postgres, postgresPort } = await startEmbedded(dataDir);

    process.kill(gateway.child.pid!, 'SIGKILL');
    await gateway.exited;

    await waitFor(() => !isRunning(postgres), { timeoutMs: 10_000, what: 'PostgreSQL to stop' });
    expect(await portOpen(postgresPort)).toBe(false);
  }, 60_000);
});

/** The embedded server's pid, from the lock file PostgreSQL keeps in its data directory. */
async function postmasterPid(dataDir: string): Promise<number> {
  return Number((await readFile(join(dataDir, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0]);
}

/** The gateway on its embedded PostgreSQL, leading a process group of its own, once it is ready. */
async function startEmbedded(dataDir: string) {
  const port = await freePort();
  const postgresPort = await freePort();
  const gateway = spawnGateway({
    port,
    // The gateway itself leads the group (npm and npx die of a SIGINT whatever their child does).
    group: true,
    env: gatewayEnv({
      DATA_DIR: dataDir,
      PORT: String(port),
      EMBEDDED_POSTGRES_PORT: String(postgresPort),
      LOG_FORMAT: 'json',
      SERVICES: undefined,
    }),
  });
  await gateway.ready(40_000);
  const postgres = await postmasterPid(dataDir);
  expect(isRunning(postgres)).toBe(true);
  return { gateway, postgres, postgresPort };
}
