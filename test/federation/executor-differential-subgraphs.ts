import { buildSubgraphSchema } from '@apollo/subgraph';
import { GraphQLError, parse } from 'graphql';
import type { DifferentialSubgraphs } from '../support/differential.js';

// Hand-written subgraphs for the executor's differential test: entities across subgraphs (@key),
// @requires, @provides, an interface and a union, @interfaceObject, lists of lists, nulls, errors
// in root and entity fetches.

const link = (imports: string[]) =>
  `extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: [${imports.map((i) => `"${i}"`).join(', ')}])`;

const users = [
  { id: 'u1', name: 'Ada', username: 'ada', strict: 'yes' },
  { id: 'u2', name: 'Grace', username: 'grace', strict: 'yes' },
  { id: 'u3', name: null, username: 'nobody', strict: 'yes' },
];
const books = [
  { id: 'b1', title: 'Dune', pages: 412 },
  { id: 'b2', title: null, pages: null },
];
const products = [
  { upc: '1', name: 'Table', price: 899, weight: 100 },
  { upc: '2', name: 'Couch', price: 1299, weight: 1000 },
  { upc: '3', name: 'Chair', price: 54, weight: 50 },
  { upc: '4', name: null, price: null, weight: null },
];
const reviews = [
  { id: 'r1', body: 'Love it', authorId: 'u1', upc: '1' },
  { id: 'r2', body: 'Too expensive', authorId: 'u2', upc: '2' },
  { id: 'r3', body: 'Could be better', authorId: 'u1', upc: '3' },
  { id: 'r4', body: 'Ghost', authorId: 'missing', upc: 'missing' },
];
const media = [
  { __typename: 'Movie', id: 'm1', title: 'Alien', duration: 117 },
  { __typename: 'Song', id: 's1', title: 'Heroes', artist: 'Bowie' },
];

const byId = <T extends { id: string }>(list: T[], id: string) => list.find((x) => x.id === id) ?? null;
const byUpc = (upc: string) => products.find((p) => p.upc === upc) ?? null;

const accountsSdl = parse(`${link(['@key', '@shareable'])}
  type Query { me: User, users: [User!]!, user(id: ID!): User, node(id: ID!): Node, search(q: String): [SearchResult] }
  interface Node { id: ID! }
  type User implements Node @key(fields: "id") { id: ID!, name: String, username: String @shareable, strict: String! }
  type Book implements Node @key(fields: "id") { id: ID!, title: String }
  union SearchResult = User | Book`);
const accounts = buildSubgraphSchema({
  typeDefs: accountsSdl,
  resolvers: {
    Query: {
      me: () => users[0],
      users: () => users,
      user: (_: unknown, { id }: { id: string }) => byId(users, id),
      node: (_: unknown, { id }: { id: string }) => byId(users, id) ?? byId(books, id),
      search: () => [users[1], books[0], null, books[1]],
    },
    Node: { __resolveType: (o: { id: string }) => (o.id.startsWith('u') ? 'User' : 'Book') },
    SearchResult: { __resolveType: (o: { id: string }) => (o.id.startsWith('u') ? 'User' : 'Book') },
    User: { __resolveReference: (ref: { id: string }) => byId(users, ref.id) },
    Book: { __resolveReference: (ref: { id: string }) => byId(books, ref.id) },
  } as never,
});

const productsSdl = parse(`${link(['@key'])}
  type Query { topProducts(first: Int = 5): [Product], productMatrix: [[Product]] }
  type Product @key(fields: "upc") { upc: String!, name: String, price: Int, weight: Int, failing: String }
  type Book @key(fields: "id") { id: ID!, pages: Int }`);
const productsSchema = buildSubgraphSchema({
  typeDefs: productsSdl,
  resolvers: {
    Query: {
      topProducts: (_: unknown, { first }: { first: number }) => products.slice(0, first),
      productMatrix: () => [[products[0], null], null, [products[2], products[3]], []],
    },
    Product: {
      __resolveReference: (ref: { upc: string }) => byUpc(ref.upc),
      failing: (p: { upc: string }) => {
        if (p.upc === '2') throw new GraphQLError('No failing for 2', { extensions: { code: 'NOPE' } });
        if (p.upc === '3') throw new Error('Unexpected');
        return `ok ${p.upc}`;
      },
    },
    Book: { __resolveReference: (ref: { id: string }) => byId(books, ref.id) },
  } as never,
});

