import type { GraphQLDataSource, GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import type { ResponsePath } from '@apollo/query-planner';
import type { GatewayExecutionResult, GatewayGraphQLRequestContext } from '@apollo/server-gateway-interface';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import type { CompiledNode, CompiledPlan } from './compile.js';
import { errorPathMapper, subgraphError } from './errors.js';
import { mergeInto } from './merge.js';

type Entity = Record<string, unknown>;
type Data = Entity | Entity[];

/** Where a node works: the flattened objects at a path of the response being built. */
interface Cursor {
  path: ResponsePath;
  data: Data;
  fullResult: Entity;
}

interface Execution {
  dataSources: Record<string, GraphQLDataSource>;
  requestContext: GatewayGraphQLRequestContext;
  variables: Record<string, unknown> | undefined;
  errors: unknown[];
}

/**
 * Runs a compiled plan: fetches through the data sources exactly as executeQueryPlan calls them,
 * merges each answer into the response in place, then shapes the client's response.
 */
export async function runPlan(
  plan: CompiledPlan,
  dataSources: Record<string, GraphQLDataSource>,
  requestContext: GatewayGraphQLRequestContext,
): Promise<GatewayExecutionResult> {
  const variables = requestContext.request.variables as Record<string, unknown> | undefined;
  const execution: Execution = { dataSources, requestContext, variables, errors: [] };
  const data = Object.create(null) as Entity;
  if (plan.node) await runNode(execution, plan.node, { path: [], data, fullResult: data });
  const errors = execution.errors as GraphQLError[];
  let shaped: ReturnType<CompiledPlan['shape']>;
  try {
    shaped = plan.shape(data, variables);
  } catch (error) {
    if (error instanceof GraphQLError) return { errors: [error] };
    return { errors: [new GraphQLError((error as Error).message, { originalError: error as Error })] };
  }
  // As executeQueryPlan: shaping errors (null violations, invalid values) caused by a failed fetch
  // would repeat it, so they are reported only when no fetch failed, and then as extensions.
  if (errors.length === 0 && shaped.errors.length > 0)
    return { extensions: { valueCompletion: shaped.errors }, data: shaped.data };
  return errors.length === 0 ? { data: shaped.data } : { errors, data: shaped.data };
}

async function runNode(execution: Execution, node: CompiledNode, cursor: Cursor | undefined): Promise<void> {
  if (!cursor) return;
  switch (node.kind) {
    case 'Sequence':
      for (const child of node.nodes) await runNode(execution, child, cursor);
      return;
    case 'Parallel':
      await Promise.all(node.nodes.map((child) => runNode(execution, child, cursor)));
      return;
    case 'Flatten': {
      const data = flatten(cursor.data, node.path);
      await runNode(
        execution,
        node.node,
        data ? { path: cursor.path.concat(node.path), data, fullResult: cursor.fullResult } : undefined,
      );
      return;
    }
    case 'Condition': {
      const given =
        execution.variables && Object.hasOwn(execution.variables, node.condition)
          ? execution.variables[node.condition]
          : undefined;
      const value = given === undefined ? node.fallback : given;
      if (typeof value !== 'boolean')
        throw new Error(
          `Invalid non-boolean value ${String(value)} for Boolean! variable $${node.condition}`,
        );
      const branch = value ? node.ifClause : node.elseClause;
      if (branch) await runNode(execution, branch, cursor);
      return;
    }
    case 'Fetch':
      try {
        await runFetch(execution, node, cursor);
      } catch (error) {
        execution.errors.push(error);
      }
  }
}

/** The objects at `path` below `value`, lists flattened (`@`); null or undefined where a step is. */
function flatten(value: Data | null | undefined, path: ResponsePath): Data | null | undefined {
  return flattenFrom(value, path, 0);
}

function flattenFrom(value: unknown, path: ResponsePath, from: number): Data | null | undefined {
  let current = value;
  for (let i = from; i < path.length; i++) {
    if (current === undefined || current === null) return current;
    const step = path[i];
    if (step === '@') {
      // Nulls stay in the list (as flattenResultsAtPath keeps them); the fetch skips them.
      const out: unknown[] = [];
      for (const element of current as unknown[]) {
        const below = flattenFrom(element, path, i + 1);
        if (Array.isArray(below)) for (const e of below) out.push(e);
        else out.push(below);
      }
      return out as Entity[];
    }
    if (typeof step !== 'string') throw new Error(`Unexpected ${typeof step} found in path`);
    if (Array.isArray(current)) throw new Error(`Unexpected array in result for path element ${step}`);
    const object = current as Entity;
    current = Object.hasOwn(object, step) ? object[step] : undefined;
  }
  return current as Data | null | undefined;
}

async function runFetch(
  execution: Execution,
  node: Extract<CompiledNode, { kind: 'Fetch' }>,
  cursor: Cursor,
): Promise<void> {
  const { fetch, representation, rewriteInput, rewriteOutput } = node;
  const service = execution.dataSources[fetch.serviceName];
  if (!service) throw new Error(`Couldn't find service with name "${fetch.serviceName}"`);
  const entities = Array.isArray(cursor.data) ? cursor.data.filter((e) => e != null) : [cursor.data];
  if (entities.length < 1) return;

  const variables = Object.create(null) as Record<string, unknown>;
  const provided = execution.variables;
  if (fetch.variableUsages && provided) {
    for (const name of fetch.variableUsages) {
      if (Object.hasOwn(provided, name) && provided[name] !== undefined) variables[name] = provided[name];
    }
  }

  if (!representation) {
    const received = await send(execution, node, cursor, variables);
    if (received && rewriteOutput) rewriteOutput(received);
    for (const entity of entities) mergeInto(entity, received);
    return;
  }

  // Equal representations are sent once (the scenario's products recur in every review): the
  // subgraph resolves, and the gateway serializes and parses, each distinct entity once.
  const representations: Entity[] = [];
  /** Per representation sent, the entities it completes, each with its position among all built. */
  const owners: Array<Array<{ entity: Entity; position: number }>> = [];
  const sent = new Map<string, number>();
  let built = 0;
  for (const entity of entities) {
    const rep = representation(entity);
    if (!rep || !rep.__typename) continue;
    rewriteInput?.(rep);
    const key = JSON.stringify(rep);
    let index = sent.get(key);
    if (index === undefined) {
      index = representations.push(rep) - 1;
      sent.set(key, index);
      owners.push([]);
    }
    owners[index]!.push({ entity, position: built++ });
  }
  if (representations.length < 1) return;
  if ('representations' in variables) throw new Error(`Variables cannot contain key "representations"`);
  variables.representations = representations;
  const received = await send(execution, node, cursor, variables, (index) =>
    owners[index]?.map((o) => o.position),
  );
  if (!received) return;
  const answered = received._entities;
  if (!Array.isArray(answered)) throw new Error(`Expected "data._entities" in response to be an array`);
  if (answered.length !== representations.length)
    throw new Error(`Expected "data._entities" to contain ${representations.length} elements`);
  for (let i = 0; i < owners.length; i++) {
    const entity = answered[i] as Entity | null | undefined;
    const completes = owners[i]!;
    if (entity && !entity.__typename) entity.__typename = completes[0]!.entity.__typename;
    if (entity && rewriteOutput) rewriteOutput(entity);
    // Every further entity gets a copy: merges adopt objects, and later fetches and the response
    // shaping must never meet one object at two places of the response.
    for (let j = 0; j < completes.length; j++)
      mergeInto(completes[j]!.entity, j === 0 || !entity ? entity : copyData(entity));
  }
}

/** A deep copy of parsed JSON data (objects and lists; leaves are immutable). */
function copyData<T>(value: T): T {
  if (Array.isArray(value)) return value.map(copyData) as T;
  if (value === null || typeof value !== 'object') return value;
  const copy = Object.create(null) as Record<string, unknown>;
  for (const key in value) copy[key] = copyData((value as Record<string, unknown>)[key]);
  return copy as T;
}

/**
 * A deduplicated entity fetch's errors as the subgraph would have answered every representation: an
 * error at `_entities.<i>` once for each entity that representation stands for, in their order.
 */
function entityErrorsPerEntity(
  errors: readonly GraphQLFormattedError[],
  positionsOf: (index: number) => number[] | undefined,
): GraphQLFormattedError[] {
  const placed: Array<{ at: number; error: GraphQLFormattedError }> = [];
  for (const error of errors) {
    const [head, index, ...rest] = error.path ?? [];
    const positions = head === '_entities' && typeof index === 'number' ? positionsOf(index) : undefined;
    // Errors not about one entity come first, in their order (the sort is stable).
    if (!positions) placed.push({ at: -1, error });
    else
      for (const position of positions)
        placed.push({ at: position, error: { ...error, path: ['_entities', position, ...rest] } });
  }
  return placed.sort((a, b) => a.at - b.at).map((p) => p.error);
}

/** One subgraph request through its data source, with every field executeQueryPlan passes. */
async function send(
  execution: Execution,
  { fetch, representation }: Extract<CompiledNode, { kind: 'Fetch' }>,
  cursor: Cursor,
  variables: Record<string, unknown>,
  /** For an entity fetch, the positions (among the entities built) that representation `i` stands for. */
  positionsOf?: (index: number) => number[] | undefined,
): Promise<Entity | null | undefined> {
  const { requestContext } = execution;
  const response = await execution.dataSources[fetch.serviceName]!.process({
    // GraphQLDataSourceRequestKind.INCOMING_OPERATION: the enum is not exported from the package root.
    kind: 'incoming operation' as GraphQLDataSourceProcessOptions['kind'] & 'incoming operation',
    request: { query: fetch.operation, variables, operationName: fetch.operationName },
    incomingRequestContext: requestContext,
    context: requestContext.context,
    document: fetch.operationDocumentNode,
    pathInIncomingRequest: cursor.path,
  });
  if (response.errors) {
    const errors = positionsOf ? entityErrorsPerEntity(response.errors, positionsOf) : response.errors;
    const mapPath = errorPathMapper(!!representation, cursor.path, cursor.fullResult);
    execution.errors.push(...errors.map((e) => subgraphError(e, fetch.serviceName, mapPath(e.path))));
    if (!response.extensions?.ftv1) {
      const paths = errors.map((error) => ({ subgraph: fetch.serviceName, path: error.path }));
      const metrics = requestContext.metrics as { nonFtv1ErrorPaths?: unknown[] } | undefined;
      if (metrics) metrics.nonFtv1ErrorPaths = [...(metrics.nonFtv1ErrorPaths ?? []), ...paths];
    }
  }
  return response.data as Entity | null | undefined;
}
