import {
  Kind,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';

/** How many selections the count walks at most: past this it stops, with what it counted. */
const WALK_BUDGET = 20_000;

/**
 * The most selections of one response name merged into one selection set, fragments and inline
 * fragments expanded and same-named fields' sub-selections merged, as validation's
 * overlapping-fields rule merges them: the rule compares every pair of such selections, so a few
 * hundred of them (one field with different arguments, one field in hundreds of fragments) take tens
 * of milliseconds to validate, which a document within the token limit can ask for. Counted on the
 * parsed document before validation, in time linear in its expansion, walking WALK_BUDGET selections
 * at most (fragments spread twice in each of thirty nested fragments would be 2^30).
 */
export function repeatedSelections(document: DocumentNode, operation: OperationDefinitionNode): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions)
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  let budget = WALK_BUDGET;
  let most = 0;

  /** The fields `sets` select, by response name, fragments expanded (a cycle once: validation refuses it). */
  const fieldsOf = (sets: readonly SelectionSetNode[]) => {
    const byName = new Map<string, FieldNode[]>();
    const collect = (set: SelectionSetNode, spread: ReadonlySet<string>) => {
      for (const selection of set.selections) {
        if (--budget < 0) return;
        if (selection.kind === Kind.FIELD) {
          const name = selection.alias?.value ?? selection.name.value;
          const same = byName.get(name);
          if (same) same.push(selection);
          else byName.set(name, [selection]);
        } else if (selection.kind === Kind.INLINE_FRAGMENT) collect(selection.selectionSet, spread);
        else {
          const fragment = fragments.get(selection.name.value);
          if (fragment && !spread.has(fragment.name.value))
            collect(fragment.selectionSet, new Set(spread).add(fragment.name.value));
        }
      }
    };
    for (const set of sets) collect(set, new Set());
    return byName;
  };

  const walk = (sets: readonly SelectionSetNode[]) => {
    for (const same of fieldsOf(sets).values()) {
      most = Math.max(most, same.length);
      // Spent: what was counted stands (an expansion this large is far past any limit).
      if (budget < 0) continue;
      const merged = same.flatMap((field) => (field.selectionSet ? [field.selectionSet] : []));
      if (merged.length) walk(merged);
    }
  };
  walk([operation.selectionSet]);
  return most;
}
