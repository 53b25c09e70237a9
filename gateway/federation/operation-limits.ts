import type { ApolloServerPlugin } from '@apollo/server';
import {
  GraphQLInt,
  Kind,
  Lexer,
  Source,
  TokenKind,
  getNamedType,
  getOperationAST,
  parse,
  getNullableType,
  isCompositeType,
  isListType,
  isObjectType,
  isInterfaceType,
  valueFromAST,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLOutputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import { DomainError, ErrorCode, httpStatusOf } from '../errors.js';
import type { GatewayContext } from './context.js';
import { repeatedSelections } from './repeated-selections.js';

/**
 * How much one client operation may ask for. Checked before anything executes, on HTTP and over the
 * WebSocket; the Action calls the flow engine makes itself are not client operations and are not checked.
 */
export interface OperationLimits {
  /** Lexical tokens of the document (comments excluded). @default 2000 */
  maxTokens: number;
  /** Deepest field nesting; a root field is at depth 1. @default 10 */
  maxDepth: number;
  /** Aliased fields, each counted as often as the operation selects it (fragments expanded). @default 30 */
  maxAliases: number;
  /**
   * Selections of one response name merged into one selection set (fragments expanded): validation
   * compares each pair of them, so this is checked before it (`repeatedSelections`). @default 50
   */
  maxRepeatedSelections: number;
  /** Root fields that run a filter (each a recorded Purchase Flow). @default 1 */
  maxFlows: number;
  /**
   * What the operation may cost: each object a field returns costs 1, a scalar 0, and a list field
   * costs its size times its element's cost. @default 25000
   */
  maxCost: number;
  /** The size assumed for a list field without a `limit`/`first` argument or default. @default 10 */
  defaultListSize: number;
}

export const DEFAULT_OPERATION_LIMITS: Readonly<OperationLimits> = Object.freeze({
  maxTokens: 2000,
  maxDepth: 10,
  maxAliases: 30,
  maxRepeatedSelections: 50,
  maxFlows: 1,
  maxCost: 25_000,
  defaultListSize: 10,
});

/** The name a refusal gives the limit, in `extensions.limit`. */
export type LimitName = 'tokens' | 'depth' | 'aliases' | 'repeats' | 'flows' | 'cost';

/** What an operation asks for, as the limits count it. */
export interface OperationMeasure {
  depth: number;
  aliases: number;
  flows: number;
  cost: number;
}

/**
 * How many document texts `checkSource` remembers as passed before it forgets them all, and the
 * longest it remembers (a longer one is parsed again each time): 8 MB of texts at most.
 */
const PASSED_SOURCES = 1_024;
const PASSED_SOURCE_CHARS = 8_192;

/** The arguments that bound the size of a list field. */
const SIZE_ARGUMENTS = ['limit', 'first', 'last'];

/**
 * Checks client operations against the limits. One per Coordinator: it knows the filter fields of
 * the connections config (`Query.orderHistory`, `Mutation.requestRefund`, …) and keeps the measure
 * of each validated document it has seen, so a repeated operation is measured once.
 */
export class OperationLimitsChecker {
  readonly limits: Readonly<OperationLimits>;
  private readonly measures = new WeakMap<DocumentNode, Map<string, OperationMeasure>>();
  private readonly passed = new Set<string>();

  constructor(
    limits: Partial<OperationLimits> = {},
    /** The root fields that run a filter, as `<root type>.<field>`. */
    private readonly filterFields: ReadonlySet<string> = new Set(),
  ) {
    this.limits = { ...DEFAULT_OPERATION_LIMITS, ...limits };
  }

  /** The refusal of a document with too many tokens, counted without parsing it. */
  checkTokens(source: string): DomainError | undefined {
    const tokens = countTokens(source);
    return tokens > this.limits.maxTokens ? limitError('tokens', this.limits.maxTokens, tokens) : undefined;
  }

  /**
   * `checkBeforeValidation` for a document's text, before Apollo Server parses and validates it (the
   * HTTP server calls it: Apollo turns an error thrown by its hooks before validation into a 500).
   * Texts that passed are remembered (PASSED_SOURCES), so a repeated operation costs a lookup.
   */
  checkSource(source: string, operationName?: string): DomainError | undefined {
    const key = `${operationName ?? ''}\n${source}`;
    if (this.passed.has(key)) return undefined;
    let document: DocumentNode;
    try {
      document = parse(source, { noLocation: true });
    } catch {
      // Apollo Server answers it with the parse error.
      return undefined;
    }
    const refusal = this.checkBeforeValidation(document, operationName);
    if (!refusal && key.length <= PASSED_SOURCE_CHARS) {
      if (this.passed.size >= PASSED_SOURCES) this.passed.clear();
      this.passed.add(key);
    }
    return refusal;
  }

  /**
   * The refusal of a parsed document, before it is validated, whose operation selects one response
   * name more often in one selection set than validation should be made to compare.
   */
  checkBeforeValidation(document: DocumentNode, operationName?: string | null): DomainError | undefined {
    const operation = getOperationAST(document, operationName);
    if (!operation) return undefined;
    const repeats = repeatedSelections(document, operation);
    const { maxRepeatedSelections } = this.limits;
    return repeats > maxRepeatedSelections
      ? limitError('repeats', maxRepeatedSelections, repeats)
      : undefined;
  }

  /** The refusal of a validated operation that asks for more than the limits allow. */
  checkOperation(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Readonly<Record<string, unknown>> | undefined,
  ): DomainError | undefined {
    const measure = this.measure(schema, document, operation, variables);
    const { maxDepth, maxAliases, maxFlows, maxCost } = this.limits;
    if (measure.depth > maxDepth) return limitError('depth', maxDepth, measure.depth);
    if (measure.aliases > maxAliases) return limitError('aliases', maxAliases, measure.aliases);
    if (measure.flows > maxFlows) return limitError('flows', maxFlows, measure.flows);
    if (measure.cost > maxCost) return limitError('cost', maxCost, measure.cost);
    return undefined;
  }

  measure(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Readonly<Record<string, unknown>> | undefined,
  ): OperationMeasure {
    const key = operation.name?.value ?? '';
    const known = this.measures.get(document)?.get(key);
    if (known) return known;
    const { measure, variableSized } = measureOperation(schema, document, operation, variables, {
      defaultListSize: this.limits.defaultListSize,
      filterFields: this.filterFields,
    });
    // A list sized by a variable costs what the variable says: measured again on every request.
    if (!variableSized) {
      let byOperation = this.measures.get(document);
      if (!byOperation) this.measures.set(document, (byOperation = new Map()));
      byOperation.set(key, measure);
    }
    return measure;
  }

  /**
   * Applies the limits to the operations Apollo Server runs for clients (HTTP, and queries and
   * mutations sent over the WebSocket), after validation and before execution. Operations marked
   * `internal` (the flow engine's Action calls, whose documents come from the connections config) pass.
   */
  plugin(): ApolloServerPlugin<GatewayContext> {
    return {
      requestDidStart: async ({ contextValue }) => {
        if (contextValue.internal) return undefined;
        return {
          didResolveOperation: async ({ schema, document, operation, request }) => {
            // Without an operation there is nothing to measure: the executor answers BAD_REQUEST.
            if (!operation) return;
            const refusal = this.checkOperation(schema, document, operation, request.variables);
            if (refusal) throw withHttpStatus(refusal);
          },
        };
      },
    };
  }
}

/** A limit's refusal as Apollo Server answers an error thrown by a hook: with the status it carries, then dropped. */
function withHttpStatus(refusal: DomainError): DomainError {
  const { code, ...details } = refusal.extensions;
  return new DomainError(code as ErrorCode, refusal.message, {
    ...details,
    http: { status: httpStatusOf(ErrorCode.OPERATION_LIMIT_EXCEEDED) },
  });
}

function limitError(limit: LimitName, maximum: number, value: number): DomainError {
  const what: Record<LimitName, string> = {
    tokens: `has ${value} tokens`,
    depth: `nests fields ${value} deep`,
    aliases: `has ${value} aliases`,
    repeats: `selects one field ${value} times in one selection set`,
    flows: `runs ${value} flows`,
    cost: `costs ${value}`,
  };
  return new DomainError(
    ErrorCode.OPERATION_LIMIT_EXCEEDED,
    `The operation ${what[limit]}; the limit is ${maximum} (${limit})`,
    { limit, maximum, value },
  );
}

/** The tokens of `source` as graphql-js's parser counts them for `maxTokens` (comments excluded). */
export function countTokens(source: string): number {
  const lexer = new Lexer(new Source(source));
  let count = 0;
  try {
    while (lexer.advance().kind !== TokenKind.EOF) count += 1;
  } catch {
    // A syntax error: the parser reports it; the tokens before it are what was sent.
  }
  return count;
}

interface Measured {
  depth: number;
  aliases: number;
  cost: number;
}

/**
 * Measures one operation of a validated document in a single pass: each fragment is measured once
 * and its measure reused wherever it is spread (a fragment spread twice in each of ten nested
 * fragments counts 2^10 times, without being walked 2^10 times). Introspection (`__schema`, `__type`)
 * is not measured: Apollo Sandbox needs it in development, and production disables it.
 */
export function measureOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  requestVariables: Readonly<Record<string, unknown>> | undefined,
  options: { defaultListSize: number; filterFields: ReadonlySet<string> },
): { measure: OperationMeasure; variableSized: boolean } {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions)
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  const variables = variablesWithDefaults(operation, requestVariables);
  const fragmentMeasures = new Map<string, Measured>();
  let variableSized = false;

  const listSize = (node: FieldNode, field: GraphQLField<unknown, unknown>): number => {
    for (const name of SIZE_ARGUMENTS) {
      const argument = node.arguments?.find((a) => a.name.value === name);
      if (argument) {
        if (argument.value.kind === Kind.VARIABLE) variableSized = true;
        const value = valueFromAST(argument.value, GraphQLInt, variables);
        if (typeof value === 'number') return Math.max(0, value);
      }
      const declared = field.args.find((a) => a.name === name);
      if (typeof declared?.defaultValue === 'number') return Math.max(0, declared.defaultValue);
    }
    return options.defaultListSize;
  };

  const fieldCost = (node: FieldNode, field: GraphQLField<unknown, unknown>, child: Measured): number => {
    const named = getNamedType(field.type);
    let cost = (isCompositeType(named) ? 1 : 0) + child.cost;
    for (let type: GraphQLOutputType = field.type; ;) {
      const nullable = getNullableType(type);
      if (!isListType(nullable)) break;
      cost *= listSize(node, field);
      type = nullable.ofType as GraphQLOutputType;
    }
    return cost;
  };

  const selection = (parent: GraphQLCompositeType, set: SelectionSetNode | undefined): Measured => {
    const total: Measured = { depth: 0, aliases: 0, cost: 0 };
    if (!set) return total;
    const add = (m: Measured) => {
      total.depth = Math.max(total.depth, m.depth);
      total.aliases += m.aliases;
      total.cost += m.cost;
    };
    for (const node of set.selections) {
      switch (node.kind) {
        case Kind.FIELD: {
          const name = node.name.value;
          if (name === '__schema' || name === '__type') continue;
          const field = fieldOf(parent, name);
          const named = field && getNamedType(field.type);
          const child =
            named && isCompositeType(named)
              ? selection(named, node.selectionSet)
              : { depth: 0, aliases: 0, cost: 0 };
          add({
            depth: 1 + child.depth,
            aliases: (node.alias ? 1 : 0) + child.aliases,
            cost: field ? fieldCost(node, field, child) : 0,
          });
          break;
        }
        case Kind.INLINE_FRAGMENT: {
          const type = node.typeCondition ? schema.getType(node.typeCondition.name.value) : parent;
          add(selection(type && isCompositeType(type) ? type : parent, node.selectionSet));
          break;
        }
        case Kind.FRAGMENT_SPREAD: {
          const name = node.name.value;
          let measured = fragmentMeasures.get(name);
          if (!measured) {
            // Empty while it is being measured: a cycle (which validation rejects) cannot recurse forever.
            fragmentMeasures.set(name, { depth: 0, aliases: 0, cost: 0 });
            const fragment = fragments.get(name);
            const type = fragment && schema.getType(fragment.typeCondition.name.value);
            measured =
              fragment && type && isCompositeType(type)
                ? selection(type, fragment.selectionSet)
                : { depth: 0, aliases: 0, cost: 0 };
            fragmentMeasures.set(name, measured);
          }
          add(measured);
          break;
        }
      }
    }
    return total;
  };

  const root = schema.getRootType(operation.operation);
  const measured = root ? selection(root, operation.selectionSet) : { depth: 0, aliases: 0, cost: 0 };
  const flows = root
    ? countFilterFields(root.name, operation.selectionSet, fragments, options.filterFields)
    : 0;
  return { measure: { ...measured, flows }, variableSized };
}

