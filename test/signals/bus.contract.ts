import { randomUUID } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { z } from 'zod';
import { DomainError, ErrorCode } from '../../gateway/errors.js';
import { compileRetryPolicy, retryDelayMs, type RetryPolicy } from '../../gateway/retry-policy.js';
import type {
  Delivery,
  ReceiverHandler,
  ReceiverRegistration,
  SignalBus,
  SignalEnvelope,
} from '../../gateway/signals/types.js';
import { testNamespace } from '../support/redis.js';
import { createDeferred, waitFor } from '../support/wait.js';

export interface BusStartOptions {
  /** One name per bus: with Redis, each bus is one process. */
  consumerName?: string;
  concurrency?: number;
  /** How long a delivery of a stopped consumer waits before another takes it over. */
  leaseMs?: number;
}

export interface SignalBusFixture {
  /** Starts one bus on `namespace` (unique to the running test). */
  start(namespace: string, options?: BusStartOptions): SignalBus;
  /** Removes what a test left behind. */
  cleanup?(namespace: string): Promise<void>;
  /**
   * What only a bus shared by several processes, with a wire format, can do. The tests that need it are
   * part of the suite only where it is given.
   */
  processes?: {
    /** Appends a raw stream entry to a signal's stream, bypassing every check. */
    writeRaw(namespace: string, signal: string, fields: Record<string, string>): Promise<void>;
    /** Deliveries of a receiver read but not acknowledged. */
    pending(namespace: string, signal: string, receiver: string): Promise<number>;
    /** Starts a bus whose `crash()` cuts its connections for good, as a killed process would: no ack, no hand-over. */
    startDoomed(namespace: string, options?: BusStartOptions): { bus: SignalBus; crash(): Promise<void> };
  };
}

const PAID = 'order.paid.v1';
const REFUNDED = 'order.refunded.v1';
/** Short backoffs keep the suite fast; the tests never depend on their exact values. */
const testPolicy = (policy: RetryPolicy = {}) =>
  compileRetryPolicy({ initialInterval: 40, maximumAttempts: 3, ...policy });

export function makeSignal(name: string, payload: Record<string, unknown> = {}): SignalEnvelope {
  return { id: randomUUID(), name, payload, time: new Date().toISOString(), source: 'plugin:test' };
}

interface Recorded extends Delivery {
  at: number;
}

/** A handler that records each delivery; `behaviour` decides what the delivery does. */
function recorder(behaviour: (delivery: Delivery, signal: AbortSignal) => Promise<void> | void = () => {}) {
  const deliveries: Recorded[] = [];
  const handler: ReceiverHandler = async (delivery, signal) => {
    deliveries.push({ ...delivery, at: Date.now() });
    await behaviour(delivery, signal);
  };
  return { deliveries, handler };
}

const byPayload = (a: SignalEnvelope, b: SignalEnvelope) =>
  String(a.payload.n).localeCompare(String(b.payload.n));

