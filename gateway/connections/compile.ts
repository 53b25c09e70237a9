import { readFileSync } from 'node:fs';
import {
  GraphQLNonNull,
  GraphQLObjectType,
  GraphQLString,
  getNamedType,
  isEnumType,
  isInputObjectType,
  isLeafType,
  isObjectType,
  type GraphQLInputObjectType,
  type GraphQLSchema,
  type GraphQLType,
} from 'graphql';
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { ownFieldsOf, type FieldOwnership } from '../federation/field-ownership.js';
import { compileRetryPolicy, type CompiledRetryPolicy, type RetryPolicy } from '../retry-policy.js';
import { lookUp, type Provided } from './flow-data.js';
import { compileResult, type CompiledResult } from './result.js';
import { actionDocument, findAction, isCompatible, type ActionField } from './actions.js';
import {
  connectionsSchema,
  filterField,
  type Connections,
  type FilterDefinition,
  type ReceiverDefinition,
  type SignalDefinition,
  type StepDefinition,
} from './schema.js';

export interface CompiledAction {
  action: ActionField;
  /** The operation sent through the gateway. */
  document: string;
  /** `{ actionInput: dataField }` */
  mapping: Readonly<Record<string, string>>;
  /** The data field the whole result is stored under, instead of merging its fields. */
  as?: string;
}

export interface CompiledStep extends CompiledAction {
  index: number;
  when?: StepDefinition['when'];
  definition: StepDefinition;
  retry: CompiledRetryPolicy;
  compensate?: CompiledAction;
}

export interface CompiledEmit {
  signal: string;
  payloadType: GraphQLInputObjectType;
  mapping: Readonly<Record<string, string>>;
  /** Emitted when the flow completes, or when it fails (`failure` then in its data). */
  on: 'completed' | 'failed';
}

/** What a failed flow's `failure` holds for an `on: failed` signal's payload. */
const FLOW_FAILURE = new GraphQLObjectType({
  name: 'FlowFailure',
  fields: {
    type: { type: new GraphQLNonNull(GraphQLString) },
    message: { type: new GraphQLNonNull(GraphQLString) },
  },
});

export interface CompiledFilter {
  name: string;
  definition: FilterDefinition;
  inputType: GraphQLInputObjectType;
  steps: CompiledStep[];
  emits: CompiledEmit[];
  /** What the caller gets beside the flow record (`result:`), in declaration order. */
  result: CompiledResult;
}

export interface CompiledReceiver extends CompiledAction {
  name: string;
  signal: string;
  retry: CompiledRetryPolicy;
}

export interface CompiledSignal {
  name: string;
  definition: SignalDefinition;
  payloadType: GraphQLInputObjectType;
  receivers: CompiledReceiver[];
}

export interface CompiledConnections {
  file: string;
  filters: ReadonlyMap<string, CompiledFilter>;
  signals: ReadonlyMap<string, CompiledSignal>;
}

/** Reads and shape-checks the connections file; throws ConfigError naming the file and every problem. */
export function loadConnections(file: string): Connections {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [`cannot read the connections config: ${(error as Error).message}`]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, lineCounter });
  if (doc.errors.length) {
    // YAML reports a duplicate key by position only; name the entry instead.
    const syntax = doc.errors
      .filter((e) => e.code !== 'DUPLICATE_KEY')
      .map((e) => `is not valid YAML: ${e.message.split('\n')[0]!.replace(/:$/, '')}`);
    throw new ConfigError(file, [...syntax, ...duplicateKeys(doc.contents, lineCounter)]);
  }
  const parsed = connectionsSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    throw new ConfigError(
      file,
      parsed.error.issues.map((i) => `${formatPath(i.path)}: ${describeIssue(i)}`),
    );
  }
  return parsed.data;
}

