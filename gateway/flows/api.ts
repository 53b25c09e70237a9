import { buildSubgraphSchema } from '@apollo/subgraph';
import {
  getNamedType,
  GraphQLScalarType,
  isEnumType,
  isInputObjectType,
  isObjectType,
  isScalarType,
  isSpecifiedScalarType,
  Kind,
  parse,
  parseType,
  printType,
  typeFromAST,
  responsePathAsArray,
  GraphQLError,
  type GraphQLNamedType,
  type GraphQLResolveInfo,
  type GraphQLSchema,
  type GraphQLType,
  type ValueNode,
} from 'graphql';
import { valueAt } from '../connections/flow-data.js';
import { FLOW_RECORD_FIELD, resultFields, resultTypeName } from '../connections/result.js';
import { filterField, type Connections } from '../connections/schema.js';
import { clipped, DomainError, ErrorCode, isErrorCode } from '../errors.js';
import { requireStaff, type ActionContext, type Plugin } from '@commerce-coordinator/plugin-sdk';
import type { EventFeed, FeedEvent } from '../events/types.js';
import type { Logger } from '../log.js';
import { deadLetterId, findDeadLetters } from '../signals/dead-letters.js';
import type { DeadLetter, SignalBus } from '../signals/types.js';
import type { FlowEngine } from './engine.js';
import type { OperatorAction, OperatorLog } from './operator-log.js';
import { OperatorActions } from './operators.js';
import { checkStorableArguments } from './input.js';
import { flowFieldsOf } from './selection.js';
import type { FlowRead, FlowRunWithSteps, FlowStore, OutboxSignal } from './store.js';
import { StepStatus } from './status.js';
import { mapAsyncIterable } from '../subscriptions/map-iterable.js';

/** The name of the Coordinator's own subgraph in rover.yaml. */
export const COORDINATOR_SUBGRAPH = 'coordinator';