function fieldOf(parent: GraphQLCompositeType, name: string): GraphQLField<unknown, unknown> | undefined {
  return isObjectType(parent) || isInterfaceType(parent) ? parent.getFields()[name] : undefined;
}

/** The root fields (through fragments on the root type, each alias counted) that run a filter. */
function countFilterFields(
  rootName: string,
  operation: SelectionSetNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
  filterFields: ReadonlySet<string>,
): number {
  const perFragment = new Map<string, number>();
  const count = (set: SelectionSetNode): number => {
    let total = 0;
    for (const node of set.selections) {
      if (node.kind === Kind.FIELD) {
        if (filterFields.has(`${rootName}.${node.name.value}`)) total += 1;
      } else if (node.kind === Kind.INLINE_FRAGMENT) total += count(node.selectionSet);
      else {
        const name = node.name.value;
        let counted = perFragment.get(name);
        if (counted === undefined) {
          // 0 while it is being counted: a cycle (which validation rejects) cannot recurse forever.
          perFragment.set(name, 0);
          const fragment = fragments.get(name);
          perFragment.set(name, (counted = fragment ? count(fragment.selectionSet) : 0));
        }
        total += counted;
      }
    }
    return total;
  };
  return count(operation);
}

/** The request's variables, with the operation's declared defaults for those it does not give. */
function variablesWithDefaults(
  operation: OperationDefinitionNode,
  given: Readonly<Record<string, unknown>> | undefined,
): Record<string, unknown> {
  const variables: Record<string, unknown> = { ...(given ?? {}) };
  for (const definition of operation.variableDefinitions ?? []) {
    const name = definition.variable.name.value;
    if (variables[name] === undefined && definition.defaultValue)
      variables[name] = valueFromAST(definition.defaultValue, GraphQLInt);
  }
  return variables;
}
