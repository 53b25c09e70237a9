import { Analytics } from '@segment/analytics-node';
import type { SegmentConfig } from './config.js';

/**
 * Segment's tracking API through its official library, one event a delivery: the library's own
 * retries are kept short, the signal receiver's retry (with backoff, across processes) does the rest.
 */
export class SegmentClient {
  private readonly analytics: Analytics;

  constructor(config: SegmentConfig) {
    this.analytics = new Analytics({
      writeKey: config.SEGMENT_WRITE_KEY,
      host: config.SEGMENT_HOST,
      flushAt: 1,
      maxRetries: 1,
      httpRequestTimeout: config.SEGMENT_TIMEOUT_MS,
    });
  }

  /** Resolves once Segment accepted the event; rejects when it was not delivered. */
  track(event: {
    event: string;
    messageId: string;
    userId?: string;
    anonymousId?: string;
    properties: Record<string, unknown>;
  }): Promise<void> {
    return new Promise((resolve, reject) => {
      const identity = event.userId ? { userId: event.userId } : { anonymousId: event.anonymousId! };
      this.analytics.track(
        { ...identity, event: event.event, messageId: event.messageId, properties: event.properties },
        (error) =>
          error
            ? reject(
                new Error(
                  `Segment did not accept '${event.event}': ${String((error as Error).message ?? error)}`,
                ),
              )
            : resolve(),
      );
    });
  }

  close(): Promise<void> {
    return this.analytics.closeAndFlush({ timeout: 5_000 });
  }
}