const BASE_SDL = /* GraphQL */ `
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key", "@shareable"])

  "Any JSON value: flow inputs and outputs, signal payloads."
  scalar JSON

  enum FlowStatus {
    RUNNING
    COMPLETED
    HALTED
    FAILED
    COMPENSATED
  }
  enum FlowKind {
    FILTER
    RECEIVER
  }
  "Lifecycle of one step of a flow."
  enum StepStatus {
    RUNNING
    COMPLETED
    HALTED
    FAILED
    "Not run: its condition (when) did not hold, or it failed and the filter continues without it."
    SKIPPED
    "Completed, then undone by its compensation after a later step failed."
    COMPENSATED
  }

  "One run of a filter pipeline, or of a signal receiver, as recorded."
  type FlowRun {
    id: ID!
    kind: FlowKind!
    "The filter's name, or the signal's for a receiver run."
    name: String!
    receiver: String
    status: FlowStatus!
    idempotencyKey: String
    "The verified caller whose request started the flow (kind, username or service); null if anonymous."
    startedBy: JSON
    orderId: String
    "The flow's input (staff and Services only: FORBIDDEN for learners)."
    input: JSON
    "The accumulated data when the flow ended (staff and Services only: FORBIDDEN for learners)."
    output: JSON
    error: FlowError
    "Index of the step that halted the pipeline."
    haltedAt: Int
    "Runs of this flow: more than 1 after recovery or redelivery."
    attempt: Int!
    startedAt: String!
    finishedAt: String
    steps: [FlowStep!]!
    "The signals the flow emitted (its outbox rows), oldest first (staff and Services only)."
    signals: [Signal!]!
    "What operators did to this flow, newest first (staff and Services only)."
    operatorActions: [OperatorAction!]!
  }

  type FlowError {
    code: String!
    message: String!
    details: JSON
  }

  "One Action call of a flow."
  type FlowStep {
    index: Int!
    action: String!
    status: StepStatus!
    "What the Action was called with (staff and Services only: FORBIDDEN for learners)."
    input: JSON
    "What the Action returned (staff and Services only: FORBIDDEN for learners)."
    output: JSON
    "The subgraph (Plugin) that served the Action."
    implementation: String
    "The Transition-to-Plugin flags that chose the Implementation."
    flagDecisions: [FlagDecision!]!
    "Sent to the Service; the same for every attempt."
    idempotencyKey: String!
    attempt: Int!
    error: FlowError
    startedAt: String!
    finishedAt: String
    "For a compensation step: the index of the step it undoes."
    compensates: Int
  }

  type FlagDecision {
    flag: String!
    value: Boolean!
    reason: String!
  }

  "A signal that a receiver failed for good: delivered again by replayDeadLetters."
  type DeadLetter {
    "<receiver>/<entry id>: what replayDeadLetters takes."
    id: ID!
    receiver: String!
    signalId: ID!
    signal: String!
    payload: JSON!
    attempts: Int!
    error: FlowError!
    deadAt: String!
    "False for a stream entry that was not a valid signal: there is nothing to deliver again."
    replayable: Boolean!
  }

  "A signal, from the outbox."
  type Signal {
    id: ID!
    name: String!
    payload: JSON!
    "flow:<id> or plugin:<name>"
    source: String!
    "The flow that emitted it, when one did."
    flowId: ID
    createdAt: String!
    "When the outbox handed it to the bus; null while it waits (the bus unreachable)."
    publishedAt: String
    "Each receiver of the signal (as configured, or with a run of it), with its run and dead letter."
    receivers: [SignalReceiver!]!
  }

  type SignalReceiver {
    receiver: String!
    "Its run for this signal, if it started."
    run: FlowRun
    "Its dead letter of this signal, if it failed for good (null too where the bus is not readable)."
    deadLetter: DeadLetter
  }

  "What an operator did to a flow or a signal: who, when, why, and what came of it."
  type OperatorAction {
    id: ID!
    "RETRY_FLOW, CANCEL_FLOW, REPLAY_DEAD_LETTERS or REDELIVER_SIGNAL"
    action: String!
    "What it acted on: the flow id, the signal id and receiver, the receiver, signal or dead-letter ids."
    target: String!
    "The verified principal who did it."
    actor: JSON!
    reason: String!
    "When it was asked for (ISO 8601)."
    at: String!
    "RUNNING, DONE, REFUSED (nothing changed: outcome has the code and message) or FAILED"
    status: String!
    "What it did (the flow's end, the replayed count), or why it was refused."
    outcome: JSON
    finishedAt: String
  }

  type FlowEvent {
    "Pass back as 'after' to resume from here."
    cursor: String!
    "STEP_STARTED, STEP_FINISHED, FLOW_STARTED or FLOW_FINISHED."
    type: String!
    flowId: ID!
    name: String!
    stepIndex: Int
    action: String
    status: String
    time: String!
    data: JSON
  }

  type SignalEvent {
    cursor: String!
    id: ID!
    name: String!
    payload: JSON!
    source: String!
    time: String!
  }

  type Query {
    flow(id: ID!): FlowRun
    "Newest first. By order, learner (username or LMS user id: the flow's caller or its input's), filter or signal name, status, and a time window (ISO 8601: from inclusive, to exclusive)."
    flows(
      orderId: String
      learner: String
      name: String
      status: FlowStatus
      from: String
      to: String
      limit: Int = 20
      before: String
    ): [FlowRun!]!
    "Dead letters of every receiver, or of one receiver or one signal; newest first."
    deadLetters(receiver: String, signal: String, limit: Int = 100): [DeadLetter!]!
    "A signal (from the outbox), with each of its receivers' runs and dead letters."
    signal(id: ID!): Signal
    "What operators did, newest first; of one flow, or all."
    operatorActions(flowId: ID, limit: Int = 50): [OperatorAction!]!
  }

  type Mutation {
    "Delivers dead letters again, each to its receiver only: all of a receiver's, all of a signal's, or those named (what is given must all hold); returns how many."
    replayDeadLetters(receiver: String, signal: String, ids: [ID!], reason: String!): Int!
    "Runs a FAILED or COMPENSATED filter flow again from its first step not done (steps done keep their records and idempotency keys); answers the flow as it ended again."
    retryFlow(id: ID!, reason: String!): FlowRun!
    "Stops a RUNNING flow that is stuck: the process running it is fenced off, what ran is compensated, and the flow ends COMPENSATED (or FAILED when nothing or not everything could be undone), its error FLOW_CANCELLED with who and why."
    cancelFlow(id: ID!, reason: String!): FlowRun!
    "Delivers one signal to one receiver again (e.g. one whose run failed for good); a receiver whose run completed is refused (CONFLICT): it runs once per signal."
    redeliverSignal(signalId: ID!, receiver: String!, reason: String!): Boolean!
  }

  type Subscription {
    "Flow events; all flows, one flow, or one filter/signal name."
    flowEvents(flowId: ID, name: String, after: String): FlowEvent!
    "Signals as they are published, by name."
    signals(name: String!, after: String): SignalEvent!
  }
`;

