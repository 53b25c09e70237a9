import type { QueryPlanSelectionNode } from '@apollo/query-planner';
import { isAbstractType, isInterfaceType, isObjectType, type GraphQLSchema } from 'graphql';
import { mergeInto } from './merge.js';

type Entity = Record<string, unknown>;
/** An entity's representation for `_entities`, or null when the entity lacks a required field. */
export type RepresentationBuilder = (entity: Entity | null) => Entity | null;

/**
 * Compiles a Fetch's `requires` selections into the function that extracts each entity's
 * representation, as @apollo/gateway's executeSelectionSet does per entity, with the type condition
 * tests resolved to sets of type names once. The supergraph schema is used, not the API schema:
 * `requires` may name @inaccessible elements, which subgraphs know.
 */
export function compileRepresentation(
  supergraph: GraphQLSchema,
  selections: readonly QueryPlanSelectionNode[],
): RepresentationBuilder {
  const steps = selections.map((selection) => {
    if (selection.kind === 'Field') {
      const responseName = selection.alias ?? selection.name;
      const sub = selection.selections ? compileRepresentation(supergraph, selection.selections) : undefined;
      return { field: true as const, responseName, sub };
    }
    return {
      field: false as const,
      types: selection.typeCondition ? typesOfCondition(supergraph, selection.typeCondition) : undefined,
      sub: compileRepresentation(supergraph, selection.selections),
    };
  });
  const build: RepresentationBuilder = (source) => {
    if (source === null) return null;
    const result: Entity = Object.create(null) as Entity;
    for (const step of steps) {
      if (step.field) {
        const { responseName, sub } = step;
        const value = Object.hasOwn(source, responseName) ? source[responseName] : undefined;
        if (value === undefined) return null;
        if (Array.isArray(value))
          result[responseName] = sub ? value.map((v) => sub(v as Entity | null)) : value;
        else result[responseName] = sub ? sub(value as Entity | null) : value;
      } else if (step.types) {
        const typename = source.__typename;
        if (typeof typename === 'string' && step.types.has(typename)) mergeInto(result, step.sub(source));
      }
    }
    return result;
  };
  return build;
}

/** The __typename values that satisfy `typeCondition` (dataRewrites' isObjectOfType, precomputed). */
function typesOfCondition(schema: GraphQLSchema, typeCondition: string): ReadonlySet<string> {
  const names = new Set([typeCondition]);
  const type = schema.getType(typeCondition);
  if (!type || !isAbstractType(type)) return names;
  for (const t of Object.values(schema.getTypeMap())) {
    if ((isObjectType(t) || isInterfaceType(t)) && schema.isSubType(type, t)) names.add(t.name);
  }
  return names;
}
