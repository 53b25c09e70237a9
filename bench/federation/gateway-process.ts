/**
 * One gateway of the federation benchmark, in a process of its own (so its RSS and CPU are its own):
 * `node --import tsx bench/federation/gateway-process.ts <coordinator|apollo|hive|hive-router-runtime|coordinator-apollo-executor|coordinator-apollo-fetcher|coordinator-node-fetch> <subgraphs base>`.
 * Prints one JSON line `{"url": ..., "pid": ...}` once it listens on a free port; as a node:cluster
 * worker of bench/federation/workers-process.mjs, it sends `{url}` to its primary instead.
 */
import cluster from 'node:cluster';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { createGatewayContext, type GatewayContext } from '../../gateway/federation/context.js';
import { RemoteDataSource } from '../../gateway/federation/data-sources.js';
import { FederatedExecutor } from '../../gateway/federation/executor.js';
import { createHttpServer } from '../../gateway/http/server.js';
import { createCallSigner } from '@commerce-coordinator/plugin-sdk/call-assertion';
import { silentLogger } from '../../gateway/log.js';
import { principalFlagContext } from '../../gateway/plugins/runtime.js';
import { scenario } from './scenario.js';

process.env.APOLLO_TELEMETRY_DISABLED ??= '1';
const [kind, base] = process.argv.slice(2);
if (!base) throw new Error('usage: gateway-process.ts <coordinator|apollo|hive> <subgraphs base url>');
const supergraphSdl = scenario.supergraph(base);

function listening(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    ),
  );
}

/** Node's global fetch: the Coordinator's subgraph fetcher before the undici `request` lever. */
const nodeFetch: RemoteGraphQLDataSource['fetcher'] = (url, init) =>
  fetch(url, init as RequestInit) as unknown as ReturnType<RemoteGraphQLDataSource['fetcher']>;

/**
 * This Coordinator's gateway as gateway/coordinator.ts builds it, every subgraph remote. With
 * `fetcher`, its subgraph fetches go through @apollo/gateway's default fetcher (make-fetch-happen) or
 * Node's fetch, as before the fetch levers; with `execution: 'apollo'`, its plans run on
 * @apollo/gateway's executeQueryPlan, as before the compiled executor: to measure a lever in the same run.
 */
async function coordinator(
  fetcher?: 'apollo' | 'node',
  execution: 'compiled' | 'apollo' = 'compiled',
): Promise<string> {
  // Every call is signed, as the Coordinator signs its remote subgraphs' calls; the bench's subgraphs
  // do not check the assertion.
  const signer = createCallSigner('federation-bench-subgraph-signing-secret');
  const dataSources = Object.fromEntries(
    ['accounts', 'inventory', 'products', 'reviews'].map((name) => {
      const url = `${base}/${name}`;
      const transport =
        fetcher === 'apollo'
          ? new RemoteGraphQLDataSource({ url }).fetcher
          : fetcher === 'node'
            ? nodeFetch
            : undefined;
      return [name, new RemoteDataSource({ url, name, signer, fetcher: transport })];
    }),
  );
  const executor = new FederatedExecutor({
    supergraphSdl,
    dataSources,
    execution,
    // The scenario has no progressive overrides: no flag is ever evaluated.
    flags: { evaluate: async (flag, _context, fallback) => ({ flag, value: fallback, reason: 'bench' }) },
  });
  const apollo = new ApolloServer<GatewayContext>({ gateway: executor, stopOnTerminationSignals: false });
  await apollo.start();
  const server = createHttpServer({
    apollo,
    context: async () => createGatewayContext({ flagContext: principalFlagContext(undefined) }),
    routes: new Map(),
    draining: () => false,
    logger: silentLogger,
  });
  return `${await listening(server)}/graphql`;
}

/** A plain @apollo/gateway in Apollo Server 5, default settings. */
async function apollo(): Promise<string> {
  const server = new ApolloServer({ gateway: new ApolloGateway({ supergraphSdl }) });
  const { url } = await startStandaloneServer(server, { listen: { port: 0, host: '127.0.0.1' } });
  return url.replace('localhost', '127.0.0.1');
}

/**
 * Hive Gateway's runtime on node:http: with its defaults (the JS stitching planner and executor), or
 * with `@graphql-hive/router-runtime` (Hive Router's Rust query planner, a native addon, and the
 * executor built for it), as `hive-gateway supergraph --hive-router-runtime` runs it.
 */
async function hive(runtime: 'js' | 'router-runtime'): Promise<string> {
  const { createGatewayRuntime } = await import('@graphql-hive/gateway');
  const gateway = createGatewayRuntime({
    supergraph: supergraphSdl,
    ...(runtime === 'router-runtime'
      ? { unifiedGraphHandler: (await import('@graphql-hive/router-runtime')).unifiedGraphHandler }
      : {}),
  });
  const server = createServer(gateway);
  return `${await listening(server)}/graphql`;
}

const start = {
  coordinator: () => coordinator(),
  'coordinator-apollo-executor': () => coordinator(undefined, 'apollo'),
  'coordinator-apollo-fetcher': () => coordinator('apollo'),
  'coordinator-node-fetch': () => coordinator('node'),
  apollo,
  hive: () => hive('js'),
  'hive-router-runtime': () => hive('router-runtime'),
}[
  kind as
    | 'coordinator'
    | 'coordinator-apollo-executor'
    | 'coordinator-apollo-fetcher'
    | 'coordinator-node-fetch'
    | 'apollo'
    | 'hive'
    | 'hive-router-runtime'
];
if (!start) throw new Error(`unknown gateway '${kind}'`);
const url = await start();
if (cluster.isWorker) {
  // Exits with the primary (node:cluster ends a worker whose primary's channel closes).
  process.send!({ url });
} else {
  process.stdout.write(`${JSON.stringify({ url, pid: process.pid })}\n`);
  process.on('SIGTERM', () => process.exit(0));
}
