import type { ExecutionResult } from 'graphql';

/** Formats one result for its subscriber (graphql-ws's onNext): undefined keeps it as it is. */
type Format = (result: ExecutionResult) => ExecutionResult | undefined | Promise<ExecutionResult | undefined>;

export interface FrameStream {
  /** The subscribe message's id. */
  id: string;
  /** Whether the subscription is still open (the client may have completed it). */
  open(): boolean;
  format: Format;
  /** What to wait for before this send may go (the fan-out's budget per turn), if anything. */
  beforeSend(): Promise<void> | undefined;
  /** Sends a frame; returns the write to wait for, if it must be waited for (backpressure). */
  send(frame: string): Promise<void> | undefined;
}

/**
 * Serialised payloads by result. Every subscriber of one operation gets the same result object for
 * an event (shared-execution.ts), so it is serialised once for all of them.
 */
const serialised = new WeakMap<object, string>();

function payloadJson(result: ExecutionResult): string {
  let json = serialised.get(result);
  // GraphQLError has toJSON: errors serialise as graphql-ws sends them.
  if (json === undefined) serialised.set(result, (json = JSON.stringify(result)));
  return json;
}

/**
 * A subscription's results written to its socket by the Coordinator rather than by graphql-ws, which
 * serialises each next message whole, for every subscriber: a thousand subscribers of one signal cost
 * a thousand serialisations of one payload. Here the payload is serialised once per result and each
 * subscriber's frame is its id around it. The returned iterable yields nothing and ends when the
 * results end, so graphql-ws still owns the rest of the protocol: the complete message, errors thrown
 * by the source, and `return()` on the client's complete or on close.
 */
export function streamFrames(
  results: AsyncIterable<ExecutionResult>,
  stream: FrameStream,
): AsyncIterableIterator<never> {
  const source = results[Symbol.asyncIterator]();
  const head = `{"id":${JSON.stringify(stream.id)},"type":"next","payload":`;
  return {
    // Awaits only what is pending: at a thousand subscribers, each await is a thousand microtasks.
    async next(): Promise<IteratorResult<never>> {
      for (;;) {
        const event = await source.next();
        if (event.done || !stream.open()) return { done: true, value: undefined };
        let formatted = stream.format(event.value);
        if (formatted instanceof Promise) formatted = await formatted;
        const turn = stream.beforeSend();
        if (turn) await turn;
        const written = stream.send(`${head}${payloadJson(formatted ?? event.value)}}`);
        if (written) await written;
      }
    },
    async return(): Promise<IteratorResult<never>> {
      await source.return?.();
      return { done: true, value: undefined };
    },
    async throw(error: unknown): Promise<IteratorResult<never>> {
      await source.return?.();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
