import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.js';
import { pause } from '../signals/redis-bus.js';
import { isConnectionError, whenReady, type RedisLink } from '../signals/redis-connection.js';

/**
 * Appends the event and announces it with its stream id in one step: pub/sub messages then arrive in
 * the order of their ids even with many publishers, which the "newer than the last delivered" rule of
 * subscribers relies on. Once per (producer, sequence number): the producer key holds the highest
 * number appended, so an event sent again after its reply was lost (a timed-out command that Redis ran
 * once it answered again) is not appended twice. A producer appends in sequence order (see
 * `createFeedPublisher`), so "not above the highest" means "already appended".
 * KEYS: stream, producer. ARGV: retain, topic, type, data, time, channel, message body, sequence, producer TTL.
 * Returns the entry's id, or false for an event already appended.
 */
const PUBLISH_SCRIPT = `
if tonumber(ARGV[8]) <= tonumber(redis.call('GET', KEYS[2]) or '0') then return false end
redis.call('SET', KEYS[2], ARGV[8], 'PX', ARGV[9])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'topic', ARGV[2], 'type', ARGV[3], 'data', ARGV[4], 'time', ARGV[5])
redis.call('PUBLISH', ARGV[6], id .. ' ' .. ARGV[7])
return id`;

/**
 * How long a producer's highest sequence number is kept after its last publish. An event sent twice
 * is sent again only once Redis answers, when the first send, if it ever runs, runs too: an hour is
 * far more than that, and there is one such key per gateway process.
 */
const PRODUCER_TTL_MS = 3_600_000;
/** Queued events sent per round trip while catching up. */
const BATCH = 100;
/** Between attempts while Redis refuses connections (or a connection dies as soon as it is ready). */
const RETRY_PAUSE_MS = 250;

interface QueuedEvent {
  /** Assigned when first sent, and kept for every later send: it is what makes a resend harmless. */
  seq: number | undefined;
  topic: string;
  type: string;
  /** The data as JSON when it was published: later changes to the publisher's object do not leak in. */
  json: string;
  time: string;
}

export interface FeedPublisherOptions {
  cmd: RedisLink;
  /** Every key of this producer is under it: `<keyPrefix>:feed:producer:<random id>`. */
  keyPrefix: string;
  streamKey: string;
  channelOf(topic: string): string;
  /** `XADD MAXLEN ~`. */
  retain: number;
  /** Resolves once the first connection is made, or its wait is over. */
  connected(): Promise<void>;
  /** Events held while Redis is unreachable; past it, the oldest are dropped (counted and logged). */
  maxQueued: number;
  logger: Logger;
}

export interface FeedPublisher {
  /**
   * Appends the event, or queues it while Redis is unreachable (or earlier events still wait): queued
   * events are appended once Redis is back, in publish order and before any later event, so they get
   * cursors after those of every event already delivered. Rejects only when Redis refuses the event.
   */
  publish(topic: string, type: string, data: Record<string, unknown>): Promise<void>;
  /** Stops taking events; publishes what waits for at most `timeoutMs` if Redis is up; drops (and logs) the rest. */
  close(timeoutMs: number): Promise<void>;
}

/**
 * The publishing side of the Redis event feed. Flow events are best-effort, but an outage must not
 * lose them: they wait here, in order and bounded, and are appended exactly once when Redis is back.
 * What waits is in this process's memory only: a crash during an outage loses it.
 */
