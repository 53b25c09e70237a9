import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import type { ApolloServerPlugin } from '@apollo/server';
import type { GraphQLDataSource } from '@apollo/gateway';
import type { GatewayExecutionResult } from '@apollo/server-gateway-interface';
import { Kind, type OperationDefinitionNode } from 'graphql';
import type { GatewayContext } from '../federation/context.js';
import { Attr, recordFailure, recordThrown } from './span-attributes.js';
import type { TraceScope } from './trace-scope.js';

/**
 * A span per GraphQL operation the gateway runs — a client's request (continuing the caller's trace
 * when it sends a `traceparent` header), or an Action call of a flow step (a child of the step's span)
 * — and a span per subgraph fetch of it, active while the subgraph runs so that its Plugin's Service
 * calls nest under it.
 *
 * @apollo/gateway's own spans (gateway.execute, gateway.fetch, gateway.postprocessing) go through
 * OpenTelemetry's global provider and context manager, which the Coordinator leaves alone: they stay
 * no-ops, and these take their place.
 */
export class RequestTracing {
  /** The operation's span, by its context value: what the executor hands every fetch of it. */
  private readonly spans = new WeakMap<object, Span>();

  constructor(private readonly scope: TraceScope) {}

  plugin(): ApolloServerPlugin<GatewayContext> {
    const { scope, spans } = this;
    return {
      async requestDidStart({ contextValue, request }) {
        const internal = contextValue.internal === true;
        const step = contextValue.step;
        const headers = request.http?.headers;
        const parent = internal
          ? scope.active()
          : scope.extract({
              traceparent: headers?.get('traceparent'),
              tracestate: headers?.get('tracestate'),
            });
        const span = scope.tracer.startSpan(
          internal ? 'action' : 'graphql',
          {
            kind: internal ? SpanKind.INTERNAL : SpanKind.SERVER,
            attributes: step
              ? {
                  [Attr.FLOW_ID]: step.flowId,
                  [Attr.STEP_INDEX]: step.stepIndex,
                  [Attr.STEP_ATTEMPT]: step.attempt,
                  [Attr.IDEMPOTENCY_KEY]: step.idempotencyKey,
                }
              : {},
          },
          parent,
        );
        spans.set(contextValue, span);
        return {
          async didResolveOperation({ operation, operationName }) {
            if (!operation) return;
            if (internal) {
              const action = rootField(operation);
              span.updateName(`action ${action}`);
              span.setAttribute(Attr.ACTION, action);
              return;
            }
            span.updateName(operationName ? `${operation.operation} ${operationName}` : operation.operation);
            span.setAttribute(Attr.GRAPHQL_OPERATION_TYPE, operation.operation);
            if (operationName) span.setAttribute(Attr.GRAPHQL_OPERATION_NAME, operationName);
          },
          async didEncounterErrors({ errors }) {
            for (const error of errors)
              recordFailure(span, { type: codeOf(error.extensions), message: error.message });
            span.setStatus({ code: SpanStatusCode.ERROR, message: errors[0]?.message });
          },
          async willSendResponse({ contextValue: context }) {
            const implementation = context.implementations?.[0];
            if (internal && implementation) span.setAttribute(Attr.IMPLEMENTATION, implementation);
            span.end();
          },
        };
      },
    };
  }

  /**
   * An Action call the flow engine hands the executor itself (not through Apollo Server): the same
   * `action <name>` span, child of the step's, that `plugin()` makes for an operation marked internal.
   */
  action(
    { action, context }: { action: string; context: GatewayContext },
    run: () => Promise<GatewayExecutionResult>,
  ): Promise<GatewayExecutionResult> {
    const { scope, spans } = this;
    const step = context.step;
    const span = scope.tracer.startSpan(
      `action ${action}`,
      {
        kind: SpanKind.INTERNAL,
        attributes: {
          [Attr.ACTION]: action,
          ...(step
            ? {
                [Attr.FLOW_ID]: step.flowId,
                [Attr.STEP_INDEX]: step.stepIndex,
                [Attr.STEP_ATTEMPT]: step.attempt,
                [Attr.IDEMPOTENCY_KEY]: step.idempotencyKey,
              }
            : {}),
        },
      },
      scope.active(),
    );
    spans.set(context, span);
    return run().then((result) => {
      const errors = result.errors ?? [];
      for (const error of errors)
        recordFailure(span, { type: codeOf(error.extensions), message: error.message });
      if (errors.length) span.setStatus({ code: SpanStatusCode.ERROR, message: errors[0]?.message });
      const implementation = context.implementations?.[0];
      if (implementation) span.setAttribute(Attr.IMPLEMENTATION, implementation);
      span.end();
      return result;
    });
  }

  /** `source` with each fetch a span, child of its operation's, active while the subgraph runs. */
  dataSource(
    name: string,
    source: GraphQLDataSource<GatewayContext>,
    remote: boolean,
  ): GraphQLDataSource<GatewayContext> {
    const { scope, spans } = this;
    return {
      process(options) {
        const operation = options.context ? spans.get(options.context) : undefined;
        const parent = operation ? trace.setSpan(ROOT_CONTEXT, operation) : scope.active();
        const span = scope.tracer.startSpan(
          `subgraph ${name}`,
          { kind: remote ? SpanKind.CLIENT : SpanKind.INTERNAL, attributes: { [Attr.SUBGRAPH]: name } },
          parent,
        );
        return scope
          .withSpan(span, () => source.process(options), parent)
          .then(
            (response) => {
              const first = response.errors?.[0];
              if (first) span.setStatus({ code: SpanStatusCode.ERROR, message: first.message });
              span.end();
              return response;
            },
            (error: unknown) => {
              recordThrown(span, error);
              span.end();
              throw error;
            },
          );
      },
    };
  }
}

function rootField(operation: OperationDefinitionNode): string {
  const first = operation.selectionSet.selections[0];
  return first?.kind === Kind.FIELD ? first.name.value : operation.operation;
}

function codeOf(extensions: Readonly<Record<string, unknown>> | undefined): string {
  const code = extensions?.code;
  return typeof code === 'string' ? code : 'GraphQLError';
}
