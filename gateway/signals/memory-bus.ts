import { toFailure, type Failure } from '../errors.js';
import type { Logger } from '../log.js';
import { retryDelayMs, shouldRetry } from '../retry-policy.js';
import {
  signalEnvelopeSchema,
  type DeadLetter,
  type DeadLetterObserver,
  type ReceiverHandler,
  type ReceiverRegistration,
  type SignalBus,
  type SignalEnvelope,
} from './types.js';

export interface MemorySignalBusOptions {
  logger: Logger;
  /** Handlers of one receiver that may run at the same time. @default 8 */
  concurrency?: number;
  /**
   * Signals kept per signal name, so that a receiver that starts later still gets them (the Redis
   * stream's `MAXLEN`). A receiver that falls further behind loses the oldest. @default 10000
   */
  retain?: number;
  /** How long `close()` without a signal waits for running handlers. @default 10000 */
  shutdownTimeoutMs?: number;
  /** Told of each dead letter. */
  onDeadLetter?: DeadLetterObserver;
}

interface Job {
  envelope: SignalEnvelope;
  attempt: number;
}

interface SignalLog {
  entries: SignalEnvelope[];
  /** Sequence number of `entries[0]`; sequence numbers only grow, trimming moves this forward. */
  first: number;
}

interface ReceiverState {
  registration: ReceiverRegistration;
  handler: ReceiverHandler;
  log: SignalLog;
  /** Sequence number of the next signal to deliver. */
  next: number;
  /** Retries whose backoff has passed, and replayed dead letters. */
  due: Job[];
  /** Alternates due retries with new signals, so neither can keep the other waiting. */
  preferNew: boolean;
  timers: Set<NodeJS.Timeout>;
  running: Set<{ controller: AbortController; done: Promise<void> }>;
  pumpScheduled: boolean;
}

const closedError = () => new Error('The signal bus is closed');

/**
 * The in-process SignalBus, used when REDIS_URL is not set. Same contract as the Redis bus, within one
 * process: nothing survives a restart, which the embedded default accepts because the outbox keeps every
 * signal until it is published.
 */
