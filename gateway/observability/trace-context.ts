import { z } from 'zod';

/**
 * A W3C Trace Context (https://www.w3.org/TR/trace-context/) as the record and the wire hold it: with
 * a flow run (the trace a recovered run continues), with an outbox signal and its stream entry (the
 * flow its receivers' runs link to). Plain data: nothing here needs OpenTelemetry loaded.
 */
export const traceContextSchema = z.object({
  /** `<version>-<trace id>-<parent span id>-<flags>`, lowercase hex. */
  traceparent: z.string().regex(/^[\da-f]{2}-[\da-f]{32}-[\da-f]{16}-[\da-f]{2}$/),
  /** Vendors' opaque entries, passed along as received (at most 512 characters, as W3C bounds it). */
  tracestate: z.string().max(512).optional(),
});
export type TraceContext = z.infer<typeof traceContextSchema>;

/**
 * Tracing is best effort: a trace context that does not read (another writer's, a hand-edited entry)
 * is dropped, never the message that carried it.
 */
export const optionalTraceContext = traceContextSchema.optional().catch(undefined);

/** The trace and span ids a context names, as log lines carry them. */
export function traceIdsOf(
  context: TraceContext | undefined,
): { traceId: string; spanId: string } | undefined {
  const [, traceId, spanId] = context?.traceparent.split('-') ?? [];
  return traceId && spanId ? { traceId, spanId } : undefined;
}