/**
 * The SDL of the Coordinator subgraph: flow records, dead letters, subscriptions, and one mutation per
 * filter, taking the filter's input type and returning its typed result beside the flow record. The
 * Plugins' types they use are copied from the plugins' supergraph so the subgraph is self-contained:
 * input types, enums and scalars as they are, object types as the shared value types they are in their
 * Plugin (`@shareable` there and here; composition checks that both definitions agree).
 */
export function coordinatorTypeDefs(connections: Connections, pluginsSchema: GraphQLSchema): string {
  const copied = new Map<string, GraphQLNamedType>();
  const copy = (type: GraphQLNamedType) => {
    if (copied.has(type.name) || (isScalarType(type) && isSpecifiedScalarType(type))) return;
    copied.set(type.name, type);
    const fields = isInputObjectType(type) || isObjectType(type) ? Object.values(type.getFields()) : [];
    for (const f of fields) copy(getNamedType(f.type as GraphQLType) as GraphQLNamedType);
  };
  const fields = { Mutation: [] as string[], Query: [] as string[] };
  const resultTypes: string[] = [];
  for (const [name, filter] of Object.entries(connections.filters)) {
    const type = pluginsSchema.getType(filter.input);
    if (type) copy(type);
    const typeName = resultTypeName(filter);
    const declared = resultFields(filter).map((field) => {
      const type = typeFromAST(pluginsSchema, parseType(field.type));
      if (type) copy(getNamedType(type));
      return `  ${field.name}: ${field.type}`;
    });
    resultTypes.push(
      `"What the filter '${name}' gives its caller, beside its flow record."\ntype ${typeName} {\n${declared.join('\n')}${declared.length ? '\n' : ''}  "The flow's record (its data and steps' data are for staff and Services only)."\n  ${FLOW_RECORD_FIELD}: FlowRun!\n}\n`,
    );
    const description = filter.description ?? `Runs the filter '${name}' as a recorded Purchase Flow.`;
    const { operation, name: field } = filterField(filter);
    fields[operation].push(
      `  ${JSON.stringify(description)}\n  ${field}(input: ${filter.input}!, "Runs once per key: a repeat returns the recorded result." idempotencyKey: String): ${typeName}!`,
    );
  }
  const copiedSdl = [...copied.values()]
    .map((t) =>
      isObjectType(t)
        ? printType(t).replace(/^(type \w+)/, '$1 @shareable')
        : isInputObjectType(t) || isEnumType(t) || isScalarType(t)
          ? printType(t)
          : undefined,
    )
    .filter((sdl) => sdl !== undefined)
    .join('\n\n');
  const filterFields = (['Query', 'Mutation'] as const)
    .filter((operation) => fields[operation].length)
    .map((operation) => `\nextend type ${operation} {\n${fields[operation].join('\n')}\n}\n`)
    .join('');
  const entity = connections.orderEntity
    ? `\n"Adds to the order its Purchase Flows and receiver runs."\ntype ${connections.orderEntity} @key(fields: "id") {\n  id: ID!\n  "The flows about this order, newest first (staff and Services only)."\n  flows: [FlowRun!]!\n}\n`
    : '';
  // The source is indented for Prettier; the generated file is not.
  const base = BASE_SDL.replace(/^ {2}/gm, '').trim();
  const results = resultTypes.length ? `\n${resultTypes.join('\n')}` : '';
  return `${base}\n${copiedSdl ? `\n${copiedSdl}\n` : ''}${entity}${results}${filterFields}`;
}

