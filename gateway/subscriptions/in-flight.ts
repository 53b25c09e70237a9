/**
 * The operations each graphql-ws connection has in flight, from its subscribe message until the
 * server has finished with the operation. graphql-ws's own `ctx.subscriptions` forgets an operation
 * the moment its client sends `complete`, while the operation may still be starting (its token being
 * verified, its query measured) or running (a mutation's flow): counted there, a client could run any
 * number of operations at once by completing each as it sends it, and an id sent again at once started
 * a second operation under it, which nothing ended. Here an operation holds its place, and its id,
 * until it has ended; and each verified caller's operations are counted over all its connections.
 */
export interface InFlight<Ctx extends object> {
  /** How many operations `ctx` has in flight. */
  size(ctx: Ctx): number;
  /** How many operations `caller` has in flight, on all its connections together. */
  callerSize(caller: string): number;
  /** Whether an operation of `ctx` still holds `id`. */
  holds(ctx: Ctx, id: string): boolean;
  /**
   * `id` is held for the operation of the subscribe message whose payload is `payload`, counted for
   * `caller` (the connection's verified caller) when there is one.
   */
  take(ctx: Ctx, id: string, payload: object, caller: string | undefined): void;
  /**
   * The operation of `payload` has ended; its id is free again. A no-op for an id some other message's
   * operation holds (a refused duplicate ends without ever holding it), and when called again.
   */
  release(ctx: Ctx, id: string, payload: object): void;
  /**
   * The connection closed: whatever it held is free. (An operation whose start threw closes the
   * connection without ending: nothing else would give its caller's place back.)
   */
  releaseAll(ctx: Ctx): void;
}

interface Held {
  payload: object;
  caller: string | undefined;
}

export function createInFlight<Ctx extends object>(): InFlight<Ctx> {
  // By connection, so a closed connection's operations go with it; each id to its message's payload,
  // the one object graphql-ws hands every hook of that operation.
  const byConnection = new WeakMap<Ctx, Map<string, Held>>();
  const byCaller = new Map<string, number>();
  const of = (ctx: Ctx) => {
    let operations = byConnection.get(ctx);
    if (!operations) byConnection.set(ctx, (operations = new Map()));
    return operations;
  };
  const uncount = (caller: string | undefined) => {
    if (caller === undefined) return;
    const left = (byCaller.get(caller) ?? 1) - 1;
    if (left > 0) byCaller.set(caller, left);
    else byCaller.delete(caller);
  };
  return {
    size: (ctx) => byConnection.get(ctx)?.size ?? 0,
    callerSize: (caller) => byCaller.get(caller) ?? 0,
    holds: (ctx, id) => byConnection.get(ctx)?.has(id) ?? false,
    take: (ctx, id, payload, caller) => {
      of(ctx).set(id, { payload, caller });
      if (caller !== undefined) byCaller.set(caller, (byCaller.get(caller) ?? 0) + 1);
    },
    release: (ctx, id, payload) => {
      const operations = byConnection.get(ctx);
      const held = operations?.get(id);
      if (held?.payload !== payload) return;
      operations!.delete(id);
      uncount(held.caller);
    },
    releaseAll: (ctx) => {
      const operations = byConnection.get(ctx);
      if (!operations) return;
      for (const held of operations.values()) uncount(held.caller);
      operations.clear();
    },
  };
}

/**
 * `iterator`, calling `end` once when it ends: it is done, it throws, or it is closed (`return()`,
 * which graphql-ws calls on its client's complete, in the same turn as the message: the place of a
 * completed subscription is free for the client's next message).
 */
export function onEnd<T>(iterator: AsyncIterableIterator<T>, end: () => void): AsyncIterableIterator<T> {
  let ended = false;
  const finish = () => {
    if (ended) return;
    ended = true;
    end();
  };
  return {
    async next(): Promise<IteratorResult<T>> {
      try {
        const result = await iterator.next();
        if (result.done) finish();
        return result;
      } catch (error) {
        finish();
        throw error;
      }
    },
    async return(value?: unknown): Promise<IteratorResult<T>> {
      finish();
      return (await iterator.return?.(value)) ?? { done: true, value: undefined };
    },
    async throw(error: unknown): Promise<IteratorResult<T>> {
      finish();
      if (iterator.throw) return iterator.throw(error);
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
