import { z } from 'zod';
import type { Logger } from '../log.js';
import { BusUnavailableError, fieldsRecord, streamEntries } from '../signals/redis-bus.js';
import { isStreamId, LAST_STREAM_ID } from '../signals/stream-ids.js';
import {
  isConnectionError,
  openRedis,
  whenReady,
  type RedisConnection,
  type RedisLink,
} from '../signals/redis-connection.js';
import { createFeedQueue, invalidCursor, type FeedQueue } from './memory-feed.js';
import { createFeedPublisher } from './redis-publisher.js';
import type { EventFeed, FeedEvent } from './types.js';

export type RedisEventFeedOptions = RedisConnection & {
  /** The stream is `<keyPrefix>:feed`; the channel of a topic is `<keyPrefix>:feed:<topic>`. */
  keyPrefix: string;
  logger: Logger;
  /** Events kept for subscribers that resume with a cursor (`XADD MAXLEN ~`). @default 10000 */
  retain?: number;
  /** How long a call waits for the first connection after start-up; later none waits. @default 2000 */
  connectTimeoutMs?: number;
  /** @default 5000 */
  commandTimeoutMs?: number;
  /**
   * Events held in this process while Redis is unreachable, published in order once it is back; past
   * this the oldest are dropped, counted and logged. @default 10000
   */
  maxQueued?: number;
  /** How long `close()` keeps publishing queued events when Redis is up. @default 2000 */
  shutdownFlushMs?: number;
};

const BACKLOG_PAGE = 500;
/** How long a new subscription waits for Redis to answer before it fails (bounded, as a reconnection). */
const JOIN_WAIT_MS = 10_000;
/** Live events held while a subscription catches up; past this, it ends instead of growing without bound. */
const MAX_BUFFERED = 10_000;
const cursorPattern = /^\d+-\d+$/;

/**
 * A Redis stream id a subscription can resume after: short of the largest id (nothing comes after
 * it). Redis refuses any other with an error that has no code.
 */
const isResumableAfter = (cursor: string) => isStreamId(cursor) && cursor !== LAST_STREAM_ID;

const eventBodySchema = z.object({
  topic: z.string(),
  type: z.string(),
  data: z.record(z.string(), z.unknown()),
  time: z.string(),
});

function parseJson(text: string | undefined): unknown {
  try {
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}

/**
 * Stream ids compared as numbers (`<ms>-<seq>`); as strings `'10-0' < '9-0'`. Without leading zeros
 * a longer part is a larger number and parts of one length compare as strings: no parsing, which
 * mattered at one comparison per subscriber and event.
 */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  const aDash = a.indexOf('-');
  const bDash = b.indexOf('-');
  const aMs = aDash < 0 ? a : a.slice(0, aDash);
  const bMs = bDash < 0 ? b : b.slice(0, bDash);
  const ms = comparePart(aMs, bMs);
  if (ms !== 0) return ms;
  return comparePart(aDash < 0 ? '0' : a.slice(aDash + 1), bDash < 0 ? '0' : b.slice(bDash + 1));
}

function comparePart(a: string, b: string): number {
  // Redis writes none; a client's `after:` cursor might.
  if (a.length > 1 && a[0] === '0') a = a.replace(/^0+(?=\d)/, '');
  if (b.length > 1 && b[0] === '0') b = b.replace(/^0+(?=\d)/, '');
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a === b ? 0 : a < b ? -1 : 1;
}

interface Subscription {
  topics: ReadonlySet<string>;
  channels: string[];
  queue: FeedQueue;
  /** The last stream id seen, delivered or not: nothing up to it is delivered (again). */
  position: string | undefined;
  /**
   * For a subscription without a cursor: the newest id when `subscribe` was called, asked for at once
   * so that it precedes any later publish of this process on the same connection.
   */
  start: Promise<string> | undefined;
  /** Live events that arrive while the backlog is read; `undefined` once live. */
  buffer: FeedEvent[] | undefined;
  syncing: boolean;
  resyncRequested: boolean;
  synced: boolean;
  /** Until when a subscription that cannot reach Redis yet keeps trying, before it fails. */
  joinBy: number;
}

