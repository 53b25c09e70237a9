import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface NodeChild<T> {
  child: ChildProcess;
  /** The first line the process printed, parsed. */
  ready: T & { pid: number };
  output(): string;
  stop(): Promise<void>;
}

/**
 * The Node flags `npm start` runs the gateway with (package.json's start script): the benchmarks run
 * the Coordinator's gateway as it ships.
 */
export function gatewayNodeFlags(): string[] {
  const { scripts } = JSON.parse(readFileSync(`${repoRoot}package.json`, 'utf8')) as {
    scripts: { start: string };
  };
  return scripts.start.split(/\s+/).filter((token) => token.startsWith('--'));
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/**
 * Starts `node --import tsx <script> ...args` (a `.mjs` script without tsx) and waits for its first
 * stdout line (JSON).
 */
export function spawnNode<T>(
  script: string,
  args: readonly string[] = [],
  options: { nodeArgs?: readonly string[]; env?: NodeJS.ProcessEnv; timeoutMs?: number; ipc?: boolean } = {},
): Promise<NodeChild<T>> {
  const loader = script.endsWith('.mjs') ? [] : ['--import', 'tsx'];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...loader, script, ...args], {
    cwd: repoRoot,
    env: { ...process.env, APOLLO_TELEMETRY_DISABLED: '1', NODE_ENV: 'production', ...options.env },
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let err = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
    children.delete(child);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`${script} did not start in time:\n${out}${err}`));
    }, options.timeoutMs ?? 60_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      const wasReady = out.includes('\n');
      out += d.toString();
      if (!wasReady && out.includes('\n')) {
        clearTimeout(timer);
        resolve({
          child,
          ready: JSON.parse(out.slice(0, out.indexOf('\n'))) as T & { pid: number },
          output: () => out + err,
          stop,
        });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${code}) before it was ready:\n${out}${err}`));
    });
  });
}

const TICK = 100; // USER_HZ on Linux

/** `pid` and every process under it (node:cluster workers, a native runtime's helpers), from /proc. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // Exited while read.
    }
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []));
  return tree;
}

/** CPU seconds (user + system) one process has used so far, from /proc; 0 once it is gone. */
function ownCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICK;
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) a process and the processes under it have used so far. */
export function cpuSeconds(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + ownCpuSeconds(p), 0);
}

/** One process's resident set size now and at its peak (VmHWM), in MiB, from /proc. */
function ownMemory(pid: number): { pid: number; rssMiB: number; peakRssMiB: number } {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // Gone: nothing resident.
  }
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { pid, rssMiB: kib('VmRSS') / 1024, peakRssMiB: kib('VmHWM') / 1024 };
}

/**
 * Resident set size now and at its peak, in MiB, of a process and the processes under it: the sums
 * (the peak's sum is an upper bound: each process's peak may fall at another time), and each one's.
 */
export function memory(pid: number): {
  rssMiB: number;
  peakRssMiB: number;
  processes: Array<{ pid: number; rssMiB: number; peakRssMiB: number }>;
} {
  const processes = processTree(pid).map(ownMemory);
  return {
    rssMiB: processes.reduce((sum, p) => sum + p.rssMiB, 0),
    peakRssMiB: processes.reduce((sum, p) => sum + p.peakRssMiB, 0),
    processes,
  };
}

/**
 * Samples the total resident set of `pid` and the processes under it every `intervalMs` until
 * stopped, and answers the largest total seen: the memory a process tree held at once, which the sum
 * of its processes' own peaks overstates (each may peak at another time). A peak shorter than the
 * interval can be missed.
 */
export function sampleTreeRss(pid: number, intervalMs = 250): { stop(): number } {
  let peak = 0;
  const sample = () => {
    peak = Math.max(peak, memory(pid).rssMiB);
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}
