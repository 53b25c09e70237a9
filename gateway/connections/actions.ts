import {
  getNamedType,
  isAbstractType,
  isInputObjectType,
  isLeafType,
  isListType,
  isNonNullType,
  isObjectType,
  isRequiredArgument,
  isRequiredInputField,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLNamedType,
  type GraphQLObjectType,
  type GraphQLOutputType,
  type GraphQLSchema,
  type GraphQLType,
} from 'graphql';

/**
 * An Action as the supergraph defines it: a root field. Its inputs are taken from the accumulated flow
 * data by name: each argument by its name, or — for the usual `action(input: XInput!)` shape — each
 * field of the single `input` argument by its own name.
 */
export interface ActionField {
  name: string;
  operation: 'mutation' | 'query';
  field: GraphQLField<unknown, unknown>;
  /**
   * The object type of the result, whose fields are merged into the flow data; undefined when the
   * Action returns a list or a scalar, which a step must then name with `as`.
   */
  resultType?: GraphQLObjectType;
  inputs: ActionInput[];
  /** Whether inputs are the fields of a single `input` argument. */
  wrapsInput: boolean;
}

export interface ActionInput {
  name: string;
  type: GraphQLInputType;
  required: boolean;
}

export function findAction(schema: GraphQLSchema, name: string): ActionField | string {
  const mutationField = schema.getMutationType()?.getFields()[name];
  const queryField = schema.getQueryType()?.getFields()[name];
  const field = mutationField ?? queryField;
  if (!field) return `unknown Action '${name}': no Mutation or Query field of that name in the supergraph`;
  const unwrapped = unwrapNonNull(field.type);
  const resultType = isObjectType(unwrapped) ? unwrapped : undefined;
  const only = field.args.length === 1 ? field.args[0] : undefined;
  const inputType = only && only.name === 'input' ? unwrapNonNull(only.type) : undefined;
  const wrapsInput = inputType !== undefined && isInputObjectType(inputType);
  const inputs: ActionInput[] =
    wrapsInput && isInputObjectType(inputType)
      ? Object.values(inputType.getFields()).map((f) => ({
          name: f.name,
          type: f.type,
          required: isRequiredInputField(f),
        }))
      : field.args.map((a) => ({ name: a.name, type: a.type, required: isRequiredArgument(a) }));
  return { name, operation: mutationField ? 'mutation' : 'query', field, resultType, inputs, wrapsInput };
}

const unwrapNonNull = (type: GraphQLType): GraphQLType => (isNonNullType(type) ? type.ofType : type);

/**
 * Whether a value of `provided` (an output type of an earlier step, or an input type of the flow
 * input) can be passed where `required` is expected. Nullability is left to run time: a step result
 * field is nullable in most schemas, and a null for a required input is a clear GraphQL error then.
 */
export function isCompatible(required: GraphQLType, provided: GraphQLType): boolean {
  const r = unwrapNonNull(required);
  const p = unwrapNonNull(provided);
  if (isListType(r)) return isListType(p) && isCompatible(r.ofType, p.ofType);
  if (isListType(p)) return false;
  const rn = getNamedType(r) as GraphQLNamedType;
  const pn = getNamedType(p) as GraphQLNamedType;
  if (isLeafType(rn)) {
    if (rn.name === pn.name) return true;
    // Widening conversions GraphQL input coercion accepts.
    if (rn.name === 'ID') return pn.name === 'String' || pn.name === 'Int';
    if (rn.name === 'Float') return pn.name === 'Int';
    return false;
  }
  if (!isInputObjectType(rn)) return false;
  if (rn.name === pn.name) return true;
  if (!isInputObjectType(pn) && !isObjectType(pn)) return false;
  const providedFields = pn.getFields();
  return Object.values(rn.getFields()).every((f) => {
    const match = providedFields[f.name];
    return match ? isCompatible(f.type, match.type) : !isRequiredInputField(f);
  });
}

const MAX_SELECTION_DEPTH = 6;

/** Whether a field belongs in an Action's result selection (by default, every field). */
export type FieldFilter = (type: string, field: string) => boolean;

/**
 * The selection set that fetches a whole result: every field without required arguments (and, with
 * `include`, only the fields it accepts), nested to a bounded depth, so the flow records and merges
 * everything the Action returns.
 */
export function selectAll(
  type: GraphQLOutputType,
  schema: GraphQLSchema,
  include: FieldFilter = () => true,
  depth = 0,
): string {
  const named = getNamedType(type);
  if (isLeafType(named)) return '';
  if (depth >= MAX_SELECTION_DEPTH) return '{ __typename }';
  if (isAbstractType(named)) {
    const fragments = schema
      .getPossibleTypes(named)
      .map((t) => `... on ${t.name} ${selectAll(t, schema, include, depth + 1)}`)
      .join(' ');
    return `{ __typename ${fragments} }`;
  }
  if (!isObjectType(named)) return '';
  const fields = Object.values(named.getFields())
    .filter((f) => !f.args.some(isRequiredArgument) && include(named.name, f.name))
    .map((f) => `${f.name}${selectAll(f.type, schema, include, depth + 1)}`);
  return `{ ${fields.join(' ')} }`;
}

/** The GraphQL operation that calls an Action with its inputs as variables. */
export function actionDocument(
  action: ActionField,
  schema: GraphQLSchema,
  include: FieldFilter = () => true,
): string {
  const opName = `Coordinator_${action.name}`;
  if (action.wrapsInput) {
    const arg = action.field.args[0]!;
    return `${action.operation} ${opName}($input: ${String(arg.type)}) { ${action.name}(input: $input) ${selectAll(action.field.type, schema, include)} }`;
  }
  const vars = action.field.args.map((a) => `$${a.name}: ${String(a.type)}`).join(', ');
  const args = action.field.args.map((a) => `${a.name}: $${a.name}`).join(', ');
  const signature = vars ? `(${vars})` : '';
  const call = args ? `(${args})` : '';
  return `${action.operation} ${opName}${signature} { ${action.name}${call} ${selectAll(action.field.type, schema, include)} }`;
}

/**
 * Builds the variables of an Action call from the flow data. `mapping` renames: `{ inputName: dataName }`.
 * Inputs absent from the data are left out, so GraphQL reports a missing required one clearly.
 */
export function actionVariables(
  action: ActionField,
  data: Readonly<Record<string, unknown>>,
  mapping: Readonly<Record<string, string>> = {},
): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const input of action.inputs) {
    const value = valueAt(data, mapping[input.name] ?? input.name);
    if (value !== undefined) values[input.name] = pickForInput(input.type, value);
  }
  return action.wrapsInput ? { input: values } : values;
}

/** The value at a field or dotted path of the flow data; undefined where the path ends early. */
export function valueAt(data: Readonly<Record<string, unknown>>, path: string): unknown {
  let value: unknown = data;
  for (const segment of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[segment];
  }
  return value;
}

/** Drops output-only fields (e.g. `__typename`, extra result fields) from a value passed as input. */
function pickForInput(type: GraphQLType, value: unknown): unknown {
  if (value === null || value === undefined) return value;
  const t = unwrapNonNull(type);
  if (isListType(t)) return Array.isArray(value) ? value.map((v) => pickForInput(t.ofType, v)) : value;
  if (!isInputObjectType(t) || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const f of Object.values(t.getFields())) {
    const v = (value as Record<string, unknown>)[f.name];
    if (v !== undefined) out[f.name] = pickForInput(f.type, v);
  }
  return out;
}