/**
 * The EventFeed on Redis: a capped stream whose entry ids are the cursors, and pub/sub for live
 * fan-out to every gateway process. A subscription joins pub/sub first and buffers, then reads the
 * backlog after its cursor, then continues with what it buffered and live events newer than the last
 * one it saw; after a lost connection it catches up the same way from where it was. Events published
 * while Redis is unreachable wait in the publisher (`redis-publisher.ts`) and are appended after it.
 */
export function createRedisEventFeed(options: RedisEventFeedOptions): EventFeed {
  const { keyPrefix, logger } = options;
  const retain = Math.max(1, options.retain ?? 10_000);
  const connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
  const connection: RedisConnection = { url: options.url, redisOptions: options.redisOptions };
  const streamKey = `${keyPrefix}:feed`;
  const channelOf = (topic: string) => `${keyPrefix}:feed:${topic}`;

  const cmd = openRedis(
    connection,
    {
      name: `${keyPrefix}:feed`,
      failFast: true,
      commandTimeoutMs: options.commandTimeoutMs ?? 5_000,
    },
    logger,
  );
  let everReady = false;
  cmd.client.once('ready', () => (everReady = true));
  const connected = async () => {
    if (!everReady && !cmd.isReady) await whenReady(cmd, connectTimeoutMs);
  };

  const publisher = createFeedPublisher({
    cmd,
    keyPrefix,
    streamKey,
    channelOf,
    retain,
    connected,
    maxQueued: Math.max(1, options.maxQueued ?? 10_000),
    logger,
  });

  const subscriptions = new Set<Subscription>();
  const channelUsers = new Map<string, number>();
  let subscriber: RedisLink | undefined;
  let closed = false;

  const deliver = (subscription: Subscription, event: FeedEvent) => {
    if (subscription.position !== undefined && compareIds(event.cursor, subscription.position) <= 0) return;
    subscription.position = event.cursor;
    if (subscription.topics.has(event.topic)) subscription.queue.push(event);
  };

  const onMessage = (message: string) => {
    const space = message.indexOf(' ');
    const cursor = message.slice(0, space);
    const body = eventBodySchema.safeParse(parseJson(message.slice(space + 1)));
    if (space < 0 || !cursorPattern.test(cursor) || !body.success) {
      logger.warn({ message: message.slice(0, 200) }, 'Unreadable feed message ignored');
      return;
    }
    const event: FeedEvent = { cursor, ...body.data };
    for (const subscription of subscriptions) {
      if (!subscription.topics.has(event.topic)) continue;
      if (!subscription.buffer) deliver(subscription, event);
      else if (subscription.buffer.push(event) > MAX_BUFFERED) {
        subscription.queue.fail(
          new Error('The feed could not catch up with Redis; subscribe again with the last cursor'),
        );
      }
    }
  };

  const getSubscriber = () => {
    if (subscriber) return subscriber;
    // Not fail-fast: a SUBSCRIBE sent while connecting waits for the connection instead of failing.
    const connectionToSubscribe = openRedis(
      connection,
      { name: `${keyPrefix}:feed:sub`, failFast: false },
      logger,
    );
    let wasReady = false;
    // node-redis joins the channels again before 'ready'.
    connectionToSubscribe.client.on('ready', () => {
      // Messages published while the connection was down are lost: catch up from the stream.
      if (wasReady) for (const subscription of subscriptions) void sync(subscription);
      wasReady = true;
    });
    subscriber = connectionToSubscribe;
    return subscriber;
  };

  const readBacklog = async (subscription: Subscription) => {
    for (;;) {
      const reply = await cmd.call(
        'XRANGE',
        streamKey,
        `(${subscription.position}`,
        '+',
        'COUNT',
        BACKLOG_PAGE,
      );
      const entries = streamEntries(reply);
      for (const { id, fields } of entries) {
        const record = fieldsRecord(fields);
        const body = eventBodySchema.safeParse(record && { ...record, data: parseJson(record.data) });
        if (body.success) deliver(subscription, { cursor: id, ...body.data });
        else subscription.position = id;
      }
      if (entries.length < BACKLOG_PAGE || subscription.queue.ended) return;
    }
  };

  /** Joins the channels, then reads what was missed since `position`, then goes live. Serialised per subscription. */
  const sync = async (subscription: Subscription): Promise<void> => {
    if (subscription.syncing) {
      subscription.resyncRequested = true;
      return;
    }
    subscription.syncing = true;
    subscription.buffer ??= [];
    try {
      do {
        subscription.resyncRequested = false;
        // An ended subscription has released its channels; subscribing now would leave them joined.
        if (subscription.queue.ended) return;
        // Resolves at once for channels already joined: one listener per channel, whatever the subscriptions.
        await getSubscriber().client.subscribe(subscription.channels, onMessage);
        subscription.position ??= await subscription.start;
        await readBacklog(subscription);
      } while (subscription.resyncRequested && !subscription.queue.ended);
      const buffered = subscription.buffer;
      subscription.buffer = undefined;
      for (const event of buffered) deliver(subscription, event);
      subscription.synced = true;
    } catch (error) {
      if (!subscription.synced && isConnectionError(error) && Date.now() < subscription.joinBy) {
        // Redis is coming back (or going away): a subscriber that joins now waits for it, bounded,
        // rather than failing while the connection reconnects.
        if (subscription.position === undefined) {
          subscription.start = newestId();
          subscription.start.catch(() => {});
        }
        setTimeout(() => {
          if (!closed && !subscription.queue.ended) void sync(subscription);
        }, 250).unref();
      } else if (!subscription.synced) {
        subscription.queue.fail(
          isConnectionError(error)
            ? new BusUnavailableError(
                `Could not subscribe: Redis is unreachable (${(error as Error).message})`,
                { cause: error },
              )
            : error,
        );
      } else {
        // Still buffering: the next reconnection, or this retry, catches up. The pub/sub connection can
        // be back before the command connection: then the retry waits for that one, not a fixed time.
        logger.warn({ err: error }, 'Could not catch up a feed subscription; retrying');
        const retry = () => {
          if (!closed && !subscription.queue.ended) void sync(subscription);
        };
        if (isConnectionError(error) && !cmd.isReady) void whenReady(cmd, Infinity).then(retry);
        else setTimeout(retry, 1_000).unref();
      }
    } finally {
      subscription.syncing = false;
    }
  };

  const newestId = async () => {
    await connected();
    return streamEntries(await cmd.call('XREVRANGE', streamKey, '+', '-', 'COUNT', 1))[0]?.id ?? '0-0';
  };

  const release = (subscription: Subscription) => {
    subscriptions.delete(subscription);
    const unused = subscription.channels.filter((channel) => {
      const users = (channelUsers.get(channel) ?? 1) - 1;
      if (users > 0) channelUsers.set(channel, users);
      else channelUsers.delete(channel);
      return users <= 0;
    });
    if (unused.length && subscriber && !closed)
      subscriber.client.unsubscribe(unused, onMessage).catch(() => {});
  };

  return {
    kind: 'redis',

    async publish(topic, type, data) {
      if (closed) throw new Error('The event feed is closed');
      await publisher.publish(topic, type, data);
    },

    subscribe(topics, { after, signal } = {}) {
      const subscription: Subscription = {
        topics: new Set(topics),
        channels: [...new Set(topics)].map(channelOf),
        queue: undefined as unknown as FeedQueue,
        position: after,
        start: undefined,
        buffer: undefined,
        syncing: false,
        resyncRequested: false,
        synced: false,
        joinBy: Date.now() + JOIN_WAIT_MS,
      };
      let joined = false;
      subscription.queue = createFeedQueue(() => joined && release(subscription), signal);
      if (after !== undefined && !isResumableAfter(after)) {
        subscription.queue.fail(invalidCursor(after));
      } else if (closed || !subscription.channels.length) {
        subscription.queue.end();
      } else if (!subscription.queue.ended) {
        joined = true;
        if (after === undefined) {
          subscription.start = newestId();
          // Rejections surface through sync; this only keeps an early one from counting as unhandled.
          subscription.start.catch(() => {});
        }
        subscriptions.add(subscription);
        for (const channel of subscription.channels)
          channelUsers.set(channel, (channelUsers.get(channel) ?? 0) + 1);
        void sync(subscription);
      }
      return subscription.queue.iterable;
    },

    async close() {
      closed = true;
      for (const subscription of [...subscriptions]) subscription.queue.end();
      await publisher.close(options.shutdownFlushMs ?? 2_000);
      await Promise.all([cmd.close(), subscriber?.close()]);
    },
  };
}
