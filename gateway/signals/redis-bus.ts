import { z } from 'zod';
import { toFailure, type Failure } from '../errors.js';
import type { Logger } from '../log.js';
import {
  isConnectionError,
  openRedis,
  whenReady,
  type RedisConnection,
  type RedisLink,
} from './redis-connection.js';
import { retryDelayMs, shouldRetry } from '../retry-policy.js';
import { isStreamId } from './stream-ids.js';
import {
  signalEnvelopeSchema,
  type DeadLetter,
  type DeadLetterObserver,
  type ReceiverHandler,
  type ReceiverRegistration,
  type SignalBus,
  type SignalEnvelope,
} from './types.js';

export type RedisSignalBusOptions = RedisConnection & {
  /**
   * Every key is `<keyPrefix>:signal:<name>`, `<keyPrefix>:dead:<receiver>`, `<keyPrefix>:replay:<receiver>`
   * or `<keyPrefix>:published:<signal id>`.
   */
  keyPrefix: string;
  /**
   * This process's consumer name in every receiver's group. It must be unique among running processes
   * (e.g. `<hostname>-<pid>`): two processes under one name would renew each other's deliveries.
   */
  consumerName: string;
  logger: Logger;
  /**
   * How often each receiver looks for deliveries to retry or to take over from a stopped consumer. A
   * failure of this process's own handler is retried on time regardless. @default 1000
   */
  pollIntervalMs?: number;
  /** The longest a read waits for new signals (`XREADGROUP BLOCK`). @default 5000 */
  blockMs?: number;
  /** Handlers of one receiver that may run at the same time. @default 8 */
  concurrency?: number;
  /**
   * A running delivery is renewed every third of this; a delivery not renewed for this long belongs to
   * a stopped consumer and is taken over by another. It bounds how long a crash delays a signal.
   * @default 30000
   */
  leaseMs?: number;
  /**
   * Approximate length of each signal stream (`XADD MAXLEN ~`). A receiver that falls further behind
   * loses the oldest entries: size it for the longest plausible outage. @default 100000
   */
  maxLen?: number;
  /**
   * How long a published signal's id is remembered (`<keyPrefix>:published:<id>`, about 130 bytes
   * each): a second publish of it within this time appends nothing. It must outlast every way the
   * outbox can publish a signal again after Redis appended it — an XADD that timed out on the client
   * but ran once Redis answered again (seconds), or a published mark that PostgreSQL (down) or a
   * crashed gateway did not commit (retried once it is back). Past it a second entry is possible, and
   * harmless: receivers run once per signal id. An hour costs ~47 MB of Redis at 100 signals/s.
   * @default 3600000 (1 h)
   */
  publishDedupeTtlMs?: number;
  /** How long `publish` waits for the first connection after start-up; later it never waits. @default 2000 */
  connectTimeoutMs?: number;
  /** Rejects a command Redis has not answered in this time, so a hung server cannot hang `publish`. @default 5000 */
  commandTimeoutMs?: number;
  /** How long `close()` without a signal waits for running handlers. @default 10000 */
  shutdownTimeoutMs?: number;
  /** Told of each dead letter once Redis has it. */
  onDeadLetter?: DeadLetterObserver;
};

/** Publishing failed because Redis cannot be reached; the outbox keeps the signal and tries again. */
export class BusUnavailableError extends Error {
  override readonly name = 'BusUnavailableError';
}

/**
 * The consumer that holds failed deliveries while they wait for their retry. Who owns a pending entry
 * is then its state: this consumer = failed, due after its backoff; a real consumer = running (renewed)
 * or abandoned by a crash (not renewed for `leaseMs`).
 */
const PARKED = '~retry';
/** Pending entries read per `XPENDING` page. */
const PAGE = 100;

/** `[id, [field, value, …]]` pairs of an `XRANGE`/`XCLAIM` reply, read without trusting its shape. */
export function streamEntries(reply: unknown): Array<{ id: string; fields: unknown }> {
  if (!Array.isArray(reply)) return [];
  return reply.flatMap((entry: unknown) =>
    Array.isArray(entry) && typeof entry[0] === 'string' ? [{ id: entry[0], fields: entry[1] }] : [],
  );
}

export function fieldsRecord(fields: unknown): Record<string, string> | undefined {
  if (!Array.isArray(fields) || fields.length % 2 !== 0) return undefined;
  const record: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) {
    const [name, value] = [fields[i], fields[i + 1]];
    if (typeof name !== 'string' || typeof value !== 'string') return undefined;
    record[name] = value;
  }
  return record;
}