export function createFeedPublisher(options: FeedPublisherOptions): FeedPublisher {
  const { cmd, logger, maxQueued } = options;
  const producerKey = `${options.keyPrefix}:feed:producer:${randomUUID()}`;
  let seq = 0;
  const queue: QueuedEvent[] = [];
  /** Sends made directly (nothing queued then), until they settle. */
  const direct = new Set<Promise<void>>();
  /** True from the first queued event until the queue is empty again: publishes queue behind it. */
  let flushing = false;
  let flushed: Promise<void> = Promise.resolve();
  /** Of the current outage, for its summary. */
  let outage = { queued: 0, dropped: 0, refused: 0 };
  const stopping = new AbortController();

  const body = (event: QueuedEvent) =>
    `{"topic":${JSON.stringify(event.topic)},"type":${JSON.stringify(event.type)},"data":${event.json},"time":${JSON.stringify(event.time)}}`;

  /** Numbers events as they go out: the order of sends on the one connection is the order of numbers. */
  const send = (event: QueuedEvent) => {
    event.seq ??= ++seq;
    return cmd.eval(
      PUBLISH_SCRIPT,
      [options.streamKey, producerKey],
      options.retain,
      event.topic,
      event.type,
      event.json,
      event.time,
      options.channelOf(event.topic),
      body(event),
      event.seq,
      PRODUCER_TTL_MS,
    );
  };

  const drop = (count: number, why: string) => {
    if (!outage.dropped) logger.warn({ maxQueued, why }, 'Feed events are being dropped');
    outage.dropped += count;
  };

  const enqueue = (event: QueuedEvent) => {
    if (stopping.signal.aborted) {
      logger.warn({ lost: 1 }, 'Feed event not published before the feed closed is lost');
      return;
    }
    if (!flushing) {
      outage = { queued: 0, dropped: 0, refused: 0 };
      logger.warn('Redis unreachable: feed events are queued until it is back');
    }
    outage.queued += 1;
    // An event already sent once goes back to its place by number; the others go last, in publish order.
    const at =
      event.seq === undefined ? -1 : queue.findIndex((q) => q.seq === undefined || q.seq > event.seq!);
    queue.splice(at < 0 ? queue.length : at, 0, event);
    if (queue.length > maxQueued) {
      queue.shift();
      drop(1, `more than ${maxQueued} events waited for Redis; the oldest went first`);
    }
    if (!flushing) {
      flushing = true;
      flushed = flush();
    }
  };

  const flush = async () => {
    // Sends already on the wire finish first: one of them may have been appended, and numbers above
    // the highest appended are the only ones a resend may use.
    while (direct.size) await Promise.all(direct);
    while (queue.length && !stopping.signal.aborted) {
      if (!cmd.isReady) {
        await whenReady(cmd, Infinity, stopping.signal);
        continue;
      }
      const batch = queue.splice(0, BATCH);
      const results = await Promise.allSettled(batch.map(send));
      // On one connection commands run in order: an event whose successor was appended was appended
      // (or refused) itself, and its resend is recognised by its number.
      const again = batch.filter((_, i) => {
        const result = results[i]!;
        return result.status === 'rejected' && isConnectionError(result.reason);
      });
      const refused = results.flatMap((r) =>
        r.status === 'rejected' && !isConnectionError(r.reason) ? [r.reason as unknown] : [],
      );
      if (refused.length) {
        logger.error(
          { err: refused[0], count: refused.length },
          'Redis refused feed events; they are dropped',
        );
        outage.refused += refused.length;
      }
      queue.unshift(...again);
      if (queue.length > maxQueued) {
        drop(
          queue.length - maxQueued,
          `more than ${maxQueued} events waited for Redis; the oldest went first`,
        );
        queue.splice(0, queue.length - maxQueued);
      }
      if (again.length) await pause(RETRY_PAUSE_MS, stopping.signal);
    }
    // Synchronously after the last check of the queue: a publish from now on goes out directly.
    flushing = false;
    const { queued, dropped, refused } = outage;
    if (!stopping.signal.aborted)
      logger[dropped || refused ? 'warn' : 'info'](
        { queued, dropped, refused },
        'Feed events queued while Redis was unreachable are published',
      );
  };

  return {
    async publish(topic, type, data) {
      if (stopping.signal.aborted) throw new Error('The event feed is closed');
      const event: QueuedEvent = {
        seq: undefined,
        topic,
        type,
        json: JSON.stringify(data),
        time: new Date().toISOString(),
      };
      if (flushing) return enqueue(event);
      await options.connected();
      if (flushing) return enqueue(event);
      let refusal: { error: unknown } | undefined;
      const sent: Promise<void> = send(event)
        .then(
          () => undefined,
          (error: unknown) => {
            if (isConnectionError(error)) enqueue(event);
            else refusal = { error };
          },
        )
        .finally(() => direct.delete(sent));
      direct.add(sent);
      await sent;
      if (refusal) throw refusal.error;
    },

    async close(timeoutMs) {
      if (flushing && cmd.isReady) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([flushed, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
        clearTimeout(timer);
      }
      stopping.abort();
      if (queue.length) {
        logger.warn({ lost: queue.length }, 'Feed events not published before the feed closed are lost');
        queue.length = 0;
      }
    },
  };
}
