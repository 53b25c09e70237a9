import { buildSchema, parse, type ExecutionResult, type GraphQLObjectType } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createSharedSubscribe } from '../../gateway/subscriptions/shared-execution.js';

/** A source that hands every subscriber the same event objects, as the feed does within a process. */
function broadcast() {
  const queues = new Set<{ push(e: object): void; end(): void }>();
  let ended = 0;
  const subscribe = (): AsyncIterableIterator<object> => {
    const buffer: object[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    const queue = {
      push: (e: object) => (buffer.push(e), wake?.()),
      end: () => ((done = true), wake?.()),
    };
    queues.add(queue);
    return {
      async next() {
        while (!buffer.length && !done) await new Promise<void>((r) => (wake = r));
        return buffer.length ? { done: false, value: buffer.shift()! } : { done: true, value: undefined };
      },
      async return() {
        queues.delete(queue);
        ended++;
        queue.end();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  };
  return {
    subscribe,
    publish: (e: object) => queues.forEach((q) => q.push(e)),
    ended: () => ended,
    size: () => queues.size,
  };
}

function setup() {
  const source = broadcast();
  let executions = 0;
  const schema = buildSchema(`
    type Query { ok: Boolean }
    type Event { id: ID! label(prefix: String): String }
    type Subscription { events: Event }
  `);
  const events = schema.getSubscriptionType()!.getFields().events!;
  events.subscribe = () => source.subscribe();
  events.resolve = (payload: { events: object }) => payload.events;
  // Counts how often a payload's selection is executed.
  (schema.getType('Event') as GraphQLObjectType).getFields().label!.resolve = (
    event: { id: string },
    args: { prefix?: string },
  ) => {
    executions++;
    return `${args.prefix ?? ''}${event.id}`;
  };
  return { source, schema, executions: () => executions };
}

const document = parse('subscription($p: String) { events { id label(prefix: $p) } }');

describe('shared execution of subscriptions', () => {
  it('executes an event once for every subscriber of the same operation, and apart for other variables', async () => {
    const { source, schema, executions } = setup();
    const subscribe = createSharedSubscribe();
    const open = (p: string) =>
      subscribe({ schema, document, variableValues: { p } }) as Promise<
        AsyncIterableIterator<ExecutionResult>
      >;
    const [a, b, c] = await Promise.all([open('x:'), open('x:'), open('y:')]);
    source.publish({ events: { id: '1' } });
    source.publish({ events: { id: '2' } });
    const two = async (it: AsyncIterableIterator<ExecutionResult>) => [
      (await it.next()).value,
      (await it.next()).value,
    ];
    expect(await two(a!)).toEqual([
      { data: { events: { id: '1', label: 'x:1' } } },
      { data: { events: { id: '2', label: 'x:2' } } },
    ]);
    expect(await two(b!)).toEqual([
      { data: { events: { id: '1', label: 'x:1' } } },
      { data: { events: { id: '2', label: 'x:2' } } },
    ]);
    expect(
      (await two(c!)).map((r) => (r as ExecutionResult<{ events: { label: string } }>).data!.events.label),
    ).toEqual(['y:1', 'y:2']);
    // 2 events × 2 distinct operations, not 2 × 3 subscribers.
    expect(executions()).toBe(4);
  });

  it('ends the source at once when a subscriber leaves, even while it waits for an event', async () => {
    const { source, schema } = setup();
    const it = (await createSharedSubscribe()({
      schema,
      document,
    })) as AsyncIterableIterator<ExecutionResult>;
    const pending = it.next();
    expect(source.size()).toBe(1);
    await it.return!();
    expect(source.ended()).toBe(1);
    expect(source.size()).toBe(0);
    expect(await pending).toEqual({ done: true, value: undefined });
  });

  it('answers variables too deep to serialise with an error of its own, opening no source', async () => {
    const { source, schema } = setup();
    let deep: unknown = 'x';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const result = await createSharedSubscribe()({ schema, document, variableValues: { p: deep } });
    expect(result).toMatchObject({
      errors: [expect.objectContaining({ extensions: { code: 'BAD_USER_INPUT' } })],
    });
    expect(source.size()).toBe(0);
  });

  it('answers a subscription the schema refuses with its errors, as graphql-js does', async () => {
    const { schema } = setup();
    const result = await createSharedSubscribe()({ schema, document: parse('subscription { nope }') });
    expect(result).toMatchObject({
      errors: [expect.objectContaining({ message: expect.stringMatching(/nope/) })],
    });
  });
});