const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  serialize: (v) => v,
  parseValue: (v) => v,
  parseLiteral: function literal(ast: ValueNode, variables?: Record<string, unknown> | null): unknown {
    switch (ast.kind) {
      case Kind.STRING:
      case Kind.BOOLEAN:
        return ast.value;
      case Kind.INT:
      case Kind.FLOAT:
        return Number(ast.value);
      case Kind.NULL:
        return null;
      case Kind.LIST:
        return ast.values.map((v) => literal(v, variables));
      case Kind.OBJECT:
        return Object.fromEntries(ast.fields.map((f) => [f.name.value, literal(f.value, variables)]));
      case Kind.VARIABLE:
        return variables?.[ast.name.value];
      default:
        return undefined;
    }
  },
});

/**
 * A PARTIAL_RESULT error for every step the flow skipped after it failed (`onError: continue`): the
 * flow completed without that step's part, and its answer must not read as whole.
 */
function skippedStepErrors(flow: FlowRunWithSteps, path: ReadonlyArray<string | number>): GraphQLError[] {
  return flow.steps
    .filter((step) => step.status === StepStatus.SKIPPED && step.errorCode !== null)
    .map(
      (step) =>
        new GraphQLError(
          `Step ${step.index} (${step.action}) failed and was skipped: the answer lacks its part; its cause is on the flow record`,
          {
            path,
            extensions: {
              code: ErrorCode.PARTIAL_RESULT,
              flowId: flow.id,
              stepIndex: step.index,
              action: step.action,
            },
          },
        ),
    );
}

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
/** A flow's or a step's failure as the record holds it (FlowError). */
interface RecordedError {
  code: string;
  message: string;
  details: unknown;
}

const FAILURE_FOR_LEARNERS = 'A Service this flow called failed; the cause is on the record for staff';

/** A domain error's details without what only the gateway's operators read (its Plugin, its stack). */
function withoutInternals(details: unknown): unknown {
  if (!details || typeof details !== 'object' || Array.isArray(details)) return details ?? null;
  const { serviceName: _plugin, stacktrace: _stack, ...rest } = details as Record<string, unknown>;
  return rest;
}

const errorOf = (r: { errorCode: string | null; errorMessage: string | null; failure?: unknown }) =>
  r.errorCode
    ? {
        code: r.errorCode,
        message: r.errorMessage ?? '',
        details: (r.failure as { details?: unknown } | null)?.details ?? null,
      }
    : null;

/** A flow record in the shape of the FlowRun type; the parts a read left out stay absent. */
export const flowToGraphQL = (flow: FlowRead) => ({
  ...flow,
  startedBy: flow.principal ?? null,
  kind: flow.kind.toUpperCase(),
  status: flow.status.toUpperCase(),
  error: errorOf(flow),
  startedAt: iso(flow.startedAt),
  finishedAt: iso(flow.finishedAt),
  steps: flow.steps?.map((s) => ({
    ...s,
    status: s.status.toUpperCase(),
    flagDecisions: (s.flagDecisions as unknown[] | null) ?? [],
    error: errorOf(s),
    startedAt: iso(s.startedAt),
    finishedAt: iso(s.finishedAt),
  })),
});

/** An outbox row in the shape of the Signal type (its receivers are resolved on their own). */
const signalToGraphQL = (signal: OutboxSignal) => ({
  id: signal.id,
  name: signal.name,
  payload: signal.payload,
  source: signal.source,
  flowId: signal.flowId,
  createdAt: iso(signal.createdAt),
  publishedAt: iso(signal.publishedAt),
});