/**
 * Same layout as event-bus-redis's headers, so an entry reads on its own with `XRANGE`; the trace
 * context in the W3C header names, as a traced message carries them.
 */
const envelopeFields = (envelope: SignalEnvelope) => [
  'id',
  envelope.id,
  'name',
  envelope.name,
  'source',
  envelope.source,
  'time',
  envelope.time,
  'payload',
  JSON.stringify(envelope.payload),
  ...(envelope.traceContext ? ['traceparent', envelope.traceContext.traceparent] : []),
  ...(envelope.traceContext?.tracestate ? ['tracestate', envelope.traceContext.tracestate] : []),
];

type ParsedEntry = { ok: true; envelope: SignalEnvelope } | { ok: false; problem: string; fields: unknown };

function parseEntry(fields: unknown, signal: string): ParsedEntry {
  const record = fieldsRecord(fields);
  if (!record) return { ok: false, problem: 'the entry is not a list of field/value strings', fields };
  let payload: unknown;
  try {
    payload = JSON.parse(record.payload ?? '');
  } catch {
    return { ok: false, problem: 'its payload is not JSON', fields: record };
  }
  const { traceparent, tracestate } = record;
  const traceContext = traceparent === undefined ? undefined : { traceparent, tracestate };
  const result = signalEnvelopeSchema.safeParse({ ...record, payload, traceContext });
  if (!result.success) return { ok: false, problem: z.prettifyError(result.error), fields: record };
  if (result.data.name !== signal) {
    return {
      ok: false,
      problem: `signal '${result.data.name}' on the stream of '${signal}'`,
      fields: record,
    };
  }
  return { ok: true, envelope: result.data };
}

const failureSchema = z.object({
  type: z.string(),
  message: z.string(),
  nonRetryable: z.boolean(),
  details: z.record(z.string(), z.unknown()).optional(),
});
const jsonString = z.string().transform((text, ctx) => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    ctx.addIssue({ code: 'custom', message: 'not JSON' });
    return z.NEVER;
  }
});
const deadLetterFieldsSchema = z.object({
  receiver: z.string(),
  attempts: z.coerce.number().int(),
  failure: jsonString.pipe(failureSchema),
  deadAt: z.string(),
  envelope: jsonString.pipe(signalEnvelopeSchema).optional(),
});

/**
 * Deterministic jitter for an entry's backoff (FNV-1a of id and attempt): every consumer computes the
 * same due time for the same failed delivery, so they agree on when it may be claimed.
 */
function entryJitter(id: string, attempt: number): () => number {
  let hash = 0x811c9dc5;
  for (const char of `${id}/${attempt}`) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193) >>> 0;
  return () => hash / 2 ** 32;
}

/**
 * Appends a signal to its stream once per signal id, atomically: the marker says it was appended (its
 * value is the entry's id), so a publish retried after a lost reply appends nothing, whether the first
 * ran before it or not. KEYS: marker, stream. ARGV: marker TTL (ms), MAXLEN, envelope fields…
 * Returns the new entry's id, or false for a signal already appended.
 */
const PUBLISH_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[1], id, 'PX', ARGV[1])
return id`;

/**
 * Moves pending entries from one consumer to another, resetting their idle time, but only those `from`
 * still owns: a consumer that lost an entry to a takeover must not take it back. Used to renew running
 * deliveries (from = to = me) and to park failed ones (to = PARKED).
 * KEYS: stream. ARGV: group, from, to, ids…
 */
const MOVE_SCRIPT = `
local moved = 0
for i = 4, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[i], 'JUSTID')
    moved = moved + 1
  end
