import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, RESP_TYPES } from 'redis';

/** The Redis the machines run for tests; `REDIS_URL` overrides it. */
export function machineRedisUrl(): string {
  return process.env.REDIS_URL || 'redis://127.0.0.1:6379';
}

/** A connection for tests to look at and change Redis with raw commands (RESP2 replies, as Redis sends them). */
export interface AdminRedis {
  /** Numbers are sent as their decimal text; Buffers as they are. */
  call<T = unknown>(...args: Array<string | number | Buffer>): Promise<T>;
  /** The same, with every string of the reply as a Buffer. */
  callBuffer<T = unknown>(...args: Array<string | number | Buffer>): Promise<T>;
  close(): Promise<void>;
}

/** Connects to `url` without reconnecting: a test sees its Redis go away as an error. */
export async function adminRedis(url: string): Promise<AdminRedis> {
  // From a client of the options the Coordinator's connections share: node-redis builds a client class
  // per distinct options (~30 ms) and keeps only the last, so a test alternating both would rebuild it.
  const template = createClient({ url });
  const client = template.duplicate({
    socket: { ...template.options?.socket, reconnectStrategy: false, connectTimeout: 2_000 },
  });
  client.on('error', () => {});
  await client.connect();
  const args = (list: Array<string | number | Buffer>) =>
    list.map((arg) => (typeof arg === 'number' ? String(arg) : arg));
  return {
    call: (...list) => client.sendCommand(args(list)) as never,
    callBuffer: (...list) =>
      client.sendCommand(args(list), { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } }) as never,
    async close() {
      if (client.isOpen) client.destroy();
    },
  };
}

/**
 * Resolves with `url` when a Redis answers there, and fails the run otherwise: a suite that needs Redis
 * must never pass by skipping itself.
 */
export async function requireRedis(url: string = machineRedisUrl()): Promise<string> {
  let admin: AdminRedis | undefined;
  try {
    admin = await adminRedis(url);
    await admin.call('PING');
    return url;
  } catch (error) {
    throw new Error(
      `Redis is not reachable at ${url} (${error instanceof Error ? error.message : String(error)}). ` +
        'These tests need a real Redis: start Redis: redis-server --daemonize yes ' +
        '(or point REDIS_URL at one).',
    );
  } finally {
    await admin?.close();
  }
}

/**
 * A key prefix unique to one test: readable (from the test's title) so leftovers can be traced, and
 * suffixed so that runs in parallel or after a crash never share keys.
 */
export function testNamespace(title: string): string {
  const slug = title
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 60);
  return `test:${slug}:${randomUUID().slice(0, 8)}`;
}

/** Deletes every key under `prefix`. */
export async function deleteNamespace(url: string, prefix: string): Promise<void> {
  const admin = await adminRedis(url);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await admin.call<[string, string[]]>(
        'SCAN',
        cursor,
        'MATCH',
        `${prefix}*`,
        'COUNT',
        500,
      );
      cursor = next;
      if (keys.length) await admin.call('UNLINK', ...keys);
    } while (cursor !== '0');
  } finally {
    await admin.close();
  }
}

export interface PrivateRedis {
  readonly url: string;
  readonly port: number;
  /**
   * Stops the server. It keeps no data unless `save` is set: then it writes a snapshot first, which
   * `restart` loads, as a Redis with persistence would after an outage.
   */
  stop(options?: { save?: boolean }): Promise<void>;
  /** Starts the server again on the same port. */
  restart(): Promise<void>;
  /**
   * Freezes the server (SIGSTOP): its connections stay open and it answers nothing, as a hung Redis
   * does. Commands sent meanwhile wait in its sockets and run on `resume`.
   */
  pause(): void;
  /** Lets a paused server run again (SIGCONT). */
  resume(): void;
  /** Stops the server if it runs and removes its directory. */
  dispose(): Promise<void>;
}

const redisServerPath = '/usr/bin/redis-server';

/** A TCP port nothing listens on right now, on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not find a free port'));
      });
    });
  });
}

/**
 * A Redis server of its own, for tests that take Redis down. It runs without persistence (`--save ''
 * --appendonly no`) in a temporary directory.
 */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'cc-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  // A test that fails before `dispose` must not leave a server behind.
  const killOnExit = () => child?.kill('SIGKILL');
  process.once('exit', killOnExit);

  const start = () =>
    new Promise<void>((resolve, reject) => {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
      const proc = spawn(redisServerPath, [...args, '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = proc;
      let output = '';
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          proc.stdout?.off('data', onData);
          resolve();
        }
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      proc.once('error', reject);
      proc.once('exit', (code, signal) => {
        if (child === proc) child = undefined;
        reject(
          new Error(
            `redis-server on port ${port} exited (${code ?? signal}) before it was ready:\n${output}`,
          ),
        );
      });
    });

  let paused = false;
  const signal = (name: 'SIGSTOP' | 'SIGCONT') => {
    if (!child) throw new Error(`redis-server on port ${port} is not running`);
    child.kill(name);
    paused = name === 'SIGSTOP';
  };

  const stop = async (options: { save?: boolean } = {}) => {
    const proc = child;
    if (!proc) return;
    // A stopped process would not act on SIGTERM or SHUTDOWN.
    if (paused) signal('SIGCONT');
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    if (options.save) {
      const admin = await adminRedis(url);
      // The server closes the connection instead of answering SHUTDOWN.
      await admin.call('SHUTDOWN', 'SAVE').catch(() => {});
      await admin.close();
    } else {
      proc.kill('SIGTERM');
    }
    await exited;
  };

  await start();
  return {
    url,
    port,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
    dispose: async () => {
      await stop();
      process.off('exit', killOnExit);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