/** zod's messages, in the words of a config file. */
function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'unrecognized_keys':
      return `unknown key ${issue.keys.map((k: string) => `'${k}'`).join(', ')}`;
    case 'invalid_type':
      return issue.input === undefined
        ? `is required (${issue.expected})`
        : `must be ${issue.expected}, not ${typeof issue.input}`;
    case 'invalid_value':
      return `must be ${issue.values.map((v: unknown) => JSON.stringify(v)).join(' or ')}`;
    default:
      return issue.message;
  }
}

/** Every key defined twice in one mapping, by its path: YAML would silently keep the last one. */
function duplicateKeys(root: unknown, lines: LineCounter): string[] {
  const problems: string[] = [];
  const walk = (node: unknown, path: string) => {
    if (isSeq(node)) node.items.forEach((item, i) => walk(item, `${path}[${i}]`));
    if (!isMap(node)) return;
    const seen = new Map<string, number>();
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const at = path ? `${path}.${key}` : key;
      const line = isScalar(pair.key) && pair.key.range ? lines.linePos(pair.key.range[0]).line : 0;
      const first = seen.get(key);
      if (first !== undefined) {
        problems.push(
          `${at}: defined twice (lines ${first} and ${line}) (duplicate name); rename or merge one of them`,
        );
      } else seen.set(key, line);
      walk(pair.value, at);
    }
  };
  walk(root, '');
  return problems;
}

const formatPath = (path: readonly PropertyKey[]) =>
  path.length
    ? path
        .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
        .join('')
        .slice(1)
    : '(root)';

const DEFAULT_STEP_RETRY: RetryPolicy = { maximumAttempts: 3 };
const DEFAULT_RECEIVER_RETRY: RetryPolicy = { maximumAttempts: 5 };

/**
 * Checks every filter and signal against the composed supergraph and compiles each Action call once.
 * The gateway refuses to start on any problem: a typo must never fail silently.
 */
