import { ROOT_CONTEXT, SpanKind, trace, type Link, type Span } from '@opentelemetry/api';
import type { FlowPlugin } from '../flows/hooks.js';
import { FlowKind } from '../flows/status.js';
import { Attr, recordFailure, recordThrown } from './span-attributes.js';
import type { TraceScope } from './trace-scope.js';

/**
 * A span per flow run and per step attempt, each active while it runs, so that the attempt's Action
 * call (and the subgraph fetches and Service calls beneath it) nest under the step, and the steps under
 * the flow.
 *
 * A filter's flow is a child of the span that started it: the GraphQL request's, or — for a run
 * recovered from a crashed process — the one recorded with the run, so the recovered run continues that
 * trace; run again by an operator (retry, cancel), it is a child of the operator's request, linked to
 * the trace it was first started in. A receiver run starts a trace of its own (it runs later, maybe
 * elsewhere, maybe many times), linked to the flow that emitted its signal.
 */
export function useFlowTracing(scope: TraceScope): FlowPlugin {
  const { tracer } = scope;
  return {
    name: 'flow-tracing',
    instrumentation: {
      async flow(start, run) {
        const receiver = start.kind === FlowKind.RECEIVER;
        const recorded = scope.extract(start.traceContext);
        const parent = receiver ? ROOT_CONTEXT : scope.tracing() ? scope.active() : recorded;
        // A receiver run links to its signal's emitter; a filter run started in another trace than
        // its record's (an operator's retry or cancel) links to the trace it was first started in.
        const earlier = trace.getSpanContext(recorded);
        const links: Link[] =
          earlier && earlier.spanId !== trace.getSpanContext(parent)?.spanId ? [{ context: earlier }] : [];
        const span = tracer.startSpan(
          receiver ? `receiver ${start.receiver}` : `flow ${start.name}`,
          {
            kind: receiver ? SpanKind.CONSUMER : SpanKind.INTERNAL,
            root: receiver,
            links,
            attributes: {
              [Attr.FLOW_ID]: start.flowId,
              [Attr.FLOW_NAME]: start.name,
              [Attr.FLOW_KIND]: start.kind,
              [Attr.FLOW_ATTEMPT]: start.attempt,
              ...(start.receiver ? { [Attr.RECEIVER]: start.receiver } : {}),
            },
          },
          parent,
        );
        return finish(
          span,
          () => scope.withSpan(span, run, parent),
          (end) => {
            span.setAttribute(Attr.FLOW_STATUS, end.status);
            if (end.failure) recordFailure(span, end.failure);
          },
        );
      },
      async step(start, run) {
        const span = tracer.startSpan(
          `step ${start.action}`,
          {
            attributes: {
              [Attr.FLOW_ID]: start.flowId,
              [Attr.STEP_INDEX]: start.stepIndex,
              [Attr.ACTION]: start.action,
              [Attr.STEP_ATTEMPT]: start.attempt,
              [Attr.IDEMPOTENCY_KEY]: start.idempotencyKey,
            },
          },
          scope.active(),
        );
        return finish(
          span,
          () => scope.withSpan(span, run),
          (end) => {
            span.setAttribute(Attr.STEP_STATUS, end.status);
            if (end.implementation) span.setAttribute(Attr.IMPLEMENTATION, end.implementation);
            if (end.decisions.length)
              span.setAttribute(
                Attr.FLAG_DECISIONS,
                end.decisions.map((d) => `${d.flag}=${d.value}`),
              );
            if (end.failure) recordFailure(span, end.failure);
          },
        );
      },
    },
  };
}

/** Runs the phase, describes how it ended (or that it was interrupted) on its span, and ends the span. */
async function finish<End>(span: Span, run: () => Promise<End>, describe: (end: End) => void): Promise<End> {
  try {
    const end = await run();
    describe(end);
    return end;
  } catch (error) {
    recordThrown(span, error);
    throw error;
  } finally {
    span.end();
  }
}
