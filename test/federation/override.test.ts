import { operationFromDocument, Supergraph } from '@apollo/federation-internals';
import { QueryPlanner, type QueryPlan } from '@apollo/query-planner';
import { parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { composeSupergraph } from '../../gateway/federation/compose.js';
import { overrideLabels } from '../../gateway/federation/override-labels.js';
import { rootFetchServices } from '../../gateway/federation/plan.js';

// Progressive override (`label:`) needs Federation v2.7 or later.
const link =
  'extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key", "@override", "@shareable"])';
// The shared Action contract: a result type returned by both Implementations must be @shareable.
const contract = `
  input RefundInput { orderId: ID! amount: Int }
  type RefundResult @shareable { refundId: ID! status: String }
`;
const a = `${link}
  ${contract}
  type Query { order(id: ID!): Order }
  type Order @key(fields: "id") { id: ID! status: String total: Int }
  type Mutation { refundPayment(input: RefundInput!): RefundResult }
`;
const b = `${link}
  ${contract}
  type Query { refundStatus(id: ID!): String }
  type Order @key(fields: "id") { id: ID! status: String @override(from: "a", label: "transition.order-status.b") }
  type Mutation {
    refundPayment(input: RefundInput!): RefundResult @override(from: "a", label: "transition.refunds.b")
  }
`;

const composed = composeSupergraph([
  { name: 'a', url: 'http://a.test/graphql', typeDefs: a },
  { name: 'b', url: 'http://b.test/graphql', typeDefs: b },
]);
const supergraph = Supergraph.build(composed.supergraphSdl);
const planner = new QueryPlanner(supergraph);
const plan = (operation: string, conditions?: Record<string, boolean>): QueryPlan =>
  planner.buildQueryPlan(
    operationFromDocument(supergraph.apiSchema(), parse(operation)),
    conditions ? { overrideConditions: new Map(Object.entries(conditions)) } : undefined,
  );

describe('progressive @override with a label', () => {
  it('composes on a Mutation root field and on an entity field, with a migration hint', () => {
    expect(composed.hints.filter((h) => h.includes('OVERRIDE_MIGRATION_IN_PROGRESS'))).toHaveLength(2);
    expect(composed.supergraphSdl).toContain(
      '@join__field(graph: B, override: "a", overrideLabel: "transition.refunds.b")',
    );
  });

  it('overrideLabels lists each labelled field with the subgraph it moves from and to', () => {
    expect(overrideLabels(composed.supergraphSdl)).toEqual([
      { label: 'transition.order-status.b', typeName: 'Order', fieldName: 'status', from: 'a', to: 'b' },
      { label: 'transition.refunds.b', typeName: 'Mutation', fieldName: 'refundPayment', from: 'a', to: 'b' },
    ]);
  });

  it('overrideLabels is empty for a supergraph without progressive overrides', () => {
    const plain = composeSupergraph([{ name: 'a', url: 'http://a.test/graphql', typeDefs: a }]);
    expect(overrideLabels(plain.supergraphSdl)).toEqual([]);
  });

  const refund = 'mutation { refundPayment(input: { orderId: "o-1", amount: 5 }) { refundId status } }';

  it('the planner routes the Mutation field to B when its label is true', () => {
    expect(rootFetchServices(plan(refund, { 'transition.refunds.b': true }))).toEqual(['b']);
  });

  it('the planner routes the Mutation field to A when its label is false or not given', () => {
    expect(rootFetchServices(plan(refund, { 'transition.refunds.b': false }))).toEqual(['a']);
    expect(rootFetchServices(plan(refund))).toEqual(['a']);
  });

  it('an entity field override adds an entity fetch to B, which is not a root fetch', () => {
    const query = '{ order(id: "o-1") { id status total } }';
    const off = plan(query, { 'transition.order-status.b': false });
    const on = plan(query, { 'transition.order-status.b': true });
    expect(off.node).toMatchObject({ kind: 'Fetch', serviceName: 'a' });
    expect(on.node).toMatchObject({
      kind: 'Sequence',
      nodes: [
        { kind: 'Fetch', serviceName: 'a' },
        { kind: 'Flatten', node: { kind: 'Fetch', serviceName: 'b' } },
      ],
    });
    expect(rootFetchServices(on)).toEqual(['a']);
  });
});

describe('rootFetchServices', () => {
  it('lists every subgraph that resolves a root field, once, in plan order', () => {
    const both = plan('{ order(id: "o-1") { id } refundStatus(id: "r-1") }');
    expect(both.node?.kind).toBe('Parallel');
    expect(rootFetchServices(both).sort()).toEqual(['a', 'b']);
  });

  it('walks Sequence, Parallel, Flatten, Condition and Defer nodes', () => {
    const fetch = (serviceName: string) => ({
      kind: 'Fetch' as const,
      serviceName,
      operation: '{ x }',
      operationName: undefined,
      operationKind: 'query' as never,
    });
    const queryPlan: QueryPlan = {
      kind: 'QueryPlan',
      node: {
        kind: 'Sequence',
        nodes: [
          { kind: 'Parallel', nodes: [fetch('a'), fetch('b'), fetch('a')] },
          { kind: 'Flatten', path: ['order'], node: fetch('c') },
          { kind: 'Condition', condition: 'v', ifClause: fetch('d'), elseClause: fetch('e') },
          {
            kind: 'Defer',
            primary: { node: fetch('f') },
            deferred: [{ depends: [], queryPath: [], node: { kind: 'Flatten', path: [], node: fetch('g') } }],
          },
        ],
      },
    };
    expect(rootFetchServices(queryPlan)).toEqual(['a', 'b', 'd', 'e', 'f']);
    expect(rootFetchServices({ kind: 'QueryPlan' })).toEqual([]);
  });
});