export function compileConnections(
  connections: Connections,
  schema: GraphQLSchema,
  file: string,
  /** Which subgraphs define which fields: a step then selects only its Action's own fields. */
  ownership?: FieldOwnership,
): CompiledConnections {
  const problems: string[] = [];
  const filters = new Map<string, CompiledFilter>();
  const signals = new Map<string, CompiledSignal>();

  const inputObject = (name: string, where: string): GraphQLInputObjectType | undefined => {
    const type = schema.getType(name);
    if (!type) problems.push(`${where}: unknown input type '${name}' (not in the supergraph)`);
    else if (!isInputObjectType(type)) problems.push(`${where}: '${name}' is not an input object type`);
    else return type;
    return undefined;
  };

  const compileCall = (
    where: string,
    name: string,
    mapping: Record<string, string> = {},
    provided: Provided,
    providedBy: string,
    as?: string,
  ): CompiledAction | undefined => {
    const action = findAction(schema, name);
    if (typeof action === 'string') {
      problems.push(`${where}: ${action}`);
      return undefined;
    }
    if (!action.resultType && !as) {
      problems.push(
        `${where}: Action '${name}' returns ${String(action.field.type)}, whose fields cannot be merged into the flow; name the result with \`as: <field>\``,
      );
      return undefined;
    }
    const inputNames = new Set(action.inputs.map((i) => i.name));
    for (const key of Object.keys(mapping)) {
      if (!inputNames.has(key))
        problems.push(`${where}: input mapping names '${key}', which is not an input of Action '${name}'`);
    }
    for (const input of action.inputs) {
      const source = mapping[input.name] ?? input.name;
      const from = lookUp(provided, source);
      if (!from) {
        if (input.required) {
          problems.push(
            `${where}: required input '${input.name}' (${String(input.type)}) of Action '${name}' is provided by neither ${providedBy}`,
          );
        }
      } else if (!isCompatible(input.type, from.type)) {
        problems.push(
          `${where}: input '${input.name}' of Action '${name}' expects ${String(input.type)} but '${source}' is ${String(from.type)} (from ${from.origin})`,
        );
      }
    }
    const include = ownership ? ownFieldsOf(ownership, name) : undefined;
    return { action, document: actionDocument(action, schema, include), mapping, ...(as ? { as } : {}) };
  };

  const compileEmits = (
    filterName: string,
    filter: FilterDefinition,
    completed: Provided,
    flowInput: Provided,
  ): CompiledEmit[] =>
    (filter.emits ?? []).flatMap((emit, i) => {
      const where = `filters.${filterName}.emits[${i}]`;
      const on = emit.on ?? 'completed';
      // A flow fails at any step: only its input and its failure are sure to be there.
      const failure = { type: new GraphQLNonNull(FLOW_FAILURE), origin: 'the flow failure' };
      const provided: Provided = on === 'failed' ? new Map([...completed, ['failure', failure]]) : completed;
      const sure: Provided = on === 'failed' ? new Map([...flowInput, ['failure', failure]]) : completed;
      const signal = connections.signals[emit.signal];
      if (!signal) {
        problems.push(`${where}: unknown signal '${emit.signal}' (declare it under signals)`);
        return [];
      }
      const payloadType = schema.getType(signal.payload);
      if (!isInputObjectType(payloadType)) return []; // reported with the signal
      const mapping = emit.input ?? {};
      for (const field of Object.values(payloadType.getFields())) {
        const source = mapping[field.name] ?? field.name;
        const from = lookUp(provided, source);
        if (!from && isRequiredField(field.type)) {
          problems.push(
            `${where}: payload field '${field.name}' of '${emit.signal}' is provided by neither the flow input nor a step`,
          );
        } else if (from && isRequiredField(field.type) && !lookUp(sure, source)) {
          problems.push(
            `${where}: payload field '${field.name}' of '${emit.signal}' is required but '${source}' (from ${from.origin}) is absent when the flow fails before that step: make it nullable`,
          );
        } else if (from && !isCompatible(field.type, from.type)) {
          problems.push(
            `${where}: payload field '${field.name}' expects ${String(field.type)} but '${source}' is ${String(from.type)} (from ${from.origin})`,
          );
        }
      }
      return [{ signal: emit.signal, payloadType, mapping, on }];
    });

  const fieldNames = new Map<string, string>();
  const existing = {
    Mutation: schema.getMutationType()?.getFields() ?? {},
    Query: schema.getQueryType()?.getFields() ?? {},
  };
  for (const [name, filter] of Object.entries(connections.filters)) {
    const where = `filters.${name}`;
    const field = filterField(filter);
    const kind = field.operation.toLowerCase();
    const previous = fieldNames.get(`${field.operation}.${field.name}`);
    if (previous)
      problems.push(
        `${where}: ${kind} '${field.name}' is already used by filter '${previous}' (duplicate name)`,
      );
    fieldNames.set(`${field.operation}.${field.name}`, name);
    if (existing[field.operation][field.name]) {
      problems.push(
        `${where}: ${kind} '${field.name}' is already a ${field.operation} field of a plugin (duplicate name)`,
      );
    }
    const inputType = inputObject(filter.input, `${where}.input`);
    if (!inputType) continue;
    if (filter.orderKey && !inputType.getFields()[filter.orderKey]) {
      problems.push(`${where}.orderKey: '${filter.orderKey}' is not a field of ${inputType.name}`);
    }
    const provided: Provided = new Map(
      Object.values(inputType.getFields()).map((f) => [
        f.name,
        { type: f.type, origin: `flow input ${inputType.name}` },
      ]),
    );
    const flowInput: Provided = new Map(provided);
    const filterRetry = { ...DEFAULT_STEP_RETRY, ...filter.retry };
    const steps: CompiledStep[] = [];
    filter.steps.forEach((step, index) => {
      const stepWhere = `${where}.steps[${index}] (${step.action})`;
      const call = compileCall(
        stepWhere,
        step.action,
        step.input,
        provided,
        `the flow input (${inputType.name}) nor an earlier step`,
        step.as,
      );
      if (!call) return;
      if (step.when) checkWhen(`${stepWhere}.when`, step.when, provided, problems);
      let compensate: CompiledAction | undefined;
      if (step.compensate) {
        // Compensation runs after later steps, so it may use anything the step itself produced.
        const after: Provided = new Map(provided);
        addResultFields(after, call, index);
        compensate = compileCall(
          `${stepWhere}.compensate`,
          step.compensate,
          undefined,
          after,
          'the flow data up to this step',
        );
      }
      steps.push({
        ...call,
        index,
        definition: step,
        retry: compileRetryPolicy({ ...filterRetry, ...step.retry }),
        compensate,
        when: step.when,
      });
      // A conditional step's results count as provided: its alternatives are expected to provide the
      // same fields (they implement the same Action contract).
      addResultFields(provided, call, index);
    });
    const emits = compileEmits(name, filter, provided, flowInput);
    const result = compileResult(`${where}.result`, filter, schema, provided, problems);
    filters.set(name, { name, definition: filter, inputType, steps, emits, result });
  }

  const receiverNames = new Map<string, string>();
  for (const [name, signal] of Object.entries(connections.signals)) {
    const where = `signals.${name}`;
    const payloadType = inputObject(signal.payload, `${where}.payload`);
    if (!payloadType) continue;
    const provided: Provided = new Map(
      Object.values(payloadType.getFields()).map((f) => [
        f.name,
        { type: f.type, origin: `signal payload ${payloadType.name}` },
      ]),
    );
    const receivers = signal.receivers.flatMap((receiver: ReceiverDefinition, i) => {
      const rWhere = `${where}.receivers[${i}] (${receiver.name})`;
      const previous = receiverNames.get(receiver.name);
      if (previous)
        problems.push(
          `${rWhere}: receiver name '${receiver.name}' is already used by signal '${previous}' (duplicate name)`,
        );
      receiverNames.set(receiver.name, name);
      const call = compileCall(
        rWhere,
        receiver.action,
        receiver.input,
        provided,
        `the signal payload (${payloadType.name})`,
      );
      if (!call) return [];
      const retry = compileRetryPolicy({ ...DEFAULT_RECEIVER_RETRY, ...receiver.retry });
      return [{ ...call, name: receiver.name, signal: name, retry }];
    });
    signals.set(name, { name, definition: signal, payloadType, receivers });
  }

  if (connections.orderEntity) {
    const entity = schema.getType(connections.orderEntity);
    const id = isObjectType(entity) ? entity.getFields().id : undefined;
    if (!id || getNamedType(id.type).name !== 'ID')
      problems.push(
        `orderEntity: '${connections.orderEntity}' must be an object type of the supergraph with an 'id: ID!' key`,
      );
  }

  if (problems.length) throw new ConfigError(file, problems);
  return { file, filters, signals };
}

