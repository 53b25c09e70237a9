import type { AsyncLocalStorage } from 'node:async_hooks';
import {
  ROOT_CONTEXT,
  defaultTextMapGetter,
  defaultTextMapSetter,
  trace,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { TraceContext } from './trace-context.js';

const w3c = new W3CTraceContextPropagator();

/**
 * One Coordinator's traces: its tracer, and the span active in the work running now, kept in an
 * AsyncLocalStorage of its own rather than OpenTelemetry's global context manager — so several
 * Coordinators in one process (the tests) each see only their own spans, and nothing global is set.
 */
export class TraceScope {
  constructor(
    readonly tracer: Tracer,
    private readonly storage: AsyncLocalStorage<Context>,
  ) {}

  /** The context of the traced work running now; the root context outside any. */
  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }

  /** Whether a span of this Coordinator's is active: HTTP calls outside one are not its own. */
  tracing(): boolean {
    return trace.getSpan(this.active()) !== undefined;
  }

  /** Runs `work` with `span` active, as a child context of `parent`. */
  withSpan<T>(span: Span, work: () => T, parent: Context = this.active()): T {
    return this.storage.run(trace.setSpan(parent, span), work);
  }

  /** Runs `work`, and everything it starts, outside any span (work that outlives the span it came from). */
  untraced<T>(work: () => T): T {
    return this.storage.exit(work);
  }

  /** The W3C trace context of the span active in `context`, to record or send on. */
  inject(context: Context = this.active()): TraceContext | undefined {
    if (!trace.getSpan(context)) return undefined;
    const carrier: { traceparent?: string; tracestate?: string } = {};
    w3c.inject(context, carrier, defaultTextMapSetter);
    if (!carrier.traceparent) return undefined;
    return {
      traceparent: carrier.traceparent,
      ...(carrier.tracestate ? { tracestate: carrier.tracestate } : {}),
    };
  }

  /** The context a recorded or received trace context names (the root context when it names none). */
  extract(carrier: { traceparent?: string; tracestate?: string } | undefined): Context {
    return carrier?.traceparent ? w3c.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter) : ROOT_CONTEXT;
  }
}
