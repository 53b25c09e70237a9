/**
 * The production build (`npm run build`, scripts/build.ts) made into a folder of one test file's own
 * under .scratch/, so test files never share (or rebuild under each other) the output they run.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './gateway-process.js';

export interface Build {
  /** Absolute path of the build's root (its gateway/main.js is the production entry point). */
  readonly dir: string;
  remove(): Promise<void>;
}

export async function buildOnce(): Promise<Build> {
  const scratch = join(repoRoot, '.scratch');
  await mkdir(scratch, { recursive: true });
  const dir = await mkdtemp(join(scratch, 'dist-'));
  await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/build.ts', dir], {
    cwd: repoRoot,
  });
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
