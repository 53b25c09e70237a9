import { Supergraph, operationFromDocument, type Schema } from '@apollo/federation-internals';
import { buildOperationContext, executeQueryPlan, type GraphQLDataSource } from '@apollo/gateway';
import { QueryPlanner, type QueryPlan } from '@apollo/query-planner';
import type {
  GatewayExecutionResult,
  GatewayGraphQLRequestContext,
  GatewayInterface,
  GatewaySchemaLoadOrUpdateCallback,
} from '@apollo/server-gateway-interface';
import {
  GraphQLError,
  Kind,
  OperationTypeNode,
  TypeInfo,
  isAbstractType,
  visit,
  visitWithTypeInfo,
  type DocumentNode,
  type GraphQLSchema,
} from 'graphql';
import { getVariableValues } from 'graphql/execution/values.js';
import { ErrorCode, httpStatusOf } from '../errors.js';
import type { GatewayContext } from './context.js';
import { overrideLabels, type OverrideLabel } from './override-labels.js';
import { rootFetchServices } from './plan.js';
import { compilePlan, type CompiledPlan } from './execution/compile.js';
import { runPlan } from './execution/run.js';

export interface FlagEvaluator {
  evaluate(
    flag: string,
    context: GatewayContext['flagContext'],
    fallback: boolean,
  ): Promise<{ flag: string; value: boolean; reason: string }>;
}

export interface FederatedExecutorOptions {
  supergraphSdl: string;
  dataSources: Record<string, GraphQLDataSource<GatewayContext>>;
  flags: FlagEvaluator;
  /** Plans kept per (operation, override decisions). @default 1000 */
  planCacheSize?: number;
  /**
   * Which executor runs the plans: `compiled`, this gateway's own, compiled once per plan (plans it
   * does not support still run on executeQueryPlan), or `apollo`, @apollo/gateway's executeQueryPlan
   * for every plan (the reference the tests and the benchmark compare with). @default 'compiled'
   */
  execution?: 'compiled' | 'apollo';
}

/** A cached plan and, unless it runs on executeQueryPlan, its compiled form. */
interface CachedPlan {
  plan: QueryPlan;
  compiled?: CompiledPlan;
}

/** Why `document` has no operation to run for `operationName`. */
export function noOperationMessage(document: DocumentNode, operationName: string | null | undefined): string {
  if (operationName) return `The document has no operation named "${operationName}"`;
  return document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION).length > 1
    ? 'The document has several operations: name the one to run in operationName'
    : 'The document has no operation to run';
}

/**
 * Why the gateway cannot run the request's operation (a client's mistake, answered 400 BAD_REQUEST),
 * or undefined. Without this, @apollo/gateway throws and the request fails with a 500.
 */
function unrunnable({
  document,
  operation,
  request,
}: GatewayGraphQLRequestContext): GraphQLError | undefined {
  const badRequest = (message: string) =>
    new GraphQLError(message, {
      extensions: { code: ErrorCode.BAD_REQUEST, http: { status: httpStatusOf(ErrorCode.BAD_REQUEST) } },
    });
  if (!operation) return badRequest(noOperationMessage(document, request.operationName));
  // @apollo/gateway cannot execute subscriptions: the Coordinator serves them itself over graphql-ws.
  if (operation.operation === OperationTypeNode.SUBSCRIPTION)
    return badRequest('Subscriptions are served over graphql-ws (a WebSocket) at /graphql, not over HTTP');
  return undefined;
}

/**
 * The gateway's executor: plans with `@apollo/query-planner` and executes with `@apollo/gateway`'s
 * `executeQueryPlan`, like ApolloGateway does, but resolves progressive `@override(label:)` through
 * flags per request (ApolloGateway plans with every label false) and records, on the request context,
 * which flags decided and which subgraphs served the root fields.
 */
export class FederatedExecutor implements GatewayInterface {
  readonly schema: GraphQLSchema;
  readonly supergraphSdl: string;
  private readonly supergraphSchema: GraphQLSchema;
  private readonly apiSchema: Schema;
  private readonly planner: QueryPlanner;
  private readonly labels: readonly OverrideLabel[];
  /** The labels that can change each operation's plan: those on fields it selects. */
  private readonly relevantLabels = new Map<string, readonly string[]>();
  private readonly plans = new Map<string, CachedPlan>();
  private readonly planCacheSize: number;

  constructor(private readonly options: FederatedExecutorOptions) {
    const supergraph = Supergraph.build(options.supergraphSdl);
    this.supergraphSdl = options.supergraphSdl;
    this.apiSchema = supergraph.apiSchema();
    this.schema = this.apiSchema.toGraphQLJSSchema();
    this.supergraphSchema = supergraph.schema.toGraphQLJSSchema();
    this.planner = new QueryPlanner(supergraph);
    this.labels = overrideLabels(options.supergraphSdl);
    this.planCacheSize = options.planCacheSize ?? 1000;
    for (const { name } of supergraph.subgraphsMetadata()) {
      if (!options.dataSources[name]) throw new Error(`No data source for subgraph '${name}'`);
    }
  }

