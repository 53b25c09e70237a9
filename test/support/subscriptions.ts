/**
 * graphql-ws clients for tests: a real WebSocket (the `ws` package) to a Coordinator's /graphql, and a
 * collector that keeps everything a subscription delivered, in order, for assertions.
 */
import { createClient, type Client, type ClientOptions, type SubscribePayload } from 'graphql-ws';
import WebSocket from 'ws';
import { createDeferred, waitFor, type Deferred, type WaitForOptions } from './wait.js';

export const wsUrl = (httpUrl: string) => `${httpUrl.replace(/^http/, 'ws')}/graphql`;

/** A graphql-ws client that never reconnects by itself: a test decides when a subscriber comes back. */
export function subscriptionClient(httpUrl: string, options: Partial<ClientOptions> = {}): Client {
  return createClient({
    url: wsUrl(httpUrl),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: true,
    ...options,
  });
}

export interface Collected<T> {
  /** Every `next` payload's data, mapped by `select`, in arrival order. */
  readonly events: T[];
  /** `next` payloads that carried GraphQL errors. */
  readonly resultErrors: unknown[];
  /** Settles when the server completes the operation. */
  readonly completed: Deferred<void>;
  /** Settles with what the sink's `error` received (GraphQL errors, a CloseEvent or an Error). */
  readonly failed: Deferred<unknown>;
  unsubscribe(): void;
}

export function collect<T>(
  client: Client,
  payload: SubscribePayload,
  select: (data: Record<string, unknown>) => T,
): Collected<T> {
  const events: T[] = [];
  const resultErrors: unknown[] = [];
  const completed = createDeferred<void>();
  const failed = createDeferred<unknown>();
  const unsubscribe = client.subscribe<Record<string, unknown>>(payload, {
    next: (result) => {
      if (result.errors?.length) resultErrors.push(...result.errors);
      if (result.data) events.push(select(result.data));
    },
    error: (error) => failed.resolve(error),
    complete: () => completed.resolve(),
  });
  return { events, resultErrors, completed, failed, unsubscribe };
}

/**
 * Compares two feed cursors: Redis stream ids (`<ms>-<seq>`) or the in-process feed's sequence
 * numbers. Negative when `a` comes first.
 */
export function compareCursors(a: string, b: string): number {
  const parts = (c: string) => c.split('-').map((p) => BigInt(p));
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const [p = 0n, q = 0n] = [x[i], y[i]];
    if (p !== q) return p < q ? -1 : 1;
  }
  return 0;
}

/** `waitFor` for a predicate that returns the value it found, or `false` while there is none yet. */
export async function waitForValue<T>(
  find: () => T | false | Promise<T | false>,
  options?: WaitForOptions,
): Promise<T> {
  return (await waitFor(find, options)) as T;
}
