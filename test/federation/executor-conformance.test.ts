/**
 * The Coordinator's gateway (FederatedExecutor inside Apollo Server, as the Coordinator serves it) must
 * answer every operation exactly as plain @apollo/gateway does: same data, same errors (message and
 * path). Both run against the same subgraphs over real HTTP; the cases cover the federation
 * directives and the failure modes a query plan executor has to reproduce.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { graphql } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCallSigner } from '@commerce-coordinator/plugin-sdk/call-assertion';
import { composeSupergraph } from '../../gateway/federation/compose.js';
import { createGatewayContext, type GatewayContext } from '../../gateway/federation/context.js';
import { RemoteDataSource } from '../../gateway/federation/data-sources.js';
import { FederatedExecutor } from '../../gateway/federation/executor.js';
import { createHttpServer } from '../../gateway/http/server.js';
import { silentLogger } from '../../gateway/log.js';
import { principalFlagContext } from '../../gateway/plugins/runtime.js';
import { ShopState, shopSubgraphs } from '../fixtures/federation-conformance/subgraphs.js';

interface Case {
  name: string;
  query: string;
  variables?: Record<string, unknown>;
  /** The reference answers with errors (else: data and no errors). */
  errors?: boolean;
  /** A non-null error bubbles up to the root: the reference answers `data: null`. */
  nullData?: boolean;
  /**
   * The error comes from the transport, not a subgraph: each gateway's HTTP client words it its own
   * way (@apollo/gateway's names the URL), so only the cause, ECONNREFUSED, and the path are compared.
   */
  transportError?: boolean;
  /** Changes the shop: its state is reset before each gateway runs it. */
  mutation?: boolean;
}

const REVIEW_FIELDS = /* GraphQL */ `
  fragment ReviewFields on Review {
    id
    body
    rating
    author {
      name
    }
  }
`;

const SKIP_AND_INCLUDE = `query ($withReviews: Boolean!, $skipStock: Boolean!) {
  topProducts(first: 2) {
    upc
    reviews @include(if: $withReviews) { id }
    inStock @skip(if: $skipStock)
    ... on Product @include(if: $withReviews) { shippingEstimate }
  }
}`;

const CASES: Case[] = [
  { name: 'a root field of one subgraph', query: '{ users { id name email address { city country } } }' },
  {
    name: '__typename at the root and on entities',
    query: '{ __typename me { __typename id } topProducts(first: 2) { __typename upc } }',
  },
  {
    name: 'a single @key: products to reviews',
    query: '{ topProducts { upc name reviews { id body rating } } }',
  },
  {
    name: 'an entity chain across four subgraphs (products → reviews → accounts → newsletter by email)',
    query: '{ topProducts { name reviews { body author { id name email subscribed } } } }',
  },
  {
    name: 'multiple keys: by id from reviews, by email to newsletter',
    query: '{ latestReviews { id author { subscribed address { city } } } }',
  },
  {
    name: 'a compound key with a nested field (sku brand { id })',
    query: '{ topProducts { upc sku brand { id name } location } }',
  },
  {
    name: 'an entity its subgraph does not know comes back null (the lamp in the warehouse)',
    query: '{ product(upc: "4") { name location } }',
  },
  { name: '@requires with scalar fields', query: '{ topProducts { upc shippingEstimate } }' },
  { name: '@requires with nested fields', query: '{ topProducts { upc delivery } }' },
  {
    name: '@requires alongside the required fields themselves',
    query: '{ topProducts { upc price weight dimensions { unit } shippingEstimate delivery } }',
  },
  {
    name: '@provides: the author name from the reviews subgraph',
    query: '{ latestReviews { id author { name } } }',
  },
  {
    name: '@provides, and a field it does not provide',
    query: '{ latestReviews { id author { name email } } }',
  },
  {
    name: 'an unknown author (entity null) in an entity chain',
    query: '{ product(upc: "1") { reviews { id author { id email address { city } } } } }',
  },
  {
    name: '@shareable field resolved where the plan is cheapest',
    query: '{ topReviewed: product(upc: "2") { name topReview { product { name inStock } } } }',
  },
  {
    name: 'an entity interface across subgraphs with @interfaceObject fields',
    query: '{ media { __typename id title reviewCount ... on Book { pages } ... on Movie { minutes } } }',
  },
  {
    name: '@interfaceObject as the entry point: the concrete type comes from the catalog',
    query: '{ mostReviewed { __typename id reviewCount title ... on Book { pages } } }',
  },
  {
    name: 'a list of @interfaceObject entities with fragments on each type',
    query: '{ reviewedMedia { id reviewCount ...on Movie { title minutes } ...on Book { title } } }',
  },
  {
    name: 'a union whose members take fields from another subgraph',
    query:
      '{ search(term: "e") { __typename ... on Book { title pages reviewCount } ... on Movie { title } } }',
  },
  { name: 'a union with __typename only', query: '{ search(term: "a") { __typename } }' },
  {
    name: 'lists of lists of entities, with null and empty inner lists',
    query: '{ productMatrix { upc name inStock reviews { id } location } }',
  },
  {
    name: 'aliases on root fields, entity fields and the same field twice',
    query:
      '{ first: product(upc: "1") { title: name stock: inStock again: inStock reviews { text: body } } second: product(upc: "2") { title: name } }',
  },
  {
    name: 'named fragments, nested, on entities from several subgraphs',
    query: `{ topProducts(first: 3) { ...Product } }
      fragment Product on Product { upc ...Stock reviews { ...ReviewFields } }
      fragment Stock on Product { inStock shippingEstimate }
      ${REVIEW_FIELDS}`,
  },
  {
    name: '@skip and @include with variables, in both states',
    query: SKIP_AND_INCLUDE,
    variables: { withReviews: true, skipStock: true },
  },
  {
    name: '@skip and @include with variables, the other way round',
    query: SKIP_AND_INCLUDE,
    variables: { withReviews: false, skipStock: false },
  },
  {
    name: 'variables in arguments with a default value',
    query: 'query ($n: Int) { topProducts(first: $n) { upc } }',
    variables: { n: 3 },
  },
  {
    name: 'a subgraph error on a nullable field in an entity fetch',
    query: '{ topProducts { upc stockNote } }',
    errors: true,
  },
  {
    name: 'a subgraph error on a non-null field in an entity fetch: null bubbles to the product',
    query: '{ topProducts { upc name stockCount } }',
    errors: true,
  },
  {
    name: 'null bubbling through a non-null list item (the matrix rows are [Product!])',
    query: '{ productMatrix { upc stockCount } }',
    errors: true,
  },
  {
    name: 'a non-null field error deep in an entity chain',
    query: '{ latestReviews { id product { name stockCount } } }',
    errors: true,
    nullData: true,
  },
  {
    name: 'a subgraph that is down: the error path, the rest of the data',
    query: '{ topProducts(first: 2) { upc name discount } }',
    errors: true,
    transportError: true,
  },
  {
    name: 'mutations run in sequence across subgraphs',
    query: `mutation {
      a: createUser(name: "dee") { id name subscribed }
      r: addReview(upc: "2", body: "Fine") { id body product { name inStock } author { name } }
      b: createUser(name: "eve") { id reviews { id } }
    }`,
    mutation: true,
  },
  { name: 'a single mutation', query: 'mutation { createUser(name: "fay") { id name } }', mutation: true },
];