  async load(): Promise<{ executor: (rc: GatewayGraphQLRequestContext) => Promise<GatewayExecutionResult> }> {
    return { executor: (requestContext) => this.execute(requestContext) };
  }

  onSchemaLoadOrUpdate(callback: GatewaySchemaLoadOrUpdateCallback) {
    callback({ apiSchema: this.schema, coreSupergraphSdl: this.supergraphSdl });
    return () => {};
  }

  async stop() {}

  async execute(requestContext: GatewayGraphQLRequestContext): Promise<GatewayExecutionResult> {
    const context = requestContext.context as GatewayContext;
    const { request, document } = requestContext;
    const refusal = unrunnable(requestContext);
    if (refusal) return { errors: [refusal] };
    const operationContext = buildOperationContext({
      schema: this.schema,
      operationDocument: document,
      operationName: request.operationName,
    });
    const variableErrors = getVariableValues(
      this.schema,
      operationContext.operation.variableDefinitions ?? [],
      request.variables ?? {},
    ).errors;
    if (variableErrors?.length) {
      return {
        errors: variableErrors.map(
          (e) =>
            new GraphQLError(e.message, { nodes: e.nodes, extensions: { code: ErrorCode.BAD_USER_INPUT } }),
        ),
      };
    }

    // Only the flags of labels on fields this operation selects are evaluated (and recorded): the
    // others cannot change its plan, and planning with them off is the same plan.
    const operationKey = `${requestContext.queryHash}:${request.operationName ?? ''}`;
    let relevant = this.relevantLabels.get(operationKey);
    if (!relevant) {
      relevant = this.labelsSelectedBy(document);
      if (this.relevantLabels.size >= this.planCacheSize) this.relevantLabels.clear();
      this.relevantLabels.set(operationKey, relevant);
    }
    const conditions = new Map<string, boolean>(this.labels.map((l) => [l.label, false]));
    for (const label of relevant) {
      const decision = await this.options.flags.evaluate(label, context.flagContext, false);
      conditions.set(label, decision.value);
      context.decisions?.push(decision);
    }

    const key = `${operationKey}:${relevant.map((l) => Number(conditions.get(l))).join('')}`;
    let cached = this.plans.get(key);
    if (!cached) {
      const operation = operationFromDocument(this.apiSchema, document, {
        operationName: request.operationName,
      });
      const plan = this.planner.buildQueryPlan(operation, { overrideConditions: conditions });
      cached = { plan, compiled: this.compile(plan, document, request.operationName) };
      if (this.plans.size >= this.planCacheSize) this.plans.delete(this.plans.keys().next().value!);
      this.plans.set(key, cached);
    }
    const { plan, compiled } = cached;
    context.implementations?.push(...rootFetchServices(plan));

    // Studio traces (ftv1) are executeQueryPlan's to build.
    if (compiled && !requestContext.metrics?.captureTraces)
      return runPlan(compiled, this.options.dataSources, requestContext);
    return executeQueryPlan(
      plan,
      this.options.dataSources,
      requestContext,
      operationContext,
      this.supergraphSchema,
      this.apiSchema,
    );
  }

  /** The plan compiled for this gateway's executor, or undefined to run it on executeQueryPlan. */
  private compile(
    plan: QueryPlan,
    document: DocumentNode,
    operationName: string | undefined,
  ): CompiledPlan | undefined {
    if (this.options.execution === 'apollo') return undefined;
    const operation = operationFromDocument(this.apiSchema, document, { operationName, validate: false });
    const compiled = compilePlan(plan, operation, this.supergraphSchema);
    return 'unsupported' in compiled ? undefined : compiled;
  }

  /** The override labels on the fields `document` selects, an abstract type's implementations included. */
  private labelsSelectedBy(document: DocumentNode): string[] {
    if (!this.labels.length) return [];
    const selected = new Set<string>();
    const schema = this.schema;
    const typeInfo = new TypeInfo(schema);
    visit(
      document,
      visitWithTypeInfo(typeInfo, {
        Field(node) {
          const parent = typeInfo.getParentType();
          if (!parent) return;
          const types = isAbstractType(parent) ? schema.getPossibleTypes(parent) : [parent];
          for (const type of types) selected.add(`${type.name}.${node.name.value}`);
        },
      }),
    );
    return [
      ...new Set(this.labels.filter((l) => selected.has(`${l.typeName}.${l.fieldName}`)).map((l) => l.label)),
    ].sort();
  }
}
