import type { IncomingMessage, Server } from 'node:http';
import type { ApolloServer } from '@apollo/server';
import {
  GraphQLError,
  getOperationAST,
  parse,
  print,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type GraphQLSchema,
} from 'graphql';
import { WebSocketServer } from 'ws';
import type { ClientErrors } from '../federation/client-errors.js';
import type { GatewayContext } from '../federation/context.js';
import { noOperationMessage } from '../federation/executor.js';
import type { OperationLimitsChecker } from '../federation/operation-limits.js';
import { ErrorCode, withErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
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
  apollo: ApolloServer<GatewayContext>;
  context(): Promise<GatewayContext>;
  /** The operation limits, applied to every operation before it runs. */
  operationLimits?: OperationLimitsChecker;
  /** What clients see of errors (masked in production). */
  clientErrors: ClientErrors;
  /**
   * Decides whether a connection may subscribe, from its `connection_init` payload (where clients put
   * `authorization`) and its upgrade request (its cookies and origin). Refused connections are closed
   * with 4403.
   */
  authorize?(
    connectionParams: Readonly<Record<string, unknown>> | undefined,
    request: IncomingMessage,
  ): Promise<boolean>;
  logger: Logger;
  /** Caps and timeouts of the connections (resolved by `resolveSubscriptionLimits`). */
  limits: SubscriptionLimits;
}): { close(): Promise<void> } {
  const { limits } = options;
  const wss = new WebSocketServer({ noServer: true, path: options.path, maxPayload: limits.maxMessageBytes });
  const detach = acceptWithinCap(options.server, wss, limits.maxConnections);
  // The name of each subscribe request's operation, for the log lines of its errors.
  const operationNames = new WeakMap<object, string | undefined>();
  const disposable = useServerWithLimits(
    {
      schema: options.schema,
      onConnect: async (ctx) =>
        options.authorize ? options.authorize(ctx.connectionParams, ctx.extra.request) : true,
      // Parsed, validated and measured here, so a refused operation is an error message for it alone:
      // graphql-ws itself closes the whole socket (4500, ending the client's other subscriptions) when
      // a query does not parse.
      onSubscribe: (_ctx, _id, payload) => {
        const tokens = options.operationLimits?.checkTokens(payload.query);
        if (tokens) return [tokens];
        let document: DocumentNode;
        try {
          document = parse(payload.query);
        } catch (error) {
          if (error instanceof GraphQLError) return [withErrorCode(error, ErrorCode.GRAPHQL_PARSE_FAILED)];
          throw error;
        }
        const invalid = validate(options.schema, document).map((e) =>
          withErrorCode(e, ErrorCode.GRAPHQL_VALIDATION_FAILED),
        );
        if (invalid.length) return options.clientErrors.validationErrors(invalid);
        const operation = getOperationAST(document, payload.operationName);
        if (!operation)
          return [
            new GraphQLError(noOperationMessage(document, payload.operationName), {
              extensions: { code: ErrorCode.BAD_REQUEST },
            }),
          ];
        operationNames.set(payload, operation.name?.value);
        const variables = payload.variables ?? undefined;
        const refusal = options.operationLimits?.checkOperation(
          options.schema,
          document,
          operation,
          variables,
        );
        if (refusal) return [refusal];
        return {
          schema: options.schema,
          document,
          operationName: payload.operationName,
          variableValues: variables,
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
          { contextValue: await options.context() },
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
  );
  return {
    close: async () => {
      detach();
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
