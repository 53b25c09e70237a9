import type { ApolloServerPlugin } from '@apollo/server';
import { ErrorCode, isErrorCode } from '../errors.js';
import type { GatewayContext } from '../federation/context.js';
import { OperationNameLabels, UNRESOLVED_OPERATION } from './labels.js';
import { secondsSince, type CoordinatorMetrics } from './metrics.js';

/** Distinct operation names kept as label values by default; later ones are `(other)`. */
export const DEFAULT_MAX_OPERATION_NAMES = 100;

/**
 * Client GraphQL operations: duration by operation name, type (query, mutation) and outcome (`success`,
 * `partial`: data and errors, `error`: errors only), and their errors by public code. The flow engine's
 * own Action calls are not client operations: the step metrics measure them. An operation that did not
 * parse or validate, or named no operation of its document, is `(unresolved)`.
 */
export function graphqlMetricsPlugin(
  metrics: CoordinatorMetrics,
  options: { maxOperationNames?: number } = {},
): ApolloServerPlugin<GatewayContext> {
  const names = new OperationNameLabels(options.maxOperationNames ?? DEFAULT_MAX_OPERATION_NAMES);
  return {
    async requestDidStart({ contextValue }) {
      if (contextValue.internal) return;
      const started = performance.now();
      return {
        async willSendResponse({ operation, operationName, response }) {
          const name = operation ? names.labelOf(operationName) : UNRESOLVED_OPERATION;
          const result = response.body.kind === 'single' ? response.body.singleResult : undefined;
          const errors = result?.errors ?? [];
          const outcome = !errors.length ? 'success' : result?.data ? 'partial' : 'error';
          metrics.graphqlDuration.observe(
            { operation: name, type: operation?.operation ?? 'unknown', outcome },
            secondsSince(started),
          );
          for (const error of errors) {
            const code = error.extensions?.code;
            metrics.graphqlErrors.inc({
              operation: name,
              code: isErrorCode(code) ? code : ErrorCode.INTERNAL_SERVER_ERROR,
            });
          }
        },
      };
    },
  };
}
