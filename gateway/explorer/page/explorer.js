// The bundled explorer: GraphiQL against this Coordinator's own /graphql, for when Apollo Sandbox
// cannot load from its CDN. Bundled by scripts/bundle-explorer.ts; nothing here reaches another origin.
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import 'graphiql/style.css';
import { createClient } from 'graphql-ws';
import { createElement } from 'react';
import { createRoot } from 'react-dom/client';

const httpUrl = new URL('../graphql', window.location.href).href;
const wsUrl = httpUrl.replace(/^http/, 'ws');

/**
 * Queries and mutations over HTTP with the headers the developer set; subscriptions over graphql-ws,
 * each on a connection of its own so it carries the Authorization header of the tab that started it
 * (the gateway reads it from connectionParams).
 */
const http = createGraphiQLFetcher({ url: httpUrl });
function fetcher(params, options) {
  const isSubscription = options?.documentAST?.definitions.some(
    (definition) =>
      definition.kind === 'OperationDefinition' &&
      definition.operation === 'subscription' &&
      (!params.operationName || definition.name?.value === params.operationName),
  );
  if (!isSubscription) return http(params, options);
  const authorization = Object.entries(options?.headers ?? {}).find(
    ([name]) => name.toLowerCase() === 'authorization',
  )?.[1];
  const client = createClient({
    url: wsUrl,
    lazy: true,
    retryAttempts: 0,
    connectionParams: authorization ? { authorization } : {},
  });
  return {
    subscribe(sink) {
      const dispose = client.subscribe(params, {
        next: (value) => sink.next(value),
        error: (error) => sink.error(error),
        complete: () => sink.complete(),
      });
      return {
        unsubscribe() {
          dispose();
          void client.dispose();
        },
      };
    },
  };
}

const defaultQuery = `# The Commerce Coordinator's supergraph, explored offline (Apollo Sandbox could not load).
# Set an Authorization header below (npm run -s token -- staff staff prints a development token).
query Flows {
  flows(limit: 5) {
    id
    name
    status
  }
}
`;

createRoot(document.getElementById('explorer')).render(
  createElement(GraphiQL, {
    fetcher,
    defaultQuery,
    defaultHeaders: JSON.stringify({ Authorization: 'Bearer ' }, null, 2),
    shouldPersistHeaders: true,
  }),
);
