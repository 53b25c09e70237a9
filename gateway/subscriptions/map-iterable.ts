/**
 * Maps an async iterable, dropping what `map` answers undefined for. Unlike an `async function*` over
 * `for await`, whose `return()` waits until the source yields its next value, `return()` here reaches
 * the source at once: a subscription whose client completes it, or disconnects, lets go of its feed
 * subscription (its queue, its Redis channel) straight away, even on a topic that never gets an event.
 */
export function mapAsyncIterable<S, T>(
  source: AsyncIterable<S>,
  map: (value: S) => T | undefined | Promise<T>,
): AsyncIterableIterator<T> {
  const values = source[Symbol.asyncIterator]();
  return {
    async next(): Promise<IteratorResult<T>> {
      for (;;) {
        const event = await values.next();
        if (event.done) return event;
        const mapped = await map(event.value);
        if (mapped !== undefined) return { done: false, value: mapped };
      }
    },
    async return(): Promise<IteratorResult<T>> {
      await values.return?.();
      return { done: true, value: undefined };
    },
    async throw(error: unknown): Promise<IteratorResult<T>> {
      await values.return?.();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
