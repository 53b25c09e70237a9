import { createClient, RESP_TYPES } from 'redis';
import type { PluginRuntime, Principal } from '@commerce-coordinator/plugin-sdk';
import type { LmsEventBusConfig } from './config.js';
import {
  decodeRefundRequested,
  parseStreamEntry,
  REFUND_REQUESTED_EVENT_TYPE,
  UnusableMessageError,
} from '../../schema/contracts/lms-refund-event.js';

/**
 * Consumes the LMS's refund requests from its Redis Streams event bus (edx-event-bus-redis) with a
 * consumer group, and runs the refund filter for each.
 *
 * Unlike edx-event-bus-redis, which acknowledges every entry in a `finally` (at-most-once against
 * handler failures), an entry is acknowledged only once `runtime.runFilter` returned: the flow is then
 * recorded, whatever its outcome (a refused refund is an outcome, not a reason to retry). When
 * `runFilter` throws (the Coordinator could not record the flow), the entry stays pending and is read
 * again after a back-off, and after a restart: this consumer's own pending entries first, then entries
 * that another consumer of the group left pending longer than the claim time (XAUTOCLAIM). The filter's
 * idempotency key comes from the event id, so a redelivery never starts a second refund.
 *
 * An entry that can never be processed (no id, undecodable data) is copied to `<stream>:dead-letter`
 * with the reason and acknowledged. Entries of other event types sharing the stream are acknowledged
 * without action.
 */

export const REFUND_FILTER = 'order.refund.requested.v1';

/** The caller the refund flows run for: the LMS, on its learner's behalf. */
export const LMS_PRINCIPAL: Principal = { kind: 'service', subject: 'lms', service: 'lms' };

export type RefundConsumerConfig = LmsEventBusConfig & { LMS_EVENT_BUS_REDIS_URL: string };

const BATCH = 10;
const DEAD_LETTER_MAX_LEN = 10_000;
const MAX_BACKOFF_MS = 30_000;

type Entry = [id: Buffer, fields: Buffer[] | null];

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });
}

