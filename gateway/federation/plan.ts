import type { PlanNode, QueryPlan, SubscriptionNode } from '@apollo/query-planner';
import { UnreachableCaseError } from '../errors.js';

/**
 * The subgraphs whose fetches resolve the operation's root fields, in plan order without repeats:
 * which Implementation served an Action. Fetches under a `Flatten` are entity fetches that complete
 * objects another subgraph returned, so they are not counted. Both branches of a `Condition` (from
 * `@skip`/`@include`) are counted, since the plan alone does not say which one runs.
 */
export function rootFetchServices(queryPlan: QueryPlan): string[] {
  const services = new Set<string>();
  const visit = (node: PlanNode | SubscriptionNode | undefined): void => {
    if (!node) return;
    switch (node.kind) {
      case 'Fetch':
        services.add(node.serviceName);
        return;
      case 'Sequence':
      case 'Parallel':
        node.nodes.forEach(visit);
        return;
      case 'Flatten':
        return;
      case 'Condition':
        visit(node.ifClause);
        visit(node.elseClause);
        return;
      case 'Defer':
        visit(node.primary.node);
        node.deferred.forEach((deferred) => visit(deferred.node));
        return;
      case 'Subscription':
        visit(node.primary);
        visit(node.rest);
        return;
      default:
        throw new UnreachableCaseError(node);
    }
  };
  visit(queryPlan.node);
  return [...services];
}