/** A `when` may test only fields the flow has by then, against values their type can hold. */
function checkWhen(
  where: string,
  when: NonNullable<StepDefinition['when']>,
  provided: Provided,
  problems: string[],
) {
  for (const [field, expected] of Object.entries(when)) {
    const from = lookUp(provided, field);
    if (!from) {
      problems.push(`${where}: '${field}' is provided by neither the flow input nor an earlier step`);
      continue;
    }
    const type = getNamedType(from.type);
    if (isEnumType(type)) {
      const values = new Set(type.getValues().map((v) => v.name));
      for (const value of [expected].flat())
        if (!values.has(String(value)))
          problems.push(
            `${where}: '${String(value)}' is not a value of ${type.name} (${field}, from ${from.origin})`,
          );
    } else if (!isLeafType(type)) {
      problems.push(`${where}: '${field}' is a ${type.name}, not a scalar or enum a condition can compare`);
    }
  }
}

function addResultFields(provided: Provided, { action, as }: CompiledAction, index: number) {
  if (as) {
    provided.set(as, { type: action.field.type, origin: `step ${index} (${action.name})` });
    return;
  }
  for (const field of Object.values(action.resultType?.getFields() ?? {})) {
    provided.set(field.name, { type: field.type, origin: `step ${index} (${action.name})` });
  }
}

const isRequiredField = (type: GraphQLType) => String(type).endsWith('!');
