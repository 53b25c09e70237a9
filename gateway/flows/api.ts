import { buildSubgraphSchema } from '@apollo/subgraph';
import {
  getNamedType,
  GraphQLScalarType,
  isEnumType,
  isInputObjectType,
  isScalarType,
  isSpecifiedScalarType,
  Kind,
  parse,
  printType,
  type GraphQLNamedType,
  type GraphQLResolveInfo,
  type GraphQLSchema,
  type ValueNode,
} from 'graphql';
import { filterField, type Connections } from '../connections/schema.js';
import { DomainError, ErrorCode } from '../errors.js';
import { requireStaff } from '../sdk/principal.js';
import type { EventFeed, FeedEvent } from '../events/types.js';
import type { ActionContext, Plugin } from '../sdk/plugin.js';
import type { SignalBus } from '../signals/types.js';
import type { FlowEngine } from './engine.js';
import { flowFieldsOf } from './selection.js';
import type { FlowRead, FlowStore } from './store.js';

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
    input: JSON!
    "The accumulated data when the flow ended."
    output: JSON
    error: FlowError
    "Index of the step that halted the pipeline."
    haltedAt: Int
    "Runs of this flow: more than 1 after recovery or redelivery."
    attempt: Int!
    startedAt: String!
    finishedAt: String
    steps: [FlowStep!]!
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
    status: String!
    input: JSON
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
  }

  type FlagDecision {
    flag: String!
    value: Boolean!
    reason: String!
  }

  type DeadLetter {
    id: ID!
    receiver: String!
    signalId: ID!
    signal: String!
    payload: JSON!
    attempts: Int!
    error: FlowError!
    deadAt: String!
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
    "Newest first. By order, by filter or signal name, by status (e.g. FAILED), or all recent."
    flows(orderId: String, name: String, status: FlowStatus, limit: Int = 20, before: String): [FlowRun!]!
    deadLetters(receiver: String!): [DeadLetter!]!
  }

  type Mutation {
    "Delivers dead-lettered signals to their receiver again; returns how many."
    replayDeadLetters(receiver: String!, ids: [ID!]): Int!
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
 * filter, taking the filter's input type — copied from the plugins' supergraph so the subgraph is
 * self-contained and composes with the plugins that define it.
 */
export function coordinatorTypeDefs(connections: Connections, pluginsSchema: GraphQLSchema): string {
  const copied = new Map<string, GraphQLNamedType>();
  const copy = (type: GraphQLNamedType) => {
    if (copied.has(type.name) || (isScalarType(type) && isSpecifiedScalarType(type))) return;
    copied.set(type.name, type);
    if (isInputObjectType(type)) for (const f of Object.values(type.getFields())) copy(getNamedType(f.type));
  };
  const fields = { Mutation: [] as string[], Query: [] as string[] };
  for (const [name, filter] of Object.entries(connections.filters)) {
    const type = pluginsSchema.getType(filter.input);
    if (type) copy(type);
    const description = filter.description ?? `Runs the filter '${name}' as a recorded Purchase Flow.`;
    const { operation, name: field } = filterField(filter);
    fields[operation].push(
      `  ${JSON.stringify(description)}\n  ${field}(input: ${filter.input}!, "Runs once per key: a repeat returns the recorded result." idempotencyKey: String): FlowRun!`,
    );
  }
  const copiedSdl = [...copied.values()]
    .filter((t) => isInputObjectType(t) || isEnumType(t) || isScalarType(t))
    .map((t) => printType(t))
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
  return `${base}\n${copiedSdl ? `\n${copiedSdl}\n` : ''}${entity}${filterFields}`;
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

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
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
    flagDecisions: (s.flagDecisions as unknown[] | null) ?? [],
    error: errorOf(s),
    startedAt: iso(s.startedAt),
    finishedAt: iso(s.finishedAt),
  })),
});

