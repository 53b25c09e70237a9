import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryEventFeed } from '../../gateway/events/memory-feed.js';
import type { EventFeed } from '../../gateway/events/types.js';
import { createLogger, silentLogger } from '../../gateway/log.js';
import { compileRetryPolicy } from '../../gateway/retry-policy.js';
import { createMemorySignalBus } from '../../gateway/signals/memory-bus.js';
import { startOutboxDispatcher, type OutboxDispatcher } from '../../gateway/signals/outbox.js';
import { createRedisSignalBus } from '../../gateway/signals/redis-bus.js';
import type { Delivery, SignalBus } from '../../gateway/signals/types.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { adminRedis, type PrivateRedis, startPrivateRedis } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

/** `TEST_LOG=debug npx vitest run …` shows what the bus and the dispatcher log. */
const testLogger = process.env.TEST_LOG ? createLogger({ level: process.env.TEST_LOG }) : silentLogger;
const PAID = 'order.paid.v1';

let redis: PrivateRedis;
let database: TestDatabase;
let pool: pg.Pool;
let bus: SignalBus;
let dispatcher: OutboxDispatcher;
const feed = createMemoryEventFeed({ logger: testLogger });
const deliveries: Delivery[] = [];

beforeAll(async () => {
  [redis, database] = await Promise.all([startPrivateRedis(), createTestDatabase('outbox-hung-redis')]);
  pool = new pg.Pool({ connectionString: database.url });
  bus = createRedisSignalBus({
    url: redis.url,
    redisOptions: { socket: { reconnectStrategy: () => 20 } },
    keyPrefix: 'outbox',
    consumerName: 'only',
    logger: testLogger,
    pollIntervalMs: 20,
    blockMs: 200,
    // Short, so that XADDs sent to the hung server time out on the client quickly.
    commandTimeoutMs: 300,
    // One at a time, in stream order: a duplicate entry would be delivered before any later signal.
    concurrency: 1,
  });
  bus.consume(
    { receiver: 'fulfil', signal: PAID, retry: compileRetryPolicy({ initialInterval: 40 }) },
    async (d) => {
      deliveries.push(d);
    },
  );
  dispatcher = startOutboxDispatcher({ pool, bus, feed, logger: testLogger, pollIntervalMs: 20 });
});

afterAll(async () => {
  redis?.resume();
  await dispatcher?.stop();
  await bus?.close(AbortSignal.timeout(1_000));
  await feed.close();
  await pool?.end();
  await database?.drop();
  await redis?.dispose();
});

/** Commits a signal to the outbox, as a flow's record or a Plugin's route does. */
async function commitSignal(n: number): Promise<string> {
  const id = randomUUID();
  await pool.query(`INSERT INTO "OutboxSignal" ("id", "name", "payload", "source") VALUES ($1, $2, $3, $4)`, [
    id,
    PAID,
    JSON.stringify({ n }),
    'plugin:test',
  ]);
  dispatcher.wake();
  return id;
}

const outboxRow = async (id: string) =>
  (
    await pool.query<{ publishedAt: Date | null; publishAttempts: number; lastError: string | null }>(
      `SELECT "publishedAt", "publishAttempts", "lastError" FROM "OutboxSignal" WHERE "id" = $1`,
      [id],
    )
  ).rows[0]!;

const deliveriesOf = (id: string) => deliveries.filter((d) => d.envelope.id === id);

describe('the outbox through a hung Redis', () => {
  it('publishes a signal whose XADDs timed out, then ran once Redis resumed, as one stream entry delivered once', async () => {
    const before = await commitSignal(1);
    await waitFor(() => expect(deliveriesOf(before)).toHaveLength(1));

    redis.pause();
    const during = await commitSignal(2);
    // At least two XADDs went to the hung server and timed out on the client; Redis still holds them.
    await waitFor(
      async () => {
        const row = await outboxRow(during);
        expect(row.publishedAt).toBeNull();
        expect(row.publishAttempts).toBeGreaterThanOrEqual(2);
        expect(row.lastError).toMatch(/Command timed out/);
      },
      { timeoutMs: 10_000, what: 'the dispatcher to try the hung Redis twice' },
    );
    redis.resume();

    await waitFor(async () => expect((await outboxRow(during)).publishedAt).not.toBeNull(), {
      timeoutMs: 10_000,
      what: 'the signal to be marked published',
    });
    // A signal after it: once it is delivered, any second entry of the first has been delivered too.
    const after = await commitSignal(3);
    await waitFor(() => expect(deliveriesOf(after)).toHaveLength(1), { timeoutMs: 10_000 });

    const inspector = await adminRedis(redis.url);
    try {
      const entries = await inspector.call<Array<[string, string[]]>>(
        'XRANGE',
        `outbox:signal:${PAID}`,
        '-',
        '+',
      );
      const ids = entries.map(([, fields]) => fields[fields.indexOf('id') + 1]);
      expect(ids).toEqual([before, during, after]);
    } finally {
      await inspector.close();
    }
    expect(deliveriesOf(during).map((d) => d.attempt)).toEqual([1]);
    expect(deliveries.map((d) => d.envelope.payload.n)).toEqual([1, 2, 3]);
  });
});

describe('the outbox and the event feed', () => {
  it('marks a signal published only once the feed took it: a process killed before has it published to subscribers again', async () => {
    const db = await createTestDatabase('outbox-feed-order');
    const feedPool = new pg.Pool({ connectionString: db.url });
    const memoryFeed = createMemoryEventFeed({ logger: testLogger });
    const memoryBus = createMemorySignalBus({ logger: testLogger });
    // The feed holds every publish until released, as a Redis round trip a SIGKILL can cut.
    const held: Array<() => void> = [];
    const heldFeed: EventFeed = {
      ...memoryFeed,
      publish: (topic, type, data) =>
        new Promise<void>((resolve) => held.push(resolve)).then(() => memoryFeed.publish(topic, type, data)),
    };
    const feedDispatcher = startOutboxDispatcher({
      pool: feedPool,
      bus: memoryBus,
      feed: heldFeed,
      logger: testLogger,
      pollIntervalMs: 20,
    });
    try {
      const id = randomUUID();
      await feedPool.query(
        `INSERT INTO "OutboxSignal" ("id", "name", "payload", "source") VALUES ($1, $2, '{}', 'plugin:test')`,
        [id, PAID],
      );
      feedDispatcher.wake();
      await waitFor(() => held.length > 0, { what: 'the signal to reach the feed' });
      const publishedAt = async () =>
        (await feedPool.query(`SELECT "publishedAt" FROM "OutboxSignal" WHERE "id" = $1`, [id])).rows[0]
          .publishedAt as Date | null;
      expect(await publishedAt()).toBeNull();
      for (const release of held.splice(0)) release();
      await waitFor(async () => expect(await publishedAt()).not.toBeNull(), {
        what: 'the signal to be marked published',
      });
    } finally {
      for (const release of held.splice(0)) release();
      await feedDispatcher.stop();
      await memoryBus.close(AbortSignal.timeout(1_000));
      await memoryFeed.close();
      await feedPool.end();
      await db.drop();
    }
  });
});
