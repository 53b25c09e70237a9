import { createHash } from 'node:crypto';
import type {
  GatewayExecutionResult,
  GatewayGraphQLRequestContext,
  GatewayGraphQLRequestMetrics,
  GatewaySchemaHash,
} from '@apollo/server-gateway-interface';
import {
  GraphQLError,
  Kind,
  getOperationAST,
  parse,
  validate,
  type DocumentNode,
  type GraphQLFormattedError,
  type OperationDefinitionNode,
} from 'graphql';
import { ErrorCode, withErrorCode } from '../errors.js';
import type { GatewayContext } from '../federation/context.js';
import type { FederatedExecutor } from '../federation/executor.js';
import type { Logger } from '../log.js';
import type { ActionCaller } from './engine.js';

/** An Action's operation, parsed and validated once against one executor's schema. */
type PreparedAction =
  | {
      document: DocumentNode;
      operation: OperationDefinitionNode;
      /** The root field it calls: the Action's name. */
      action: string;
      queryHash: string;
    }
  | { errors: readonly GraphQLError[] };

/** Observes one Action call (tracing wraps it in a span); `run` answers with the unformatted errors. */
export type ActionCallObserver = (
  call: { action: string; context: GatewayContext },
  run: () => Promise<GatewayExecutionResult>,
) => Promise<GatewayExecutionResult>;

export interface ActionCallsOptions {
  /** The executor a call starts on: the gateway's current one (a reload replaces it). */
  executor(): FederatedExecutor;
  /**
   * Formats each error as the gateway formats a client's (`formatError` of Apollo Server), so a step's
   * record holds the same codes and extensions whichever way its Action was called.
   */
  formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError;
  /** Adds each error's stack to its extensions, as Apollo Server does outside production. */
  includeStacktrace: boolean;
  logger: Logger;
  observe?: ActionCallObserver;
}

/**
 * The flow engine's Action calls, handed to the gateway's executor directly: their documents come from
 * the connections config, so each is parsed and validated once per executor (a reload's new supergraph
 * prepares them again), and none goes through Apollo Server's request pipeline — whose client rules
 * (operation limits, masking, client metrics) skip these `internal` calls anyway. What the pipeline gave
 * them is kept: the executor's variable coercion, errors formatted as before, the Action's span.
 */
export function createActionCaller(options: ActionCallsOptions): ActionCaller {
  const prepared = new WeakMap<FederatedExecutor, Map<string, PreparedAction>>();
  const prepare = (executor: FederatedExecutor, query: string): PreparedAction => {
    let documents = prepared.get(executor);
    if (!documents) prepared.set(executor, (documents = new Map()));
    let action = documents.get(query);
    if (!action) {
      action = prepareAction(executor, query);
      documents.set(query, action);
    }
    return action;
  };
  const cache = noCache();

  return async (call, variables, stepContext) => {
    const executor = options.executor();
    const action = prepare(executor, call.document);
    // Marked internal: the rules for client operations do not apply to it (see GatewayContext).
    const context: GatewayContext = { ...stepContext, internal: true };
    const run = async (): Promise<GatewayExecutionResult> => {
      if ('errors' in action) return { errors: action.errors };
      const requestContext: GatewayGraphQLRequestContext<GatewayContext> = {
        request: { query: call.document, variables },
        logger: options.logger,
        schema: executor.schema,
        schemaHash: '' as GatewaySchemaHash,
        context,
        cache,
        queryHash: action.queryHash,
        document: action.document,
        source: call.document,
        operationName: action.operation.name?.value ?? null,
        operation: action.operation,
        metrics: {} as GatewayGraphQLRequestMetrics,
        overallCachePolicy: undefined,
      };
      try {
        return await executor.execute(requestContext);
      } catch (error) {
        // Apollo Server answered an executor's throw as the request's one error: so does this.
        return { errors: [asGraphQLError(error)] };
      }
    };
    const name = 'errors' in action ? call.action.name : action.action;
    const result = await (options.observe ? options.observe({ action: name, context }, run) : run());
    return {
      data: result.data,
      ...(result.errors?.length ? { errors: result.errors.map((e) => formatted(e, options)) } : {}),
    };
  };
}

function prepareAction(executor: FederatedExecutor, query: string): PreparedAction {
  let document: DocumentNode;
  try {
    document = parse(query);
  } catch (error) {
    return { errors: [withErrorCode(asGraphQLError(error), ErrorCode.GRAPHQL_PARSE_FAILED)] };
  }
  const invalid = validate(executor.schema, document);
  if (invalid.length)
    return { errors: invalid.map((e) => withErrorCode(e, ErrorCode.GRAPHQL_VALIDATION_FAILED)) };
  const operation = getOperationAST(document);
  if (!operation)
    return {
      errors: [
        new GraphQLError('The Action document has no single operation', {
          extensions: { code: 'OPERATION_RESOLUTION_FAILURE' },
        }),
      ],
    };
  const first = operation.selectionSet.selections[0];
  return {
    document,
    operation,
    action: first?.kind === Kind.FIELD ? first.name.value : operation.operation,
    queryHash: createHash('sha256').update(query).digest('hex'),
  };
}

/** Apollo Server's shape of an error: a code (INTERNAL_SERVER_ERROR when none), no `http`, the stack if asked. */
function formatted(
  error: GraphQLError,
  options: Pick<ActionCallsOptions, 'formatError' | 'includeStacktrace'>,
): GraphQLFormattedError {
  const graphqlError = asGraphQLError(error);
  const extensions: Record<string, unknown> = {
    ...graphqlError.extensions,
    code: graphqlError.extensions.code ?? 'INTERNAL_SERVER_ERROR',
  };
  const http = extensions.http as { status?: unknown } | undefined;
  if (http && typeof http === 'object' && (!('status' in http) || typeof http.status === 'number'))
    delete extensions.http;
  if (options.includeStacktrace) extensions.stacktrace = graphqlError.stack?.split('\n');
  return options.formatError({ ...graphqlError.toJSON(), extensions }, graphqlError);
}

function asGraphQLError(error: unknown): GraphQLError {
  if (error instanceof GraphQLError) return error;
  if (error instanceof Error) return new GraphQLError(error.message, { originalError: error });
  return new GraphQLError(`Unexpected error value: ${String(error)}`);
}

/** The executor is handed a cache; Action calls keep nothing in it. */
function noCache(): GatewayGraphQLRequestContext['cache'] {
  return {
    get: async () => undefined,
    set: async () => {},
    delete: async () => {},
  };
}