export interface CoordinatorApiDeps {
  engine: FlowEngine;
  store: FlowStore;
  bus: SignalBus;
  feed: EventFeed;
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
  const { engine, store, bus, feed } = deps;
  const staffOnly = (ctx: ActionContext) => {
    if (deps.guarded) requireStaff(ctx.principal);
  };
  const filterResolvers = { Mutation: {} as Record<string, unknown>, Query: {} as Record<string, unknown> };
  for (const [name, filter] of Object.entries(connections.filters)) {
    const { operation, name: field } = filterField(filter);
    filterResolvers[operation][field] = async (
      _: unknown,
      args: { input: Record<string, unknown>; idempotencyKey?: string | null },
      ctx: ActionContext,
    ) => {
      // The engine decides who may run it (the filter's callers) before anything runs.
      const flow = await engine.runFilter(name, args.input, {
        idempotencyKey: args.idempotencyKey ?? undefined,
        principal: ctx.principal,
      });
      return flowToGraphQL(flow);
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
  const resolvers = {
    ...orderEntity,
    JSON: JSONScalar,
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
        args: { orderId?: string; name?: string; status?: string; limit?: number; before?: string },
        ctx: ActionContext,
        info: GraphQLResolveInfo,
      ) => {
        staffOnly(ctx);
        const limit = args.limit ?? 20;
        if (limit < 1 || limit > 200)
          throw new DomainError(ErrorCode.BAD_USER_INPUT, 'limit must be between 1 and 200');
        const before = args.before ? new Date(args.before) : undefined;
        if (before && Number.isNaN(before.getTime())) {
          throw new DomainError(
            ErrorCode.BAD_USER_INPUT,
            `before must be an ISO-8601 time, got '${args.before}'`,
          );
        }
        const flows = await store.list(
          { ...args, status: args.status?.toLowerCase(), limit, before },
          flowFieldsOf(info),
        );
        return flows.map(flowToGraphQL);
      },
      deadLetters: async (_: unknown, { receiver }: { receiver: string }, ctx: ActionContext) => {
        staffOnly(ctx);
        return (await bus.deadLetters(receiver)).map((d) => ({
          id: d.id,
          receiver: d.receiver,
          // An entry that was not a valid signal is dead-lettered with no envelope.
          signalId: d.envelope?.id ?? d.id,
          signal: d.envelope?.name ?? '(invalid entry)',
          payload: d.envelope?.payload ?? {},
          attempts: d.attempts,
          error: { code: d.failure.type, message: d.failure.message, details: d.failure.details ?? null },
          deadAt: d.deadAt,
        }));
      },
    },
    Mutation: {
      ...filterResolvers.Mutation,
      replayDeadLetters: (
        _: unknown,
        { receiver, ids }: { receiver: string; ids?: string[] | null },
        ctx: ActionContext,
      ) => {
        staffOnly(ctx);
        return bus.replay(receiver, ids ?? undefined);
      },
    },
    Subscription: {
      flowEvents: {
        subscribe: (
          _: unknown,
          args: { flowId?: string; name?: string; after?: string },
          ctx: { signal?: AbortSignal },
        ) =>
          mapEvents(feed.subscribe(['flows'], { after: args.after, signal: ctx?.signal }), (e) =>
            (!args.flowId || e.data.flowId === args.flowId) && (!args.name || e.data.name === args.name)
              ? flowEventPayload(e)
              : undefined,
          ),
      },
      signals: {
        subscribe: (_: unknown, args: { name: string; after?: string }, ctx: { signal?: AbortSignal }) =>
          mapEvents(
            feed.subscribe([`signal:${args.name}`], { after: args.after, signal: ctx?.signal }),
            signalPayload,
          ),
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

async function* mapEvents<T>(
  events: AsyncIterable<FeedEvent>,
  map: (e: FeedEvent) => T | undefined,
): AsyncGenerator<T> {
  for await (const event of events) {
    const mapped = map(event);
    if (mapped !== undefined) yield mapped;
  }
}
