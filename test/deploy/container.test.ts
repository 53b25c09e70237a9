import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { repoRoot } from '../support/gateway-process.js';

/**
 * What can be checked of the image and the compose file without a docker daemon (CI builds the image
 * itself where `docker info` works): the Dockerfile copies files that exist and that .dockerignore
 * lets through, runs what `npm run start:prod` runs, and probes /healthz; compose.yaml wires the
 * Coordinator to PostgreSQL and Redis, and its demo profile to the stand-ins.
 */
const read = (file: string) => readFileSync(join(repoRoot, file), 'utf8');
const dockerfile = read('Dockerfile');
/** The Dockerfile's instructions, continuation lines joined. */
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line && !line.startsWith('#'));
const ignored = read('.dockerignore')
  .split('\n')
  .map((line) => line.trim())
  .filter(Boolean);
const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;

const composeClient = (() => {
  try {
    execFileSync('docker', ['compose', 'version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('the container image', () => {
  it('copies from the build context only files that exist and are not ignored', () => {
    const sources = instructions
      .filter((line) => line.startsWith('COPY ') && !line.includes('--from='))
      .flatMap((line) => line.split(/\s+/).slice(1, -1));
    expect(sources.length).toBeGreaterThan(5);
    for (const source of sources) {
      expect(existsSync(join(repoRoot, source)), `${source} exists`).toBe(true);
      expect(ignored, `${source} is not in .dockerignore`).not.toContain(source);
    }
    // What the image must not take from a developer's checkout: it installs and builds its own.
    expect(ignored).toEqual(
      expect.arrayContaining(['node_modules', 'dist', '.data', 'gateway/db/generated']),
    );
  });

  it('runs `npm run start:prod`’s command as a non-root user, probing /healthz', () => {
    const cmd = instructions.find((line) => line.startsWith('CMD '))!;
    expect((JSON.parse(cmd.slice(4)) as string[]).join(' ')).toBe(scripts['start:prod']);
    const user = instructions.filter((line) => line.startsWith('USER ')).at(-1);
    expect(user).toBe('USER node');
    expect(instructions.find((line) => line.startsWith('HEALTHCHECK '))).toContain('/healthz');
    expect(instructions.filter((line) => line.startsWith('FROM '))).toHaveLength(2);
    expect(dockerfile).toContain('npm prune --omit=dev');
  });
});

describe('compose.yaml', () => {
  const compose = parse(read('compose.yaml'), { merge: true }) as {
    services: Record<string, { environment?: Record<string, string>; profiles?: string[]; build?: string }>;
  };

  it('runs the Coordinator on its PostgreSQL and Redis, and the demo profile on the stand-ins', () => {
    const { coordinator, 'coordinator-demo': demo, postgres, redis } = compose.services;
    expect(postgres && redis).toBeTruthy();
    expect(coordinator!.build).toBe('.');
    expect(coordinator!.environment).toMatchObject({
      DATABASE_URL: expect.stringContaining('@postgres:5432/'),
      REDIS_URL: 'redis://redis:6379',
      SERVICES: 'configured',
    });
    expect(coordinator!.environment!.JWT_SECRET).toMatch(/^\$\{JWT_SECRET:\?/);
    expect(coordinator!.environment!.JWT_SERVICE_CLIENTS).toMatch(/^\$\{JWT_SERVICE_CLIENTS:\?/);
    expect(demo!.profiles).toEqual(['demo']);
    expect(demo!.environment).toMatchObject({ SERVICES: 'stand-ins' });
  });

  it.runIf(composeClient)('is valid to `docker compose config`', () => {
    execFileSync('docker', ['compose', '--profile', 'demo', 'config', '--quiet'], {
      cwd: repoRoot,
      env: { ...process.env, JWT_SECRET: 'compose-config-check-secret', JWT_SERVICE_CLIENTS: 'lms' },
    });
  });
});