const deadLetterToGraphQL = (d: DeadLetter) => ({
  id: deadLetterId(d),
  receiver: d.receiver,
  // An entry that was not a valid signal is dead-lettered with no envelope.
  signalId: d.envelope?.id ?? d.id,
  signal: d.envelope?.name ?? '(invalid entry)',
  payload: d.envelope?.payload ?? {},
  attempts: d.attempts,
  error: { code: d.failure.type, message: d.failure.message, details: d.failure.details ?? null },
  deadAt: d.deadAt,
  replayable: d.envelope !== null,
});

const operatorActionToGraphQL = (a: OperatorAction) => ({
  ...a,
  status: a.status.toUpperCase(),
  at: iso(a.at),
  finishedAt: iso(a.finishedAt),
});

/** An optional ISO 8601 time argument; BAD_USER_INPUT when it is not one. */
function isoArg(name: string, value: string | null | undefined): Date | undefined {
  if (value == null) return undefined;
  const time = new Date(value);
  if (Number.isNaN(time.getTime()))
    throw new DomainError(ErrorCode.BAD_USER_INPUT, `${name} must be an ISO-8601 time, got '${value}'`);
  return time;
}

export interface CoordinatorApiDeps {
  store: FlowStore;
  log: OperatorLog;
  /** Dead letters and replays; absent where the API only reads the database (the CLI without Redis). */
  bus?: SignalBus;
  /** Subscriptions' events; absent where nothing subscribes (the CLI). */
  feed?: EventFeed;
  /** Runs filters and operator actions; absent where the API only reads the database (the CLI). */
  engine?: FlowEngine;
  logger: Logger;
  /**
   * Flow records, dead letters and replays are for staff and Services only (they hold learners' data).
   * False only on a Coordinator without authentication (the core's tests).
   */
  guarded: boolean;
}

