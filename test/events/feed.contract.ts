import { describe, expect, it, onTestFinished } from 'vitest';
import type { EventFeed, FeedEvent } from '../../gateway/events/types.js';
import { testNamespace } from '../support/redis.js';

export interface EventFeedFixture {
  /** Starts one feed on `namespace` (unique to the running test). */
  start(namespace: string): EventFeed;
  /** Removes what a test left behind. */
  cleanup?(namespace: string): Promise<void>;
  /** Feeds started on one namespace are the processes of one deployment; the tests that need it exist only then. */
  shared?: boolean;
}

/** Reads the next event, failing the test instead of hanging when none comes. */
async function nextEvent(iterator: AsyncIterator<FeedEvent>, timeoutMs = 2_000): Promise<FeedEvent> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no event within ${timeoutMs}ms`)), timeoutMs);
  });
  try {
    const result = await Promise.race([iterator.next(), timeout]);
    if (result.done) throw new Error('the subscription ended instead of delivering an event');
    return result.value;
  } finally {
    clearTimeout(timer);
  }
}

const summary = (event: FeedEvent) => [event.topic, event.type, event.data];

export function eventFeedContract(name: string, fixture: EventFeedFixture) {
  function setup() {
    const namespace = testNamespace(`${name} ${expect.getState().currentTestName ?? ''}`);
    const feeds: EventFeed[] = [];
    const controllers: AbortController[] = [];
    onTestFinished(async () => {
      for (const controller of controllers) controller.abort();
      await Promise.all(feeds.map((feed) => feed.close()));
      await fixture.cleanup?.(namespace);
    });
    return {
      start() {
        const feed = fixture.start(namespace);
        feeds.push(feed);
        return feed;
      },
      /** Subscribes; the subscription ends with the test. */
      subscribe(feed: EventFeed, topics: string[], after?: string) {
        const controller = new AbortController();
        controllers.push(controller);
        const iterable = feed.subscribe(topics, { after, signal: controller.signal });
        return { iterator: iterable[Symbol.asyncIterator](), controller };
      },
    };
  }

  describe(`EventFeed contract: ${name}`, () => {
    it('delivers events published after subscribing, in order, with increasing cursors', async () => {
      const { start, subscribe } = setup();
      const feed = start();
      const { iterator } = subscribe(feed, ['flow:1']);
      await feed.publish('flow:1', 'STEP_STARTED', { step: 0 });
      await feed.publish('flow:1', 'STEP_FINISHED', { step: 0, at: new Date(0) });

      const first = await nextEvent(iterator);
      const second = await nextEvent(iterator);
      expect(first).toEqual({
        cursor: expect.any(String),
        topic: 'flow:1',
        type: 'STEP_STARTED',
        data: { step: 0 },
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      });
      // Data travels as JSON, whatever the transport.
      expect(summary(second)).toEqual([
        'flow:1',
        'STEP_FINISHED',
        { step: 0, at: '1970-01-01T00:00:00.000Z' },
      ]);
      expect(second.cursor).not.toBe(first.cursor);
    });

    it('delivers only the topics subscribed to, live and when resuming', async () => {
      const { start, subscribe } = setup();
      const feed = start();
      const { iterator } = subscribe(feed, ['a', 'b']);
      await feed.publish('a', 'T', { n: 1 });
      await feed.publish('c', 'T', { n: 2 });
      await feed.publish('b', 'T', { n: 3 });
      await feed.publish('a', 'T', { n: 4 });
      const live = [await nextEvent(iterator), await nextEvent(iterator), await nextEvent(iterator)];
      expect(live.map(summary)).toEqual([
        ['a', 'T', { n: 1 }],
        ['b', 'T', { n: 3 }],
        ['a', 'T', { n: 4 }],
      ]);

      const resumed = subscribe(feed, ['b', 'c'], live[0]!.cursor).iterator;
      await feed.publish('a', 'T', { n: 5 });
      await feed.publish('c', 'T', { n: 6 });
      expect(
        [await nextEvent(resumed), await nextEvent(resumed), await nextEvent(resumed)].map(summary),
      ).toEqual([
        ['c', 'T', { n: 2 }],
        ['b', 'T', { n: 3 }],
        ['c', 'T', { n: 6 }],
      ]);
    });

    it('resuming from a cursor delivers what was missed, then live events, without gap or repeat', async () => {
      const { start, subscribe } = setup();
      const feed = start();
      const first = subscribe(feed, ['flows']);
      for (const n of [1, 2, 3]) await feed.publish('flows', 'FLOW_FINISHED', { n });
      const seen = [
        await nextEvent(first.iterator),
        await nextEvent(first.iterator),
        await nextEvent(first.iterator),
      ];
      first.controller.abort();

      // Published while nobody listens.
      for (const n of [4, 5]) await feed.publish('flows', 'FLOW_FINISHED', { n });
      const resumed = subscribe(feed, ['flows'], seen[1]!.cursor).iterator;
      for (const n of [6, 7]) await feed.publish('flows', 'FLOW_FINISHED', { n });

      const events: FeedEvent[] = [];
      for (let i = 0; i < 5; i++) events.push(await nextEvent(resumed));
      expect(events.map((event) => event.data.n)).toEqual([3, 4, 5, 6, 7]);
      expect(events[0]).toEqual(seen[2]);
      expect(new Set(events.map((event) => event.cursor)).size).toBe(5);
      // Nothing more was queued behind them: the next event is the next one published.
      await feed.publish('flows', 'FLOW_FINISHED', { n: 8 });
      expect((await nextEvent(resumed)).data.n).toBe(8);
    });

    it('subscribers on one feed each get the events, and one leaving does not affect the other', async () => {
      const { start, subscribe } = setup();
      const feed = start();
      const one = subscribe(feed, ['t']);
      const two = subscribe(feed, ['t']);
      await feed.publish('t', 'X', { n: 1 });
      expect((await nextEvent(one.iterator)).data).toEqual({ n: 1 });
      expect((await nextEvent(two.iterator)).data).toEqual({ n: 1 });

      one.controller.abort();
      await feed.publish('t', 'X', { n: 2 });
      expect((await nextEvent(two.iterator)).data).toEqual({ n: 2 });
      expect(await one.iterator.next()).toEqual({ value: undefined, done: true });
    });

    it('aborting the signal ends the iteration, also while it waits for an event', async () => {
      const { start, subscribe } = setup();
      const feed = start();
      const { iterator, controller } = subscribe(feed, ['t']);
      const waiting = iterator.next();
      controller.abort();
      expect(await waiting).toEqual({ value: undefined, done: true });

      const received: FeedEvent[] = [];
      const ended = new AbortController();
      ended.abort();
      for await (const event of feed.subscribe(['t'], { signal: ended.signal })) received.push(event);
      expect(received).toEqual([]);
    });

    it('closing the feed ends its subscriptions', async () => {
      const { start, subscribe } = setup();
      const feed = start();
      const { iterator } = subscribe(feed, ['t']);
      const waiting = iterator.next();
      await feed.close();
      expect(await waiting).toEqual({ value: undefined, done: true });
    });

    it('rejects a cursor it did not issue', async () => {
      const { start } = setup();
      const feed = start();
      const iterator = feed.subscribe(['t'], { after: 'not a cursor' })[Symbol.asyncIterator]();
      await expect(iterator.next()).rejects.toMatchObject({
        message: "Invalid cursor 'not a cursor'",
        extensions: { code: 'BAD_USER_INPUT' },
      });
    });

    if (!fixture.shared) return;

    it('an event published by one process reaches subscribers of another', async () => {
      const { start, subscribe } = setup();
      const [publisher, listener] = [start(), start()];
      const { iterator } = subscribe(listener, ['flow:9']);
      // Once its own marker arrives, the subscription is live: what the other process publishes next must come.
      await listener.publish('flow:9', 'MARKER', {});
      expect((await nextEvent(iterator)).type).toBe('MARKER');

      await publisher.publish('flow:9', 'STEP_STARTED', { step: 1 });
      await publisher.publish('flow:9', 'STEP_FINISHED', { step: 1 });
      const [started, finished] = [await nextEvent(iterator), await nextEvent(iterator)];
      expect([started, finished].map(summary)).toEqual([
        ['flow:9', 'STEP_STARTED', { step: 1 }],
        ['flow:9', 'STEP_FINISHED', { step: 1 }],
      ]);

      // A cursor one process handed out resumes on another.
      const resumed = subscribe(publisher, ['flow:9'], started!.cursor).iterator;
      expect(await nextEvent(resumed)).toEqual(finished);
    });
  });
}
