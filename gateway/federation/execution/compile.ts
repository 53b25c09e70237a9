import type { Operation } from '@apollo/federation-internals';
import { applyRewrites } from '@apollo/gateway/dist/dataRewrites.js';
import type { FetchDataRewrite, FetchNode, PlanNode, QueryPlan, ResponsePath } from '@apollo/query-planner';
import type { GraphQLSchema } from 'graphql';
import { compileRepresentation, type RepresentationBuilder } from './representations.js';
import { compileResponseShape, selectsIntrospection, type ResponseShaper } from './response-shape.js';

/** A plan node with what it needs at run time worked out once. */
export type CompiledNode =
  | {
      kind: 'Fetch';
      fetch: FetchNode;
      representation?: RepresentationBuilder;
      /** The plan's data rewrites (@interfaceObject's __typename), on representations and answers. */
      rewriteInput?: (value: Record<string, unknown>) => void;
      rewriteOutput?: (value: Record<string, unknown>) => void;
    }
  | { kind: 'Flatten'; path: ResponsePath; node: CompiledNode }
  | { kind: 'Sequence' | 'Parallel'; nodes: CompiledNode[] }
  | {
      kind: 'Condition';
      condition: string;
      /** The variable's default, when the operation gives it one. */
      fallback?: boolean;
      ifClause?: CompiledNode;
      elseClause?: CompiledNode;
    };

export interface CompiledPlan {
  node?: CompiledNode;
  shape: ResponseShaper;
}

/** Why this executor leaves a plan to @apollo/gateway's executeQueryPlan, or undefined. */
function unsupported(node: PlanNode | QueryPlan['node']): string | undefined {
  if (!node) return undefined;
  switch (node.kind) {
    case 'Fetch':
      if (node.contextRewrites?.length) return 'context rewrites';
      return node.hasDefers ? '@defer' : undefined;
    case 'Flatten':
      return unsupported(node.node);
    case 'Sequence':
    case 'Parallel':
      return node.nodes.map(unsupported).find(Boolean);
    case 'Condition':
      return unsupported(node.ifClause) ?? unsupported(node.elseClause);
    default:
      return node.kind;
  }
}

/**
 * Compiles a query plan for the executor, or returns the reason it cannot (a Defer or Subscription
 * node, context rewrites (@fromContext), schema introspection): those plans run on executeQueryPlan instead.
 */
export function compilePlan(
  plan: QueryPlan,
  operation: Operation,
  supergraph: GraphQLSchema,
): CompiledPlan | { unsupported: string } {
  const reason =
    unsupported(plan.node) ?? (selectsIntrospection(operation.selectionSet) ? 'introspection' : undefined);
  if (reason) return { unsupported: reason };
  const defaults = operation.collectDefaultedVariableValues();
  const compile = (node: PlanNode): CompiledNode => {
    switch (node.kind) {
      case 'Fetch':
        return {
          kind: 'Fetch',
          fetch: node,
          representation: node.requires ? compileRepresentation(supergraph, node.requires) : undefined,
          rewriteInput: rewriter(supergraph, node.inputRewrites),
          rewriteOutput: rewriter(supergraph, node.outputRewrites),
        };
      case 'Flatten':
        return { kind: 'Flatten', path: node.path, node: compile(node.node) };
      case 'Sequence':
      case 'Parallel':
        return { kind: node.kind, nodes: node.nodes.map(compile) };
      case 'Condition': {
        const fallback = defaults[node.condition] as unknown;
        return {
          kind: 'Condition',
          condition: node.condition,
          fallback: typeof fallback === 'boolean' ? fallback : undefined,
          ifClause: node.ifClause && compile(node.ifClause),
          elseClause: node.elseClause && compile(node.elseClause),
        };
      }
      default:
        throw new Error(`Unsupported plan node ${node.kind}`);
    }
  };
  return { node: plan.node && compile(plan.node as PlanNode), shape: compileResponseShape(operation) };
}

/** executeQueryPlan's own rewriting (not exported from the package root), bound to the plan's rewrites. */
function rewriter(supergraph: GraphQLSchema, rewrites: FetchDataRewrite[] | undefined) {
  if (!rewrites?.length) return undefined;
  return (value: Record<string, unknown>) => applyRewrites(supergraph, rewrites, value);
}
