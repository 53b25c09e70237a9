import {
  getNamedType,
  isEnumType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  parseType,
  typeFromAST,
  type GraphQLSchema,
  type GraphQLType,
} from 'graphql';
import { lookUp, type Provided } from './flow-data.js';
import { filterField, type FilterDefinition } from './schema.js';

/**
 * A filter's typed result: the fields its caller gets, each taken from the flow's accumulated data,
 * beside the flow record. Only what is declared leaves the flow; intermediate data (a learner's email,
 * raw legacy orders) stays on the record, which is for staff and Services.
 */
export interface ResultField {
  name: string;
  /** The declared GraphQL output type, as written (`[OrderHistoryEntry!]`). */
  type: string;
  /** The path into the accumulated data it is read from. */
  from: string;
}

export interface CompiledResult {
  /** The generated object type the filter's field returns: `<Field>Result`. */
  typeName: string;
  fields: ResultField[];
}

/** The field that carries the flow record beside the typed result. */
export const FLOW_RECORD_FIELD = 'flow';

/** `orderHistory` → `OrderHistoryResult`. */
export function resultTypeName(filter: FilterDefinition): string {
  const { name } = filterField(filter);
  return `${name[0]!.toUpperCase()}${name.slice(1)}Result`;
}

/** The declared result fields, with `from` defaulting to the field's own name. */
export function resultFields(filter: FilterDefinition): ResultField[] {
  return Object.entries(filter.result).map(([name, field]) =>
    typeof field === 'string'
      ? { name, type: field, from: name }
      : { name, type: field.type, from: field.from ?? name },
  );
}

/**
 * Checks a filter's `result:` against the supergraph and the data its steps provide: every type must
 * exist and be an object, enum or scalar type (a Plugin's value type, shared with the Coordinator), every
 * field must come from data the flow has, with that type, and be nullable (a halted or failed flow has
 * not provided it).
 */
export function compileResult(
  where: string,
  filter: FilterDefinition,
  schema: GraphQLSchema,
  provided: Provided,
  problems: string[],
): CompiledResult {
  const typeName = resultTypeName(filter);
  if (schema.getType(typeName))
    problems.push(
      `${where}: the result type '${typeName}' is already a type of the supergraph (duplicate name)`,
    );
  const fields = resultFields(filter);
  for (const field of fields) {
    const at = `${where}.${field.name}`;
    if (field.name === FLOW_RECORD_FIELD) {
      problems.push(
        `${at}: '${FLOW_RECORD_FIELD}' is the flow record beside the result; name the field otherwise`,
      );
      continue;
    }
    const declared = declaredType(field.type, schema);
    if (typeof declared === 'string') {
      problems.push(`${at}: ${declared}`);
      continue;
    }
    if (isNonNullType(declared)) {
      problems.push(
        `${at}: write '${field.type.replace(/!$/, '')}', not '${field.type}': a halted or failed flow has not provided it`,
      );
    }
    const from = lookUp(provided, field.from);
    if (!from) {
      problems.push(`${at}: '${field.from}' is provided by neither the flow input nor a step`);
    } else if (!sameShape(declared, from.type)) {
      problems.push(
        `${at}: declared ${field.type} but '${field.from}' is ${String(from.type)} (from ${from.origin})`,
      );
    }
  }
  return { typeName, fields };
}

/** The GraphQL output type a declaration names, or what is wrong with it. */
function declaredType(source: string, schema: GraphQLSchema): GraphQLType | string {
  let ast;
  try {
    ast = parseType(source);
  } catch {
    return `'${source}' is not a GraphQL type such as 'String' or '[OrderHistoryEntry!]'`;
  }
  const type = typeFromAST(schema, ast);
  if (!type) return `unknown type '${getNamedTypeName(source)}' (not in the supergraph)`;
  const named = getNamedType(type);
  if (!isObjectType(named) && !isEnumType(named) && !isScalarType(named))
    return `'${named.name}' is not an object, enum or scalar type`;
  return type;
}

const getNamedTypeName = (source: string) => source.replace(/[[\]!\s]/g, '');

/** The same list structure around the same named type; nullability is the result's own. */
function sameShape(declared: GraphQLType, provided: GraphQLType): boolean {
  const d = isNonNullType(declared) ? declared.ofType : declared;
  const p = isNonNullType(provided) ? provided.ofType : provided;
  if (isListType(d) || isListType(p)) return isListType(d) && isListType(p) && sameShape(d.ofType, p.ofType);
  return getNamedType(d).name === getNamedType(p).name;
}
