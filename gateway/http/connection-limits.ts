import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { z } from 'zod';
import { ConfigError, ErrorCode } from '../errors.js';

/** How many connections the HTTP server holds, and how long a socket may take to ask something. */
export interface HttpLimits {
  /**
   * Open TCP connections, websockets included. Past it, a new connection closes the longest-idle one
   * (a keep-alive or silent socket with no request in flight), or takes a place in the health reserve,
   * or is answered 503 and closed.
   * @default the lesser of 10,000 and half the process's open-file limit
   */
  maxConnections: number;
  /**
   * Connections beyond `maxConnections` kept for /healthz and /readyz while every other one is busy;
   * any other request on them is answered 503 SERVICE_UNAVAILABLE with Retry-After.
   * @default 32
   */
  healthReserve: number;
  /** A request's headers must have arrived this long after its connection opened or went idle. @default 15 s */
  headersTimeoutMs: number;
  /** A whole request (headers and body) must have arrived within this. @default 30 s */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. @default 5 s (Node's) */
  keepAliveTimeoutMs: number;
  /**
   * A socket with no bytes in either direction for this long is closed, also mid-request (a client that
   * stopped reading its response); websockets are exempt (they ping). 0 disables it.
   * @default 120 s
   */
  socketTimeoutMs: number;
}

/** Seconds a refused client is told to wait (`Retry-After`). */
export const RETRY_AFTER_SECONDS = 1;
export const TOO_MANY_CONNECTIONS = 'The gateway has too many connections open; retry later';

const count = z.number().int().min(0);
const positive = z.number().int().min(1);
const httpLimitsSchema = z
  .object({
    maxConnections: positive,
    healthReserve: count,
    headersTimeoutMs: positive,
    requestTimeoutMs: positive,
    keepAliveTimeoutMs: positive,
    socketTimeoutMs: count,
  })
  .strict()
  .refine((l) => l.headersTimeoutMs <= l.requestTimeoutMs, {
    message: 'headersTimeoutMs must not exceed requestTimeoutMs (the headers are part of the request)',
    path: ['headersTimeoutMs'],
  });

/** The given limits over the defaults, checked; a bad value is a ConfigError naming the field. */
export function resolveHttpLimits(given: Partial<HttpLimits> = {}): HttpLimits {
  const limits = {
    maxConnections: defaultMaxConnections(openFileLimit()),
    healthReserve: 32,
    headersTimeoutMs: 15_000,
    requestTimeoutMs: 30_000,
    keepAliveTimeoutMs: 5_000,
    socketTimeoutMs: 120_000,
    ...definedOnly(given),
  };
  const parsed = httpLimitsSchema.safeParse(limits);
  if (!parsed.success)
    throw new ConfigError(
      'httpLimits',
      parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
    );
  return parsed.data;
}

/**
 * Half the open-file limit leaves the other half to what serving a request opens (database and Redis
 * connections, subgraph fetches, files), and to sockets being refused.
 */
export function defaultMaxConnections(openFiles: number | undefined): number {
  return openFiles === undefined ? 10_000 : Math.max(1, Math.min(10_000, Math.floor(openFiles / 2)));
}

/** The soft open-file limit (Linux: /proc/self/limits), or undefined where it cannot be read or is unlimited. */
export function openFileLimit(limits = '/proc/self/limits'): number | undefined {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(readFileSync(limits, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Node's checks of headersTimeout and requestTimeout run every `connectionsCheckingInterval` (30 s by
 * default), so a short timeout needs a matching interval to mean anything.
 */
export function connectionsCheckingInterval(limits: HttpLimits): number {
  return Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4)));
}

export interface ConnectionBudget {
  /** True for a connection of the health reserve: it may ask /healthz or /readyz only, once. */
  reserved(socket: Socket): boolean;
}

/**
 * Accounts for `server`'s connections: admits a new one while fewer than `maxConnections` are open,
 * else makes room by closing the longest-idle admitted one (what nginx does with its keep-alive
 * connections), else puts it in the health reserve, else answers 503 and closes it. Websockets count
 * while open and are never closed to make room (they have their own cap).
 */
export function limitConnections(
  server: Server,
  limits: Pick<HttpLimits, 'maxConnections' | 'healthReserve'>,
): ConnectionBudget {
  const admitted = new Set<Socket>();
  /** Admitted sockets with no request in flight, longest idle first (Set keeps insertion order). */
  const idle = new Set<Socket>();
  const inFlight = new Map<Socket, number>();
  const reserve = new Set<Socket>();

  const makeRoom = () => {
    const oldest = idle.values().next();
    if (oldest.done) return false;
    forget(oldest.value);
    oldest.value.destroy();
    return true;
  };
  const forget = (socket: Socket) => {
    admitted.delete(socket);
    idle.delete(socket);
    inFlight.delete(socket);
  };

  server.on('connection', (socket: Socket) => {
    if (admitted.size < limits.maxConnections || makeRoom()) {
      admitted.add(socket);
      idle.add(socket);
      socket.once('close', () => forget(socket));
    } else if (reserve.size < limits.healthReserve) {
      reserve.add(socket);
      socket.once('close', () => reserve.delete(socket));
    } else {
      refuse(socket);
    }
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    if (!admitted.has(socket)) return;
    idle.delete(socket);
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    res.once('close', () => {
      const left = (inFlight.get(socket) ?? 1) - 1;
      if (left > 0) return void inFlight.set(socket, left);
      inFlight.delete(socket);
      // Re-added at the end: it is now the most recently idle.
      if (admitted.has(socket) && !socket.destroyed) idle.add(socket);
    });
  });
  server.on('upgrade', (req: IncomingMessage) => {
    const socket = req.socket;
    // A reserve connection serves health checks only: no websocket on it.
    if (reserve.has(socket)) return refuse(socket);
    // Node destroys an upgrade nobody listens for; this listener alone must not keep it open (a
    // server without subscriptions, or one whose subscriptions have closed for a graceful stop).
    if (server.listenerCount('upgrade') === 1) return void socket.destroy();
    idle.delete(socket);
  });

  return { reserved: (socket) => reserve.has(socket) };
}

const refusal = (() => {
  const body = JSON.stringify({ code: ErrorCode.SERVICE_UNAVAILABLE, message: TOO_MANY_CONNECTIONS });
  return [
    'HTTP/1.1 503 Service Unavailable',
    `Retry-After: ${RETRY_AFTER_SECONDS}`,
    'Connection: close',
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
})();

/**
 * Answers 503 before any request was read, then closes at once: the answer is handed to the kernel by
 * the write, and waiting for the client to read it would let it hold the descriptor.
 */
function refuse(socket: Socket) {
  if (socket.destroyed) return;
  socket.write(refusal);
  socket.destroy();
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
