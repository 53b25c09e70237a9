import { LocalGraphQLDataSource, type GraphQLDataSource } from '@apollo/gateway';
import { composeServices } from '@apollo/composition';
import { Supergraph, operationFromDocument } from '@apollo/federation-internals';
import { QueryPlanner } from '@apollo/query-planner';
import type { GatewayGraphQLRequestContext } from '@apollo/server-gateway-interface';
import { getOperationAST, parse, type DocumentNode, type GraphQLSchema } from 'graphql';
import { createGatewayContext, type GatewayContext } from '../../gateway/federation/context.js';
import { compilePlan } from '../../gateway/federation/execution/compile.js';
import { FederatedExecutor } from '../../gateway/federation/executor.js';

/** Subgraphs, by name: their SDL (for composition) and their executable schema. */
export type DifferentialSubgraphs = Record<string, { typeDefs: DocumentNode; schema: GraphQLSchema }>;

export function composeForTest(subgraphs: DifferentialSubgraphs): string {
  const result = composeServices(
    Object.entries(subgraphs).map(([name, { typeDefs }]) => ({
      name,
      typeDefs,
      url: `http://${name}.invalid`,
    })),
  );
  if (result.errors) throw new Error(result.errors.map((e) => e.message).join('\n'));
  return result.supergraphSdl;
}

/** A result as a client would read it: errors formatted, in an order that does not depend on timing. */
function normalized(result: { data?: unknown; errors?: readonly unknown[]; extensions?: unknown }) {
  const format = (e: unknown) =>
    JSON.parse(
      JSON.stringify(
        e && typeof (e as { toJSON?: unknown }).toJSON === 'function'
          ? (e as { toJSON(): unknown }).toJSON()
          : { message: (e as Error).message },
      ),
    ) as unknown;
  const errors = result.errors
    ?.map(format)
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  const extensions = result.extensions as { valueCompletion?: unknown[] } | undefined;
  return JSON.parse(
    JSON.stringify({
      data: result.data,
      errors,
      valueCompletion: extensions?.valueCompletion?.map(format),
    }),
  ) as unknown;
}

/**
 * The gateway with its own compiled executor and with @apollo/gateway's executeQueryPlan, on the same
 * supergraph and data sources: `run` answers a query on both.
 */
export function differentialGateways(
  supergraphSdl: string,
  dataSources: Record<string, GraphQLDataSource<GatewayContext>>,
) {
  const flags = {
    evaluate: async (flag: string, _: unknown, fallback: boolean) => ({
      flag,
      value: fallback,
      reason: 'test',
    }),
  };
  const compiled = new FederatedExecutor({ supergraphSdl, dataSources, flags, execution: 'compiled' });
  const apollo = new FederatedExecutor({ supergraphSdl, dataSources, flags, execution: 'apollo' });
  const supergraph = Supergraph.build(supergraphSdl);
  const planner = new QueryPlanner(supergraph);
  const supergraphSchema = supergraph.schema.toGraphQLJSSchema();
  let hash = 0;
  const requestContext = (
    query: string,
    variables?: Record<string, unknown>,
  ): GatewayGraphQLRequestContext => {
    const document = parse(query);
    return {
      request: { query, variables },
      document,
      operation: getOperationAST(document) ?? undefined,
      operationName: getOperationAST(document)?.name?.value ?? null,
      queryHash: `q${hash++}`,
      context: createGatewayContext({ flagContext: { kind: 'user', key: 'test' } }),
      metrics: {},
      logger: console,
      cache: undefined,
      schema: compiled.schema,
      source: query,
      overallCachePolicy: undefined,
      requestIsBatched: false,
    } as unknown as GatewayGraphQLRequestContext;
  };
  return {
    /** Whether the compiled executor runs this query's plan itself (rather than falling back). */
    compiles(query: string): boolean {
      const operation = operationFromDocument(supergraph.apiSchema(), parse(query));
      return !('unsupported' in compilePlan(planner.buildQueryPlan(operation), operation, supergraphSchema));
    },
    async run(query: string, variables?: Record<string, unknown>) {
      const ours = await compiled.execute(requestContext(query, variables));
      const reference = await apollo.execute(requestContext(query, variables));
      return { ours: normalized(ours), reference: normalized(reference) };
    },
  };
}

export const localDataSources = (schemas: Record<string, GraphQLSchema>) =>
  Object.fromEntries(
    Object.entries(schemas).map(([name, schema]) => [
      name,
      new LocalGraphQLDataSource<GatewayContext>(schema),
    ]),
  );
