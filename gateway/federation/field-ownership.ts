import { parse } from 'graphql';
import { fieldedTypes } from './sdl.js';

/** Which subgraphs define which object fields (`Type.field`), from their SDL. */
export type FieldOwnership = ReadonlyMap<string, ReadonlySet<string>>;

export function fieldOwnership(subgraphs: ReadonlyArray<{ name: string; typeDefs: string }>): FieldOwnership {
  const owners = new Map<string, Set<string>>();
  for (const { name, typeDefs } of subgraphs) {
    for (const definition of fieldedTypes(parse(typeDefs, { noLocation: true }))) {
      for (const field of definition.fields ?? []) {
        const coordinate = `${definition.name.value}.${field.name.value}`;
        owners.set(coordinate, (owners.get(coordinate) ?? new Set()).add(name));
      }
    }
  }
  return owners;
}

/**
 * What an Action returns is what its own subgraphs (its Implementations) resolve: a predicate over
 * `Type.field` for the Action's result selection. Fields other subgraphs add to an entity are not part of
 * the Action's result; selecting them would make every run of the step call those subgraphs too.
 */
export function ownFieldsOf(
  ownership: FieldOwnership,
  action: string,
): (type: string, field: string) => boolean {
  const implementations = new Set([
    ...(ownership.get(`Mutation.${action}`) ?? []),
    ...(ownership.get(`Query.${action}`) ?? []),
  ]);
  return (type, field) => [...(ownership.get(`${type}.${field}`) ?? [])].some((s) => implementations.has(s));
}
