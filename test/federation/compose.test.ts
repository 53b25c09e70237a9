import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../gateway/errors.js';
import { composeSupergraph, isSupergraphStale } from '../../gateway/federation/compose.js';

const link =
  'extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key", "@shareable"])';
const orders = `${link}
type Query { order(id: ID!): Order }
type Order @key(fields: "id") { id: ID! total: Int }
`;
const payments = `${link}
type Query { payment(id: ID!): Payment }
type Payment { id: ID! order: Order }
type Order @key(fields: "id") { id: ID! paid: Boolean }
`;

const composeError = (fn: () => unknown): ConfigError => {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
};

describe('composeSupergraph', () => {
  it('composes subgraphs given as SDL strings or documents', () => {
    const { supergraphSdl, hints } = composeSupergraph([
      { name: 'orders', url: 'http://orders.test/graphql', typeDefs: orders },
      { name: 'payments', url: 'http://payments.test/graphql', typeDefs: parse(payments) },
    ]);
    expect(supergraphSdl).toContain('ORDERS @join__graph(name: "orders", url: "http://orders.test/graphql")');
    expect(supergraphSdl).toContain(
      'PAYMENTS @join__graph(name: "payments", url: "http://payments.test/graphql")',
    );
    expect(hints).toEqual([]);
  });

  it('lists every composition error with its subgraphs and file locations', () => {
    const error = composeError(() =>
      composeSupergraph(
        [
          {
            name: 'orders',
            url: 'http://orders.test',
            file: 'subgraphs/orders/schema.graphql',
            typeDefs: `${orders}type Refund { id: ID! amount: Int }`,
          },
          {
            name: 'payments',
            url: 'http://payments.test',
            file: 'subgraphs/payments/schema.graphql',
            typeDefs: `${payments}type Refund { id: ID! amount: String }`,
          },
        ],
        { configFile: 'rover.yaml' },
      ),
    );
    expect(error.file).toBe('rover.yaml');
    const shared =
      'is resolved from multiple subgraphs: it is resolved from subgraphs "orders" and "payments" and defined as non-shareable in all of them';
    expect(error.problems).toEqual([
      `[INVALID_FIELD_SHARING] Non-shareable field "Refund.id" ${shared}` +
        ' — in subgraph "orders" (subgraphs/orders/schema.graphql:4:15), subgraph "payments" (subgraphs/payments/schema.graphql:5:15)',
      '[FIELD_TYPE_MISMATCH] Type of field "Refund.amount" is incompatible across subgraphs: it has type "Int" in subgraph "orders" but type "String" in subgraph "payments"' +
        ' — in subgraph "orders" (subgraphs/orders/schema.graphql:4:23), subgraph "payments" (subgraphs/payments/schema.graphql:5:23)',
      `[INVALID_FIELD_SHARING] Non-shareable field "Refund.amount" ${shared}` +
        ' — in subgraph "orders" (subgraphs/orders/schema.graphql:4:23), subgraph "payments" (subgraphs/payments/schema.graphql:5:23)',
    ]);
    expect(error.message).toMatch(/^rover.yaml:\n {2}- \[INVALID_FIELD_SHARING\]/);
  });

  it('names the subgraph of an error raised inside one subgraph', () => {
    const error = composeError(() =>
      composeSupergraph([
        { name: 'orders', url: 'http://orders.test', typeDefs: orders },
        {
          name: 'payments',
          url: 'http://payments.test',
          typeDefs: `${payments}type Extra @key(fields: "nope") { id: ID! }`,
        },
      ]),
    );
    expect(error.problems).toEqual([
      expect.stringMatching(/^\[KEY_INVALID_FIELDS\] \[payments\] .* — in subgraph "payments"$/),
    ]);
  });

  it('reports a schema that does not parse before composing', () => {
    const error = composeError(() =>
      composeSupergraph([
        {
          name: 'orders',
          url: 'http://orders.test',
          file: 'orders.graphql',
          typeDefs: 'type Query { order: }',
        },
        { name: 'payments', url: 'http://payments.test', typeDefs: 'type Query {' },
      ]),
    );
    expect(error.problems).toEqual([
      'subgraph "orders" (orders.graphql:1:21): the schema does not parse: Syntax Error: Expected Name, found "}".',
      'subgraph "payments": the schema does not parse: Syntax Error: Expected Name, found <EOF>.',
    ]);
  });
});

describe('isSupergraphStale', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cc-compose-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is true when the committed supergraph is missing or differs, false when it matches', async () => {
    const { supergraphSdl } = composeSupergraph([
      { name: 'orders', url: 'http://orders.test', typeDefs: orders },
    ]);
    const file = join(dir, 'supergraph.graphql');
    expect(isSupergraphStale(file, supergraphSdl)).toBe(true);
    await writeFile(file, `${supergraphSdl}\n`);
    expect(isSupergraphStale(file, supergraphSdl)).toBe(false);
    await writeFile(file, supergraphSdl.replace('total: Int', 'total: Float'));
    expect(isSupergraphStale(file, supergraphSdl)).toBe(true);
  });
});