type Response = { data?: unknown; errors?: Array<{ message: string; path?: unknown[] }> };

/** What the comparison looks at: data, and each error's message and path. */
function comparable(body: Response, transportError = false) {
  const wording = (message: string) =>
    transportError && message.includes('ECONNREFUSED') ? 'ECONNREFUSED' : message;
  return {
    data: body.data,
    errors: body.errors?.map(({ message, path }) => ({
      message: wording(message),
      ...(path ? { path } : {}),
    })),
  };
}

function listening(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    ),
  );
}

function close(server: Server | undefined): Promise<void> {
  return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
}

async function post(url: string, query: string, variables?: Record<string, unknown>): Promise<Response> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'apollo-require-preflight': 'true' },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as Response;
}

describe('the Coordinator gateway answers as @apollo/gateway does', () => {
  const state = new ShopState();
  const subgraphs = shopSubgraphs(state);
  let subgraphServer: Server;
  let coordinatorServer: Server;
  let reference: ApolloServer;
  let coordinatorApollo: ApolloServer<GatewayContext>;
  const urls = { reference: '', coordinator: '' };

  beforeAll(async () => {
    subgraphServer = createServer(async (req, res) => {
      let raw = '';
      for await (const chunk of req) raw += chunk;
      const served = subgraphs[req.url!.slice(1)]?.schema;
      if (!served) return res.writeHead(404).end();
      const { query, variables, operationName } = JSON.parse(raw) as {
        query: string;
        variables?: Record<string, unknown>;
        operationName?: string;
      };
      const result = await graphql({
        schema: served,
        source: query,
        variableValues: variables,
        operationName,
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result));
    });
    const base = await listening(subgraphServer);
    // A port nothing listens on: the pricing subgraph is down.
    const probe = createServer();
    const down = await listening(probe);
    await close(probe);
    const urlOf = (name: string) => (subgraphs[name]!.schema ? `${base}/${name}` : `${down}/${name}`);
    const { supergraphSdl } = composeSupergraph(
      Object.entries(subgraphs).map(([name, { typeDefs }]) => ({ name, url: urlOf(name), typeDefs })),
    );

    reference = new ApolloServer({ gateway: new ApolloGateway({ supergraphSdl }) });
    urls.reference = (await startStandaloneServer(reference, { listen: { port: 0, host: '127.0.0.1' } })).url;

    const signer = createCallSigner('executor-conformance-subgraph-signing-secret');
    const executor = new FederatedExecutor({
      supergraphSdl,
      dataSources: Object.fromEntries(
        Object.keys(subgraphs).map((name) => [
          name,
          new RemoteDataSource({ url: urlOf(name), name, signer }),
        ]),
      ),
      flags: { evaluate: async (flag, _context, fallback) => ({ flag, value: fallback, reason: 'test' }) },
    });
    coordinatorApollo = new ApolloServer<GatewayContext>({
      gateway: executor,
      stopOnTerminationSignals: false,
    });
    await coordinatorApollo.start();
    coordinatorServer = createHttpServer({
      apollo: coordinatorApollo,
      context: async () => createGatewayContext({ flagContext: principalFlagContext(undefined) }),
      routes: new Map(),
      draining: () => false,
      logger: silentLogger,
    });
    urls.coordinator = `${await listening(coordinatorServer)}/graphql`;
  });

  afterAll(async () => {
    await reference?.stop();
    await close(coordinatorServer);
    await coordinatorApollo?.stop();
    await close(subgraphServer);
  });

  it.each(CASES)('$name', async ({ query, variables, errors, nullData, transportError, mutation }) => {
    if (mutation) state.reset();
    const expected = comparable(await post(urls.reference, query, variables), transportError);
    if (mutation) state.reset();
    const actual = comparable(await post(urls.coordinator, query, variables), transportError);

    // The reference itself answered as the case means (else the comparison would prove nothing).
    if (nullData) expect(expected.data).toBeNull();
    else expect(expected.data).toBeTruthy();
    if (errors) expect(expected.errors?.length).toBeGreaterThan(0);
    else expect(expected.errors).toBeUndefined();

    expect(actual).toEqual(expected);
  });
});
