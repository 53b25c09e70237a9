import type { IncomingMessage, Server } from 'node:http';
import type { ApolloServer } from '@apollo/server';
import {
  GraphQLError,
  OperationTypeNode,
  getOperationAST,
  getVariableValues,
  parse,
  print,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type OperationDefinitionNode,
  type GraphQLSchema,
} from 'graphql';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ClientErrors } from '../federation/client-errors.js';
import type { GatewayContext } from '../federation/context.js';
import { noOperationMessage } from '../federation/executor.js';
import type { OperationLimitsChecker } from '../federation/operation-limits.js';
import { domainCodeOf, ErrorCode, withErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { Principal } from '@commerce-coordinator/plugin-sdk';
import { acceptWithinCap, useServerWithLimits, type SubscriptionLimits } from './limits.js';
import { createSharedSubscribe } from './shared-execution.js';

/**
 * graphql-ws on the gateway's port and path. @apollo/gateway cannot execute subscriptions, so the
 * Coordinator serves them itself from its own subgraph schema (fed by the event feed); queries and
 * mutations sent over the socket go through the gateway like HTTP ones.
 */
export function attachSubscriptions(options: {
  server: Server;
  path: string;
  /** The Coordinator subgraph's schema: it owns the Subscription type. */
  schema: GraphQLSchema;
  /** The gateway's schema now (a reload replaces it): queries and mutations are checked against it. */
  graphSchema(): GraphQLSchema;
  apollo: ApolloServer<GatewayContext>;
  /**
   * The gateway context of an operation of a connection, from its `connection_init` payload (where
   * clients put `authorization`) and its upgrade request (its headers and cookies). Built for each
   * operation, so a token that expired since the connection opened no longer counts; a token that
   * does not verify throws (a DomainError: UNAUTHENTICATED).
   */
  context(
    connectionParams: Readonly<Record<string, unknown>> | undefined,
    request: IncomingMessage,
  ): Promise<GatewayContext>;
  /** The operation limits, applied to every operation before it runs. */
  operationLimits?: OperationLimitsChecker;
  /** What clients see of errors (masked in production). */
  clientErrors: ClientErrors;
  /**
   * Whether the caller of a context may subscribe; a connection whose caller may not is closed with
   * 4403, and a subscribe sent once its token no longer verifies is refused. @default anyone
   */
  maySubscribe?(context: GatewayContext): boolean;
  logger: Logger;
  /** Caps and timeouts of the connections (resolved by `resolveSubscriptionLimits`). */
  limits: SubscriptionLimits;
}): { close(): Promise<void> } {
  const { limits } = options;
  const wss = new WebSocketServer({ noServer: true, path: options.path, maxPayload: limits.maxMessageBytes });
  const detach = acceptWithinCap(options.server, wss, limits.maxConnections);
  // The name of each subscribe request's operation, for the log lines of its errors.
  const operationNames = new WeakMap<object, string | undefined>();
  // Each connection's verified caller, as it connected: its operations count towards the caller's cap.
  const callers = new WeakMap<object, string>();
  const disposable = useServerWithLimits(
    {
      schema: options.schema,
      onConnect: async (ctx) => {
        let context: GatewayContext;
        try {
          context = await options.context(ctx.connectionParams, ctx.extra.request);
        } catch {
          return false;
        }
        if (!(options.maySubscribe?.(context) ?? true)) return false;
        const caller = callerKey(context.principal);
        if (caller !== undefined) callers.set(ctx, caller);
        if (context.credentialsExpireAt !== undefined)
          closeWhenExpired(ctx.extra.socket, context.credentialsExpireAt);
        return true;
      },
      // Parsed and measured here, so a refused operation is an error message for it alone: graphql-ws
      // itself closes the whole socket (4500, ending the client's other subscriptions) when a query
      // does not parse.
      onSubscribe: async (ctx, _id, payload) => {
        const tokens = options.operationLimits?.checkTokens(payload.query);
        if (tokens) return [tokens];
        let document: DocumentNode;
        try {
          document = parse(payload.query);
        } catch (error) {
          if (error instanceof GraphQLError) return [withErrorCode(error, ErrorCode.GRAPHQL_PARSE_FAILED)];
          throw error;
        }
        const operation = getOperationAST(document, payload.operationName);
        if (!operation)
          return [
            new GraphQLError(noOperationMessage(document, payload.operationName), {
              extensions: { code: ErrorCode.BAD_REQUEST },
            }),
          ];
        let context: GatewayContext;
        try {
          context = await options.context(ctx.connectionParams, ctx.extra.request);
        } catch (error) {
          const code = domainCodeOf(error);
          if (!code) throw error;
          return [new GraphQLError((error as Error).message, { extensions: { code } })];
        }
        const variables = payload.variables ?? undefined;
        // A query or mutation is checked against the whole graph, then goes through the gateway as an
        // HTTP one does (`execute`: Apollo Server and its errors); a subscription is the Coordinator
        // subgraph's own.
        const subscription = operation.operation === OperationTypeNode.SUBSCRIPTION;
        if (subscription && options.maySubscribe && !options.maySubscribe(context))
          return [
            new GraphQLError('Subscriptions are for staff and Services', {
              extensions: { code: ErrorCode.FORBIDDEN },
            }),
          ];
        const schema = subscription ? options.schema : options.graphSchema();
        const repeats = options.operationLimits?.checkBeforeValidation(document, payload.operationName);
        if (repeats) return [repeats];
        const invalid = validate(schema, document).map((e) =>
          withErrorCode(e, ErrorCode.GRAPHQL_VALIDATION_FAILED),
        );
        if (invalid.length) return options.clientErrors.validationErrors(invalid);
        operationNames.set(payload, operation.name?.value);
        // Measured here for every operation, so a refusal is this operation's error message (Apollo
        // Server measures a query again, and finds it within the limits).
        const refusal = options.operationLimits?.checkOperation(schema, document, operation, variables);
        if (refusal) return [refusal];
        // Coerced here, so wrong variables are this operation's error message, with a code.
        const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], variables ?? {});
        if (coerced.errors) return coerced.errors.map((e) => withErrorCode(e, ErrorCode.BAD_USER_INPUT));
        return {
          schema,
          document,
          operationName: payload.operationName,
          // The declared ones only: the rest reach nothing, and a subscription's are part of the key
          // its shared results are found by (a deeply nested junk variable could not be serialised).
          variableValues: declaredVariables(operation, variables),
          contextValue: context,
        };
      },
      subscribe: createSharedSubscribe(),
      execute: async (args: ExecutionArgs) => {
        const result = await options.apollo.executeOperation(
          {
            query: print(args.document),
            variables: (args.variableValues ?? undefined) as Record<string, unknown> | undefined,
            operationName: args.operationName ?? undefined,
          },
          { contextValue: args.contextValue as GatewayContext },
        );
        return result.body.kind === 'single' ? (result.body.singleResult as never) : { errors: [] };
      },
      // Queries and mutations come back from Apollo Server already formatted (and masked); errors of
      // subscriptions are graphql-js's own.
      onNext: (_ctx, _id, payload, _args, result) =>
        result.errors
          ? {
              ...result,
              errors: result.errors.map((e) =>
                options.clientErrors.forClient(e, operationNames.get(payload)),
              ),
            }
          : undefined,
      onError: (_ctx, _id, payload, errors) => {
        options.logger.debug({ errors }, 'subscription operation failed');
        return errors.map((e) => options.clientErrors.forClient(e, operationNames.get(payload)));
      },
    },
    wss,
    limits,
    (ctx) => callers.get(ctx),
  );
  return {
    close: async () => {
      detach();
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** One caller, whatever its connections: a Service by its client, a person by their token's subject. */
function callerKey(principal: Principal | undefined): string | undefined {
  if (!principal) return undefined;
  return principal.kind === 'service'
    ? `service:${principal.service}`
    : `${principal.kind}:${principal.subject}`;
}

function declaredVariables(
  operation: OperationDefinitionNode,
  variables: Readonly<Record<string, unknown>> | undefined,
): Record<string, unknown> | undefined {
  if (!variables) return undefined;
  const declared: Record<string, unknown> = {};
  for (const { variable } of operation.variableDefinitions ?? []) {
    const name = variable.name.value;
    if (Object.hasOwn(variables, name)) declared[name] = variables[name];
  }
  return declared;
}

/** The longest a timer waits (about 24.8 days); a token good for longer is watched in steps. */
const LONGEST_TIMER_MS = 2 ** 31 - 1;

/**
 * Closes a connection with 4403 once the token it was opened with expires: its subscriptions would
 * otherwise stream on for as long as it stays open. graphql-ws clients connect again on 4403, with the
 * credentials they hold then.
 */
function closeWhenExpired(socket: WebSocket, expiresAt: number): void {
  let timer: NodeJS.Timeout;
  const watch = () => {
    const left = expiresAt - Date.now();
    if (left <= 0) return socket.close(4403, 'The token expired');
    timer = setTimeout(watch, Math.min(left, LONGEST_TIMER_MS)).unref();
  };
  socket.once('close', () => clearTimeout(timer));
  watch();
}
