import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { GraphQLError } from 'graphql';
import type { Context, ServerOptions } from 'graphql-ws';
import { useServer, type Extra } from 'graphql-ws/use/ws';
import type { WebSocketServer } from 'ws';
import { z } from 'zod';
import { clipped, ConfigError, ErrorCode } from '../errors.js';
import { createCoalescedWrites } from './coalesced-writes.js';
import { streamFrames, type FrameStream } from './frames.js';
import { createInFlight, onEnd, type InFlight } from './in-flight.js';

/** What a graphql-ws connection may hold, and how long it may stay without using it. */
export interface SubscriptionLimits {
  /**
   * Open websocket connections; one more is accepted, then closed with 1013 (Try Again Later), which
   * graphql-ws clients retry with backoff. They count towards the HTTP server's `maxConnections` too.
   * @default 90 % of the HTTP server's maxConnections
   */
  maxConnections: number;
  /**
   * Operations in flight on one connection (subscriptions, and queries or mutations still running,
   * also those their client completed: until they end, `in-flight.ts`); one more is answered with an
   * error message of code TOO_MANY_REQUESTS, the connection stays open.
   * @default 100
   */
  maxSubscriptionsPerConnection: number;
  /**
   * Operations in flight of one verified caller (one Service, one staff member), over all its
   * connections together, counted as per connection; one more is answered TOO_MANY_REQUESTS. Keeps one
   * caller from holding every connection's subscriptions, and the fan-out's work, to itself.
   * @default 1000
   */
  maxSubscriptionsPerCaller: number;
  /** A connection that sends no `connection_init` within this is closed with 4408. @default 3 s */
  connectionInitWaitTimeoutMs: number;
  /**
   * A connection with no operation in flight for this long (pings do not count) is closed with 1000;
   * graphql-ws clients reconnect on their next subscription. 0 disables it.
   * @default 60 s
   */
  idleTimeoutMs: number;
  /**
   * Socket writes in one turn of the event loop, all connections together, before the fan-out lets
   * other work (health checks, new connections, requests) run. A socket's frames of one turn are one
   * write (`coalesced-writes.ts`): only its first takes from the budget.
   * @default 256
   */
  framesPerTurn: number;
  /** Largest message a client may send; a larger one closes the connection with 1009. @default 1 MiB */
  maxMessageBytes: number;
}

/** The close codes the gateway's websockets end with, beyond graphql-ws's own (4400–4500). */
export const WebSocketCloseCode = {
  /** An idle connection (no operation, no message) closed by the server. */
  Idle: 1000,
  /** Over the connection cap: retry later. */
  TryAgainLater: 1013,
} as const;
export const TOO_MANY_WEBSOCKETS = 'The gateway has too many websocket connections open; retry later';

const limitsSchema = z
  .object({
    maxConnections: z.number().int().min(1),
    maxSubscriptionsPerConnection: z.number().int().min(1),
    maxSubscriptionsPerCaller: z.number().int().min(1),
    connectionInitWaitTimeoutMs: z.number().int().min(1),
    idleTimeoutMs: z.number().int().min(0),
    framesPerTurn: z.number().int().min(1),
    maxMessageBytes: z.number().int().min(1),
  })
  .strict();

/**
 * The given limits over the defaults, checked against the HTTP server's connection cap (websockets
 * are HTTP connections too); a bad value is a ConfigError naming the field.
 */
export function resolveSubscriptionLimits(
  given: Partial<SubscriptionLimits>,
  http: { maxConnections: number },
): SubscriptionLimits {
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  const parsed = limitsSchema.safeParse({
    maxConnections: Math.max(1, Math.floor(http.maxConnections * 0.9)),
    maxSubscriptionsPerConnection: 100,
    maxSubscriptionsPerCaller: 1_000,
    connectionInitWaitTimeoutMs: 3_000,
    idleTimeoutMs: 60_000,
    framesPerTurn: 256,
    maxMessageBytes: 1 << 20,
    ...defined,
  });
  if (!parsed.success)
    throw new ConfigError(
      'subscriptionLimits',
      parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
    );
  if (parsed.data.maxConnections > http.maxConnections)
    throw new ConfigError('subscriptionLimits', [
      `maxConnections: ${parsed.data.maxConnections} websockets cannot fit in the HTTP server's ${http.maxConnections} connections`,
    ]);
  return parsed.data;
}

