import { isInputObjectType, isNonNullType, isObjectType, type GraphQLType } from 'graphql';

/** What a flow's accumulated data holds at each point of its pipeline: each field's type and origin. */
export type Provided = Map<string, { type: GraphQLType; origin: string }>;

/** What the flow data holds at `path` (a field, or a dotted path through object fields), if anything. */
export function lookUp(provided: Provided, path: string): { type: GraphQLType; origin: string } | undefined {
  const [first, ...rest] = path.split('.');
  let found = provided.get(first!);
  for (const segment of rest) {
    if (!found) return undefined;
    const unwrapped = isNonNullType(found.type) ? found.type.ofType : found.type;
    if (!isObjectType(unwrapped) && !isInputObjectType(unwrapped)) return undefined;
    const field = unwrapped.getFields()[segment];
    found = field && { type: field.type, origin: found.origin };
  }
  return found;
}

/** The value at a dotted path of the accumulated data (`undefined` when an object on the way is missing). */
export function valueAt(data: unknown, path: string): unknown {
  let value = data;
  for (const segment of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[segment];
  }
  return value;
}
