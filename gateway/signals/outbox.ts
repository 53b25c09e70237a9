import type { PrismaClient } from '../db/generated/client.js';
import type { EventFeed } from '../events/types.js';
import type { Logger } from '../log.js';
import type { SignalBus, SignalEnvelope } from './types.js';

export interface OutboxDispatcher {
  /** Publishes now instead of at the next poll: call after committing signals. */
  wake(): void;
  /** Publishes everything committed so far (or until the bus refuses); for graceful shutdown. */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

interface Row {
  id: string;
  name: string;
  payload: Record<string, unknown>;
  source: string;
  createdAt: Date;
}

/**
 * Moves committed signals from the outbox to the bus. A signal is marked published only after the bus
 * accepted it, so a crash in between publishes it again: receivers are idempotent on the signal id.
 * Rows are locked with SKIP LOCKED, so several gateway processes share the work without waiting.
 */
export function startOutboxDispatcher(options: {
  prisma: PrismaClient;
  bus: SignalBus;
  feed: EventFeed;
  logger: Logger;
  /** @default 500 */
  pollIntervalMs?: number;
  /** @default 100 */
  batchSize?: number;
}): OutboxDispatcher {
  const { prisma, bus, feed, logger } = options;
  const pollIntervalMs = options.pollIntervalMs ?? 500;
  const batchSize = options.batchSize ?? 100;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let failures = 0;

  /** One batch: how many were published, whether more may wait, whether the bus refused. */
  const dispatchBatch = (): Promise<{ published: number; more: boolean; refused: boolean }> =>
    prisma.$transaction(async (tx) => {
      const rows = await tx.$queryRaw<Row[]>`
        SELECT "id"::text, "name", "payload", "source", "createdAt" FROM "OutboxSignal"
        WHERE "publishedAt" IS NULL ORDER BY "createdAt" LIMIT ${batchSize} FOR UPDATE SKIP LOCKED`;
      let published = 0;
      for (const row of rows) {
        const envelope: SignalEnvelope = {
          id: row.id,
          name: row.name,
          payload: row.payload,
          time: row.createdAt.toISOString(),
          source: row.source,
        };
        try {
          await bus.publish(envelope);
        } catch (error) {
          await tx.$executeRaw`UPDATE "OutboxSignal" SET "publishAttempts" = "publishAttempts" + 1,
            "lastError" = ${(error as Error).message} WHERE "id" = ${row.id}::uuid`;
          logger.warn(
            { err: error, signalId: row.id },
            'signal bus unavailable; the signal waits in the outbox',
          );
          return { published, more: false, refused: true };
        }
        await tx.$executeRaw`UPDATE "OutboxSignal" SET "publishedAt" = now() WHERE "id" = ${row.id}::uuid`;
        published++;
        void feed
          .publish(`signal:${row.name}`, 'SIGNAL', envelope)
          .catch((err) => logger.warn({ err }, 'signal event not published to subscribers'));
      }
      return { published, more: rows.length === batchSize, refused: false };
    });

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