/**
 * A budget of sends per event-loop turn, shared by every subscriber of one server. graphql-ws sends an
 * event, waits for the write, then reads the next one; a write the kernel takes at once completes in a
 * microtask, so a burst would otherwise be written to every subscriber without I/O ever running (a
 * burst of 100 events to 1,000 subscribers: /healthz answered after all 100,000 frames, 4.5 s later).
 * Past the budget, senders queue for the next turn, in order.
 */
export function createTurnBudget(perTurn: number): () => Promise<void> | undefined {
  let used = 0;
  let scheduled = false;
  const waiting: Array<() => void> = [];
  const nextTurn = () => {
    scheduled = false;
    const woken = waiting.splice(0, perTurn);
    used = woken.length;
    for (const wake of woken) wake();
    if (used) schedule();
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    // setImmediate runs after the poll phase: accepted connections and requests go first.
    setImmediate(nextTurn);
  };
  return () => {
    if (used < perTurn && !waiting.length) {
      used++;
      schedule();
      return undefined;
    }
    schedule();
    return new Promise<void>((resolve) => waiting.push(resolve));
  };
}

/**
 * Upgrades `server`'s websocket requests for `wss` (`noServer`), at most `maxConnections` open at once.
 * One over the cap is accepted, so its client gets a close code it can act on (1013), then closed
 * before graphql-ws sees it. Returns what detaches it from the server.
 */
export function acceptWithinCap(server: Server, wss: WebSocketServer, maxConnections: number): () => void {
  let open = 0;
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Destroyed already when the HTTP server refused the connection (on its health reserve).
    if (socket.destroyed) return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (open >= maxConnections) return ws.close(WebSocketCloseCode.TryAgainLater, TOO_MANY_WEBSOCKETS);
      open += 1;
      ws.once('close', () => (open -= 1));
      wss.emit('connection', ws, req);
    });
  };
  server.on('upgrade', onUpgrade);
  return () => server.off('upgrade', onUpgrade);
}

type Options = ServerOptions<Record<string, unknown> | undefined, Extra>;

/**
 * graphql-ws's `useServer` with the per-connection limits: operations at once, the init timeout, idle
 * connections, and the fan-out's budget per turn. The given hooks still run, each after the limit's
 * check, so the server's own options stay apart from the limits.
 */
