import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.js';
import { pause } from '../signals/redis-bus.js';
import { isConnectionError, whenReady, type RedisLink } from '../signals/redis-connection.js';

/**
 * Appends events and announces each with its stream id, in one step: pub/sub messages then arrive in
 * the order of their ids even with many publishers, which the "newer than the last delivered" rule of
 * subscribers relies on. Once per (producer, sequence number): the producer key holds the highest
 * number appended, so an event sent again after its reply was lost (a timed-out command that Redis ran
 * once it answered again) is not appended twice. A producer appends in sequence order (see
 * `createFeedPublisher`), so "not above the highest" means "already appended".
 * KEYS: stream, producer. ARGV: retain, producer TTL, then per event: topic, type, data, time, channel,
 * message body, sequence.
 */
const PUBLISH_SCRIPT = `
local highest = tonumber(redis.call('GET', KEYS[2]) or '0')
for i = 3, #ARGV, 7 do
  local seq = tonumber(ARGV[i + 6])
  if seq > highest then
    local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'topic', ARGV[i], 'type', ARGV[i + 1], 'data', ARGV[i + 2], 'time', ARGV[i + 3])
    redis.call('PUBLISH', ARGV[i + 4], id .. ' ' .. ARGV[i + 5])
    highest = seq
  end
end
redis.call('SET', KEYS[2], highest, 'PX', ARGV[2])
return highest`;

/**
 * How long a producer's highest sequence number is kept after its last publish. An event sent twice
 * is sent again only once Redis answers, when the first send, if it ever runs, runs too: an hour is
 * far more than that, and there is one such key per gateway process.
 */
const PRODUCER_TTL_MS = 3_600_000;
/** Most events sent in one round trip (one script call): a turn's events, or queued ones catching up. */
const BATCH = 100;
/** Between attempts while Redis refuses connections (or a connection dies as soon as it is ready). */
const RETRY_PAUSE_MS = 250;

/** An event of this turn and its publisher's promise. */
interface Publishing {
  event: QueuedEvent;
  resolve(): void;
  reject(error: unknown): void;
}

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

  /**
   * Numbers events as they go out, and appends them in one script call: the order of sends on the one
   * connection is the order of numbers.
   */
  const send = (events: readonly QueuedEvent[]) => {
    const args: Array<string | number> = [options.retain, PRODUCER_TTL_MS];
    for (const event of events) {
      event.seq ??= ++seq;
      args.push(
        event.topic,
        event.type,
        event.json,
        event.time,
        options.channelOf(event.topic),
        body(event),
        event.seq,
      );
    }
    return cmd.eval(PUBLISH_SCRIPT, [options.streamKey, producerKey], ...args);
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
      // The batch is one script call: appended (or refused) as a whole; a resend after a lost
      // connection is recognised by the events' numbers.
      const error = await send(batch).then(
        () => undefined,
        (reason: unknown) => ({ reason }),
      );
      const again = error && isConnectionError(error.reason) ? batch : [];
      if (error && !again.length) {
        logger.error(
          { err: error.reason, count: batch.length },
          'Redis refused feed events; they are dropped',
        );
        outage.refused += batch.length;
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

  /** Events published in this turn of the event loop: sent together once it ends. */
  let turn: Publishing[] = [];

  /** Sends directly, one script call per BATCH; an event whose send loses the connection is queued. */
  const sendTurn = async () => {
    const waiting = turn;
    turn = [];
    // FIFO: turns that wait here for the first connection go out in their order.
    await options.connected();
    for (let i = 0; i < waiting.length; i += BATCH) {
      const chunk = waiting.slice(i, i + BATCH);
      if (flushing || stopping.signal.aborted) {
        for (const { event, resolve } of chunk) {
          enqueue(event);
          resolve();
        }
        continue;
      }
      const sent: Promise<void> = send(chunk.map((p) => p.event))
        .then(
          () => chunk.forEach((p) => p.resolve()),
          (error: unknown) => {
            for (const { event, resolve, reject } of chunk) {
              if (isConnectionError(error)) {
                enqueue(event);
                resolve();
              } else reject(error);
            }
          },
        )
        .finally(() => direct.delete(sent));
      direct.add(sent);
    }
  };

  return {
    publish(topic, type, data) {
      if (stopping.signal.aborted) return Promise.reject(new Error('The event feed is closed'));
      const event: QueuedEvent = {
        seq: undefined,
        topic,
        type,
        json: JSON.stringify(data),
        time: new Date().toISOString(),
      };
      if (flushing) {
        enqueue(event);
        return Promise.resolve();
      }
      // One round trip for every event of the turn (a flow's step end and the next step's start,
      // a batch of signals, many flows' events under load), not one each.
      return new Promise<void>((resolve, reject) => {
        turn.push({ event, resolve, reject });
        if (turn.length === 1) setImmediate(() => void sendTurn());
      });
    },

    async close(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      // This turn's events go out now, as they would have without the close.
      if (turn.length) await Promise.race([sendTurn(), timeout]);
      if (flushing && cmd.isReady) await Promise.race([flushed, timeout]);
      clearTimeout(timer);
      stopping.abort();
      if (queue.length) {
        logger.warn({ lost: queue.length }, 'Feed events not published before the feed closed are lost');
        queue.length = 0;
      }
    },
  };
}