const inventorySdl = parse(`${link(['@key', '@external', '@requires'])}
  type Product @key(fields: "upc") {
    upc: String!, price: Int @external, weight: Int @external,
    inStock: Boolean, shippingEstimate: Int @requires(fields: "price weight"),
    warehouse: String, mustExist: String!, stock: [[Int]]
  }`);
const inventorySchema = buildSubgraphSchema({
  typeDefs: inventorySdl,
  resolvers: {
    Product: {
      __resolveReference: (ref: { upc: string; price?: number; weight?: number }) => ref,
      inStock: (p: { upc: string }) => p.upc !== '2',
      shippingEstimate: (p: { price: number | null; weight: number | null }) =>
        p.price === null ? null : p.price > 1000 ? 0 : Math.round((p.weight ?? 0) * 0.5),
      warehouse: (p: { upc: string }) => {
        if (p.upc === '2')
          throw new GraphQLError('Warehouse unreachable', { extensions: { code: 'WAREHOUSE_DOWN' } });
        return `W${p.upc}`;
      },
      mustExist: (p: { upc: string }) => (p.upc === '3' ? null : `yes ${p.upc}`),
      stock: (p: { upc: string }) => (p.upc === '1' ? [[1, 2], [null], []] : p.upc === '2' ? null : [[3]]),
    },
  } as never,
});

const reviewsSdl = parse(`${link(['@key', '@external', '@provides'])}
  type Query { reviews: [Review] }
  type Review { id: ID!, body: String, author: User @provides(fields: "username"), product: Product }
  type User @key(fields: "id") { id: ID!, username: String @external, reviews: [Review] }
  type Product @key(fields: "upc") { upc: String!, reviews: [Review] }`);
const reviewsSchema = buildSubgraphSchema({
  typeDefs: reviewsSdl,
  resolvers: {
    Query: { reviews: () => reviews },
    Review: {
      author: (r: { authorId: string }) =>
        r.authorId === 'missing'
          ? { id: 'missing', username: 'ghost' }
          : { id: r.authorId, username: byId(users, r.authorId)?.username },
      product: (r: { upc: string }) => ({ upc: r.upc }),
    },
    User: {
      __resolveReference: (ref: { id: string }) => ref,
      reviews: (u: { id: string }) => reviews.filter((r) => r.authorId === u.id),
    },
    Product: {
      __resolveReference: (ref: { upc: string }) => ref,
      reviews: (p: { upc: string }) => reviews.filter((r) => r.upc === p.upc),
    },
  } as never,
});

const mediaSdl = parse(`${link(['@key'])}
  type Query { media: [Media] }
  interface Media @key(fields: "id") { id: ID!, title: String }
  type Movie implements Media @key(fields: "id") { id: ID!, title: String, duration: Int }
  type Song implements Media @key(fields: "id") { id: ID!, title: String, artist: String }`);
const mediaSchema = buildSubgraphSchema({
  typeDefs: mediaSdl,
  resolvers: {
    Query: { media: () => media },
    Media: {
      __resolveReference: (ref: { id: string }) => byId(media, ref.id),
      __resolveType: (m: { __typename: string }) => m.__typename,
    },
    Movie: { __resolveReference: (ref: { id: string }) => byId(media, ref.id) },
    Song: { __resolveReference: (ref: { id: string }) => byId(media, ref.id) },
  } as never,
});

const ratingsSdl = parse(`${link(['@key', '@interfaceObject'])}
  type Query { topRated: [Media] }
  type Media @key(fields: "id") @interfaceObject { id: ID!, rating: Int }`);
const ratingsSchema = buildSubgraphSchema({
  typeDefs: ratingsSdl,
  resolvers: {
    Query: { topRated: () => [{ id: 's1' }, { id: 'm1' }] },
    Media: {
      __resolveReference: (ref: { id: string }) => ref,
      rating: (m: { id: string }) => (m.id === 'm1' ? 5 : 3),
    },
  } as never,
});