/** The Coordinator subgraph: a Plugin like any other, served in process. */
export function coordinatorPlugin(
  typeDefs: string,
  connections: Connections,
  deps: CoordinatorApiDeps,
): Plugin {
  const { store, log, bus, feed } = deps;
  const staffOnly = (ctx: ActionContext) => {
    if (deps.guarded) requireStaff(ctx.principal);
  };
  /**
   * A flow's data (its input, output, steps' data, signals, operator actions) holds learners' data and
   * every intermediate value: a learner reading the record of a flow they ran (a filter's `flow`) gets
   * its status and steps, never its data.
   */
  const recordData =
    <T, R>(read: (parent: T, ctx: ActionContext) => R) =>
    (parent: T, _: unknown, ctx: ActionContext) => {
      if (deps.guarded && ctx.principal?.kind === 'learner')
        throw new DomainError(ErrorCode.FORBIDDEN, "A flow's data is for staff and Services only");
      return read(parent, ctx);
    };
  /**
   * Why a flow or a step failed, as the learner who ran it may read it: a public domain error raised
   * for them as it is (less the gateway's own extensions), anything else only as a failure (what a
   * Service answered or a Plugin threw names URLs, bodies, code) — as the response's own errors are.
   */
  const learnersView = (error: RecordedError, ctx: ActionContext): RecordedError => {
    if (!deps.guarded || ctx.principal?.kind !== 'learner') return error;
    if (isErrorCode(error.code) && error.code !== ErrorCode.INTERNAL_SERVER_ERROR)
      return { ...error, details: withoutInternals(error.details) };
    return { code: ErrorCode.INTERNAL_SERVER_ERROR, message: FAILURE_FOR_LEARNERS, details: null };
  };
  const engine = () => {
    if (!deps.engine) throw new Error('This Coordinator API only reads the record: it runs no flows');
    return deps.engine;
  };
  const readBus = () => {
    if (!bus)
      throw new DomainError(
        ErrorCode.SERVICE_UNAVAILABLE,
        'Dead letters are on the signal bus, which this reader cannot reach (set REDIS_URL)',
      );
    return bus;
  };
  const feedOf = () => {
    if (!feed) throw new Error('This Coordinator API serves no subscriptions');
    return feed;
  };
  const operators =
    deps.engine && bus
      ? new OperatorActions({ engine: deps.engine, store, bus, log, connections, logger: deps.logger })
      : undefined;
  const operator = () => {
    if (!operators)
      throw new Error('This Coordinator API only reads the record: operators act on a running one');
    return operators;
  };
  /** Receivers of each signal, as configured. */
  const receiversOf = (signal: string) => connections.signals[signal]?.receivers.map((r) => r.name) ?? [];
  const filterResolvers = { Mutation: {} as Record<string, unknown>, Query: {} as Record<string, unknown> };
  for (const [name, filter] of Object.entries(connections.filters)) {
    const { operation, name: field } = filterField(filter);
    const declared = resultFields(filter);
    filterResolvers[operation][field] = async (
      _: unknown,
      args: { input: Record<string, unknown>; idempotencyKey?: string | null },
      ctx: ActionContext,
      info: GraphQLResolveInfo,
    ) => {
      // The engine decides who may run it (the filter's callers) before anything runs.
      const flow = await engine().runFilter(name, args.input, {
        idempotencyKey: args.idempotencyKey ?? undefined,
        principal: ctx.principal,
      });
      for (const error of skippedStepErrors(flow, responsePathAsArray(info.path))) ctx.partial(error);
      // Only what the filter declares leaves the flow; the rest stays on the record beside it.
      const result: Record<string, unknown> = { [FLOW_RECORD_FIELD]: flowToGraphQL(flow) };
      for (const { name, from } of declared) result[name] = valueAt(flow.output, from) ?? null;
      return result;
    };
  }
  const orderEntity = connections.orderEntity && {
    [connections.orderEntity]: {
      __resolveReference: (ref: { id: string }) => ({ id: ref.id }),
      // One query for all the orders of a request, however many a page lists (one per distinct
      // selection: each loads only what it shows).
      flows: async ({ id }: { id: string }, _: unknown, ctx: ActionContext, info: GraphQLResolveInfo) => {
        staffOnly(ctx);
        const fields = flowFieldsOf(info);
        const flows = await ctx
          .loader(`coordinator:flows-by-order:${JSON.stringify(fields)}`, async (ids: readonly string[]) => {
            const byOrder = await store.byOrders(ids, fields);
            return ids.map((orderId) => byOrder.get(orderId) ?? []);
          })
          .load(id);
        return flows.map(flowToGraphQL);
      },
    },
  };
  /** A receiver's dead letters, read once per request however many signals a query shows. */
  const deadLettersOf = (ctx: ActionContext, receiver: string) =>
    ctx
      .loader('coordinator:dead-letters-by-receiver', async (receivers: readonly string[]) => {
        const all = await readBus().deadLetters();
        return receivers.map((r) => all.filter((letter) => letter.receiver === r));
      })
      .load(receiver);
  const resolvers = {
    ...orderEntity,
    JSON: JSONScalar,
    FlowError: {
      code: (error: RecordedError, _: unknown, ctx: ActionContext) => learnersView(error, ctx).code,
      message: (error: RecordedError, _: unknown, ctx: ActionContext) => learnersView(error, ctx).message,
      details: (error: RecordedError, _: unknown, ctx: ActionContext) => learnersView(error, ctx).details,
    },
    FlowStep: {
      input: recordData((step: { input: unknown }) => step.input),
      output: recordData((step: { output: unknown }) => step.output),
    },
    FlowRun: {
      input: recordData((flow: { input: unknown }) => flow.input),
      output: recordData((flow: { output: unknown }) => flow.output),
      signals: recordData(async ({ id }: { id: string }, ctx: ActionContext) => {
        const signals = await ctx
          .loader('coordinator:signals-by-flow', async (ids: readonly string[]) => {
            const byFlow = await store.signalsOf(ids);
            return ids.map((flowId) => byFlow.get(flowId) ?? []);
          })
          .load(id);
        return signals.map(signalToGraphQL);
      }),
      operatorActions: recordData(async ({ id }: { id: string }, ctx: ActionContext) => {
        const actions = await ctx
          .loader('coordinator:operator-actions-by-flow', async (ids: readonly string[]) => {
            const byFlow = await log.byFlows(ids);
            return ids.map((flowId) => byFlow.get(flowId) ?? []);
          })
          .load(id);
        return actions.map(operatorActionToGraphQL);
      }),
    },
    Signal: {
      receivers: async (signal: { id: string; name: string }, _: unknown, ctx: ActionContext) => {
        const runs = await ctx
          .loader('coordinator:runs-by-signal', async (ids: readonly string[]) => {
            const bySignal = await store.receiverRunsOf(ids);
            return ids.map((signalId) => bySignal.get(signalId) ?? []);
          })
          .load(signal.id);
        const names = [...new Set([...receiversOf(signal.name), ...runs.map((r) => r.receiver!)])];
        return Promise.all(
          names.map(async (receiver) => {
            const run = runs.find((r) => r.receiver === receiver);
            const letter = bus
              ? (await deadLettersOf(ctx, receiver)).find((l) => l.envelope?.id === signal.id)
              : undefined;
            return {
              receiver,
              run: run ? flowToGraphQL(run) : null,
              deadLetter: letter ? deadLetterToGraphQL(letter) : null,
            };
          }),
        );
      },
    },
    Query: {
      ...filterResolvers.Query,
      flow: async (_: unknown, { id }: { id: string }, ctx: ActionContext, info: GraphQLResolveInfo) => {
        staffOnly(ctx);
        if (!UUID.test(id)) throw new DomainError(ErrorCode.BAD_USER_INPUT, `'${id}' is not a flow id`);
        const flow = await store.flow(id, flowFieldsOf(info));
        return flow && flowToGraphQL(flow);
      },
      flows: async (
        _: unknown,
        args: {
          orderId?: string;
          learner?: string;
          name?: string;
          status?: string;
          from?: string;
          to?: string;
          limit?: number;
          before?: string;
        },
        ctx: ActionContext,
        info: GraphQLResolveInfo,
      ) => {
        staffOnly(ctx);
        checkStorableArguments({ orderId: args.orderId, learner: args.learner, name: args.name });
        const limit = args.limit ?? 20;
        if (limit < 1 || limit > 200)
          throw new DomainError(ErrorCode.BAD_USER_INPUT, 'limit must be between 1 and 200');
        const learner = args.learner?.trim();
        if (args.learner != null && !learner)
          throw new DomainError(ErrorCode.BAD_USER_INPUT, 'learner must not be empty');
        const flows = await store.list(
          {
            orderId: args.orderId ?? undefined,
            name: args.name ?? undefined,
            status: args.status?.toLowerCase(),
            learner,
            from: isoArg('from', args.from),
            to: isoArg('to', args.to),
            before: isoArg('before', args.before),
            limit,
          },
          flowFieldsOf(info),
        );
        return flows.map(flowToGraphQL);
      },
      deadLetters: async (
        _: unknown,
        args: { receiver?: string | null; signal?: string | null; limit?: number },
        ctx: ActionContext,
      ) => {
        staffOnly(ctx);
        checkStorableArguments({ receiver: args.receiver, signal: args.signal });
        const limit = args.limit ?? 100;
        if (limit < 1 || limit > 1000)
          throw new DomainError(ErrorCode.BAD_USER_INPUT, 'limit must be between 1 and 1000');
        const letters = await findDeadLetters(readBus(), {
          receiver: args.receiver ?? undefined,
          signal: args.signal ?? undefined,
        });
        return letters.slice(0, limit).map(deadLetterToGraphQL);
      },
      signal: async (_: unknown, { id }: { id: string }, ctx: ActionContext) => {
        staffOnly(ctx);
        if (!UUID.test(id)) throw new DomainError(ErrorCode.BAD_USER_INPUT, `'${id}' is not a signal id`);
        const signal = await store.signal(id);
        return signal && signalToGraphQL(signal);
      },
      operatorActions: async (
        _: unknown,
        args: { flowId?: string | null; limit?: number },
        ctx: ActionContext,
      ) => {
        staffOnly(ctx);
        const limit = args.limit ?? 50;
        if (limit < 1 || limit > 500)
          throw new DomainError(ErrorCode.BAD_USER_INPUT, 'limit must be between 1 and 500');
        if (args.flowId != null && !UUID.test(args.flowId))
          throw new DomainError(ErrorCode.BAD_USER_INPUT, `'${args.flowId}' is not a flow id`);
        const actions = await log.list({ flowId: args.flowId ?? undefined, limit });
        return actions.map(operatorActionToGraphQL);
      },
    },
    Mutation: {
      ...filterResolvers.Mutation,
      replayDeadLetters: (
        _: unknown,
        args: { receiver?: string | null; signal?: string | null; ids?: string[] | null; reason: string },
        ctx: ActionContext,
      ) => {
        staffOnly(ctx);
        return operator().replayDeadLetters(
          ctx.principal,
          {
            receiver: args.receiver ?? undefined,
            signal: args.signal ?? undefined,
            ids: args.ids ?? undefined,
          },
          args.reason,
        );
      },
      retryFlow: async (_: unknown, args: { id: string; reason: string }, ctx: ActionContext) => {
        staffOnly(ctx);
        return flowToGraphQL(await operator().retryFlow(ctx.principal, args.id, args.reason));
      },
      cancelFlow: async (_: unknown, args: { id: string; reason: string }, ctx: ActionContext) => {
        staffOnly(ctx);
        return flowToGraphQL(await operator().cancelFlow(ctx.principal, args.id, args.reason));
      },
      redeliverSignal: (
        _: unknown,
        args: { signalId: string; receiver: string; reason: string },
        ctx: ActionContext,
      ) => {
        staffOnly(ctx);
        return operator().redeliverSignal(ctx.principal, args.signalId, args.receiver, args.reason);
      },
    },
    Subscription: {
      flowEvents: {
        subscribe: (
          _: unknown,
          args: { flowId?: string; name?: string; after?: string },
          ctx: { signal?: AbortSignal },
        ) =>
          mapAsyncIterable(feedOf().subscribe(['flows'], { after: args.after, signal: ctx?.signal }), (e) =>
            (!args.flowId || e.data.flowId === args.flowId) && (!args.name || e.data.name === args.name)
              ? flowEventPayload(e)
              : undefined,
          ),
      },
      signals: {
        subscribe: (_: unknown, args: { name: string; after?: string }, ctx: { signal?: AbortSignal }) => {
          // A name no signal has would wait for ever: a typo must not fail silently.
          if (!connections.signals[args.name])
            throw new DomainError(
              ErrorCode.BAD_USER_INPUT,
              `No signal '${clipped(args.name)}' is configured`,
            );
          return mapAsyncIterable(
            feedOf().subscribe([`signal:${args.name}`], { after: args.after, signal: ctx?.signal }),
            signalPayload,
          );
        },
      },
    },
  };
  const schema = buildSubgraphSchema({ typeDefs: parse(typeDefs), resolvers: resolvers as never });
  // Not through definePlugin: its callers are checked by its resolvers (flow records are staff-only)
  // and by the engine (a filter's callers), also on a Coordinator that runs without authentication.
  return {
    name: COORDINATOR_SUBGRAPH,
    typeDefs: parse(typeDefs),
    resolvers: resolvers as never,
    schema,
    access: {},
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * One payload per feed event, whichever subscription reads it: subscribers then share its execution
 * (subscriptions/shared-execution.ts).
 */
function payloadPerEvent<T extends object>(make: (e: FeedEvent) => T): (e: FeedEvent) => T {
  const payloads = new WeakMap<FeedEvent, T>();
  return (e) => {
    let payload = payloads.get(e);
    if (!payload) payloads.set(e, (payload = make(e)));
    return payload;
  };
}
const flowEventPayload = payloadPerEvent((e) => ({
  flowEvents: { ...e.data, cursor: e.cursor, type: e.type, time: e.time, data: e.data },
}));
const signalPayload = payloadPerEvent((e) => ({ signals: { ...e.data, cursor: e.cursor, time: e.time } }));