export function signalBusContract(name: string, fixture: SignalBusFixture) {
  /** Buses of the running test, closed (bounded) when it ends, with its namespace removed. */
  function setup() {
    const namespace = testNamespace(`${name} ${expect.getState().currentTestName ?? ''}`);
    const buses: SignalBus[] = [];
    onTestFinished(async () => {
      // Bounded: some tests leave a handler that never ends, on purpose.
      await Promise.all(buses.map((bus) => bus.close(AbortSignal.timeout(250))));
      await fixture.cleanup?.(namespace);
    });
    return {
      namespace,
      start(options?: BusStartOptions) {
        const bus = fixture.start(namespace, options);
        buses.push(bus);
        return bus;
      },
      track(bus: SignalBus) {
        buses.push(bus);
        return bus;
      },
    };
  }

  const registration = (receiver: string, signal = PAID, policy: RetryPolicy = {}): ReceiverRegistration => ({
    receiver,
    signal,
    retry: testPolicy(policy),
  });

  describe(`SignalBus contract: ${name}`, () => {
    it('delivers every signal to each of its receivers independently, and to no other', async () => {
      const { start } = setup();
      const bus = start();
      const [fulfil, notify, refund] = [recorder(), recorder(), recorder()];
      bus.consume(registration('fulfil'), fulfil.handler);
      bus.consume(registration('notify'), notify.handler);
      bus.consume(registration('refund', REFUNDED), refund.handler);

      const sent = [1, 2, 3].map((n) => makeSignal(PAID, { n }));
      for (const signal of sent) await bus.publish(signal);

      await waitFor(() => {
        expect(fulfil.deliveries.map((d) => d.envelope).sort(byPayload)).toEqual(sent);
        expect(notify.deliveries.map((d) => d.envelope).sort(byPayload)).toEqual(sent);
      });
      expect(fulfil.deliveries.map((d) => [d.receiver, d.attempt])).toEqual(Array(3).fill(['fulfil', 1]));
      expect(notify.deliveries.map((d) => [d.receiver, d.attempt])).toEqual(Array(3).fill(['notify', 1]));
      expect(refund.deliveries).toEqual([]);
    });

    it('delivers signals published before the receiver started', async () => {
      const { start } = setup();
      const bus = start();
      const sent = [makeSignal(PAID, { n: 1 }), makeSignal(PAID, { n: 2 })];
      for (const signal of sent) await bus.publish(signal);

      const late = recorder();
      bus.consume(registration('late'), late.handler);

      await waitFor(() => expect(late.deliveries.map((d) => d.envelope).sort(byPayload)).toEqual(sent));
    });

    it('acknowledges only after success: a failed delivery comes back as attempt 2 after its backoff', async () => {
      const { start, namespace } = setup();
      const bus = start();
      const policy = testPolicy();
      let failedAt = 0;
      const flaky = recorder((delivery) => {
        if (delivery.envelope.payload.n === 1 && delivery.attempt === 1) {
          failedAt = Date.now();
          throw new Error('try again');
        }
      });
      bus.consume(registration('flaky'), flaky.handler);
      const first = makeSignal(PAID, { n: 1 });
      await bus.publish(first);

      await waitFor(() => expect(flaky.deliveries.map((d) => d.attempt)).toEqual([1, 2]));
      const [, retried] = flaky.deliveries;
      expect(retried).toMatchObject({ envelope: first, receiver: 'flaky', attempt: 2 });
      // The shortest backoff the policy allows (jitter at its minimum); timers may fire 1 ms early.
      expect(retried!.at - failedAt).toBeGreaterThanOrEqual(retryDelayMs(policy, 1, () => 0) - 1);

      // Once it succeeded, it is done: a later signal arrives, the first does not come again.
      const second = makeSignal(PAID, { n: 2 });
      await bus.publish(second);
      await waitFor(() => expect(flaky.deliveries).toHaveLength(3));
      expect(flaky.deliveries[2]).toMatchObject({ envelope: second, attempt: 1 });
      expect(await bus.deadLetters('flaky')).toEqual([]);
      if (fixture.processes) expect(await fixture.processes.pending(namespace, PAID, 'flaky')).toBe(0);
    });

    it('dead-letters a signal after maximumAttempts, with the failure and the attempts', async () => {
      const { start } = setup();
      const bus = start();
      const broken = recorder(() => {
        throw new TypeError('still broken');
      });
      bus.consume(registration('broken', PAID, { maximumAttempts: 3, initialInterval: 10 }), broken.handler);
      const signal = makeSignal(PAID, { n: 1 });
      await bus.publish(signal);

      const [letter] = await waitFor(async () => {
        const letters = await bus.deadLetters('broken');
        expect(letters).toHaveLength(1);
        return letters;
      });
      expect(letter).toEqual({
        id: expect.any(String),
        receiver: 'broken',
        envelope: signal,
        attempts: 3,
        failure: { type: 'TypeError', message: 'still broken', nonRetryable: false },
        deadAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      });
      expect(broken.deliveries.map((d) => d.attempt)).toEqual([1, 2, 3]);
    });

    it('treats a handler that throws before returning a promise like any failing one', async () => {
      const { start } = setup();
      // One slot: a slot lost to the synchronous throw would keep the retry from ever running.
      const bus = start({ concurrency: 1 });
      const attempts: number[] = [];
      const throwsAtOnce = ((delivery: Delivery) => {
        attempts.push(delivery.attempt);
        throw new Error('not even async');
      }) as unknown as ReceiverHandler;
      bus.consume(registration('hasty', PAID, { maximumAttempts: 2, initialInterval: 10 }), throwsAtOnce);
      await bus.publish(makeSignal(PAID, { n: 1 }));

      await waitFor(async () =>
        expect(await bus.deadLetters('hasty')).toMatchObject([
          { attempts: 2, failure: { type: 'Error', message: 'not even async' } },
        ]),
      );
      expect(attempts).toEqual([1, 2]);
    });

    it('dead-letters a non-retryable failure at once: a domain error, or a type the policy lists', async () => {
      const { start } = setup();
      const bus = start();
      class PaymentDeclined extends Error {
        override readonly name = 'PaymentDeclined';
      }
      const refused = recorder(() => {
        throw new DomainError(ErrorCode.CONFLICT, 'Order already refunded', { orderId: 'o-1' });
      });
      const declined = recorder(() => {
        throw new PaymentDeclined('card declined');
      });
      bus.consume(registration('refused'), refused.handler);
      bus.consume(
        registration('declined', PAID, { nonRetryableErrorTypes: ['PaymentDeclined'] }),
        declined.handler,
      );
      const signal = makeSignal(PAID, { n: 1 });
      await bus.publish(signal);

      await waitFor(async () => {
        expect(await bus.deadLetters('refused')).toMatchObject([
          {
            envelope: signal,
            attempts: 1,
            failure: {
              type: 'CONFLICT',
              message: 'Order already refunded',
              nonRetryable: true,
              details: { orderId: 'o-1' },
            },
          },
        ]);
        expect(await bus.deadLetters('declined')).toMatchObject([
          {
            envelope: signal,
            attempts: 1,
            failure: { type: 'PaymentDeclined', message: 'card declined', nonRetryable: false },
          },
        ]);
      });
      expect(refused.deliveries).toHaveLength(1);
      expect(declined.deliveries).toHaveLength(1);
    });

    it('replays dead letters to their receiver only, as a first attempt', async () => {
      const { start } = setup();
      const bus = start();
      let fail = true;
      const picky = recorder(() => {
        if (fail) throw new DomainError(ErrorCode.CONFLICT, 'not now');
      });
      const other = recorder();
      bus.consume(registration('picky'), picky.handler);
      bus.consume(registration('other'), other.handler);
      const signal = makeSignal(PAID, { n: 1 });
      await bus.publish(signal);
      await waitFor(async () => expect(await bus.deadLetters('picky')).toHaveLength(1));
      await waitFor(() => expect(other.deliveries).toHaveLength(1));

      fail = false;
      expect(await bus.replay('picky')).toBe(1);
      await waitFor(() => expect(picky.deliveries).toHaveLength(2));
      expect(picky.deliveries[1]).toMatchObject({ envelope: signal, receiver: 'picky', attempt: 1 });
      expect(await bus.deadLetters('picky')).toEqual([]);
      expect(await bus.replay('picky')).toBe(0);

      // The other receiver is not involved: after a later signal it still has the first only once.
      const later = makeSignal(PAID, { n: 2 });
      await bus.publish(later);
      await waitFor(() => expect(other.deliveries.map((d) => d.envelope)).toEqual([signal, later]));
    });

    it('replays only the dead letters it is given', async () => {
      const { start } = setup();
      const bus = start();
      const replayed = createDeferred();
      const picky = recorder((delivery) => {
        if (delivery.attempt === 1 && !replayed.settled) throw new DomainError(ErrorCode.CONFLICT, 'not now');
      });
      bus.consume(registration('picky'), picky.handler);
      const [one, two] = [makeSignal(PAID, { n: 1 }), makeSignal(PAID, { n: 2 })];
      await bus.publish(one);
      await bus.publish(two);
      const letters = await waitFor(async () => {
        const found = await bus.deadLetters('picky');
        expect(found).toHaveLength(2);
        return found;
      });
      const letterOfTwo = letters.find((letter) => letter.envelope?.id === two.id)!;

      replayed.resolve();
      expect(await bus.replay('picky', [letterOfTwo.id, 'no-such-id'])).toBe(1);
      await waitFor(() => expect(picky.deliveries).toHaveLength(3));
      expect(picky.deliveries[2]).toMatchObject({ envelope: two, attempt: 1 });
      expect((await bus.deadLetters('picky')).map((letter) => letter.envelope)).toEqual([one]);
    });

    it('runs the handlers of one receiver concurrently, up to its limit', async () => {
      const { start } = setup();
      const bus = start({ concurrency: 2 });
      const gate = createDeferred();
      let running = 0;
      let mostRunning = 0;
      const busy = recorder(async () => {
        running += 1;
        mostRunning = Math.max(mostRunning, running);
        await gate.promise;
        running -= 1;
      });
      bus.consume(registration('busy'), busy.handler);
      for (let n = 1; n <= 5; n++) await bus.publish(makeSignal(PAID, { n }));

      await waitFor(() => expect(running).toBe(2));
      expect(busy.deliveries).toHaveLength(2);
      gate.resolve();
      await waitFor(() => expect(busy.deliveries).toHaveLength(5));
      await waitFor(() => expect(running).toBe(0));
      expect(mostRunning).toBe(2);
    });

    it('retries a failed delivery on time even behind a hundred running ones', async () => {
      const { start } = setup();
      const bus = start({ concurrency: 110 });
      const gate = createDeferred();
      onTestFinished(() => gate.resolve());
      let failed = false;
      const crowd = recorder(async (delivery) => {
        if (delivery.envelope.payload.n !== 'last') return gate.promise;
        if (!failed) {
          failed = true;
          throw new Error('try again');
        }
      });
      bus.consume(registration('crowd'), crowd.handler);
      for (let n = 1; n <= 105; n++) await bus.publish(makeSignal(PAID, { n }));
      await waitFor(() => expect(crowd.deliveries).toHaveLength(105));
      const last = makeSignal(PAID, { n: 'last' });
      await bus.publish(last);

      const attemptsOfLast = () =>
        crowd.deliveries.filter((d) => d.envelope.id === last.id).map((d) => d.attempt);
      // Its backoff is at most 40 ms; a second allows for a slow machine, not for waiting behind the crowd.
      await waitFor(() => expect(attemptsOfLast()).toEqual([1, 2]), { timeoutMs: 1_000 });
    });

    it('close waits for running handlers, then stops delivering', async () => {
      const { start, namespace } = setup();
      const bus = start();
      const started = createDeferred();
      const gate = createDeferred();
      const events: string[] = [];
      const slow = recorder(async () => {
        started.resolve();
        await gate.promise;
        events.push('handler finished');
      });
      bus.consume(registration('slow'), slow.handler);
      await bus.publish(makeSignal(PAID, { n: 1 }));
      await started.promise;

      const closing = bus.close().then(() => events.push('closed'));
      // Give close every chance to finish early: it must not, while the handler runs.
      await new Promise((resolve) => setImmediate(resolve));
      expect(events).toEqual([]);
      gate.resolve();
      await closing;
      expect(events).toEqual(['handler finished', 'closed']);
      await expect(bus.publish(makeSignal(PAID))).rejects.toThrow('The signal bus is closed');
      expect(await bus.ready()).toBe(false);
      if (fixture.processes) expect(await fixture.processes.pending(namespace, PAID, 'slow')).toBe(0);
    });

    it('close is bounded by its signal, and aborts the handlers still running', async () => {
      const { start } = setup();
      const bus = start();
      const aborted = createDeferred<unknown>();
      const stuck = recorder(
        (_delivery, signal) =>
          new Promise<void>(() => signal.addEventListener('abort', () => aborted.resolve(signal.reason))),
      );
      bus.consume(registration('stuck'), stuck.handler);
      await bus.publish(makeSignal(PAID, { n: 1 }));
      await waitFor(() => expect(stuck.deliveries).toHaveLength(1));

      await bus.close(AbortSignal.timeout(20));
      await aborted.promise;
    });

    it('publish rejects an envelope that is not valid, and ready() says the bus takes publishes', async () => {
      const { start } = setup();
      const bus = start();
      await expect(bus.publish({ ...makeSignal(PAID), id: 'not-a-uuid' })).rejects.toBeInstanceOf(z.ZodError);
      await waitFor(async () => expect(await bus.ready()).toBe(true));
    });

    it('publishes each signal id once: publishing an envelope again (a retry after a lost reply) appends nothing', async () => {
      const { start } = setup();
      // One at a time, in publish order: a second copy of `one` would be delivered before `two`.
      const bus = start({ concurrency: 1 });
      const once = recorder();
      bus.consume(registration('once'), once.handler);
      const [one, two] = [makeSignal(PAID, { n: 1 }), makeSignal(PAID, { n: 2 })];
      await bus.publish(one);
      await bus.publish(one);
      await bus.publish(two);
      await bus.publish(one);

      await waitFor(() => expect(once.deliveries.map((d) => d.envelope)).toEqual([one, two]));
      // A signal after them: had a copy of either been appended, it would come before this one.
      const three = makeSignal(PAID, { n: 3 });
      await bus.publish(three);
      await waitFor(() => expect(once.deliveries.map((d) => d.envelope)).toEqual([one, two, three]));
    });

    const processes = fixture.processes;
    if (!processes) return;

    it('publishes a signal id once across processes', async () => {
      const { start } = setup();
      const [first, second] = [start({ consumerName: 'first' }), start({ consumerName: 'second' })];
      const got = recorder();
      first.consume(registration('fulfil', PAID), got.handler);
      const [one, two] = [makeSignal(PAID, { n: 1 }), makeSignal(PAID, { n: 2 })];
      await first.publish(one);
      await second.publish(one);
      await second.publish(two);
      await waitFor(() => expect(got.deliveries.map((d) => d.envelope).sort(byPayload)).toEqual([one, two]));
      expect(got.deliveries).toHaveLength(2);
    });

    it('dead-letters a stream entry that is not a valid envelope, and keeps delivering', async () => {
      const { start, namespace } = setup();
      const bus = start();
      const fulfil = recorder();
      bus.consume(registration('fulfil'), fulfil.handler);
      await processes.writeRaw(namespace, PAID, { garbage: 'yes' });
      await processes.writeRaw(namespace, PAID, {
        id: 'not-a-uuid',
        name: PAID,
        source: 'x',
        time: 'now',
        payload: '{}',
      });
      const valid = makeSignal(PAID, { n: 1 });
      await bus.publish(valid);

      await waitFor(() => expect(fulfil.deliveries.map((d) => d.envelope)).toEqual([valid]));
      const letters = await waitFor(async () => {
        const found = await bus.deadLetters('fulfil');
        expect(found).toHaveLength(2);
        return found;
      });
      for (const letter of letters) {
        expect(letter).toMatchObject({
          receiver: 'fulfil',
          envelope: null,
          attempts: 1,
          failure: { type: 'InvalidSignalEnvelope', nonRetryable: true },
        });
      }
      expect(letters[0]!.failure.details).toMatchObject({ fields: { garbage: 'yes' } });
      expect(letters[1]!.failure.message).toContain('id');
      // Nothing to redeliver: they stay for an operator to read.
      expect(await bus.replay('fulfil')).toBe(0);
      expect(await bus.deadLetters('fulfil')).toHaveLength(2);
      expect(await processes.pending(namespace, PAID, 'fulfil')).toBe(0);
    });

    it('two consumers of one receiver share its signals, and each signal is handled once', async () => {
      const { start } = setup();
      const [first, second] = [
        start({ consumerName: 'first', concurrency: 1 }),
        start({ consumerName: 'second', concurrency: 1 }),
      ];
      const sent = [1, 2, 3, 4, 5, 6].map((n) => makeSignal(PAID, { n }));
      for (const signal of sent) await first.publish(signal);

      // Neither may finish before both are busy: proof that the two processes share the work.
      const bothBusy = createDeferred();
      const handledBy: Array<[string, SignalEnvelope]> = [];
      const handler =
        (consumer: string): ReceiverHandler =>
        async (delivery) => {
          handledBy.push([consumer, delivery.envelope]);
          if (new Set(handledBy.map(([who]) => who)).size === 2) bothBusy.resolve();
          await bothBusy.promise;
        };
      first.consume(registration('fulfil'), handler('first'));
      second.consume(registration('fulfil'), handler('second'));

      await waitFor(() => expect(handledBy).toHaveLength(6));
      expect(handledBy.map(([, envelope]) => envelope).sort(byPayload)).toEqual(sent);
      expect(new Set(handledBy.map(([who]) => who))).toEqual(new Set(['first', 'second']));
    });

    it('a delivery held by a consumer that crashed is taken over by another after the lease', async () => {
      const { start, track, namespace } = setup();
      const leaseMs = 200;
      const doomed = processes.startDoomed(namespace, { consumerName: 'doomed', leaseMs });
      track(doomed.bus);
      const started = createDeferred();
      doomed.bus.consume(registration('fulfil'), () => {
        started.resolve();
        return new Promise<void>(() => {});
      });
      const signal = makeSignal(PAID, { n: 1 });
      await doomed.bus.publish(signal);
      await started.promise;
      await doomed.crash();

      const survivor = start({ consumerName: 'survivor', leaseMs });
      const fulfil = recorder();
      survivor.consume(registration('fulfil'), fulfil.handler);
      await waitFor(() => expect(fulfil.deliveries).toHaveLength(1));
      expect(fulfil.deliveries[0]).toMatchObject({ envelope: signal, attempt: 2 });
      await waitFor(async () => expect(await processes.pending(namespace, PAID, 'fulfil')).toBe(0));
    });

    it('a bounded close hands the deliveries still running to other consumers at once', async () => {
      const { start } = setup();
      // A lease far longer than the test: only the hand-over can explain a quick redelivery.
      const leaseMs = 60_000;
      const leaving = start({ consumerName: 'leaving', leaseMs });
      const started = createDeferred();
      leaving.consume(registration('fulfil'), () => {
        started.resolve();
        return new Promise<void>(() => {});
      });
      const signal = makeSignal(PAID, { n: 1 });
      await leaving.publish(signal);
      await started.promise;
      await leaving.close(AbortSignal.abort());

      const staying = start({ consumerName: 'staying', leaseMs });
      const fulfil = recorder();
      staying.consume(registration('fulfil'), fulfil.handler);
      await waitFor(() => expect(fulfil.deliveries).toHaveLength(1));
      expect(fulfil.deliveries[0]).toMatchObject({ envelope: signal, attempt: 2 });
    });
  });
}
