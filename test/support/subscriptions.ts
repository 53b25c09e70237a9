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

/** A feed event as a test selects it: at least its cursor, and whatever else the query asked for. */
export type FeedEventFields = { cursor: string } & Record<string, unknown>;

export interface ResumingSubscriber {
  /** The subscription's root field (`flowEvents`, `signals`). */
  readonly field: string;
  /** Every event received, over every connection, in arrival order. */
  readonly events: FeedEventFields[];
  /** GraphQL errors in results, and why a connection ended when it was not a lost socket. */
  readonly errors: unknown[];
  /** Connections opened so far: more than 1 once it resumed. */
  readonly connections: number;
  stop(): void;
}

/**
 * A subscriber that comes back as a client is told to: when its connection dies (the instance behind
 * it was killed), it subscribes again on a new connection with `after:` the last cursor it received,
 * so it must get exactly what it missed. `after` is the cursor to start from (e.g. `'0-0'`: the
 * retained feed's start, so no race with what happens before it is live).
 */
export function resumingSubscriber(
  httpUrl: string,
  payload: { query: string; variables?: Record<string, unknown> },
  field: string,
  options: { connectionParams?: Record<string, unknown>; after?: string } = {},
): ResumingSubscriber {
  const events: FeedEventFields[] = [];
  const errors: unknown[] = [];
  let connections = 0;
  let stopped = false;
  let current: { client: Client; unsubscribe(): void } | undefined;
  const open = () => {
    if (stopped) return;
    connections++;
    const after = events.at(-1)?.cursor ?? options.after;
    const client = subscriptionClient(httpUrl, { connectionParams: options.connectionParams });
    const again = () => {
      void client.dispose();
      // A new connection on the next turn, as a client's reconnect does; the balancer picks a live instance.
      setImmediate(open);
    };
    const unsubscribe = client.subscribe<Record<string, unknown>>(
      { ...payload, variables: { ...payload.variables, after } },
      {
        next: (result) => {
          if (result.errors?.length) errors.push(...result.errors);
          const event = result.data?.[field] as FeedEventFields | undefined;
          if (event) events.push(event);
        },
        error: (error) => {
          // A lost socket (1006, or an Error) is what resuming is for; anything else is a failure.
          const code = (error as { code?: number }).code;
          if (!(error instanceof Error) && code !== 1006 && code !== 1011) errors.push(error);
          if (connections < 20) again();
        },
        complete: () => {
          if (!stopped) errors.push(new Error('the server completed the subscription'));
        },
      },
    );
    current = { client, unsubscribe };
  };
  open();
  return {
    field,
    events,
    errors,
    get connections() {
      return connections;
    },
    stop() {
      stopped = true;
      current?.unsubscribe();
      void current?.client.dispose();
    },
  };
}
