import { z } from 'zod';
import type { Failure } from '../errors.js';
import type { CompiledRetryPolicy } from '../retry-policy.js';

/**
 * A signal as it travels on the bus. `id` is assigned once, when the signal is written to the outbox,
 * and is the idempotency key of every receiver: a redelivered signal keeps its id.
 */
export const signalEnvelopeSchema = z.object({
  id: z.string().uuid(),
  name: z.string().min(1),
  payload: z.record(z.string(), z.unknown()),
  /** ISO-8601 time the signal was emitted (committed to the outbox). */
  time: z.string(),
  /** Who emitted it: `flow:<id>` or `plugin:<name>`. */
  source: z.string(),
});
export type SignalEnvelope = z.infer<typeof signalEnvelopeSchema>;

export interface ReceiverRegistration {
  /** Unique receiver name: one consumer group per receiver. */
  receiver: string;
  /** The signal it receives. */
  signal: string;
  /** `maximumAttempts` deliveries in all, then the signal is dead-lettered for this receiver. */
  retry: CompiledRetryPolicy;
}

export interface Delivery {
  envelope: SignalEnvelope;
  receiver: string;
  /** 1 for the first delivery to this receiver, counting redeliveries after failures and crashes. */
  attempt: number;
}

/**
 * Resolves when the receiver is done (the delivery is acknowledged). Throwing means "failed": the
 * delivery is retried with backoff, unless the thrown value converts to a non-retryable Failure or
 * this was the last attempt, in which case it is dead-lettered.
 */
export type ReceiverHandler = (delivery: Delivery, signal: AbortSignal) => Promise<void>;

export interface DeadLetter {
  /** The dead-letter entry's own id, used to replay it. */
  id: string;
  receiver: string;
  /**
   * `null` when the stream entry was not a valid envelope: nothing can be replayed, and
   * `failure.details.fields` holds what the entry contained.
   */
  envelope: SignalEnvelope | null;
  attempts: number;
  failure: Failure;
  /** ISO-8601 time it was dead-lettered. */
  deadAt: string;
}

/** Told of every signal a bus dead-letters (the metrics count them); must not throw. */
export type DeadLetterObserver = (letter: { receiver: string; signal: string; failure: Failure }) => void;

/**
 * At-least-once delivery of signals to receivers, each receiver independently. Implemented on Redis
 * Streams consumer groups and in process; both pass `test/signals/bus.contract.ts`.
 */
export interface SignalBus {
  readonly kind: 'redis' | 'memory';
  /**
   * Appends the signal to its stream, once per envelope id: publishing an id again (the outbox retrying
   * after a lost reply, or a second gateway after a crash) appends nothing and resolves — within the
   * bus's memory of ids (the Redis bus: `publishDedupeTtlMs`; in process: the retained signals).
   * Rejects when the bus is unreachable (the outbox keeps it).
   */
  publish(envelope: SignalEnvelope): Promise<void>;
  /** Starts delivering `registration.signal` to `handler`, including entries published before this call. */
  consume(registration: ReceiverRegistration, handler: ReceiverHandler): void;
  /**
   * The dead letters of `receiver`, oldest first; without one, those of every receiver that has any on
   * this bus (receiver by receiver), including receivers this process does not consume.
   */
  deadLetters(receiver?: string): Promise<DeadLetter[]>;
  /**
   * Redelivers dead letters (all, or those with the given ids) to their receiver only, as a first attempt,
   * and removes them from the dead letters; returns how many. Those without an envelope stay.
   */
  replay(receiver: string, ids?: readonly string[]): Promise<number>;
  /**
   * Delivers `envelope` to `receiver` only, as a first attempt, whatever became of it before (an
   * operator's redelivery of a signal whose run failed for good, or that never reached the receiver).
   * The receiver runs once per signal id regardless: a run that completed is not run again.
   */
  redeliver(receiver: string, envelope: SignalEnvelope): Promise<void>;
  /** True when the bus can accept a publish now. */
  ready(): Promise<boolean>;
  /** Stops taking deliveries, waits for running handlers (bounded by `signal`), then disconnects. */
  close(signal?: AbortSignal): Promise<void>;
}
