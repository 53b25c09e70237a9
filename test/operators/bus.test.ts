import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { DomainError, ErrorCode } from '../../gateway/errors.js';
import { silentLogger } from '../../gateway/log.js';
import { compileRetryPolicy } from '../../gateway/retry-policy.js';
import { findDeadLetters, replayDeadLetters } from '../../gateway/signals/dead-letters.js';
import { createMemorySignalBus } from '../../gateway/signals/memory-bus.js';
import { createRedisSignalBus } from '../../gateway/signals/redis-bus.js';
import type { Delivery, SignalBus, SignalEnvelope } from '../../gateway/signals/types.js';
import { deleteNamespace, machineRedisUrl, requireRedis, testNamespace } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

/**
 * What operators need of a signal bus, on Redis and in process: dead letters of every receiver,
 * replay by signal and by id across receivers, and the redelivery of one signal to one receiver.
 */

const url = machineRedisUrl();
beforeAll(async () => {
  await requireRedis(url);
});

const signal = (name: string, n: number): SignalEnvelope => ({
  id: randomUUID(),
  name,
  payload: { n },
  time: new Date().toISOString(),
  source: 'plugin:test',
});

const buses = {
  memory: () => createMemorySignalBus({ logger: silentLogger }),
  redis: (namespace: string) =>
    createRedisSignalBus({
      url,
      keyPrefix: namespace,
      consumerName: `consumer-${randomUUID().slice(0, 8)}`,
      logger: silentLogger,
      pollIntervalMs: 20,
      blockMs: 100,
    }),
};

describe.each(['memory', 'redis'] as const)('the %s bus, for operators', (kind) => {
  let namespace: string;
  let bus: SignalBus;
  /** Deliveries by receiver; a receiver fails every first attempt while `failing` holds it. */
  let deliveries: Record<string, Delivery[]>;
  let failing: Set<string>;

  const consume = (receiver: string, name: string) =>
    bus.consume(
      { receiver, signal: name, retry: compileRetryPolicy({ maximumAttempts: 1, initialInterval: 10 }) },
      async (delivery) => {
        (deliveries[receiver] ??= []).push(delivery);
        if (failing.has(receiver)) throw new DomainError(ErrorCode.CONFLICT, `${receiver} refuses`);
      },
    );

  function start() {
    namespace = testNamespace(`operators-bus-${kind}-${expect.getState().currentTestName ?? ''}`);
    bus = kind === 'memory' ? buses.memory() : buses.redis(namespace);
    deliveries = {};
    failing = new Set(['revoke', 'notify', 'record']);
    onTestFinished(async () => {
      await bus.close(AbortSignal.timeout(500));
      if (kind === 'redis') await deleteNamespace(url, namespace);
    });
    // Two receivers of one signal, one of another.
    consume('revoke', 'order.refunded.v1');
    consume('notify', 'order.refunded.v1');
    consume('record', 'payment.refunded.v1');
  }

  async function deadLettered() {
    const refunded = [signal('order.refunded.v1', 1), signal('order.refunded.v1', 2)];
    const payment = signal('payment.refunded.v1', 3);
    for (const s of [...refunded, payment]) await bus.publish(s);
    await waitFor(async () => expect(await bus.deadLetters()).toHaveLength(5), { what: 'five dead letters' });
    return { refunded, payment };
  }

  it('lists the dead letters of every receiver, and finds them by signal, newest first', async () => {
    start();
    const { refunded, payment } = await deadLettered();

    const all = await bus.deadLetters();
    expect(all.map((d) => `${d.receiver} ${d.envelope?.payload.n}`).sort()).toEqual([
      'notify 1',
      'notify 2',
      'record 3',
      'revoke 1',
      'revoke 2',
    ]);
    const ofRefunds = await findDeadLetters(bus, { signal: 'order.refunded.v1' });
    expect(ofRefunds).toHaveLength(4);
    expect(ofRefunds.map((d) => d.deadAt)).toEqual([...ofRefunds.map((d) => d.deadAt)].sort().reverse());
    expect(await findDeadLetters(bus, { signalId: payment.id })).toMatchObject([{ receiver: 'record' }]);
    expect(await findDeadLetters(bus, { receiver: 'revoke', signalId: refunded[0]!.id })).toHaveLength(1);
  });

  it('replays by signal across its receivers, by receiver and signal, and by <receiver>/<id>', async () => {
    start();
    const { refunded } = await deadLettered();
    failing.clear();
    const receivers = new Set(['revoke', 'notify', 'record']);

    const [one] = await findDeadLetters(bus, { receiver: 'notify', signalId: refunded[1]!.id });
    expect(await replayDeadLetters(bus, { ids: [`notify/${one!.id}`] }, receivers)).toBe(1);
    expect(await replayDeadLetters(bus, { receiver: 'revoke', signal: 'order.refunded.v1' }, receivers)).toBe(
      2,
    );
    expect(await replayDeadLetters(bus, { signal: 'order.refunded.v1' }, receivers)).toBe(1);

    await waitFor(() => {
      const replays = (r: string) => (deliveries[r] ?? []).filter((d) => d.attempt === 1).length;
      expect([replays('revoke'), replays('notify')]).toEqual([4, 4]);
    });
    expect((await bus.deadLetters()).map((d) => d.receiver)).toEqual(['record']);
    await expect(replayDeadLetters(bus, { ids: ['0-1'] }, receivers)).rejects.toThrow(/names no receiver/);
  });

  it('redelivers one signal to one receiver only, as a first attempt', async () => {
    start();
    failing.clear();
    const s = signal('order.refunded.v1', 7);
    await bus.publish(s);
    await waitFor(() => expect([deliveries.revoke?.length, deliveries.notify?.length]).toEqual([1, 1]));

    await bus.redeliver('revoke', s);

    await waitFor(() => expect(deliveries.revoke).toHaveLength(2));
    expect(deliveries.revoke![1]).toMatchObject({ envelope: s, receiver: 'revoke', attempt: 1 });
    expect(deliveries.notify).toHaveLength(1);
  });
});