export const differentialSubgraphs: DifferentialSubgraphs = {
  accounts: { typeDefs: accountsSdl, schema: accounts },
  products: { typeDefs: productsSdl, schema: productsSchema },
  inventory: { typeDefs: inventorySdl, schema: inventorySchema },
  reviews: { typeDefs: reviewsSdl, schema: reviewsSchema },
  media: { typeDefs: mediaSdl, schema: mediaSchema },
  ratings: { typeDefs: ratingsSdl, schema: ratingsSchema },
};

/** Queries (and variables) that the compiled executor runs itself. */
export const compiledCases: Array<[string, string, Record<string, unknown>?]> = [
  [
    'entities across subgraphs with @requires',
    `{ users { id name username reviews { body product { name price shippingEstimate inStock } } } }`,
  ],
  [
    'aliases and __typename, root __typename',
    `{ a: users { uid: id __typename n: name } t: topProducts(first: 2) { __typename upc } __typename }`,
  ],
  [
    'a union and an interface with fragments',
    `{ search(q: "") { __typename ... on User { name username } ... on Book { title pages } } node(id: "b1") { id ... on Book { title pages } ... on User { username } } }`,
  ],
  [
    'an interface field on another type',
    `{ n: node(id: "u2") { __typename id ... on User { name reviews { body } } } }`,
  ],
  [
    '@skip true',
    `query ($s: Boolean!, $i: Boolean = false) { topProducts { upc name @skip(if: $s) price @include(if: $i) reviews @include(if: $s) { body } } }`,
    { s: true },
  ],
  [
    '@skip false with @include true',
    `query ($s: Boolean!, $i: Boolean = false) { topProducts { upc name @skip(if: $s) price @include(if: $i) reviews @include(if: $s) { body } } }`,
    { s: false, i: true },
  ],
  [
    'a Condition node on an entity fetch, taken',
    `query ($w: Boolean!) { topProducts { upc inStock @include(if: $w) } }`,
    { w: true },
  ],
  [
    'a Condition node on an entity fetch, not taken',
    `query ($w: Boolean!) { topProducts { upc inStock @include(if: $w) } }`,
    { w: false },
  ],
  [
    'a Condition node with a defaulted variable',
    `query ($w: Boolean = true) { topProducts { upc ... @skip(if: $w) { inStock } } }`,
  ],
  ['an error in an entity fetch', `{ topProducts { upc name warehouse } }`],
  ['a non-null violation in an entity fetch', `{ topProducts { upc mustExist name } }`],
  ['errors in a root fetch', `{ topProducts { upc failing } }`],
  [
    'lists of lists with nulls, and entity fetches under them',
    `{ productMatrix { upc name inStock stock } }`,
  ],
  ['@provides', `{ reviews { body author { username name } } }`],
  ['a missing entity', `{ reviews { body author { id name strict } product { upc name } } }`],
  [
    'repeated named fragments merge',
    `query Q { topProducts { ...P reviews { id } ...P } } fragment P on Product { upc reviews { body author { username } } }`,
  ],
  [
    'deep nesting through several entity fetches',
    `{ me { reviews { product { reviews { author { reviews { product { name shippingEstimate } } } } } } } }`,
  ],
  [
    // The entity fetches send each distinct representation once: their errors still reach every copy.
    'errors and non-null violations in entity fetches of repeated entities',
    `{ reviews { author { id name reviews { product { upc warehouse mustExist } } } } }`,
  ],
  [
    'arguments and variables passed to subgraphs',
    `query ($n: Int) { topProducts(first: $n) { upc name } user(id: "u3") { name username } }`,
    { n: 3 },
  ],
  [
    'an interface with @key across subgraphs',
    `{ media { id title ... on Movie { duration } ... on Song { artist } } }`,
  ],
  ['@interfaceObject (a __typename rewrite)', `{ topRated { id rating title ... on Movie { duration } } }`],
  ['@interfaceObject from the interface side', `{ media { id title rating } }`],
];

/** Plans the executor leaves to executeQueryPlan (introspection): the fallback. */
export const fallbackCases: Array<[string, string, Record<string, unknown>?]> = [
  ['schema introspection', `{ __schema { queryType { name } } topProducts(first: 1) { upc } }`],
];
