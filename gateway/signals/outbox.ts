import type pg from 'pg';
import { run as runStatement, type PreparedStatement } from '../db/prepared.js';
import type { EventFeed } from '../events/types.js';
import type { Logger } from '../log.js';
import type { TraceContext } from '../observability/trace-context.js';
import type { SignalBus, SignalEnvelope } from './types.js';

export interface OutboxDispatcher {
  /** Publishes now instead of at the next poll: call after committing signals. */
  wake(): void;
  /** Publishes everything committed so far (or until the bus refuses); for graceful shutdown. */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

const claimStatement: PreparedStatement = {
  name: 'coordinator.outbox.claim.v2',
  text: `SELECT "id"::text, "name", "payload", "source", "createdAt", "traceContext" FROM "OutboxSignal"
         WHERE "publishedAt" IS NULL ORDER BY "createdAt" LIMIT $1 FOR UPDATE SKIP LOCKED`,
};
const markPublishedStatement: PreparedStatement = {
  name: 'coordinator.outbox.published.v1',
  text: `UPDATE "OutboxSignal" SET "publishedAt" = now() WHERE "id" = ANY($1::uuid[])`,
};
const markRefusedStatement: PreparedStatement = {
  name: 'coordinator.outbox.refused.v1',
  text: `UPDATE "OutboxSignal" SET "publishAttempts" = "publishAttempts" + 1, "lastError" = $2
         WHERE "id" = ANY($1::uuid[])`,
};

/** The outbox's waiting signals, counted up to $1 (the index on publishedAt, createdAt serves both). */
const backlogStatement: PreparedStatement = {
  name: 'coordinator.outbox.backlog.v1',
  text: `SELECT count(*)::int AS "waiting", min("createdAt") AS "oldest"
         FROM (SELECT "createdAt" FROM "OutboxSignal" WHERE "publishedAt" IS NULL
               ORDER BY "createdAt" LIMIT $1) AS waiting`,
};

/** Most waiting signals the backlog read counts: a scrape stays cheap however large the backlog. */
export const BACKLOG_COUNT_LIMIT = 100_000;

/**
 * How many signals wait in the outbox (up to `BACKLOG_COUNT_LIMIT`) and the age of the oldest, in
 * seconds (0 when none waits), for the metrics scrape.
 */
export async function readOutboxBacklog(
  pool: pg.Pool,
  now: () => number = Date.now,
): Promise<{ waiting: number; oldestAgeSeconds: number }> {
  const { rows } = await runStatement<{ waiting: number; oldest: Date | null }>(pool, backlogStatement, [
    BACKLOG_COUNT_LIMIT,
  ]);
  const { waiting, oldest } = rows[0]!;
  return { waiting, oldestAgeSeconds: oldest ? Math.max(0, (now() - oldest.getTime()) / 1000) : 0 };
}

/** Told what each batch did, for the metrics; must not throw. */
export interface OutboxObserver {
  published?(count: number): void;
  refused?(count: number): void;
}

interface Row {
  id: string;
  name: string;
  payload: Record<string, unknown>;
  source: string;
  createdAt: Date;
  /** Validated by the bus like the rest of the envelope (a context that does not read is dropped). */
  traceContext: TraceContext | null;
}

/**
 * Moves committed signals from the outbox to the bus, and to the event feed for subscribers. A signal
 * is marked published only after the bus accepted it and the feed took it, so a crash in between, or a
 * publish that timed out but reached the bus, publishes it again: the bus appends an envelope id once
 * (`SignalBus.publish`), receivers are idempotent on it, and subscribers get it at least once.
 * Rows are locked with SKIP LOCKED, so several gateway processes share the work without waiting.
 */
export function startOutboxDispatcher(options: {
  /** The pool under Prisma's adapter (Database.pool). */
  pool: pg.Pool;
  bus: SignalBus;
  feed: EventFeed;
  logger: Logger;
  /** @default 500 */
  pollIntervalMs?: number;
  /** @default 100 */
  batchSize?: number;
  observer?: OutboxObserver;
}): OutboxDispatcher {
  const { pool, bus, feed, logger } = options;
  const pollIntervalMs = options.pollIntervalMs ?? 500;
  const batchSize = options.batchSize ?? 100;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let failures = 0;

  /** One batch: how many were published, whether more may wait, whether the bus refused. */
  const dispatchBatch = async (): Promise<{ published: number; more: boolean; refused: boolean }> => {
    const tx = await pool.connect();
    try {
      await tx.query('BEGIN');
      const batch = await publishClaimed(tx);
      await tx.query('COMMIT');
      return batch;
    } catch (error) {
      await tx.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      tx.release();
    }
  };

  /** Claims a batch (locked until the commit), publishes it, and records what the bus took or refused. */
  const publishClaimed = async (tx: pg.PoolClient) => {
    const { rows } = await runStatement<Row>(tx, claimStatement, [batchSize]);
    const envelopes = rows.map((row): SignalEnvelope => ({
      id: row.id,
      name: row.name,
      payload: row.payload,
      time: row.createdAt.toISOString(),
      source: row.source,
      ...(row.traceContext ? { traceContext: row.traceContext } : {}),
    }));
    // All at once: the bus client pipelines them (one round trip for the batch, in order), then one
    // UPDATE marks every accepted row. A crash in between publishes them again, as for a single row.
    const results = await Promise.allSettled(envelopes.map((envelope) => bus.publish(envelope)));
    const accepted = envelopes.filter((_, i) => results[i]!.status === 'fulfilled');
    const refusals = results.flatMap((r, i) =>
      r.status === 'rejected' ? [{ row: rows[i]!, error: r.reason }] : [],
    );
    // On the feed before the rows are marked, as on the bus: a process that dies in between has them
    // published again (same id), never not at all. A feed that refuses does not hold signals back.
    await Promise.all(
      accepted.map((envelope) =>
        feed
          .publish(`signal:${envelope.name}`, 'SIGNAL', envelope)
          .catch((err) => logger.warn({ err }, 'signal event not published to subscribers')),
      ),
    );
    if (accepted.length) {
      await runStatement(tx, markPublishedStatement, [accepted.map((e) => e.id)]);
      options.observer?.published?.(accepted.length);
    }
    if (refusals.length) {
      const { message } = refusals[0]!.error as Error;
      await runStatement(tx, markRefusedStatement, [refusals.map((r) => r.row.id), message]);
      options.observer?.refused?.(refusals.length);
      logger.warn(
        { err: refusals[0]!.error, signalIds: refusals.map((r) => r.row.id) },
        'signal bus unavailable; the signals wait in the outbox',
      );
    }
    return {
      published: accepted.length,
      more: rows.length === batchSize && !refusals.length,
      refused: refusals.length > 0,
    };
  };

  const run = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        let result;
        try {
          result = await dispatchBatch();
        } catch (error) {
          logger.error({ err: error }, 'outbox dispatch failed');
          result = { published: 0, more: false, refused: true };
        }
        if (result.refused) {
          failures++;
          break;
        }
        failures = 0;
        if (result.more) again = true;
      } while (again && !stopped);
    })().finally(() => {
      running = undefined;
    });
    return running;
  };

  const schedule = () => {
    if (stopped) return;
    // Back off while the bus is down, up to 10 polls, so a Redis outage does not spin.
    const delay = pollIntervalMs * Math.min(10, 2 ** failures);
    timer = setTimeout(() => void run().finally(schedule), delay);
  };
  schedule();

  return {
    wake: () => void run(),
    flush: async () => {
      await running;
      await run();
    },
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
