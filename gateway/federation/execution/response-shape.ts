import {
  ERRORS,
  Variable,
  isCompositeType,
  isEnumType,
  isListType,
  isNonNullType,
  isObjectType,
  isSubtype,
  typenameFieldName,
  type CompositeType,
  type Operation,
  type OperationElement,
  type OutputType,
  type Schema,
  type SelectionSet,
} from '@apollo/federation-internals';
import type { GraphQLError } from 'graphql';

/**
 * The client operation's final shaping, compiled once per plan: @apollo/gateway's computeResponse
 * (only the requested fields, in the operation's order, aliases, fragments on their runtime types,
 * @skip/@include, root __typename, non-null violations nulled up to the nearest nullable parent with
 * the same errors) with every schema lookup, directive and subtype test resolved at compile time.
 */
export type ResponseShaper = (
  input: Record<string, unknown>,
  variables: Record<string, unknown> | undefined,
) => { data: Record<string, unknown> | null; errors: GraphQLError[] };

/** A type of the API schema as shaping needs it. */
interface TypeInfo {
  name: string;
  isObject: boolean;
  isComposite: boolean;
}

/** `@skip(if:)`/`@include(if:)`: a constant or a variable's name. */
type Condition = boolean | { variable: string };

interface FieldStep {
  field: true;
  responseName: string;
  skip?: Condition;
  include?: Condition;
  isTypename: boolean;
  type: Shape;
}
interface FragmentStep {
  field: false;
  skip?: Condition;
  include?: Condition;
  /** The type names (of the API schema) the fragment's type condition applies to; undefined: any. */
  appliesTo?: ReadonlySet<string>;
  typeCondition?: TypeInfo;
  steps: Step[];
}
type Step = FieldStep | FragmentStep;

/** A field's type; `leafy` when it wraps a leaf (the field has no selection set). */
type Shape =
  | { kind: 'nonNull'; ofType: Shape; text: string; leafy: boolean }
  | { kind: 'list'; ofType: Shape; text: string; leafy: boolean }
  | { kind: 'composite'; text: string; leafy: false; info: TypeInfo; steps: Step[] }
  | { kind: 'leaf'; text: string; leafy: true; valid: (value: unknown) => boolean };

const OK = 0;
const NULL_BUBBLE_UP = 1;

interface Run {
  variables: Record<string, unknown>;
  errors: GraphQLError[];
}

/** Whether the operation selects schema introspection (`__schema`, `__type`), which this shaper leaves out. */
export function selectsIntrospection(selectionSet: SelectionSet): boolean {
  return selectionSet
    .selections()
    .some((selection) =>
      selection.kind === 'FieldSelection'
        ? selection.element.definition.isSchemaIntrospectionField() ||
          (selection.selectionSet !== undefined && selectsIntrospection(selection.selectionSet))
        : selectsIntrospection(selection.selectionSet),
    );
}

export function compileResponseShape(operation: Operation): ResponseShaper {
  const schema = operation.schema();
  const types = new Map<string, TypeInfo>();
  for (const type of schema.types()) {
    types.set(type.name, {
      name: type.name,
      isObject: isObjectType(type),
      isComposite: isCompositeType(type),
    });
  }
  const subtypeSets = new Map<string, ReadonlySet<string>>();
  const appliesTo = (condition: CompositeType): ReadonlySet<string> => {
    let set = subtypeSets.get(condition.name);
    if (!set) {
      set = new Set(
        schema
          .types()
          .filter((t) => isSubtype(condition, t))
          .map((t) => t.name),
      );
      subtypeSets.set(condition.name, set);
    }
    return set;
  };
  const rootType = schema.schemaDefinition.rootType(operation.rootKind)!;
  const root = compileSelectionSet(schema, operation.selectionSet, appliesTo, types);
  const defaults = operation.collectDefaultedVariableValues();

  return (input, variables) => {
    const run: Run = { variables: { __proto__: null, ...defaults, ...variables }, errors: [] };
    const data = Object.create(null) as Record<string, unknown>;
    const result = applySteps(input, root, data, run, [], types.get(rootType.name)!, types);
    return { data: result === NULL_BUBBLE_UP ? null : data, errors: run.errors };
  };
}

function conditionOf(element: OperationElement, name: 'skip' | 'include'): Condition | undefined {
  const schema = element.schema();
  const directive = element.appliedDirectivesOf(
    name === 'skip' ? schema.skipDirective() : schema.includeDirective(),
  )[0];
  if (!directive) return undefined;
  const value = (directive.arguments() as { if: boolean | Variable }).if;
  return value instanceof Variable ? { variable: value.name } : value;
}