end
return moved`;

/**
 * Acknowledges an entry, deleting it when its stream has no other reader (a replay stream). With
 * dead-letter fields, first appends them to the dead-letter stream, once: a retried call after a lost
 * reply finds the entry acknowledged and writes nothing.
 * KEYS: stream, dead-letter stream. ARGV: group, id, delete ('1'|'0'), dead-letter fields…
 */
const SETTLE_SCRIPT = `
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if acked == 1 and #ARGV > 3 then
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
end
if ARGV[3] == '1' then redis.call('XDEL', KEYS[1], ARGV[2]) end
return acked`;

/**
 * Moves one dead letter to the receiver's replay stream, atomically, so two operators replaying at
 * once replay it once. KEYS: dead-letter stream, replay stream. ARGV: dead-letter id, envelope fields…
 */
const REPLAY_SCRIPT = `
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
return 1`;

/** Waits `ms`; resolves `false` at once if `signal` aborts first. */
export function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((res) => (resolve = res));
  return { promise, resolve };
}

interface InFlight {
  stream: string;
  id: string;
  controller: AbortController;
  task: Promise<void>;
}

interface ReceiverLoop {
  /** Renews the lease of every running delivery. */
  renew(): Promise<void>;
  /** Resolves when the loop has stopped reading and every handler it started has finished. */
  drained(): Promise<void>;
  /** After a bounded close: aborts running handlers and hands their deliveries to other consumers. */
  abandon(): Promise<void>;
  reader: RedisLink;
  wake(): void;
}

/**
 * The SignalBus on Redis Streams. One stream per signal name; one consumer group per receiver,
 * created from id 0 so that what was published before the receiver started is delivered; one consumer
 * per process. Failed deliveries stay pending and are claimed again after their backoff, by this or any
 * process; deliveries of a crashed process are claimed after `leaseMs`.
 */
export function createRedisSignalBus(options: RedisSignalBusOptions): SignalBus {
  const { keyPrefix, consumerName, logger } = options;
  if (!consumerName || consumerName.startsWith('~')) {
    throw new TypeError(
      `consumerName '${consumerName}' must be a non-empty name that does not start with '~'`,
    );
  }
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const blockMs = Math.max(1, options.blockMs ?? 5_000);
  const concurrency = Math.max(1, options.concurrency ?? 8);
  const leaseMs = options.leaseMs ?? 30_000;
  const maxLen = options.maxLen ?? 100_000;
  const publishDedupeTtlMs = Math.max(1, options.publishDedupeTtlMs ?? 3_600_000);
  const connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 10_000;
  const connection: RedisConnection = { url: options.url, redisOptions: options.redisOptions };

  const signalKey = (name: string) => `${keyPrefix}:signal:${name}`;
  const deadKey = (receiver: string) => `${keyPrefix}:dead:${receiver}`;
  const replayKey = (receiver: string) => `${keyPrefix}:replay:${receiver}`;
  const publishedKey = (signalId: string) => `${keyPrefix}:published:${signalId}`;

  const cmd = openRedis(
    connection,
    {
      name: `${keyPrefix}:${consumerName}:cmd`,
      failFast: true,
      commandTimeoutMs: options.commandTimeoutMs ?? 5_000,
    },
    logger,
  );
  let everReady = false;
  cmd.client.once('ready', () => (everReady = true));

  const loops = new Map<string, ReceiverLoop>();
  /** Stops reading: loops finish their current step and exit. */
  const stopping = new AbortController();
  const stopped = new Promise<void>((resolve) => stopping.signal.addEventListener('abort', () => resolve()));
  /** Ends a bounded close: pending settlements stop waiting for Redis. */
  const hardStop = new AbortController();
  let closePromise: Promise<void> | undefined;
  let readyProbe: Promise<boolean> | undefined;

  /**
   * Runs an acknowledgement or a hand-over until Redis takes it: a lost ack would run a successful
   * handler again. Gives up on a refused command or a bounded close; the entry then stays pending and
   * is delivered again (at least once).
   */
  const settle = async (what: string, context: object, op: () => Promise<unknown>) => {
    for (;;) {
      try {
        await op();
        return true;
      } catch (error) {
        // A connection can still say 'ready' for a moment after its socket closed, and then refuses
        // commands at once: waiting a little first keeps this from spinning without yielding to I/O.
        const retry =
          isConnectionError(error) &&
          (await pause(Math.min(pollIntervalMs, 250), hardStop.signal)) &&
          (await whenReady(cmd, Infinity, hardStop.signal));
        if (!retry) {
          logger.error(
            { err: error, ...context },
            `Could not ${what}; the entry stays pending and is delivered again`,
          );
          return false;
        }
      }
    }
  };

  const startReceiver = (registration: ReceiverRegistration, handler: ReceiverHandler): ReceiverLoop => {
    const { receiver, signal, retry: policy } = registration;
    const group = receiver;
    const streams = [signalKey(signal), replayKey(receiver)] as const;
    const log = logger.child({ receiver, signal });
    const reader = openRedis(
      connection,
      { name: `${keyPrefix}:${consumerName}:read:${receiver}`, failFast: true },
      log,
    );
    const inFlight = new Map<string, InFlight>();
    const scanCursors = new Map<string, string>(streams.map((stream) => [stream, '-']));
    let slotFreed = deferred();
    /**
     * Handlers running. A read returns up to COUNT entries per stream (signal and replay), so a few may
     * wait here for a slot; they are in `inFlight` meanwhile, hence renewed.
     */
    let running = 0;
    const slotWaiters: Array<() => void> = [];
    const acquire = () =>
      running < concurrency
        ? ((running += 1), Promise.resolve())
        : new Promise<void>((resolve) => slotWaiters.push(resolve));
    // A freed slot passes straight to a waiter, so no new handler can slip in between.
    const release = () => {
      const next = slotWaiters.shift();
      if (next) next();
      else running -= 1;
    };
    let nextScanAt = 0;
    let groupsReady = false;
    let readerId: string | undefined;
    let reading = false;
    let readDeadline = 0;
    let wakeTimer: NodeJS.Timeout | undefined;
    /** After a round of retries that left more due, new signals go first, then retries again. */
    let readFirst = false;
    // A new connection has a new id.
    reader.client.on('error', () => (readerId = undefined));

    const unblock = () => {
      if (reading && readerId !== undefined) cmd.call('CLIENT', 'UNBLOCK', readerId).catch(() => {});
    };

    /** Makes the loop scan at `at` even if it is waiting in a blocking read then. */
    const scanAt = (at: number) => {
      if (at >= nextScanAt || stopping.signal.aborted) return;
      nextScanAt = at;
      if (!reading || readDeadline <= at) return;
      clearTimeout(wakeTimer);
      wakeTimer = setTimeout(unblock, Math.max(0, at - Date.now()));
    };

    const ensureGroups = async () => {
      for (const stream of streams) {
        try {
          await cmd.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM');
        } catch (error) {
          if (!(error instanceof Error && error.message.startsWith('BUSYGROUP'))) throw error;
        }
      }
    };

    const deadLetter = async (
      stream: string,
      id: string,
      attempts: number,
      failure: Failure,
      envelope?: SignalEnvelope,
      /** What the receiver threw on its last attempt: logged with its stack. */
      error?: unknown,
    ) => {
      log.error(
        { entry: id, signalId: envelope?.id, attempts, failure, ...(error ? { err: error } : {}) },
        'Signal dead-lettered',
      );
      const fields = [
        'receiver',
        receiver,
        'attempts',
        String(attempts),
        'failure',
        JSON.stringify(failure),
        'deadAt',
        new Date().toISOString(),
        'stream',
        stream,
        'entry',
        id,
        ...(envelope ? ['envelope', JSON.stringify(envelope)] : []),
      ];
      const deleteSource = stream === streams[1] ? '1' : '0';
      const settled = await settle('dead-letter the delivery', { receiver, entry: id }, () =>
        cmd.eval(SETTLE_SCRIPT, [stream, deadKey(receiver)], group, id, deleteSource, ...fields),
      );
      if (settled) options.onDeadLetter?.({ receiver, signal, failure });
      return settled;
    };

    const deliver = async (
      stream: string,
      id: string,
      fields: unknown,
      attempt: number,
      previousOwner: string,
    ) => {
      const parsed = parseEntry(fields, signal);
      if (!parsed.ok) {
        await deadLetter(stream, id, attempt, {
          type: 'InvalidSignalEnvelope',
          message: `Stream entry ${id} of ${stream} is not a valid signal envelope: ${parsed.problem}`,
          nonRetryable: true,
          details: { stream, entry: id, fields: parsed.fields },
        });
        return;
      }
      const { envelope } = parsed;
      if (attempt > policy.maximumAttempts) {
        await deadLetter(
          stream,
          id,
          attempt - 1,
          {
            type: 'DeliveryAbandoned',
            message:
              previousOwner === PARKED
                ? `No attempt left: ${attempt - 1} of ${policy.maximumAttempts} attempts were made`
                : `No attempt left: attempt ${attempt - 1} of ${policy.maximumAttempts} never finished (consumer '${previousOwner}' stopped while running it)`,
            nonRetryable: false,
          },
          envelope,
        );
        return;
      }
      const entry = inFlight.get(`${stream} ${id}`)!;
      await acquire();
      try {
        // Handed over by a bounded close while it waited for a slot.
        if (entry.controller.signal.aborted) return;
        await handler({ envelope, receiver, attempt }, entry.controller.signal);
      } catch (error) {
        const failure = toFailure(error);
        if (!shouldRetry(policy, attempt, failure)) {
          await deadLetter(stream, id, attempt, failure, envelope, error);
          return;
        }
        const delayMs = retryDelayMs(policy, attempt, entryJitter(id, attempt));
        log.warn(
          { entry: id, signalId: envelope.id, attempt, delayMs, failure, err: error },
          'Receiver failed; retrying',
        );
        const parked = await settle('park the failed delivery', { receiver, entry: id }, () =>
          cmd.eval(MOVE_SCRIPT, [stream], group, consumerName, PARKED, id),
        );
        if (parked) scanAt(Date.now() + delayMs);
        return;
      } finally {
        release();
      }
      await settle('acknowledge the delivery', { receiver, entry: id }, () =>
        cmd.eval(SETTLE_SCRIPT, [stream, deadKey(receiver)], group, id, stream === streams[1] ? '1' : '0'),
      );
    };

    const dispatch = (
      stream: string,
      id: string,
      fields: unknown,
      attempt: number,
      previousOwner: string,
    ) => {
      const key = `${stream} ${id}`;
      if (inFlight.has(key)) return;
      const entry: InFlight = { stream, id, controller: new AbortController(), task: Promise.resolve() };
      inFlight.set(key, entry);
      entry.task = deliver(stream, id, fields, attempt, previousOwner)
        .catch((error: unknown) => log.error({ err: error, entry: id }, 'Delivery failed unexpectedly'))
        .finally(() => {
          inFlight.delete(key);
          slotFreed.resolve();
          slotFreed = deferred();
        });
    };

    /**
     * Claims pending entries that are due: failed ones after their backoff, those of a stopped consumer
     * after the lease. The PEL is read in pages from a cursor that moves on each round, so entries at
     * its head that are not due yet never hide due ones behind them. Returns whether due entries were
     * left for lack of `budget`.
     */
    const claimDue = async (budget: number) => {
      const minIdle = Math.min(leaseMs, Math.floor(policy.initialIntervalMs / 2));
      let nextDue = Infinity;
      let moreDue = false;
      for (const stream of streams) {
        const cursor = scanCursors.get(stream)!;
        const reply = await cmd.call('XPENDING', stream, group, 'IDLE', minIdle, cursor, '+', PAGE);
        const rows = Array.isArray(reply) ? (reply as unknown[]) : [];
        let last = cursor;
        let stoppedEarly = false;
        for (const row of rows) {
          if (!Array.isArray(row)) continue;
          const [id, owner, idle, deliveries] = [
            String(row[0]),
            String(row[1]),
            Number(row[2]),
            Number(row[3]),
          ];
          if (inFlight.has(`${stream} ${id}`)) {
            last = `(${id}`;
            continue;
          }
          const threshold =
            owner === PARKED ? retryDelayMs(policy, deliveries, entryJitter(id, deliveries)) : leaseMs;
          if (idle < threshold) {
            nextDue = Math.min(nextDue, Date.now() + threshold - idle);
            last = `(${id}`;
            continue;
          }
          if (budget <= 0) {
            moreDue = stoppedEarly = true;
            break;
          }
          // The minimum idle time makes the claim fail if another consumer claimed or renewed it meanwhile.
          const claimed = streamEntries(await cmd.call('XCLAIM', stream, group, consumerName, threshold, id));
          last = `(${id}`;
          if (claimed[0]) {
            budget -= 1;
            if (owner !== PARKED)
              log.warn({ entry: id, owner, idle }, 'Taking over a delivery from a stopped consumer');
            dispatch(stream, id, claimed[0].fields, deliveries + 1, owner);
          } else if (!streamEntries(await cmd.call('XRANGE', stream, id, id)).length) {
            log.error(
              { entry: id },
              'A pending delivery was trimmed from its stream before it succeeded; it is lost',
            );
          }
        }
        scanCursors.set(stream, rows.length < PAGE && !stoppedEarly ? '-' : last);
      }
      nextScanAt = Math.min(Date.now() + pollIntervalMs, nextDue);
      return moreDue;
    };

    const loop = async () => {
      while (!stopping.signal.aborted) {
        try {
          if (!reader.isReady) {
            await whenReady(reader, Infinity, stopping.signal);
            // A connection closed for good cannot come back; wait for close.
            if (reader.isClosed) await stopped;
            continue;
          }
          if (!groupsReady) {
            await ensureGroups();
            groupsReady = true;
          }
          readerId ??= String(await reader.call('CLIENT', 'ID'));
          let free = concurrency - inFlight.size;
          if (free <= 0) {
            await Promise.race([slotFreed.promise, stopped]);
            continue;
          }
          let nonBlocking = readFirst;
          if (readFirst) readFirst = false;
          else if (Date.now() >= nextScanAt) {
            // Retries take at most half of the free slots, so new signals are read in the same round.
            const moreDue = await claimDue(free > 1 ? Math.ceil(free / 2) : 1);
            if (moreDue) {
              readFirst = nonBlocking = true;
              nextScanAt = 0;
            }
            free = concurrency - inFlight.size;
            if (free <= 0) continue;
          }
          if (stopping.signal.aborted) break;
          const block = Math.min(blockMs, Math.max(1, nextScanAt - Date.now()));
          reading = true;
          readDeadline = Date.now() + block;
          const reply = await reader.call(
            'XREADGROUP',
            'GROUP',
            group,
            consumerName,
            'COUNT',
            free,
            ...(nonBlocking ? [] : ['BLOCK', block]),
            'STREAMS',
            ...streams,
            '>',
            '>',
          );
          reading = false;
          for (const streamReply of Array.isArray(reply) ? (reply as unknown[]) : []) {
            if (!Array.isArray(streamReply) || typeof streamReply[0] !== 'string') continue;
            for (const { id, fields } of streamEntries(streamReply[1])) {
              dispatch(streamReply[0], id, fields, 1, consumerName);
            }
          }
        } catch (error) {
          reading = false;
          if (stopping.signal.aborted) break;
          if (error instanceof Error && error.message.startsWith('NOGROUP')) {
            // Redis lost its data (a restart without persistence): recreate the groups and go on.
            log.warn('Consumer group missing; creating it again');
            groupsReady = false;
            continue;
          }
          if (!isConnectionError(error)) log.error({ err: error }, 'Signal consumer loop failed; retrying');
          await pause(pollIntervalMs, stopping.signal);
        }
      }
      clearTimeout(wakeTimer);
    };

    const looping = loop();

    return {
      reader,
      wake: unblock,
      async renew() {
        for (const stream of streams) {
          const ids = [...inFlight.values()]
            .filter((entry) => entry.stream === stream)
            .map((entry) => entry.id);
          if (!ids.length) continue;
          await cmd
            .eval(MOVE_SCRIPT, [stream], group, consumerName, consumerName, ...ids)
            .catch((error: unknown) => {
              // An outage is reported once by the connection; a lease that lapses meanwhile only risks a duplicate.
              if (!isConnectionError(error)) log.warn({ err: error }, 'Could not renew running deliveries');
            });
        }
      },
      async drained() {
        await looping;
        while (inFlight.size) await Promise.all([...inFlight.values()].map((entry) => entry.task));
      },
      async abandon() {
        const entries = [...inFlight.values()];
        for (const entry of entries) entry.controller.abort(new Error('The signal bus is closing'));
        for (const stream of streams) {
          const ids = entries.filter((entry) => entry.stream === stream).map((entry) => entry.id);
          if (!ids.length) continue;
          await cmd.eval(MOVE_SCRIPT, [stream], group, consumerName, PARKED, ...ids).catch(() => {});
        }
      },
    };
  };

  const renewTimer = setInterval(
    () => {
      for (const loop of loops.values()) void loop.renew();
    },
    Math.max(1, Math.floor(leaseMs / 3)),
  );
  renewTimer.unref();

  const closedError = () => new Error('The signal bus is closed');

  const command = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    if (closePromise) throw closedError();
    if (!everReady && !cmd.isReady) await whenReady(cmd, connectTimeoutMs);
    try {
      return await run();
    } catch (error) {
      if (isConnectionError(error)) {
        throw new BusUnavailableError(
          `Could not ${what}: Redis is unreachable (${(error as Error).message})`,
          { cause: error },
        );
      }
      throw error;
    }
  };

  /** Every receiver with a dead-letter stream under this prefix, consumed here or not, by name. */
  const deadLetterReceivers = async () => {
    const prefix = deadKey('');
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    const names = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = (await cmd.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 500)) as [
        string,
        string[],
      ];
      cursor = next;
      for (const key of keys) names.add(key.slice(prefix.length));
    } while (cursor !== '0');
    return [...names].sort();
  };

  const readDeadLetters = async (receiver: string, ids?: readonly string[]) => {
    // An id that is not a stream id names no dead letter; Redis would refuse the whole call.
    const replies = ids
      ? await Promise.all(ids.filter(isStreamId).map((id) => cmd.call('XRANGE', deadKey(receiver), id, id)))
      : [await cmd.call('XRANGE', deadKey(receiver), '-', '+')];
    return replies.flatMap(streamEntries).flatMap(({ id, fields }): DeadLetter[] => {
      const parsed = deadLetterFieldsSchema.safeParse(fieldsRecord(fields));
      if (!parsed.success) {
        logger.warn(
          { receiver, entry: id, problem: z.prettifyError(parsed.error) },
          'Unreadable dead letter skipped',
        );
        return [];
      }
      const { envelope, ...rest } = parsed.data;
      return [{ id, ...rest, envelope: envelope ?? null }];
    });
  };

  return {
    kind: 'redis',

    async publish(envelope) {
      const parsed = signalEnvelopeSchema.parse(envelope);
      const entry = await command('publish the signal', () =>
        cmd.eval(
          PUBLISH_SCRIPT,
          [publishedKey(parsed.id), signalKey(parsed.name)],
          publishDedupeTtlMs,
          maxLen,
          ...envelopeFields(parsed),
        ),
      );
      if (entry === null) {
        logger.info(
          { signal: parsed.name, signalId: parsed.id },
          'Signal already on its stream (an earlier publish ran after all); not appended again',
        );
      }
    },

    consume(registration, handler) {
      if (closePromise) throw closedError();
      if (loops.has(registration.receiver)) {
        throw new Error(`Receiver '${registration.receiver}' is already consuming on this bus`);
      }
      loops.set(registration.receiver, startReceiver(registration, handler));
    },

    deadLetters(receiver) {
      return command('read dead letters', async () => {
        if (receiver !== undefined) return readDeadLetters(receiver);
        const letters: DeadLetter[] = [];
        for (const name of await deadLetterReceivers()) letters.push(...(await readDeadLetters(name)));
        return letters;
      });
    },

    redeliver(receiver, envelope) {
      const parsed = signalEnvelopeSchema.parse(envelope);
      return command('redeliver the signal', async () => {
        await cmd.call('XADD', replayKey(receiver), '*', ...envelopeFields(parsed));
      });
    },

    replay(receiver, ids) {
      return command('replay dead letters', async () => {
        let replayed = 0;
        for (const letter of await readDeadLetters(receiver, ids)) {
          if (!letter.envelope) continue;
          const moved = await cmd.eval(
            REPLAY_SCRIPT,
            [deadKey(receiver), replayKey(receiver)],
            letter.id,
            ...envelopeFields(letter.envelope),
          );
          replayed += Number(moved);
        }
        return replayed;
      });
    },

    async ready() {
      if (closePromise || !cmd.isReady) return false;
      // A hung Redis answers no PING before the command timeout: probes meanwhile share the one in
      // flight instead of piling up behind it.
      readyProbe ??= cmd
        .call('PING')
        .then(
          () => true,
          () => false,
        )
        .finally(() => (readyProbe = undefined));
      return readyProbe;
    },

    close(signal = AbortSignal.timeout(shutdownTimeoutMs)) {
      closePromise ??= (async () => {
        stopping.abort();
        for (const loop of loops.values()) loop.wake();
        const drained = Promise.all([...loops.values()].map((loop) => loop.drained()));
        const bound = new Promise<'bound'>((resolve) => {
          if (signal.aborted) resolve('bound');
          signal.addEventListener('abort', () => resolve('bound'), { once: true });
        });
        if ((await Promise.race([drained.then(() => 'drained' as const), bound])) === 'bound') {
          hardStop.abort();
          await Promise.all([...loops.values()].map((loop) => loop.abandon()));
        }
        clearInterval(renewTimer);
        // A reader may be blocked in XREADGROUP: dropped, not waited for.
        await Promise.all([...[...loops.values()].map((loop) => loop.reader.destroy()), cmd.close()]);
      })();
      return closePromise;
    },
  };
}
