import type pg from 'pg';
import { run, type PreparedStatement } from '../db/prepared.js';
import type { Failure } from '../errors.js';
import type { EventFeed } from '../events/types.js';
import type { Logger } from '../log.js';

/**
 * A flow's end reaches the event feed at least once, even when the process that ended it dies between
 * committing the end and publishing FLOW_FINISHED (the feed is written after the record, so that a
 * subscriber never hears of an end the record does not hold). The record says which ends are known to
 * be published: the process that ended a flow marks the ends it published, in one statement per
 * heartbeat (nothing more on a flow's path), and any process publishes the ends still unmarked a lease
 * after they were committed. A process that dies after publishing, before marking, has its ends
 * published again: subscribers may get a flow's FLOW_FINISHED twice (same flowId, another cursor).
 */
export interface FlowEndEvents {
  /** The FLOW_FINISHED of `flowId` is on the feed: marked at the next heartbeat. */
  published(flowId: string): void;
  /** Publishes the ends left unpublished for a lease (run on a timer; exposed for tests). */
  sweep(): Promise<void>;
  /** Stops the timers and marks what was published so far. */
  stop(): Promise<void>;
}

/** What FLOW_FINISHED says about a flow's end, from the engine's hook or from the record. */
export function flowFinishedData(end: {
  flowId: string;
  name: string;
  kind: string;
  status: string;
  failure?: Failure | null;
}): Record<string, unknown> {
  return {
    flowId: end.flowId,
    name: end.name,
    kind: end.kind,
    status: end.status.toUpperCase(),
    ...(end.failure ? { error: end.failure } : {}),
  };
}

/** $1 ids, $2 now. An end written again since (an operator's retry ran the flow again) stays unmarked. */
const markStatement: PreparedStatement = {
  name: 'coordinator.flow.end-published.v1',
  text: `UPDATE "FlowRun" SET "endPublishedAt" = $2
         WHERE "id" = ANY($1::uuid[]) AND "endPublishedAt" IS NULL AND "finishedAt" <= $2`,
};
/** $1 ended before, $2 limit: locked until the sweep's commit, so two processes never publish the same. */
const unpublishedStatement: PreparedStatement = {
  name: 'coordinator.flow.ends-unpublished.v1',
  text: `SELECT "id"::text AS "flowId", "name", "kind", "status", "failure" FROM "FlowRun"
         WHERE "endPublishedAt" IS NULL AND "finishedAt" < $1
         ORDER BY "finishedAt" LIMIT $2 FOR UPDATE SKIP LOCKED`,
};

const SWEEP_BATCH = 200;

export function startFlowEndEvents(options: {
  /** The pool under Prisma's adapter (Database.pool). */
  pool: pg.Pool;
  feed: EventFeed;
  logger: Logger;
  /** An end unmarked for this long is taken to be lost with its process. @default 15 s */
  leaseMs?: number;
}): FlowEndEvents {
  const { pool, feed, logger } = options;
  const leaseMs = options.leaseMs ?? 15_000;
  let toMark = new Set<string>();

  const mark = async () => {
    if (!toMark.size) return;
    const ids = [...toMark];
    toMark = new Set();
    await run(pool, markStatement, [ids, new Date()]).catch((err) => {
      // Not marked: a sweep publishes them again, which at-least-once allows.
      logger.warn({ err, flows: ids.length }, 'flow ends not marked published');
    });
  };

  /** One batch, in a transaction: its rows stay locked until they are published and marked. */
  const publishUnpublished = async (tx: pg.PoolClient) => {
    const { rows } = await run<{
      flowId: string;
      name: string;
      kind: string;
      status: string;
      failure: Failure | null;
    }>(tx, unpublishedStatement, [new Date(Date.now() - leaseMs), SWEEP_BATCH]);
    if (!rows.length) return;
    await Promise.all(rows.map((row) => feed.publish('flows', 'FLOW_FINISHED', flowFinishedData(row))));
    await run(tx, markStatement, [rows.map((r) => r.flowId), new Date()]);
    logger.warn({ flows: rows.length }, 'published the ends of flows whose process did not');
  };

  let sweeping: Promise<void> | undefined;
  const sweep = () =>
    (sweeping ??= (async () => {
      const tx = await pool.connect();
      try {
        await tx.query('BEGIN');
        await publishUnpublished(tx);
        await tx.query('COMMIT');
      } catch (error) {
        await tx.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        tx.release();
      }
    })()
      // Tried again at the next sweep (the database or Redis may be away).
      .catch((err) => logger.warn({ err }, 'sweep of unpublished flow ends failed'))
      .finally(() => (sweeping = undefined)));

  const marker = setInterval(() => void mark(), leaseMs / 3);
  const sweeper = setInterval(() => void sweep(), leaseMs / 2);
  return {
    published: (flowId) => void toMark.add(flowId),
    sweep,
    async stop() {
      clearInterval(marker);
      clearInterval(sweeper);
      await sweeping;
      await mark();
    },
  };
}