function compileSelectionSet(
  schema: Schema,
  selectionSet: SelectionSet,
  appliesTo: (condition: CompositeType) => ReadonlySet<string>,
  types: Map<string, TypeInfo>,
): Step[] {
  return selectionSet.selections().map((selection): Step => {
    const skip = conditionOf(selection.element, 'skip');
    const include = conditionOf(selection.element, 'include');
    if (selection.kind === 'FieldSelection') {
      const field = selection.element;
      return {
        field: true,
        responseName: field.responseName(),
        skip,
        include,
        isTypename: field.name === typenameFieldName,
        type: compileType(schema, field.definition.type!, selection.selectionSet, appliesTo, types),
      };
    }
    const typeCondition = selection.element.typeCondition;
    return {
      field: false,
      skip,
      include,
      appliesTo: typeCondition ? appliesTo(typeCondition) : undefined,
      typeCondition: typeCondition ? types.get(typeCondition.name) : undefined,
      steps: compileSelectionSet(schema, selection.selectionSet, appliesTo, types),
    };
  });
}

function compileType(
  schema: Schema,
  type: OutputType,
  selectionSet: SelectionSet | undefined,
  appliesTo: (condition: CompositeType) => ReadonlySet<string>,
  types: Map<string, TypeInfo>,
): Shape {
  const text = type.toString();
  if (isNonNullType(type) || isListType(type)) {
    const ofType = compileType(schema, type.ofType, selectionSet, appliesTo, types);
    return { kind: isNonNullType(type) ? 'nonNull' : 'list', text, ofType, leafy: ofType.leafy };
  }
  if (isCompositeType(type)) {
    if (!selectionSet) throw new Error(`Invalid empty selection set for composite type ${text}`);
    const steps = compileSelectionSet(schema, selectionSet, appliesTo, types);
    return { kind: 'composite', text, leafy: false, info: types.get(type.name)!, steps };
  }
  return { kind: 'leaf', text, leafy: true, valid: leafValidator(type) };
}

const integer = /^-?(?:0|[1-9][0-9]*)$/;

/** federation-internals' isValidLeafValue for one type, decided once. */
function leafValidator(type: OutputType): (value: unknown) => boolean {
  if (isEnumType(type)) {
    const values = new Set(type.values.map((v) => v.name));
    return (value) => typeof value === 'string' && values.has(value);
  }
  switch (type.toString()) {
    case 'Boolean':
      return (value) => typeof value === 'boolean';
    case 'Int':
      return (value) => typeof value === 'number' && isFinite(value) && integer.test(String(value));
    case 'ID':
      return (value) =>
        typeof value === 'string' ||
        (typeof value === 'number' && isFinite(value) && integer.test(String(value)));
    case 'Float':
      return (value) => typeof value === 'number' && isFinite(value);
    case 'String':
      return (value) => typeof value === 'string';
    default:
      return () => true; // a custom scalar: any value
  }
}

function holds(condition: Condition, variables: Record<string, unknown>): boolean {
  if (typeof condition === 'boolean') return condition;
  const value = variables[condition.variable];
  if (typeof value !== 'boolean')
    throw new Error(`Unexpected value ${String(value)} for variable $${condition.variable}`);
  return value;
}

function skipped(step: Step, variables: Record<string, unknown>): boolean {
  return (
    (step.skip !== undefined && holds(step.skip, variables)) ||
    (step.include !== undefined && !holds(step.include, variables))
  );
}

function applySteps(
  input: Record<string, unknown>,
  steps: Step[],
  output: Record<string, unknown>,
  run: Run,
  path: Array<string | number>,
  parentType: TypeInfo,
  types: Map<string, TypeInfo>,
): number {
  for (const step of steps) {
    if ((step.skip !== undefined || step.include !== undefined) && skipped(step, run.variables)) continue;
    if (step.field) {
      const responseName = step.responseName;
      const outputValue = output[responseName];
      let inputValue = (Object.hasOwn(input, responseName) ? input[responseName] : undefined) ?? null;
      if (step.isTypename) {
        if (outputValue === undefined) {
          if (inputValue === null && responseName !== typenameFieldName)
            inputValue = input.__typename ?? null;
          const type = typeof inputValue === 'string' ? (types.get(inputValue) ?? parentType) : parentType;
          if (!type.isObject) return NULL_BUBBLE_UP;
          output[responseName] = type.name;
        }
        continue;
      }
      // Most fields are valid leaves seen once: answered here, without updateOutput's result objects.
      const shape = step.type;
      if (outputValue === undefined) {
        const leaf =
          shape.kind === 'leaf'
            ? shape
            : shape.kind === 'nonNull' && shape.ofType.kind === 'leaf'
              ? shape.ofType
              : undefined;
        if (leaf && inputValue !== null && leaf.valid(inputValue)) {
          output[responseName] = inputValue;
          continue;
        }
        if (leaf === shape && inputValue === null) {
          output[responseName] = null;
          continue;
        }
      }
      path.push(responseName);
      const { updated, isInvalid } = updateOutput(
        outputValue,
        step.type,
        inputValue,
        path,
        run,
        parentType,
        types,
      );
      output[responseName] = updated;
      path.pop();
      if (isInvalid) return NULL_BUBBLE_UP;
    } else {
      const typename = input.__typename;
      if (typename !== undefined && typename !== null && typename !== '' && typeof typename !== 'string')
        throw new Error(`Got unexpected value for __typename: ${String(typename)}`);
      const applies = !step.appliesTo || step.appliesTo.has(typename ? typename : parentType.name);
      if (applies) {
        const result = applySteps(
          input,
          step.steps,
          output,
          run,
          path,
          step.typeCondition ?? parentType,
          types,
        );
        if (result === NULL_BUBBLE_UP) return NULL_BUBBLE_UP;
      }
    }
  }
  return OK;
}

