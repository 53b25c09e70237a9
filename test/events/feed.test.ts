import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createMemoryEventFeed } from '../../gateway/events/memory-feed.js';
import { createRedisEventFeed } from '../../gateway/events/redis-feed.js';
import type { FeedEvent } from '../../gateway/events/types.js';
import { createLogger, silentLogger } from '../../gateway/log.js';
import {
  deleteNamespace,
  machineRedisUrl,
  requireRedis,
  startPrivateRedis,
  testNamespace,
} from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { eventFeedContract } from './feed.contract.js';

const url = machineRedisUrl();
/** `TEST_LOG=debug npx vitest run …` shows what the feeds log. */
const testLogger = process.env.TEST_LOG ? createLogger({ level: process.env.TEST_LOG }) : silentLogger;

beforeAll(async () => {
  await requireRedis(url);
});

eventFeedContract('memory', {
  start: () => createMemoryEventFeed({ logger: testLogger }),
});

eventFeedContract('redis', {
  start: (namespace) => createRedisEventFeed({ url, keyPrefix: namespace, logger: testLogger }),
  cleanup: (namespace) => deleteNamespace(url, namespace),
  shared: true,
});

describe('Redis event feed', () => {
  it('keeps about `retain` events: a cursor older than those resumes from the oldest kept', async () => {
    const namespace = testNamespace('feed retain');
    const feed = createRedisEventFeed({ url, keyPrefix: namespace, logger: testLogger, retain: 5 });
    const controller = new AbortController();
    onTestFinished(async () => {
      controller.abort();
      await feed.close();
      await deleteNamespace(url, namespace);
    });
    const iterate = (after?: string) =>
      feed.subscribe(['t'], { after, signal: controller.signal })[Symbol.asyncIterator]();

    const live = iterate();
    // XADD MAXLEN ~ trims whole stream nodes (100 entries each), hence many more events than `retain`.
    for (let n = 1; n <= 300; n++) await feed.publish('t', 'X', { n });
    const first = (await live.next()).value as FeedEvent;
    expect(first.data).toEqual({ n: 1 });

    const resumed = (await iterate(first.cursor).next()).value as FeedEvent;
    expect(resumed.data.n).toBeGreaterThan(2);
  });

  it('serves many subscriptions opened at once on a fresh feed (its pub/sub connection still connecting)', async () => {
    // The first subscription opens the pub/sub connection and the others subscribe while it connects.
    // (Under load the benchmark saw such bursts fail: a SUBSCRIBE ahead of ioredis's readiness check.)
    for (let round = 0; round < 5; round++) {
      const namespace = testNamespace(`feed burst ${round}`);
      const feed = createRedisEventFeed({ url, keyPrefix: namespace, logger: testLogger });
      const controller = new AbortController();
      try {
        const iterators = Array.from({ length: 20 }, () =>
          feed.subscribe(['t'], { signal: controller.signal })[Symbol.asyncIterator](),
        );
        const firsts = iterators.map((i) => i.next());
        // Until they are live an event may pass them by: publish until every one has one.
        const all = Promise.all(firsts);
        let delivered: Array<IteratorResult<FeedEvent>> | undefined;
        void all.then((results) => (delivered = results));
        await waitFor(async () => {
          await feed.publish('t', 'PING', { round });
          return delivered !== undefined;
        });
        expect(delivered!.every((r) => !r.done && r.value.type === 'PING')).toBe(true);
      } finally {
        controller.abort();
        await feed.close();
        await deleteNamespace(url, namespace);
      }
    }
  });

  it('after a Redis restart, subscribers receive events again without subscribing anew', async () => {
    const redis = await startPrivateRedis();
    onTestFinished(() => redis.dispose());
    const options = {
      url: redis.url,
      redisOptions: { retryStrategy: () => 20 },
      keyPrefix: 'outage',
      logger: testLogger,
    };
    const [publisher, listener] = [createRedisEventFeed(options), createRedisEventFeed(options)];
    onTestFinished(async () => {
      await Promise.all([publisher.close(), listener.close()]);
    });
    const iterator = listener.subscribe(['t'], {})[Symbol.asyncIterator]();
    await listener.publish('t', 'MARKER', {});
    expect((await iterator.next()).value?.type).toBe('MARKER');

    await redis.stop({ save: true });
    await expect(publisher.publish('t', 'LOST', {})).rejects.toThrow('Redis is unreachable');
    await redis.restart();
    await waitFor(() => publisher.publish('t', 'AFTER', { n: 1 }).then(() => true), { intervalMs: 20 });
    const event = (await iterator.next()).value as FeedEvent;
    expect([event.type, event.data]).toEqual(['AFTER', { n: 1 }]);
  });
});
