import { SpanStatusCode, type Span } from '@opentelemetry/api';
import type { Failure } from '../errors.js';

/**
 * The attributes the Coordinator's spans carry: identities from the record (flow, step, Action,
 * Implementation, attempt, idempotency key) and OpenTelemetry's conventions for GraphQL and HTTP.
 * Never an input, an output or a payload: they hold learners' data.
 */
export const Attr = {
  FLOW_ID: 'coordinator.flow.id',
  /** The filter's name, or the signal's for a receiver run. */
  FLOW_NAME: 'coordinator.flow.name',
  FLOW_KIND: 'coordinator.flow.kind',
  FLOW_ATTEMPT: 'coordinator.flow.attempt',
  FLOW_STATUS: 'coordinator.flow.status',
  RECEIVER: 'coordinator.receiver',
  STEP_INDEX: 'coordinator.step.index',
  STEP_ATTEMPT: 'coordinator.step.attempt',
  STEP_STATUS: 'coordinator.step.status',
  IDEMPOTENCY_KEY: 'coordinator.step.idempotency_key',
  ACTION: 'coordinator.action',
  /** The subgraph (Plugin) that served the Action. */
  IMPLEMENTATION: 'coordinator.implementation',
  /** The flags that chose the Implementation, as `flag=value`. */
  FLAG_DECISIONS: 'coordinator.flag_decisions',
  SUBGRAPH: 'coordinator.subgraph',
  GRAPHQL_OPERATION_TYPE: 'graphql.operation.type',
  GRAPHQL_OPERATION_NAME: 'graphql.operation.name',
  HTTP_METHOD: 'http.request.method',
  HTTP_STATUS: 'http.response.status_code',
  /** A Plugin route's path as declared (no learner's data in it). */
  HTTP_ROUTE: 'http.route',
  SERVER_ADDRESS: 'server.address',
  SERVER_PORT: 'server.port',
  URL_SCHEME: 'url.scheme',
  ERROR_TYPE: 'error.type',
} as const;

/** A recorded failure (a step's, a flow's): the span failed, with the failure as its exception. */
export function recordFailure(span: Span, failure: Pick<Failure, 'type' | 'message'>): void {
  span.setAttribute(Attr.ERROR_TYPE, failure.type);
  span.recordException({ name: failure.type, message: failure.message });
  span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message });
}

/** Something thrown (a broken database, a taken-over flow, a network error). */
export function recordThrown(span: Span, error: unknown): void {
  const { name, message } = error instanceof Error ? error : { name: 'Error', message: String(error) };
  const code = (error as { code?: unknown } | undefined)?.code;
  recordFailure(span, { type: typeof code === 'string' ? code : name, message });
}