function describeLast(path: Array<string | number>, shape: Shape, parentType: TypeInfo): string {
  const element = path[path.length - 1];
  return typeof element === 'string'
    ? `field ${parentType.name}.${element}`
    : `array element of type ${shape.text} at index ${element}`;
}

function invalid(message: string, path: Array<string | number>): GraphQLError {
  return ERRORS.INVALID_GRAPHQL.err(message, { path: Array.from(path) });
}

interface Updated {
  updated: unknown;
  isInvalid?: boolean;
  hasErrors?: boolean;
}

function updateOutput(
  outputValue: unknown,
  shape: Shape,
  inputValue: unknown,
  path: Array<string | number>,
  run: Run,
  parentType: TypeInfo,
  types: Map<string, TypeInfo>,
): Updated {
  if (outputValue === null || (outputValue !== undefined && shape.leafy)) return { updated: outputValue };

  if (shape.kind === 'nonNull') {
    const { updated, hasErrors } = updateOutput(
      outputValue,
      shape.ofType,
      inputValue,
      path,
      run,
      parentType,
      types,
    );
    if (updated === null) {
      if (!hasErrors)
        run.errors.push(
          invalid(
            `Cannot return null for non-nullable ${describeLast(path, shape.ofType, parentType)}.`,
            path,
          ),
        );
      return { updated, isInvalid: true, hasErrors: true };
    }
    return { updated };
  }
  if (inputValue === null) return { updated: null };

  if (shape.kind === 'list') {
    if (!Array.isArray(inputValue))
      throw new Error(
        `Invalid non-list value ${String(inputValue)} returned by subgraph for list type ${shape.text}`,
      );
    if (outputValue !== undefined && !Array.isArray(outputValue))
      throw new Error(
        `Invalid non-list value ${String(outputValue)} returned by subgraph for list type ${shape.text}`,
      );
    const previous = outputValue as unknown[] | undefined;
    if (previous && previous.length !== inputValue.length)
      throw new Error(
        `[${String(inputValue)}].length (${inputValue.length}) !== [${String(previous)}].length (${previous.length})`,
      );
    let shouldNullify = false;
    let hasErrors = false;
    const updated = new Array<unknown>(inputValue.length);
    for (let i = 0; i < inputValue.length; i++) {
      path.push(i);
      const element = updateOutput(
        previous?.[i],
        shape.ofType,
        inputValue[i] as unknown,
        path,
        run,
        parentType,
        types,
      );
      path.pop();
      shouldNullify ||= !!element.isInvalid;
      hasErrors ||= !!element.hasErrors;
      updated[i] = element.updated;
    }
    return { updated: shouldNullify ? null : updated, hasErrors };
  }

  if (shape.kind === 'composite') {
    if (typeof inputValue !== 'object')
      throw new Error(
        `Invalid non-object value ${String(inputValue)} returned by subgraph for composite type ${shape.text}`,
      );
    if (outputValue !== undefined && typeof outputValue !== 'object')
      throw new Error(
        `Invalid non-object value ${String(inputValue)} returned by subgraph for composite type ${shape.text}`,
      );
    const object = inputValue as Record<string, unknown>;
    const typename = object.__typename;
    if (typename !== undefined && typeof typename !== 'string')
      throw new Error(`Invalid non-string value ${String(typename)} for __typename at ${path.join(',')}`);
    let objectType = shape.info;
    if (typename) {
      const named = types.get(typename);
      if (!named || !named.isComposite) {
        run.errors.push(
          invalid(`Invalid __typename found for object at ${describeLast(path, shape, parentType)}.`, path),
        );
        return { updated: null, hasErrors: true };
      }
      objectType = named;
    }
    const into = (outputValue ?? Object.create(null)) as Record<string, unknown>;
    const result = applySteps(object, shape.steps, into, run, path, objectType, types);
    const hasErrors = result === NULL_BUBBLE_UP;
    return { updated: hasErrors ? null : into, hasErrors };
  }

  if (outputValue !== undefined)
    throw new Error(`Excepted output to be undefined but got ${shape.text} for type ${shape.text}`);
  const valid = shape.valid(inputValue);
  if (!valid)
    run.errors.push(invalid(`Invalid value found for ${describeLast(path, shape, parentType)}.`, path));
  return { updated: valid ? inputValue : null, hasErrors: !valid };
}