export function useServerWithLimits(
  options: Options,
  wss: WebSocketServer,
  limits: SubscriptionLimits,
  /** Who a connection's caller is (after onConnect), for the cap per caller; undefined: not capped. */
  callerOf: (ctx: Ctx) => string | undefined = () => undefined,
): ReturnType<typeof useServer> {
  const { onConnect, onSubscribe, onOperation, onNext, onError, onComplete } = options;
  const take = createTurnBudget(limits.framesPerTurn);
  const writes = createCoalescedWrites();
  // Before graphql-ws's own listener (added by useServer below): every send it makes is coalesced.
  wss.on('connection', (ws) => writes.coalesce(ws));
  const idle = new WeakMap<Ctx, IdleWatch>();
  const inFlight = createInFlight<Ctx>();
  const limited: Options = {
    ...options,
    connectionInitWaitTimeout: limits.connectionInitWaitTimeoutMs,
    onConnect: async (ctx) => {
      ctx.extra.socket.once('close', () => inFlight.releaseAll(ctx));
      if (limits.idleTimeoutMs > 0) idle.set(ctx, watchIdle(ctx, limits.idleTimeoutMs, inFlight));
      return onConnect ? onConnect(ctx) : true;
    },
    onSubscribe: async (ctx, id, payload) => {
      idle.get(ctx)?.active();
      // graphql-ws takes an id that its client completed as free at once; it is not while the
      // operation under it still runs, and a second operation under it would be one nothing ends.
      if (inFlight.holds(ctx, id))
        return [
          new GraphQLError(
            `Operation '${clipped(id)}' has not ended yet: send the new operation with an id of its own`,
            { extensions: { code: ErrorCode.BAD_REQUEST } },
          ),
        ];
      if (inFlight.size(ctx) >= limits.maxSubscriptionsPerConnection) {
        return [
          new GraphQLError(
            `Too many subscriptions on this connection: at most ${limits.maxSubscriptionsPerConnection} at once`,
            {
              extensions: { code: ErrorCode.TOO_MANY_REQUESTS, limit: limits.maxSubscriptionsPerConnection },
            },
          ),
        ];
      }
      const caller = callerOf(ctx);
      if (caller !== undefined && inFlight.callerSize(caller) >= limits.maxSubscriptionsPerCaller) {
        return [
          new GraphQLError(
            `Too many subscriptions of this caller: at most ${limits.maxSubscriptionsPerCaller} at once, over all its connections`,
            {
              extensions: { code: ErrorCode.TOO_MANY_REQUESTS, limit: limits.maxSubscriptionsPerCaller },
            },
          ),
        ];
      }
      inFlight.take(ctx, id, payload, caller);
      try {
        const started = await onSubscribe?.(ctx, id, payload);
        // Refused: graphql-ws answers the errors (if its client still waits) and runs nothing.
        if (Array.isArray(started)) inFlight.release(ctx, id, payload);
        return started;
      } catch (error) {
        inFlight.release(ctx, id, payload);
        throw error;
      }
    },
    // A subscription's events are framed here, each payload serialised once for all its subscribers;
    // graphql-ws sends the rest (a query's or mutation's one result, errors, complete).
    onOperation: async (ctx, id, payload, args, result) => {
      const operation = (await onOperation?.(ctx, id, payload, args, result)) ?? result;
      if (!(Symbol.asyncIterator in operation)) return operation;
      const socket = ctx.extra.socket;
      const frames = streamFrames(operation, {
        id,
        open: () => id in ctx.subscriptions,
        format: (next) => onNext?.(ctx, id, payload, args, next) as ReturnType<FrameStream['format']>,
        beforeSend: () => (writes.holding(socket) ? undefined : take()),
        send: (frame) => writes.send(socket, frame),
      });
      return onEnd(frames, () => inFlight.release(ctx, id, payload));
    },
    onNext: async (ctx, id, payload, args, result) => {
      if (!writes.holding(ctx.extra.socket)) await take();
      return onNext?.(ctx, id, payload, args, result);
    },
    // graphql-ws calls onComplete once an operation it ran has ended, whether its client completed
    // it or not, and onError for one it refused: either way its place and id are free again. (A
    // subscription's are freed sooner, when it is closed: onEnd above.)
    onError: (ctx, id, payload, errors) => {
      inFlight.release(ctx, id, payload);
      return onError?.(ctx, id, payload, errors);
    },
    onComplete: (ctx, id, payload) => {
      inFlight.release(ctx, id, payload);
      idle.get(ctx)?.active();
      return onComplete?.(ctx, id, payload);
    },
  };
  return useServer(limited, wss);
}

type Ctx = Context<Record<string, unknown> | undefined, Extra>;
interface IdleWatch {
  /** An operation started or ended: the idle time counts from now. */
  active(): void;
}

/**
 * Closes the connection once it has had no operation in flight for `timeoutMs`. Started on
 * `connection_init`: before it, graphql-ws's connectionInitWaitTimeout applies.
 */
function watchIdle(ctx: Ctx, timeoutMs: number, inFlight: InFlight<Ctx>): IdleWatch {
  const socket = ctx.extra.socket;
  let lastActive = performance.now();
  const check = () => {
    if (inFlight.size(ctx)) lastActive = performance.now();
    const idleFor = performance.now() - lastActive;
    if (idleFor >= timeoutMs) return socket.close(WebSocketCloseCode.Idle, 'Idle');
    timer = setTimeout(check, timeoutMs - idleFor).unref();
  };
  let timer = setTimeout(check, timeoutMs).unref();
  socket.once('close', () => clearTimeout(timer));
  return { active: () => void (lastActive = performance.now()) };
}
