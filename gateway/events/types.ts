/**
 * Flow and signal events for GraphQL subscribers: best-effort fan-out to every gateway process, with a
 * resume cursor so a subscriber that reconnects gets what it missed (within the retained window).
 * Never the only path of a side effect: receivers use the SignalBus.
 */
export interface FeedEvent {
  /** Opaque, increasing cursor; pass it back as `after` to resume. */
  cursor: string;
  /** e.g. `flow:<flowId>`, `flows`, `signal:<name>`. */
  topic: string;
  /** e.g. `STEP_STARTED`, `STEP_FINISHED`, `FLOW_FINISHED`, `SIGNAL`. */
  type: string;
  data: Record<string, unknown>;
  /** ISO-8601. */
  time: string;
}

export interface EventFeed {
  readonly kind: 'redis' | 'memory';
  /**
   * Best-effort: resolves even if nobody listens. The Redis feed keeps what it cannot publish while
   * Redis is unreachable and publishes it in order once Redis is back (bounded, in this process's
   * memory); it rejects only when Redis refuses the event, or the feed is closed.
   */
  publish(topic: string, type: string, data: Record<string, unknown>): Promise<void>;
  /**
   * Events on any of `topics`, in cursor order: first those after `after` still retained, then live
   * ones, without gaps or repeats between the two. Ends when `signal` aborts or the feed closes.
   */
  subscribe(
    topics: readonly string[],
    options: { after?: string; signal?: AbortSignal },
  ): AsyncIterable<FeedEvent>;
  close(): Promise<void>;
}
