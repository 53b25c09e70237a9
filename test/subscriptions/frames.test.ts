import { GraphQLError, type ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import { streamFrames, type FrameStream } from '../../gateway/subscriptions/frames.js';

/** The results of one subscription, pushed by the test; `returned` says whether return() reached it. */
function results() {
  const buffer: ExecutionResult[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  const state = { returned: false };
  const iterator: AsyncIterableIterator<ExecutionResult> = {
    async next() {
      while (!buffer.length && !done) await new Promise<void>((r) => (wake = r));
      return buffer.length ? { done: false, value: buffer.shift()! } : { done: true, value: undefined };
    },
    async return() {
      state.returned = done = true;
      wake?.();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  return {
    iterator,
    state,
    push: (result: ExecutionResult) => (buffer.push(result), wake?.()),
    end: () => ((done = true), wake?.()),
  };
}

function stream(id: string, overrides: Partial<FrameStream> = {}) {
  const frames: string[] = [];
  const options: FrameStream = {
    id,
    open: () => true,
    format: () => undefined,
    beforeSend: () => undefined,
    send: (frame) => void frames.push(frame),
    ...overrides,
  };
  return { options, frames };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('streamFrames', () => {
  it("frames each result as graphql-ws's next message, serialising a result shared by subscribers once", async () => {
    let serialisations = 0;
    const counted = { toJSON: () => (serialisations++, 'counted') };
    const shared: ExecutionResult = { data: { signal: { id: 'sig-1', value: counted } } };
    const [a, b] = [results(), results()];
    const [first, second] = [stream('1'), stream('a"b')];
    const frames = [streamFrames(a.iterator, first.options), streamFrames(b.iterator, second.options)];
    const ends = frames.map((f) => f.next());
    a.push(shared);
    b.push(shared);
    a.end();
    b.end();
    expect(await Promise.all(ends)).toEqual([
      { done: true, value: undefined },
      { done: true, value: undefined },
    ]);
    expect(first.frames.map((f) => JSON.parse(f))).toEqual([
      { id: '1', type: 'next', payload: { data: { signal: { id: 'sig-1', value: 'counted' } } } },
    ]);
    // The id is quoted as JSON, whatever it holds.
    expect(JSON.parse(second.frames[0]!)).toMatchObject({ id: 'a"b', type: 'next' });
    expect(serialisations).toBe(1);
  });

  it("sends the formatted result where the hook formats it, errors as graphql-ws's toJSON gives them", async () => {
    const source = results();
    const { options, frames } = stream('7', {
      format: (result) => ({
        ...result,
        errors: [new GraphQLError('masked', { extensions: { code: 'X' } })],
      }),
    });
    const next = streamFrames(source.iterator, options).next();
    source.push({ data: null, errors: [new GraphQLError('secret detail')] });
    source.end();
    await next;
    expect(JSON.parse(frames[0]!)).toEqual({
      id: '7',
      type: 'next',
      payload: { data: null, errors: [{ message: 'masked', extensions: { code: 'X' } }] },
    });
  });

  it('waits for the turn budget and for a write under backpressure before the next result', async () => {
    const source = results();
    let release!: () => void;
    const written = new Promise<void>((r) => (release = r));
    const sent: string[] = [];
    const { options } = stream('1', {
      send: (frame) => {
        sent.push(frame);
        return sent.length === 1 ? written : undefined;
      },
    });
    const next = streamFrames(source.iterator, options).next();
    source.push({ data: { n: 1 } });
    source.push({ data: { n: 2 } });
    await tick();
    expect(sent).toHaveLength(1);
    release();
    await tick();
    expect(sent).toHaveLength(2);
    source.end();
    await next;
  });

  it('stops at a result that arrives once the subscription is closed, and return() reaches the source', async () => {
    const source = results();
    let open = true;
    const { options, frames } = stream('1', { open: () => open });
    const iterator = streamFrames(source.iterator, options);
    const next = iterator.next();
    open = false;
    source.push({ data: { n: 1 } });
    expect(await next).toEqual({ done: true, value: undefined });
    expect(frames).toEqual([]);
    await iterator.return!();
    expect(source.state.returned).toBe(true);
  });
});