/** Starts consuming; resolves once the consumer group exists (or creating it failed and is retried). */
export async function startRefundConsumer(
  runtime: PluginRuntime,
  config: RefundConsumerConfig,
): Promise<() => Promise<void>> {
  const stream = config.LMS_EVENT_BUS_STREAM;
  const group = config.LMS_EVENT_BUS_GROUP;
  const consumer = config.LMS_EVENT_BUS_CONSUMER;
  const logger = runtime.logger.child({ plugin: 'lms', stream, group, consumer });
  const connect = () => {
    const client = createClient({
      url: config.LMS_EVENT_BUS_REDIS_URL,
      // Visible in CLIENT LIST, so operators (and tests) can tell the consumer's connections apart.
      name: `lms-events:${consumer}`,
    });
    client.on('error', (err: Error) => logger.debug({ err }, 'LMS event bus connection error'));
    // Commands wait for the connection (and a reconnection) instead of failing meanwhile.
    client.connect().catch(() => {});
    return client;
  };
  type Client = ReturnType<typeof connect>;
  /** The raw reply of a command; with `buffers`, every string in it as the bytes Redis holds. */
  const call = (client: Client, args: Array<string | number | Buffer>, buffers = false): Promise<unknown> =>
    client.sendCommand(
      args.map((arg) => (typeof arg === 'number' ? String(arg) : arg)),
      buffers ? { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } } : undefined,
    );
  const commands = connect();
  // A blocking XREADGROUP holds its connection; stop() closes this one to end the wait at once.
  const blocking = connect();
  const abort = new AbortController();

  let groupReady = false;
  const ensureGroup = async () => {
    try {
      await call(commands, ['XGROUP', 'CREATE', stream, group, config.LMS_EVENT_BUS_START_ID, 'MKSTREAM']);
    } catch (error) {
      if (!String((error as Error).message).includes('BUSYGROUP')) throw error;
    }
    groupReady = true;
  };

  const read = async (client: Client, id: '0' | '>', blockMs?: number): Promise<Entry[]> => {
    const block = blockMs === undefined ? [] : ['BLOCK', blockMs];
    const reply = (await call(
      client,
      ['XREADGROUP', 'GROUP', group, consumer, 'COUNT', BATCH, ...block, 'STREAMS', stream, id],
      true,
    )) as Array<[Buffer, Entry[]]> | null;
    return reply?.[0]?.[1] ?? [];
  };

  /** Takes over entries another consumer left pending too long; they join this consumer's pending list. */
  const claimStale = async () => {
    let cursor = '0-0';
    do {
      const reply = (await call(commands, [
        'XAUTOCLAIM',
        stream,
        group,
        consumer,
        config.LMS_EVENT_BUS_CLAIM_IDLE_MS,
        cursor,
        'COUNT',
        100,
        'JUSTID',
      ])) as [string, string[], ...unknown[]];
      if (reply[1].length)
        logger.info({ ids: reply[1] }, 'claimed LMS events left pending by another consumer');
      cursor = reply[0];
    } while (cursor !== '0-0' && !abort.signal.aborted);
  };

  const ack = (id: string) => call(commands, ['XACK', stream, group, id]);

  const deadLetter = async (id: string, fields: Buffer[], reason: string) => {
    await commands
      .multi()
      .addCommand([
        'XADD',
        `${stream}:dead-letter`,
        'MAXLEN',
        '~',
        String(DEAD_LETTER_MAX_LEN),
        '*',
        ...fields,
        'dead_letter_reason',
        reason,
        'dead_letter_source_id',
        id,
      ])
      .addCommand(['XACK', stream, group, id])
      .exec();
  };

  const handle = async ([rawId, fields]: Entry) => {
    const id = rawId.toString();
    if (!fields) {
      // Trimmed from the stream (MAXLEN) while pending: nothing left to process.
      logger.error(
        { redisId: id },
        'a pending LMS event was trimmed from the stream before it was processed',
      );
      await ack(id);
      return;
    }
    let eventId: string;
    let input: { orderId: string; lineItemIds: string[] };
    try {
      const message = parseStreamEntry(fields);
      if (message.metadata.type !== REFUND_REQUESTED_EVENT_TYPE) {
        logger.debug({ redisId: id, type: message.metadata.type }, 'ignoring an LMS event of another type');
        await ack(id);
        return;
      }
      const data = decodeRefundRequested(message.eventData).refund_request;
      eventId = message.metadata.id;
      input = { orderId: data.order_id, lineItemIds: data.line_item_ids };
    } catch (error) {
      if (!(error instanceof UnusableMessageError)) throw error;
      logger.error(
        { redisId: id, reason: error.message },
        'unusable LMS event moved to the dead-letter stream',
      );
      await deadLetter(id, fields, error.message);
      return;
    }
    const idempotencyKey = `lms-refund:${eventId}`;
    const result = await runtime.runFilter(REFUND_FILTER, input, {
      idempotencyKey,
      principal: LMS_PRINCIPAL,
    });
    logger.info(
      { redisId: id, eventId, flowId: result.flowId, status: result.status, error: result.error },
      'LMS refund request processed',
    );
    await ack(id);
  };

  const loop = async () => {
    // Pending entries (this consumer's, and stale ones of others) come first, as after a restart.
    let backlog = true;
    let failures = 0;
    while (!abort.signal.aborted) {
      try {
        if (!groupReady) await ensureGroup();
        let entries: Entry[];
        if (backlog) {
          await claimStale();
          entries = await read(commands, '0');
          if (!entries.length) {
            backlog = false;
            continue;
          }
        } else {
          entries = await read(blocking, '>', config.LMS_EVENT_BUS_BLOCK_MS);
          // Idle: a good moment to look for entries other consumers left behind.
          if (!entries.length) backlog = true;
        }
        for (const entry of entries) {
          // Entries not handled yet stay pending and are read again on the next start.
          if (abort.signal.aborted) break;
          await handle(entry);
        }
        failures = 0;
      } catch (error) {
        if (abort.signal.aborted) break;
        failures++;
        const delay = Math.min(MAX_BACKOFF_MS, 200 * 2 ** (failures - 1)) * (0.5 + Math.random() / 2);
        logger.error(
          { err: error, retryInMs: Math.round(delay) },
          'consuming LMS events failed; the entry stays pending',
        );
        backlog = true;
        await sleep(delay, abort.signal);
      }
    }
  };

  try {
    await ensureGroup();
  } catch (error) {
    logger.error({ err: error }, 'could not create the LMS event consumer group; retrying in the background');
  }
  const running = loop();
  logger.info('consuming LMS refund requests');

  return async () => {
    abort.abort();
    if (blocking.isOpen) blocking.destroy();
    await running;
    if (commands.isOpen) await commands.close();
  };
}
