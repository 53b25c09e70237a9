/**
 * The real gateway as a child process (`gateway/main.ts`, the production entry, as `npm start` runs it
 * without the stand-ins), for tests that kill
 * it, restart it or stop it with a signal. Every process started here is tracked, so `killGateways()`
 * in `afterAll` leaves none behind, even when a test failed half-way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { envSchema } from '../../gateway/env.js';
import { waitFor } from './wait.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface GatewayProcess {
  readonly child: ChildProcess;
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** Everything the process wrote so far, stdout and stderr interleaved. */
  output(): string;
  /** Settles when the spawned process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once /readyz answers 200; rejects with the output if the process exits first. */
  ready(timeoutMs?: number): Promise<void>;
  /** The pid the gateway logged at start (the node process running main.ts, under any npx/tsx wrappers). */
  gatewayPid(): number | undefined;
}

const spawned = new Set<{ child: ChildProcess; group: boolean }>();

/**
 * The environment of a gateway started by hand: the parent's PATH and HOME, without anything the
 * gateway reads (gateway/env.ts) or vitest set (NODE_ENV=test changes Apollo Server's behaviour), so
 * only `vars` configure it.
 */
/** The repository's own configuration files, for a gateway process run on the commerce Plugins. */
export const repositoryConfigEnv = () => ({
  ROVER_CONFIG: `${repoRoot}rover.yaml`,
  CONNECTIONS_FILE: `${repoRoot}connections.yaml`,
  SUBGRAPHS_DIR: `${repoRoot}subgraphs`,
  FLAGS_FILE: `${repoRoot}flags.json`,
});

export function gatewayEnv(vars: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const read = new Set(Object.keys(envSchema.shape));
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (read.has(key) || /^(VITEST|TEST_|LEDGER_URL$)/.test(key)) continue;
    env[key] = value;
  }
  env.APOLLO_TELEMETRY_DISABLED = '1';
  // The fixture plugins need no Service stand-ins; the embedded-default test asks for them.
  env.SERVICES = 'configured';
  for (const [key, value] of Object.entries(vars)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/**
 * Starts `command` (default: `node --import tsx gateway/main.ts`, so the pid is the gateway's own and a
 * SIGKILL reaches it directly) in the repository root. With `group`, it runs in a process group of its
 * own so that wrappers such as npx and everything they start can be killed together.
 */
export function spawnGateway(options: {
  port: number;
  env: NodeJS.ProcessEnv;
  command?: readonly string[];
  group?: boolean;
}): GatewayProcess {
  const [file, ...args] = options.command ?? [process.execPath, '--import', 'tsx', 'gateway/main.ts'];
  const child = spawn(file!, args, {
    cwd: repoRoot,
    env: options.env,
    detached: options.group ?? false,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const entry = { child, group: options.group ?? false };
  spawned.add(entry);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  void exited.then(() => {
    if (!entry.group) spawned.delete(entry);
  });
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const url = `http://127.0.0.1:${options.port}`;
  return {
    child,
    url,
    output: () => output,
    exited,
    gatewayPid: () => {
      const match = /"pid":(\d+)[^\n]*"msg":"coordinator started"/.exec(output);
      return match ? Number(match[1]) : undefined;
    },
    ready: async (timeoutMs = 30_000) => {
      await waitFor(
        async () => {
          if (hasExited) throw new Error(`the gateway exited before it was ready:\n${output}`);
          const res = await fetch(`${url}/readyz`).catch(() => undefined);
          return res?.status === 200;
        },
        { timeoutMs, intervalMs: 100, what: 'the gateway to be ready' },
      ).catch((error: Error) => {
        if (!error.message.includes(output)) error.message += `\n--- gateway output ---\n${output}`;
        throw error;
      });
    },
  };
}

/** SIGKILLs every process started by `spawnGateway` that may still run (whole groups for `group`), and waits. */
export async function killGateways(): Promise<void> {
  const all = [...spawned];
  spawned.clear();
  await Promise.all(
    all.map(async ({ child, group }) => {
      const exited = new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve();
        else child.once('exit', () => resolve());
      });
      try {
        if (group && child.pid) process.kill(-child.pid, 'SIGKILL');
        else child.kill('SIGKILL');
      } catch {
        // Already gone.
      }
      await exited;
    }),
  );
}

/** Whether a process with this pid exists. */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
