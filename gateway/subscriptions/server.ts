import type { Server } from 'node:http';
import type { ApolloServer } from '@apollo/server';
import { GraphQLError, parse, print, type ExecutionArgs, type GraphQLSchema } from 'graphql';
import { WebSocketServer } from 'ws';
import type { GatewayContext } from '../federation/context.js';
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
  /**
   * Decides whether a connection may subscribe, from its `connection_init` payload (where clients put
   * `authorization`). Refused connections are closed with 4403.
   */
  authorize?(connectionParams: Readonly<Record<string, unknown>> | undefined): Promise<boolean>;
  logger: Logger;
  /** Caps and timeouts of the connections (resolved by `resolveSubscriptionLimits`). */
  limits: SubscriptionLimits;
}): { close(): Promise<void> } {
  const { limits } = options;
  const wss = new WebSocketServer({ noServer: true, path: options.path, maxPayload: limits.maxMessageBytes });
  const detach = acceptWithinCap(options.server, wss, limits.maxConnections);
  const disposable = useServerWithLimits(
    {
      schema: options.schema,
      onConnect: async (ctx) => (options.authorize ? options.authorize(ctx.connectionParams) : true),
      // graphql-ws answers an invalid query with an error message, but closes the whole socket (4500,
      // ending the client's other subscriptions) when the query does not parse: answer that alike.
      onSubscribe: (_ctx, _id, payload) => {
        try {
          parse(payload.query);
        } catch (error) {
          if (error instanceof GraphQLError) return [error];
          throw error;
        }
        return undefined;
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
      onError: (_ctx, _id, _payload, errors) => {
        options.logger.debug({ errors }, 'subscription operation failed');
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
