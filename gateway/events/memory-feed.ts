import { clipped, DomainError, ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { EventFeed, FeedEvent } from './types.js';

/** A subscriber further behind than this is ended with an error rather than holding memory without bound. */
const maxBuffered = 10_000;

export interface FeedQueue {
  push(event: FeedEvent): void;
  /** Ends the iteration with `error` once the events before it have been read. */
  fail(error: unknown): void;
  /** Ends the iteration now; events not read yet are dropped. */
  end(): void;
  readonly ended: boolean;
  readonly iterable: AsyncIterable<FeedEvent>;
}

/**
 * The consumer side of one subscription: a buffer between a push source and a `for await` loop. It
 * ends when the signal aborts or the consumer stops iterating, and calls `onEnd` once either way.
 */
export function createFeedQueue(onEnd: () => void, signal?: AbortSignal): FeedQueue {
  const buffer: FeedEvent[] = [];
  let waiter: ((result: IteratorResult<FeedEvent>) => void) | undefined;
  let failWaiter: ((error: unknown) => void) | undefined;
  let failure: { error: unknown } | undefined;
  let ended = false;
  let finished = false;

  const finish = () => {
    if (finished) return;
    finished = true;
    signal?.removeEventListener('abort', end);
    onEnd();
  };
  function end() {
    if (ended) return;
    ended = true;
    buffer.length = 0;
    finish();
    waiter?.({ value: undefined, done: true });
    waiter = failWaiter = undefined;
  }
  const fail = (error: unknown) => {
    if (ended) return;
    if (failWaiter) {
      failWaiter(error);
      waiter = failWaiter = undefined;
      ended = true;
      finish();
      return;
    }
    failure = { error };
    finish();
  };

  if (signal?.aborted) end();
  else signal?.addEventListener('abort', end, { once: true });

  const iterator: AsyncIterableIterator<FeedEvent> = {
    next() {
      const value = buffer.shift();
      if (value) return Promise.resolve({ value, done: false });
      if (failure) {
        const { error } = failure;
        failure = undefined;
        ended = true;
        return Promise.reject(error);
      }
      if (ended) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve, reject) => {
        waiter = resolve;
        failWaiter = reject;
      });
    },
    return() {
      end();
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };

  return {
    push(event) {
      if (ended || failure) return;
      if (waiter) {
        waiter({ value: event, done: false });
        waiter = failWaiter = undefined;
        return;
      }
      buffer.push(event);
      if (buffer.length > maxBuffered) {
        fail(
          new Error(
            `The subscriber fell more than ${maxBuffered} events behind; subscribe again with its last cursor`,
          ),
        );
      }
    },
    fail,
    end,
    get ended() {
      return ended || failure !== undefined;
    },
    iterable: iterator,
  };
}

export interface MemoryEventFeedOptions {
  logger: Logger;
  /** Events kept for subscribers that resume with a cursor. @default 10000 */
  retain?: number;
}

const cursorPattern = /^\d+$/;

/** A cursor the feed did not issue (BAD_USER_INPUT). */
export const invalidCursor = (cursor: string) =>
  new DomainError(ErrorCode.BAD_USER_INPUT, `Invalid cursor '${clipped(cursor)}'`);

/** The in-process EventFeed: one process, a ring of the last `retain` events, cursors counting up. */
export function createMemoryEventFeed(options: MemoryEventFeedOptions): EventFeed {
  const retain = Math.max(1, options.retain ?? 10_000);
  const events: FeedEvent[] = [];
  const subscriptions = new Set<{ topics: ReadonlySet<string>; queue: FeedQueue }>();
  let sequence = 0;
  let closed = false;

  return {
    kind: 'memory',

    async publish(topic, type, data) {
      if (closed) throw new Error('The event feed is closed');
      const event: FeedEvent = {
        cursor: String(++sequence),
        topic,
        type,
        // The JSON round trip gives subscribers what Redis would: plain data, not the publisher's objects.
        data: JSON.parse(JSON.stringify(data)) as Record<string, unknown>,
        time: new Date().toISOString(),
      };
      events.push(event);
      if (events.length > retain + Math.ceil(retain / 10)) events.splice(0, events.length - retain);
      for (const subscription of subscriptions) {
        if (subscription.topics.has(topic)) subscription.queue.push(event);
      }
    },

    subscribe(topics, { after, signal } = {}) {
      const subscription = { topics: new Set(topics), queue: undefined as unknown as FeedQueue };
      const queue = createFeedQueue(() => subscriptions.delete(subscription), signal);
      subscription.queue = queue;
      if (after !== undefined && !(cursorPattern.test(after) && Number.isSafeInteger(Number(after)))) {
        queue.fail(invalidCursor(after));
        return queue.iterable;
      }
      if (closed) {
        queue.end();
        return queue.iterable;
      }
      // Single-threaded: nothing can be published between reading the backlog and joining the live set.
      if (after !== undefined) {
        const afterSequence = Number(after);
        for (const event of events) {
          if (Number(event.cursor) > afterSequence && subscription.topics.has(event.topic)) queue.push(event);
        }
      }
      if (!queue.ended) subscriptions.add(subscription);
      return queue.iterable;
    },

    async close() {
      closed = true;
      for (const subscription of [...subscriptions]) subscription.queue.end();
    },
  };
}
