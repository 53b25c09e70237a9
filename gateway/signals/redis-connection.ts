import {
  ClientClosedError,
  ClientOfflineError,
  ConnectionTimeoutError,
  createClient,
  DisconnectsClientError,
  SocketClosedUnexpectedlyError,
  SocketTimeoutError,
  type RedisClientOptions,
  type RedisClientType,
} from 'redis';
import type { Logger } from '../log.js';

/** Where Redis is, with further node-redis options (e.g. `socket.reconnectStrategy`). */
export interface RedisConnection {
  url: string;
  redisOptions?: RedisClientOptions;
}

/** The longest a close waits for a connection attempt under way to be made or to fail. */
const CONNECT_SETTLE_MS = 5_000;

/** A command argument; numbers are sent as their decimal text. */
export type RedisArgument = string | number;

/** Redis did not answer in time; the connection stays open and ignores the late reply. */
export class CommandTimeoutError extends Error {
  override readonly name = 'CommandTimeoutError';
}

/**
 * One node-redis connection with the few things the bus and the feed ask of it: raw commands (RESP2
 * replies: arrays, strings, numbers, null), bounded in time when the role says so, and its state.
 */
export interface RedisLink {
  /** For events ('ready', 'end', 'error') and pub/sub. */
  readonly client: RedisClientType;
  /** Connected, with its handshake (name, resubscriptions) done. */
  readonly isReady: boolean;
  /** Closed for good: by `close`, or by a reconnect strategy that gave up. */
  readonly isClosed: boolean;
  call(...args: RedisArgument[]): Promise<unknown>;
  /** `EVAL script numkeys keys… args…`. */
  eval(script: string, keys: readonly string[], ...args: RedisArgument[]): Promise<unknown>;
  /** Closes once the commands sent are answered (bounded) if Redis is up; otherwise drops the connection. */
  close(): Promise<void>;
  /**
   * Calls `listener` once, with `true` when the connection is next ready, `false` if it closes for good
   * first. Returns what stops the wait. One client listener serves every waiter.
   */
  onReadyOrClosed(listener: (ready: boolean) => void): () => void;
  /** Drops the connection, rejecting what waits for a reply (a blocked read, say). */
  destroy(): Promise<void>;
}

/**
 * Opens one connection. Fail-fast connections reject commands at once while Redis is down, including
 * those in flight when it went away, instead of queueing them until it is back; every connection keeps
 * reconnecting by itself (node-redis's backoff, or `redisOptions.socket.reconnectStrategy`).
 */
export function openRedis(
  connection: RedisConnection,
  role: { name: string; failFast: boolean; commandTimeoutMs?: number },
  logger: Logger,
): RedisLink {
  // node-redis builds a client class for each distinct options object (every command bound, ~30 ms of
  // CPU) and keeps only the last one: connections that differ in name or queueing would build it each
  // time. They are made from a template with the options they share instead, which is never connected.
  const template = createClient({ ...connection.redisOptions, url: connection.url });
  const client = template.duplicate({
    // Visible in CLIENT LIST, so operators (and tests) can tell the connections apart.
    name: role.name,
    disableOfflineQueue: role.failFast,
  }) as unknown as RedisClientType;
  // Every failed reconnection attempt is an 'error'; one warning per outage is enough.
  let down = false;
  client.on('error', (err: Error) => {
    if (down) return;
    down = true;
    logger.warn({ err, connection: role.name }, 'Redis connection failed; reconnecting');
  });
  client.on('ready', () => {
    if (!down) return;
    down = false;
    logger.info({ connection: role.name }, 'Redis connection restored');
  });
  const waiters = new Set<(ready: boolean) => void>();
  const settleWaiters = (ready: boolean) => {
    const settled = [...waiters];
    waiters.clear();
    for (const waiter of settled) waiter(ready);
  };
  client.on('ready', () => settleWaiters(true));
  client.on('end', () => settleWaiters(false));
  // A reconnect strategy that gives up closes the client with an 'error', without an 'end'.
  client.on('error', () => !client.isOpen && settleWaiters(false));
  // Retries until connected (or the strategy gives up); every failure is reported as an 'error'.
  client.connect().catch(() => {});

  // node-redis bounds only the wait to be written (`timeout`), not the wait for the reply, which is
  // what a hung Redis makes long: the reply, if it ever comes, still matches its command and is dropped.
  const timeoutMs = role.commandTimeoutMs;
  /** Replies not in yet: a graceful close waits for them. */
  const awaited = new Set<Promise<unknown>>();
  const send = (args: RedisArgument[]): Promise<unknown> => {
    const reply = client.sendCommand(args.map(String));
    awaited.add(reply);
    void reply.then(
      () => awaited.delete(reply),
      () => awaited.delete(reply),
    );
    if (!timeoutMs) return reply;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new CommandTimeoutError('Command timed out')), timeoutMs);
      reply.then(
        (value) => (clearTimeout(timer), resolve(value)),
        (error: unknown) => (clearTimeout(timer), reject(error as Error)),
      );
    });
  };

  /**
   * node-redis loses a socket destroyed while it is being opened: the connection is made anyway, and
   * stays open. A connection attempt under way is let finish (made, or failed and waiting to retry).
   */
  const destroy = async () => {
    if (!client.isOpen) return;
    if (!client.isReady) {
      let timer: NodeJS.Timeout | undefined;
      let settled!: () => void;
      await new Promise<void>((resolve) => {
        settled = resolve;
        client.once('ready', settled).once('error', settled);
        timer = setTimeout(settled, CONNECT_SETTLE_MS);
      });
      clearTimeout(timer);
      client.off('ready', settled).off('error', settled);
    }
    if (client.isOpen) client.destroy();
  };

  return {
    client,
    get isReady() {
      return client.isReady;
    },
    get isClosed() {
      return !client.isOpen;
    },
    call: (...args) => send(args),
    eval: (script, keys, ...args) => send(['EVAL', script, keys.length, ...keys, ...args]),
    async close() {
      if (!client.isOpen) return;
      // A hung Redis never answers what waits: closing gives up on it after the command timeout.
      if (client.isReady && awaited.size) {
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs ?? 2_000)));
        await Promise.race([Promise.allSettled(awaited), bound]);
        clearTimeout(timer);
      }
      await destroy();
    },
    onReadyOrClosed(listener) {
      waiters.add(listener);
      return () => waiters.delete(listener);
    },
    destroy,
  };
}

/** Resolves `true` once `link` is ready, `false` on timeout, abort, or a connection closed for good. */
export function whenReady(link: RedisLink, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  if (link.isReady) return Promise.resolve(true);
  if (link.isClosed || signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const finish = (ready: boolean) => {
      clearTimeout(timer);
      stopWaiting();
      signal?.removeEventListener('abort', onAbort);
      resolve(ready);
    };
    const onAbort = () => finish(false);
    const stopWaiting = link.onReadyOrClosed(finish);
    const timer = Number.isFinite(timeoutMs) ? setTimeout(onAbort, timeoutMs) : undefined;
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Errors that say Redis could not be reached, as opposed to a command Redis refused. */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return (
    error instanceof CommandTimeoutError ||
    error instanceof ClientOfflineError ||
    error instanceof ClientClosedError ||
    error instanceof SocketClosedUnexpectedlyError ||
    error instanceof SocketTimeoutError ||
    error instanceof ConnectionTimeoutError ||
    error instanceof DisconnectsClientError ||
    /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT/.test(error.message)
  );
}
