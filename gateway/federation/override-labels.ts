import { Kind, parse, type ConstDirectiveNode, type ConstValueNode, type DocumentNode } from 'graphql';
import { fieldedTypes } from './sdl.js';

/** A field being moved between subgraphs by a progressive `@override(from:, label:)`. */
export interface OverrideLabel {
  /** The label, which is also the Transition-to-Plugin flag that decides it (or `percent(n)`). */
  label: string;
  typeName: string;
  fieldName: string;
  /** The subgraph that resolves the field while the label is off. */
  from: string;
  /** The subgraph that resolves it while the label is on. */
  to: string;
}

/**
 * The progressive override labels of a supergraph. In the supergraph, subgraph B's
 * `@override(from: "a", label: "L")` becomes `@join__field(graph: B, override: "a", overrideLabel: "L")`
 * (A's side carries `overrideLabel` without `override`). Sorted by label, type and field.
 */
export function overrideLabels(supergraphSdl: string | DocumentNode): OverrideLabel[] {
  const document =
    typeof supergraphSdl === 'string' ? parse(supergraphSdl, { noLocation: true }) : supergraphSdl;
  const prefix = joinPrefix(document);
  const graphNames = new Map<string, string>();
  const labels: OverrideLabel[] = [];

  for (const definition of document.definitions) {
    if (definition.kind === Kind.ENUM_TYPE_DEFINITION && definition.name.value === `${prefix}__Graph`) {
      for (const value of definition.values ?? []) {
        const graph = value.directives?.find((d) => d.name.value === `${prefix}__graph`);
        const name = graph && stringArg(graph, 'name');
        if (name) graphNames.set(value.name.value, name);
      }
    }
  }
  for (const definition of fieldedTypes(document)) {
    for (const field of definition.fields ?? []) {
      for (const directive of field.directives ?? []) {
        if (directive.name.value !== `${prefix}__field`) continue;
        const from = stringArg(directive, 'override');
        const label = stringArg(directive, 'overrideLabel');
        const graph = directive.arguments?.find((a) => a.name.value === 'graph')?.value;
        if (from === undefined || label === undefined || graph?.kind !== Kind.ENUM) continue;
        labels.push({
          label,
          typeName: definition.name.value,
          fieldName: field.name.value,
          from,
          to: graphNames.get(graph.value) ?? graph.value,
        });
      }
    }
  }
  return labels.sort(
    (x, y) =>
      x.label.localeCompare(y.label) ||
      x.typeName.localeCompare(y.typeName) ||
      x.fieldName.localeCompare(y.fieldName),
  );
}

/** `join`, unless the supergraph imports the join spec under another name with `@link(as:)`. */
function joinPrefix(document: DocumentNode): string {
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.SCHEMA_DEFINITION && definition.kind !== Kind.SCHEMA_EXTENSION) continue;
    for (const directive of definition.directives ?? []) {
      if (directive.name.value !== 'link' && directive.name.value !== 'core') continue;
      const url = stringArg(directive, 'url') ?? stringArg(directive, 'feature');
      if (url && /\/join\/v\d/.test(url)) return stringArg(directive, 'as') ?? 'join';
    }
  }
  return 'join';
}

function stringArg(directive: ConstDirectiveNode, name: string): string | undefined {
  const value: ConstValueNode | undefined = directive.arguments?.find((a) => a.name.value === name)?.value;
  return value?.kind === Kind.STRING ? value.value : undefined;
}
