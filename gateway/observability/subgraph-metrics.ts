import type { GraphQLDataSource, GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import type { GatewayContext } from '../federation/context.js';
import { secondsSince, type CoordinatorMetrics } from './metrics.js';

/**
 * Times every fetch of a query plan from `subgraph`: a response without errors is `success`, one with
 * errors or a thrown fetch `error`. The executor only calls `process`, so a wrapper sees every fetch of
 * in-process and remote subgraphs alike.
 */
export function timedDataSource(
  subgraph: string,
  source: GraphQLDataSource<GatewayContext>,
  metrics: CoordinatorMetrics,
): GraphQLDataSource<GatewayContext> {
  return {
    async process(options: GraphQLDataSourceProcessOptions<GatewayContext>) {
      const started = performance.now();
      let outcome = 'error';
      try {
        const response = await source.process(options);
        if (!response.errors?.length) outcome = 'success';
        return response;
      } finally {
        metrics.subgraphFetchDuration.observe({ subgraph, outcome }, secondsSince(started));
      }
    },
  };
}
