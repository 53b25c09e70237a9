import type { ApolloServerPlugin } from '@apollo/server';
import {
  getOperationAST,
  Kind,
  parse,
  type DocumentNode,
  type FragmentDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import { DomainError, ErrorCode, httpStatusOf } from '../errors.js';
import type { GatewayContext } from './context.js';

/**
 * Refuses an operation without a verified caller before it is planned, when the Coordinator verifies
 * callers: every Action and filter refuses one anyway, and planning a new operation is synchronous
 * work of the gateway's (tens of milliseconds for a few dozen aliased entity fields), which nobody
 * should be able to make it do without credentials. Introspection alone stays open, for Sandbox and
 * the explorer (production turns introspection off). Operations marked `internal` (the flow engine's
 * Action calls) pass.
 */
export function callerRequiredPlugin(): ApolloServerPlugin<GatewayContext> {
  return {
    requestDidStart: async ({ contextValue }) => {
      if (contextValue.internal || contextValue.principal) return undefined;
      return {
        didResolveOperation: async ({ document, operation }) => {
          // Without an operation there is nothing to plan: the executor answers BAD_REQUEST.
          if (operation && !introspectionOnly(operation.selectionSet, fragmentsOf(document)))
            throw callerRequired();
        },
      };
    },
  };
}

/**
 * The refusal of a request that sends no credentials, read before Apollo parses and validates it
 * (the HTTP server calls it): validation is synchronous work too — tens of milliseconds for a few
 * hundred selections of one field that the overlapping-fields rule compares pairwise — which nobody
 * should make the gateway do without credentials. Undefined for introspection, and for a document
 * that does not parse or names no operation: Apollo answers those with its own error.
 */
export function callerlessRefusal(query: string, operationName?: string): DomainError | undefined {
  let document: DocumentNode;
  try {
    document = parse(query, { noLocation: true });
  } catch {
    return undefined;
  }
  const operation = getOperationAST(document, operationName);
  if (!operation || introspectionOnly(operation.selectionSet, fragmentsOf(document))) return undefined;
  return callerRequired();
}

const callerRequired = () =>
  new DomainError(
    ErrorCode.UNAUTHENTICATED,
    'This operation needs a caller: send a token (Authorization: Bearer …) or the edX JWT cookies',
    { http: { status: httpStatusOf(ErrorCode.UNAUTHENTICATED) } },
  );

const fragmentsOf = (document: DocumentNode): ReadonlyMap<string, FragmentDefinitionNode> =>
  new Map(
    document.definitions
      .filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION)
      .map((d) => [d.name.value, d]),
  );

/** Whether every root field is a meta field (`__schema`, `__type`, `__typename`). */
function introspectionOnly(
  selectionSet: SelectionSetNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
  seen = new Set<string>(),
): boolean {
  return selectionSet.selections.every((selection) => {
    if (selection.kind === Kind.FIELD) return selection.name.value.startsWith('__');
    if (selection.kind === Kind.INLINE_FRAGMENT)
      return introspectionOnly(selection.selectionSet, fragments, seen);
    const name = selection.name.value;
    // A cycle (refused by validation, which may not have run yet) adds nothing; an unknown fragment
    // is not introspection.
    if (seen.has(name)) return true;
    seen.add(name);
    const fragment = fragments.get(name);
    return fragment !== undefined && introspectionOnly(fragment.selectionSet, fragments, seen);
  });
}
