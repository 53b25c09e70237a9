import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryEventFeed } from '../../gateway/events/memory-feed.js';
import { silentLogger } from '../../gateway/log.js';
import { compileRetryPolicy } from '../../gateway/retry-policy.js';
import { createMemorySignalBus } from '../../gateway/signals/memory-bus.js';
import { startOutboxDispatcher } from '../../gateway/signals/outbox.js';
import { createRedisSignalBus } from '../../gateway/signals/redis-bus.js';
import type { Delivery, SignalBus, SignalEnvelope } from '../../gateway/signals/types.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  adminRedis,
  type AdminRedis,
  deleteNamespace,
  machineRedisUrl,
  requireRedis,
  testNamespace,
} from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { callerTraceparent } from './tracing-spans.js';

/**
 * A signal's trace context on its way from the outbox row to the receiver: in the envelope, in the
 * Redis Streams entry (`traceparent`, `tracestate` fields) and through the in-process bus; a context
 * that does not read is dropped, never the signal.
 */

const SIGNAL = 'order.traced.v1';
const once = compileRetryPolicy({ maximumAttempts: 1 });
const redisUrl = machineRedisUrl();
const namespace = testNamespace('tracing-signals');
let admin: AdminRedis;

beforeAll(async () => {
  await requireRedis(redisUrl);
  admin = await adminRedis(redisUrl);
});
afterAll(async () => {
  await deleteNamespace(redisUrl, namespace);
  await admin?.close();
});

const envelope = (traceContext?: SignalEnvelope['traceContext']): SignalEnvelope => ({
  id: randomUUID(),
  name: SIGNAL,
  payload: { orderId: 'o-1' },
  time: new Date().toISOString(),
  source: 'flow:test',
  ...(traceContext ? { traceContext } : {}),
});

function consume(bus: SignalBus, receiver: string, fail = false): Delivery[] {
  const deliveries: Delivery[] = [];
  bus.consume({ receiver, signal: SIGNAL, retry: once }, async (delivery) => {
    deliveries.push(delivery);
    if (fail) throw new Error('receiver down');
  });
  return deliveries;
}

describe.each([
  ['memory', () => createMemorySignalBus({ logger: silentLogger })],
  [
    'redis',
    () =>
      createRedisSignalBus({
        url: redisUrl,
        keyPrefix: `${namespace}:${randomUUID().slice(0, 8)}`,
        consumerName: 'tracing-test',
        logger: silentLogger,
        pollIntervalMs: 20,
        blockMs: 100,
      }),
  ],
] as const)('the %s bus', (_kind, createBus) => {
  it('delivers the trace context published with a signal, and none where it had none', async () => {
    const bus = createBus();
    try {
      const deliveries = consume(bus, 'traced');
      const context = { traceparent: callerTraceparent().traceparent, tracestate: 'vendor=opaque' };
      const traced = envelope(context);
      const untraced = envelope();
      await bus.publish(traced);
      await bus.publish(untraced);
      await waitFor(() => expect(deliveries).toHaveLength(2));
      expect(deliveries.find((d) => d.envelope.id === traced.id)!.envelope.traceContext).toEqual(context);
      expect(deliveries.find((d) => d.envelope.id === untraced.id)!.envelope.traceContext).toBeUndefined();
    } finally {
      await bus.close();
    }
  });

  it('keeps the trace context of a dead letter when it is replayed', async () => {
    const bus = createBus();
    try {
      const deliveries = consume(bus, 'dead', true);
      const context = { traceparent: callerTraceparent().traceparent };
      await bus.publish(envelope(context));
      const [letter] = await waitFor(async () => {
        const letters = await bus.deadLetters('dead');
        return letters.length === 1 && letters;
      });
      expect(letter!.envelope?.traceContext).toEqual(context);
      expect(await bus.replay('dead')).toBe(1);
      await waitFor(() => expect(deliveries).toHaveLength(2));
      expect(deliveries[1]!.envelope.traceContext).toEqual(context);
    } finally {
      await bus.close();
    }
  });
});

describe('a Redis Streams entry', () => {
  it('carries the context as traceparent and tracestate fields; one that does not read is dropped, not the signal', async () => {
    const keyPrefix = `${namespace}:raw`;
    const bus = createRedisSignalBus({
      url: redisUrl,
      keyPrefix,
      consumerName: 'raw-test',
      logger: silentLogger,
      pollIntervalMs: 20,
      blockMs: 100,
    });
    try {
      const context = { traceparent: callerTraceparent().traceparent };
      await bus.publish(envelope(context));
      const [[, fields]] = (await admin.call('XRANGE', `${keyPrefix}:signal:${SIGNAL}`, '-', '+')) as [
        [string, string[]],
      ];
      expect(fields).toEqual(expect.arrayContaining(['traceparent', context.traceparent]));
      expect(fields).not.toContain('tracestate');

      const deliveries = consume(bus, 'raw');
      const malformed = envelope();
      await admin.call(
        'XADD',
        `${keyPrefix}:signal:${SIGNAL}`,
        '*',
        ...['id', malformed.id, 'name', SIGNAL, 'source', 'plugin:test', 'time', malformed.time],
        ...['payload', JSON.stringify(malformed.payload), 'traceparent', 'not-a-traceparent'],
      );
      await waitFor(() => expect(deliveries.map((d) => d.envelope.id)).toContain(malformed.id));
      expect(deliveries.find((d) => d.envelope.id === malformed.id)!.envelope.traceContext).toBeUndefined();
      expect(await bus.deadLetters('raw')).toEqual([]);
    } finally {
      await bus.close();
    }
  });
});

describe('the outbox dispatcher', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('tracing-outbox');
  });
  afterAll(async () => {
    await database?.drop();
  });

  it("publishes a row's trace context with its signal", async () => {
    const pool = new pg.Pool({ connectionString: database.url });
    const bus = createMemorySignalBus({ logger: silentLogger });
    const feed = createMemoryEventFeed({ logger: silentLogger });
    const dispatcher = startOutboxDispatcher({ pool, bus, feed, logger: silentLogger, pollIntervalMs: 20 });
    try {
      const deliveries = consume(bus, 'outbox');
      const context = { traceparent: callerTraceparent().traceparent };
      const [traced, untraced] = [randomUUID(), randomUUID()];
      await pool.query(
        `INSERT INTO "OutboxSignal" ("id", "name", "payload", "source", "traceContext")
         VALUES ($1, $3, '{}', 'flow:test', $4), ($2, $3, '{}', 'plugin:test', NULL)`,
        [traced, untraced, SIGNAL, JSON.stringify(context)],
      );
      dispatcher.wake();
      await waitFor(() => expect(deliveries).toHaveLength(2));
      expect(deliveries.find((d) => d.envelope.id === traced)!.envelope.traceContext).toEqual(context);
      expect(deliveries.find((d) => d.envelope.id === untraced)!.envelope.traceContext).toBeUndefined();
    } finally {
      await dispatcher.stop();
      await bus.close();
      await feed.close();
      await pool.end();
    }
  });
});
