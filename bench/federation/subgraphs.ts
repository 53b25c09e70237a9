import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { execute, parse, validate, type DocumentNode, type GraphQLSchema } from 'graphql';
import { scenario } from './scenario.js';

/**
 * The scenario's four subgraphs, re-implemented in TypeScript as its README describes them (the
 * published ones are Rust). Each answers POST /<name> with graphql-js over @apollo/subgraph.
 */
const { users, products, inventory, reviews } = scenario.data;
const userById = new Map(users.map((u) => [u.id, u]));
const productByUpc = new Map(products.map((p) => [p.upc, p]));
const stockByUpc = new Map(inventory.map((i) => [i.upc, i.inStock]));
const firstTwoReviews = reviews.slice(0, 2);
type Review = (typeof reviews)[number];

const federation = `extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@external", "@requires", "@provides", "@shareable"])`;

const accounts = buildSubgraphSchema({
  typeDefs: parse(`${federation}
    type Query { me: User user(id: ID!): User users: [User] }
    type User @key(fields: "id") { id: ID! name: String username: String birthday: Int }`),
  resolvers: {
    Query: {
      me: () => users[0],
      user: (_: unknown, { id }: { id: string }) => userById.get(id),
      users: () => users,
    },
    User: { __resolveReference: (ref: { id: string }) => userById.get(ref.id) },
  },
});

const inventorySchema = buildSubgraphSchema({
  typeDefs: parse(`${federation}
    type Product @key(fields: "upc") {
      upc: String! weight: Int @external price: Int @external inStock: Boolean
      shippingEstimate: Int @requires(fields: "price weight")
    }`),
  resolvers: {
    Product: {
      __resolveReference: (ref: { upc: string; price?: number; weight?: number }) => ({
        ...ref,
        inStock: stockByUpc.get(ref.upc),
      }),
      shippingEstimate: (p: { price?: number | null; weight?: number | null }) => {
        if (p.price == null || p.weight == null) return null;
        return p.price > 1000 ? 0 : Math.trunc(p.weight / 2);
      },
    },
  },
});

const productsSchema = buildSubgraphSchema({
  typeDefs: parse(`${federation}
    type Query { topProducts(first: Int = 5): [Product] }
    type Product @key(fields: "upc") { upc: String! name: String price: Int weight: Int }`),
  resolvers: {
    Query: { topProducts: (_: unknown, { first }: { first: number }) => products.slice(0, first) },
    Product: { __resolveReference: (ref: { upc: string }) => productByUpc.get(ref.upc) },
  },
});

const reviewsSchema = buildSubgraphSchema({
  typeDefs: parse(`${federation}
    type Review @key(fields: "id") {
      id: ID! body: String product: Product author: User @provides(fields: "username")
    }
    type User @key(fields: "id") { id: ID! username: String @external reviews: [Review] }
    type Product @key(fields: "upc") { upc: String! reviews: [Review] }`),
  resolvers: {
    Review: {
      __resolveReference: (ref: { id: string }) => reviews.find((r) => r.id === ref.id),
      product: (r: Review) => ({ upc: r.productUpc }),
      author: () => ({ id: '1', username: 'urigo' }),
    },
    User: {
      __resolveReference: (ref: { id: string }) => ({ id: ref.id, username: 'user' }),
      reviews: () => firstTwoReviews,
    },
    Product: {
      __resolveReference: (ref: { upc: string }) => ({ upc: ref.upc }),
      reviews: (p: { upc: string }) => reviews.filter((r) => r.productUpc === p.upc),
    },
  },
});

export const subgraphSchemas: Record<string, GraphQLSchema> = {
  accounts,
  inventory: inventorySchema,
  products: productsSchema,
  reviews: reviewsSchema,
};

export interface SubgraphServer {
  /** e.g. http://127.0.0.1:4200: the subgraphs answer at <base>/<name>. */
  base: string;
  server: Server;
  close(): Promise<void>;
}

/**
 * Serves the four subgraphs on one port. `memoize` (default on) answers a request body seen before
 * with the bytes computed the first time — the subgraphs are deterministic, and the benchmark measures
 * the gateways, so the subgraphs must not be its bottleneck (the published ones are Rust).
 */
export async function startSubgraphs(
  options: { port?: number; memoize?: boolean } = {},
): Promise<SubgraphServer> {
  const memoize = options.memoize ?? true;
  const documents = new Map<string, DocumentNode>();
  const answers = new Map<string, string>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const name = (req.url ?? '/').slice(1).split('?')[0]!;
      const schema = subgraphSchemas[name];
      if (!schema || req.method !== 'POST') {
        res.writeHead(404).end();
        return;
      }
      const raw = Buffer.concat(chunks).toString('utf8');
      const key = `${name}\n${raw}`;
      let answer = memoize ? answers.get(key) : undefined;
      if (answer === undefined) {
        const body = JSON.parse(raw) as {
          query: string;
          variables?: Record<string, unknown>;
          operationName?: string;
        };
        let document = documents.get(body.query);
        if (!document) {
          document = parse(body.query);
          const errors = validate(schema, document);
          if (errors.length) {
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ errors }));
            return;
          }
          documents.set(body.query, document);
        }
        const result = await execute({
          schema,
          document,
          variableValues: body.variables,
          operationName: body.operationName,
        });
        answer = JSON.stringify(result);
        if (memoize && !result.errors) answers.set(key, answer);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(answer);
    });
  });
  // Node closes a keep-alive connection after 5 s idle by default: a gateway idle that long between
  // its rounds (while another is measured) could send its next fetch on a socket being closed and get
  // "socket hang up" (@apollo/gateway did, in the smoke test). Servers behind gateways keep them longer.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
