import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createLogger, silentLogger } from '../../gateway/log.js';
import { compileRetryPolicy } from '../../gateway/retry-policy.js';
import { createMemorySignalBus } from '../../gateway/signals/memory-bus.js';
import {
  BusUnavailableError,
  createRedisSignalBus,
  type RedisSignalBusOptions,
} from '../../gateway/signals/redis-bus.js';
import type { Delivery } from '../../gateway/signals/types.js';
import {
  adminRedis,
  type AdminRedis,
  deleteNamespace,
  machineRedisUrl,
  requireRedis,
  startPrivateRedis,
} from '../support/redis.js';
import { createDeferred, waitFor } from '../support/wait.js';
import { makeSignal, signalBusContract, type BusStartOptions } from './bus.contract.js';

const url = machineRedisUrl();
/** `TEST_LOG=debug npx vitest run …` shows what the buses log. */
const testLogger = process.env.TEST_LOG ? createLogger({ level: process.env.TEST_LOG }) : silentLogger;
let admin: AdminRedis;

beforeAll(async () => {
  await requireRedis(url);
  admin = await adminRedis(url);
});
afterAll(async () => {
  await admin?.close();
});

signalBusContract('memory', {
  start: (_namespace, options) =>
    createMemorySignalBus({ logger: testLogger, concurrency: options?.concurrency }),
});

/** Short poll and block times keep retries and take-overs quick; the lease is long unless a test wants it short. */
const redisBus = (
  namespace: string,
  options: BusStartOptions = {},
  more: Partial<RedisSignalBusOptions> = {},
) =>
  createRedisSignalBus({
    url,
    keyPrefix: namespace,
    consumerName: options.consumerName ?? `consumer-${randomUUID().slice(0, 8)}`,
    logger: testLogger,
    pollIntervalMs: 20,
    blockMs: 200,
    leaseMs: options.leaseMs ?? 5_000,
    concurrency: options.concurrency,
    ...more,
  });

signalBusContract('redis', {
  start: (namespace, options) => redisBus(namespace, options),
  cleanup: (namespace) => deleteNamespace(url, namespace),
  processes: {
    async writeRaw(namespace, signal, fields) {
      await admin.call('XADD', `${namespace}:signal:${signal}`, '*', ...Object.entries(fields).flat());
    },
    async pending(namespace, signal, receiver) {
      const [count] = (await admin.call('XPENDING', `${namespace}:signal:${signal}`, receiver)) as [number];
      return Number(count);
    },
    startDoomed(namespace, options = {}) {
      const consumerName = options.consumerName ?? 'doomed';
      // No reconnection: once its connections are cut, this "process" is gone.
      const bus = redisBus(
        namespace,
        { ...options, consumerName },
        { redisOptions: { socket: { reconnectStrategy: false } } },
      );
      return {
        bus,
        async crash() {
          const clients = String(await admin.call('CLIENT', 'LIST')).split('\n');
          for (const line of clients.filter((client) =>
            client.includes(` name=${namespace}:${consumerName}:`),
          )) {
            await admin.call('CLIENT', 'KILL', 'ID', /\bid=(\d+)/.exec(line)![1]!);
          }
        },
      };
    },
  },
});

describe('Redis signal bus through a Redis outage', () => {
  const PAID = 'order.paid.v1';

  async function privateSetup() {
    const redis = await startPrivateRedis();
    onTestFinished(() => redis.dispose());
    const bus = createRedisSignalBus({
      url: redis.url,
      // Reconnect quickly so that the test does not wait for the default backoff.
      redisOptions: { socket: { reconnectStrategy: () => 20 } },
      keyPrefix: 'outage',
      consumerName: 'only',
      logger: testLogger,
      pollIntervalMs: 20,
      blockMs: 200,
    });
    onTestFinished(() => bus.close(AbortSignal.timeout(1_000)));
    const deliveries: Delivery[] = [];
    return { redis, bus, deliveries };
  }

  it('publish rejects at once while Redis is down; once it is back, delivery resumes, pending ones included', async () => {
    const { redis, bus, deliveries } = await privateSetup();
    const failLater = createDeferred();
    bus.consume(
      { receiver: 'fulfil', signal: PAID, retry: compileRetryPolicy({ initialInterval: 40 }) },
      async (d) => {
        deliveries.push(d);
        if (d.envelope.payload.n === 2 && d.attempt === 1) {
          await failLater.promise;
          throw new Error('lost the connection to the Service');
        }
      },
    );
    const [one, two, three] = [1, 2, 3].map((n) => makeSignal(PAID, { n }));
    await bus.publish(one!);
    await bus.publish(two!);
    const inspector = await adminRedis(redis.url);
    // Only the second is pending (running) when Redis goes down; the first is acknowledged.
    await waitFor(async () =>
      expect(await inspector.call('XPENDING', 'outage:signal:order.paid.v1', 'fulfil')).toEqual([
        1,
        expect.any(String),
        expect.any(String),
        [['only', '1']],
      ]),
    );
    await inspector.close();

    await redis.stop({ save: true });
    const before = Date.now();
    await expect(bus.publish(three!)).rejects.toBeInstanceOf(BusUnavailableError);
    expect(Date.now() - before).toBeLessThan(200);
    expect(await bus.ready()).toBe(false);
    // Fails while Redis is down: the bus must keep it pending and retry it when Redis is back.
    failLater.resolve();

    await redis.restart();
    await waitFor(async () => expect(await bus.ready()).toBe(true));
    await bus.publish(three!);
    await waitFor(() =>
      expect(deliveries.map((d) => [d.envelope.payload.n, d.attempt])).toEqual([
        [1, 1],
        [2, 1],
        expect.anything(),
        expect.anything(),
      ]),
    );
    expect(deliveries.slice(2).map((d) => [d.envelope.payload.n, d.attempt])).toEqual(
      expect.arrayContaining([
        [2, 2],
        [3, 1],
      ]),
    );
  });

  it('when Redis comes back empty, receivers create their groups again and get new signals', async () => {
    const { redis, bus, deliveries } = await privateSetup();
    bus.consume({ receiver: 'fulfil', signal: PAID, retry: compileRetryPolicy() }, async (d) => {
      deliveries.push(d);
    });
    const [one, two] = [1, 2].map((n) => makeSignal(PAID, { n }));
    await bus.publish(one!);
    await waitFor(() => expect(deliveries).toHaveLength(1));

    await redis.stop();
    await expect(bus.publish(two!)).rejects.toBeInstanceOf(BusUnavailableError);
    await redis.restart();
    await waitFor(async () => expect(await bus.ready()).toBe(true));
    await bus.publish(two!);
    await waitFor(() => expect(deliveries.map((d) => d.envelope)).toEqual([one, two]));
  });
});
