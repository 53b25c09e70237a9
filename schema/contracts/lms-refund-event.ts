import { z } from 'zod';
import { avroDecode, avroEncode, type AvroRecord } from './avro.js';

/**
 * The Open edX event the LMS emits when a learner asks for a refund, as it travels on the Redis Streams
 * event bus (`edx-event-bus-redis`). This module plays the part of the openedx-events signal
 * definition, which producer and consumer both install: the Avro schema is derived from it the way
 * `openedx_events/event_bus/avro/schema.py::schema_from_signal` derives it from the signal's data
 * (a `CloudEvent` record namespaced by the event type, one field per data key, attrs classes as nested
 * records, `List[str]` as an array, `Optional[...] = None` as `["null", T]`).
 *
 * A stream entry has the fields `edx_event_bus_redis.internal.message.RedisMessage.to_binary_dict`
 * writes, in its order: the metadata headers `type, id, source, time, minorversion, sourcehost,
 * sourcelib` (UTF-8) and `event_data` (the schemaless Avro bytes).
 */
export const REFUND_REQUESTED_EVENT_TYPE = 'org.openedx.commerce.order.refund.requested.v1';

export const refundRequestedSchema: AvroRecord = {
  name: 'CloudEvent',
  type: 'record',
  doc: 'Avro Event Format for CloudEvents created with openedx_events/schema',
  namespace: REFUND_REQUESTED_EVENT_TYPE,
  fields: [
    {
      name: 'refund_request',
      type: {
        name: 'OrderRefundRequestData',
        type: 'record',
        fields: [
          { name: 'order_id', type: 'string' },
          { name: 'line_item_ids', type: { type: 'array', items: 'string' } },
          { name: 'lms_user_id', type: 'long' },
          { name: 'username', type: 'string' },
          { name: 'reason', type: ['null', 'string'], default: null },
        ],
      },
    },
  ],
};

const refundRequestedDataSchema = z.object({
  refund_request: z.object({
    order_id: z.string().min(1),
    line_item_ids: z.array(z.string().min(1)).min(1),
    lms_user_id: z.number().int(),
    username: z.string().min(1),
    reason: z.string().nullable(),
  }),
});
export type RefundRequestedData = z.infer<typeof refundRequestedDataSchema>;

/** OEP-41 metadata (openedx_events.data.EventsMetadata) as the bus headers carry it. */
export interface EventMetadata {
  type: string;
  /** A UUID; the event's identity, the same on every redelivery. */
  id: string;
  source: string;
  /** `datetime.isoformat()` of a UTC time, e.g. `2026-01-31T12:00:00.123456+00:00`. */
  time: string;
  minorversion: string;
  sourcehost: string;
  /** openedx-events version, dotted. */
  sourcelib: string;
}

export const METADATA_HEADERS = [
  'type',
  'id',
  'source',
  'time',
  'minorversion',
  'sourcehost',
  'sourcelib',
] as const satisfies ReadonlyArray<keyof EventMetadata>;

/** A stream entry that cannot be processed (event-bus-redis's `UnusableMessageError`). */
export class UnusableMessageError extends Error {
  override readonly name = 'UnusableMessageError';
}

/** The XADD field/value list of an event, in event-bus-redis's order. */
export function streamFields(metadata: EventMetadata, data: RefundRequestedData): Array<string | Buffer> {
  const fields: Array<string | Buffer> = [];
  for (const header of METADATA_HEADERS) fields.push(header, Buffer.from(metadata[header], 'utf8'));
  fields.push('event_data', avroEncode(refundRequestedSchema, data));
  return fields;
}

export interface BusMessage {
  metadata: EventMetadata;
  eventData: Buffer;
}

/** Reads a stream entry's field/value list (as Buffers) into metadata and event bytes. */
export function parseStreamEntry(fields: readonly Buffer[]): BusMessage {
  const values = new Map<string, Buffer[]>();
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const key = (fields[i] as Buffer).toString('utf8');
    values.set(key, [...(values.get(key) ?? []), fields[i + 1] as Buffer]);
  }
  const eventData = values.get('event_data');
  if (eventData?.length !== 1) throw new UnusableMessageError('the entry has no single event_data field');
  const metadata: Partial<EventMetadata> = {};
  for (const header of METADATA_HEADERS) {
    const found = values.get(header) ?? [];
    if (found.length > 1) throw new UnusableMessageError(`Multiple "${header}" headers on message`);
    if (found.length === 1) metadata[header] = (found[0] as Buffer).toString('utf8');
  }
  // event-bus-redis requires only the id; the type tells which signal the data belongs to.
  if (!metadata.id) throw new UnusableMessageError('Missing "id" header on message, cannot continue');
  if (!metadata.type) throw new UnusableMessageError('Missing "type" header on message');
  return {
    metadata: {
      source: '',
      time: '',
      minorversion: '0',
      sourcehost: '',
      sourcelib: '',
      ...metadata,
    } as EventMetadata,
    eventData: eventData[0] as Buffer,
  };
}

/** Decodes and validates the Avro `event_data` of a refund request. */
export function decodeRefundRequested(eventData: Buffer): RefundRequestedData {
  let decoded: unknown;
  try {
    decoded = avroDecode(refundRequestedSchema, eventData);
  } catch (error) {
    throw new UnusableMessageError(
      `event_data is not a ${REFUND_REQUESTED_EVENT_TYPE}: ${(error as Error).message}`,
    );
  }
  const parsed = refundRequestedDataSchema.safeParse(decoded);
  if (!parsed.success)
    throw new UnusableMessageError(`invalid ${REFUND_REQUESTED_EVENT_TYPE} data: ${parsed.error.message}`);
  return parsed.data;
}