export function createMemorySignalBus(options: MemorySignalBusOptions): SignalBus {
  const logger = options.logger;
  const concurrency = Math.max(1, options.concurrency ?? 8);
  const retain = Math.max(1, options.retain ?? 10_000);
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 10_000;
  const logs = new Map<string, SignalLog>();
  const receivers = new Map<string, ReceiverState>();
  const deadLetters = new Map<string, DeadLetter[]>();
  /** Ids of the retained signals: publishing one again appends nothing, as on Redis. */
  const retainedIds = new Set<string>();
  let deadLetterSeq = 0;
  let closing = false;
  let closePromise: Promise<void> | undefined;

  const logOf = (signal: string) => {
    let log = logs.get(signal);
    if (!log) logs.set(signal, (log = { entries: [], first: 0 }));
    return log;
  };

  const take = (state: ReceiverState): Job | undefined => {
    const { log } = state;
    if (state.next < log.first) {
      logger.warn(
        { receiver: state.registration.receiver, lost: log.first - state.next },
        'Receiver fell behind the retained signals; the oldest were dropped',
      );
      state.next = log.first;
    }
    const hasNew = state.next < log.first + log.entries.length;
    if (state.due.length && (!hasNew || !state.preferNew)) {
      state.preferNew = true;
      return state.due.shift();
    }
    if (!hasNew) return undefined;
    state.preferNew = false;
    const envelope = log.entries[state.next - log.first]!;
    state.next += 1;
    return { envelope, attempt: 1 };
  };

  // Handlers start on a later tick, never inside `publish` or `consume`, as they would with Redis.
  const schedulePump = (state: ReceiverState) => {
    if (state.pumpScheduled) return;
    state.pumpScheduled = true;
    queueMicrotask(() => {
      state.pumpScheduled = false;
      while (!closing && state.running.size < concurrency) {
        const job = take(state);
        if (!job) return;
        run(state, job);
      }
    });
  };

  const deadLetter = (state: ReceiverState, job: Job, failure: Failure, error: unknown) => {
    const { receiver } = state.registration;
    const letter: DeadLetter = {
      id: String(++deadLetterSeq),
      receiver,
      envelope: job.envelope,
      attempts: job.attempt,
      failure,
      deadAt: new Date().toISOString(),
    };
    let letters = deadLetters.get(receiver);
    if (!letters) deadLetters.set(receiver, (letters = []));
    letters.push(letter);
    logger.error(
      {
        receiver,
        signal: job.envelope.name,
        signalId: job.envelope.id,
        attempts: job.attempt,
        failure,
        err: error,
      },
      'Signal dead-lettered',
    );
    options.onDeadLetter?.({ receiver, signal: job.envelope.name, failure });
  };

  const run = (state: ReceiverState, job: Job) => {
    const { registration, handler } = state;
    const { receiver, retry } = registration;
    const controller = new AbortController();
    const entry = { controller, done: Promise.resolve() };
    // Added first: a handler that throws synchronously reaches `finally` before the IIFE returns.
    state.running.add(entry);
    entry.done = (async () => {
      try {
        await handler({ envelope: job.envelope, receiver, attempt: job.attempt }, controller.signal);
      } catch (error) {
        const failure = toFailure(error);
        if (!shouldRetry(retry, job.attempt, failure)) {
          deadLetter(state, job, failure, error);
          return;
        }
        if (closing) return;
        const delayMs = retryDelayMs(retry, job.attempt);
        logger.warn(
          {
            receiver,
            signal: job.envelope.name,
            signalId: job.envelope.id,
            attempt: job.attempt,
            delayMs,
            failure,
            err: error,
          },
          'Receiver failed; retrying',
        );
        const timer = setTimeout(() => {
          state.timers.delete(timer);
          state.due.push({ envelope: job.envelope, attempt: job.attempt + 1 });
          schedulePump(state);
        }, delayMs);
        state.timers.add(timer);
      } finally {
        state.running.delete(entry);
        schedulePump(state);
      }
    })();
  };

  const drain = async (signal: AbortSignal) => {
    closing = true;
    const running = [...receivers.values()].flatMap((state) => {
      for (const timer of state.timers) clearTimeout(timer);
      state.timers.clear();
      return [...state.running];
    });
    const finished = Promise.all(running.map((entry) => entry.done));
    const aborted = new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await Promise.race([finished, aborted]);
    for (const entry of running) entry.controller.abort(signal.reason ?? closedError());
  };

  const bus: SignalBus = {
    kind: 'memory',

    async publish(envelope) {
      if (closing) throw closedError();
      // The JSON round trip gives receivers what Redis would: plain data, not the emitter's objects.
      const parsed = signalEnvelopeSchema.parse(JSON.parse(JSON.stringify(envelope)));
      if (retainedIds.has(parsed.id)) return;
      const log = logOf(parsed.name);
      log.entries.push(parsed);
      retainedIds.add(parsed.id);
      // Trims in batches, like `MAXLEN ~`, rather than shifting the array on every publish.
      if (log.entries.length > retain + Math.ceil(retain / 10)) {
        const drop = log.entries.length - retain;
        for (const trimmed of log.entries.splice(0, drop)) retainedIds.delete(trimmed.id);
        log.first += drop;
      }
      for (const state of receivers.values()) {
        if (state.registration.signal === parsed.name) schedulePump(state);
      }
    },

    consume(registration, handler) {
      if (closing) throw closedError();
      if (receivers.has(registration.receiver)) {
        throw new Error(`Receiver '${registration.receiver}' is already consuming on this bus`);
      }
      const log = logOf(registration.signal);
      const state: ReceiverState = {
        registration,
        handler,
        log,
        next: log.first,
        due: [],
        preferNew: false,
        timers: new Set(),
        running: new Set(),
        pumpScheduled: false,
      };
      receivers.set(registration.receiver, state);
      schedulePump(state);
    },

    async deadLetters(receiver) {
      if (receiver !== undefined) return [...(deadLetters.get(receiver) ?? [])];
      return [...deadLetters.values()].flat();
    },

    async redeliver(receiver, envelope) {
      if (closing) throw closedError();
      const state = receivers.get(receiver);
      if (!state) throw new Error(`Receiver '${receiver}' is not consumed on this bus`);
      state.due.push({
        envelope: signalEnvelopeSchema.parse(JSON.parse(JSON.stringify(envelope))),
        attempt: 1,
      });
      schedulePump(state);
    },

    async replay(receiver, ids) {
      if (closing) throw closedError();
      const letters = deadLetters.get(receiver) ?? [];
      const state = receivers.get(receiver);
      const wanted = ids ? new Set(ids) : undefined;
      const chosen = letters.filter((letter) => letter.envelope && (!wanted || wanted.has(letter.id)));
      // Dead letters exist only for receivers consumed here, so `state` is there whenever `chosen` is not empty.
      if (!state || !chosen.length) return 0;
      deadLetters.set(
        receiver,
        letters.filter((letter) => !chosen.includes(letter)),
      );
      for (const letter of chosen) state.due.push({ envelope: letter.envelope!, attempt: 1 });
      schedulePump(state);
      return chosen.length;
    },

    async ready() {
      return !closing;
    },

    close(signal = AbortSignal.timeout(shutdownTimeoutMs)) {
      closePromise ??= drain(signal);
      return closePromise;
    },
  };
  return bus;
}
