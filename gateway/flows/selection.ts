import { Kind, type FieldNode, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';
import type { FlowFields } from './store.js';

type Fragments = GraphQLResolveInfo['fragments'];

/**
 * The parts of a flow record that a `FlowRun` selection shows: a resolver of flow records loads only
 * those (`FlowStore.list(…, fields)`). Fields under @skip/@include count as selected.
 */
export function flowFieldsOf(info: Pick<GraphQLResolveInfo, 'fieldNodes' | 'fragments'>): FlowFields {
  const { fragments } = info;
  const flow = subfields(info.fieldNodes, fragments);
  const steps = flow.get('steps');
  const step = steps && subfields(steps, fragments);
  // The failure column holds only what `error.details` shows; code and message are columns of their own.
  const details = (error: readonly FieldNode[] | undefined) =>
    error !== undefined && subfields(error, fragments).has('details');
  return {
    input: flow.has('input'),
    output: flow.has('output'),
    failure: details(flow.get('error')),
    principal: flow.has('startedBy'),
    steps: step
      ? {
          input: step.has('input'),
          output: step.has('output'),
          failure: details(step.get('error')),
          flagDecisions: step.has('flagDecisions'),
        }
      : false,
  };
}

/** The fields `nodes` select, by name: aliases of one field and fragments merged. */
function subfields(nodes: readonly FieldNode[], fragments: Fragments): Map<string, FieldNode[]> {
  const fields = new Map<string, FieldNode[]>();
  const visit = (set: SelectionSetNode | undefined, seen: ReadonlySet<string>) => {
    for (const node of set?.selections ?? []) {
      if (node.kind === Kind.FIELD) {
        const name = node.name.value;
        fields.set(name, [...(fields.get(name) ?? []), node]);
      } else if (node.kind === Kind.INLINE_FRAGMENT) visit(node.selectionSet, seen);
      else if (!seen.has(node.name.value))
        visit(fragments[node.name.value]?.selectionSet, new Set(seen).add(node.name.value));
    }
  };
  for (const node of nodes) visit(node.selectionSet, new Set());
  return fields;
}
