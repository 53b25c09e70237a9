import { readFileSync } from 'node:fs';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/resolverMap.js';
import DataLoader from 'dataloader';
import {
  defaultFieldResolver,
  isObjectType,
  parse,
  type DocumentNode,
  type GraphQLError,
  type GraphQLFieldResolver,
  type GraphQLSchema,
} from 'graphql';
import { ConfigError, DomainError, ErrorCode } from './errors.js';
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import type { Env } from './config.js';
import type { Principal } from './principal.js';

/**
 * What a Plugin's resolvers receive as context, the same whether the Plugin runs in the gateway's
 * process or as a remote subgraph.
 */
export interface ActionContext {
  /**
   * Send this to the Service with every call that changes something: it is derived from the flow and
   * step and stays the same across retries and crash recovery. Absent outside a flow.
   */
  readonly idempotencyKey?: string;
  readonly flowId?: string;
  readonly stepIndex?: number;
  /** 1 for the first attempt of the step. */
  readonly attempt: number;
  /** The verified caller (the flow's caller for a flow step), if any. */
  readonly principal?: Principal;
  /**
   * A flag's value for this request (Transition-to-Coordinator flags), in the context of the caller;
   * `defaultValue` when no flags are available (a remote subgraph without them).
   */
  variation(flag: string, defaultValue: boolean): Promise<boolean>;
  /** Queues a signal; it is committed with the step's record, never before the step succeeded. */
  emit(signal: string, payload: Record<string, unknown>): void;
  /**
   * Reports an error beside the data: the field still resolves, and the response carries this error
   * (give it the field's path) so that a partial answer is visible as one.
   */
  partial(error: GraphQLError): void;
  /**
   * A per-request DataLoader: every `load` of one subgraph request is batched into one `batch` call,
   * e.g. to resolve a page of entity references with one Service request.
   */
  loader<K, V>(
    name: string,
    batch: (keys: readonly K[]) => Promise<ReadonlyArray<V | Error>>,
  ): DataLoader<K, V>;
}

/** What the Coordinator offers a Plugin's routes and background work. */
export interface PluginRuntime {
  readonly logger: Logger;
  /**
   * Commits a signal to the outbox now. `id` identifies the event at its source (a webhook's event id):
   * publishing the same id again is a no-op and answers `duplicate: true`.
   */
  publish(
    signal: string,
    payload: Record<string, unknown>,
    options: { id: string },
  ): Promise<{ duplicate: boolean }>;
  /** Runs a filter as a recorded Purchase Flow, as its mutation would. */
  runFilter(
    name: string,
    input: Record<string, unknown>,
    options?: { idempotencyKey?: string; principal?: Principal },
  ): Promise<FilterResult>;
  /** A flag's value in the context of `principal`. */
  variation: Variation;
}

export interface FilterResult {
  flowId: string;
  /** As the FlowRun type spells it: COMPLETED, HALTED, FAILED, COMPENSATED (REJECTED: refused before it ran). */
  status: string;
  output: Record<string, unknown> | null;
  error?: { code: string; message: string };
}

/** A REST endpoint a Service calls (a webhook), served by the gateway at `path` exactly. */
export interface Route {
  method: 'GET' | 'POST';
  /**
   * The exact path, or one with parameters: a segment `:name` matches one non-empty segment, given
   * decoded as `request.params.name` (an exact path of another route wins over it).
   */
  path: string;
  /**
   * Other exact paths the route answers at, the same way: where a Service calls the system the
   * Coordinator replaces today, so it can move without changing its calls. `request.path` is `path`.
   */
  aliases?: readonly string[];
  handle(request: RouteRequest, runtime: PluginRuntime): Promise<RouteResponse>;
  /**
   * `service`: the Service proves who it is with its own scheme in `Authorization` (Pub/Sub's Google
   * OIDC token, say), which the route verifies itself; the gateway does not read it as a caller's JWT
   * (nor cookies), and `principal` is absent. @default 'coordinator'
   */
  authorization?: 'coordinator' | 'service';
}

export interface RouteRequest {
  method: string;
  /** The route's path as declared (its pattern, for a path with parameters). */
  path: string;
  /** The decoded `:name` segments of the path (the gateway always sets it; empty for an exact path). */
  params?: Readonly<Record<string, string>>;
  /** Lower-case names, as Node gives them. */
  headers: IncomingHttpHeaders;
  query: URLSearchParams;
  /** The query string exactly as sent, without the `?`: to pass it on unchanged. */
  rawQuery: string;
  /** The body exactly as received: signatures are computed over these bytes. */
  rawBody: Buffer;
  /** The caller, when the request carried a valid bearer JWT. */
  principal?: Principal;
}

export interface RouteResponse {
  status: number;
  /** Sent as JSON unless a string. */
  body?: unknown;
  headers?: Record<string, string>;
}

/** Who calls an Action from outside a flow. */
export type Caller = 'anonymous' | 'learner' | 'staff' | 'service';

/**
 * Who may call each of a Plugin's Actions (its Query and Mutation fields) directly, from outside a
 * flow: checked before the resolver runs, on the verified principal. A flow's steps are not checked
 * here: who may run a flow is its filter's `callers` in the connections config, decided before the
 * flow starts, so a step never fails FORBIDDEN after an earlier one changed a Service. Resolvers still
 * check what is the caller's own (a learner's orders). An Action only flows should run is listed with
 * the callers that operate the platform (`['staff', 'service']`), never learners; `[]` makes it
 * flow-only. Every Action must be listed: a forgotten one fails at start-up, not open.
 */
export type ActionAccess = Readonly<{
  Query?: Readonly<Record<string, readonly Caller[]>>;
  Mutation?: Readonly<Record<string, readonly Caller[]>>;
}>;

export interface PluginDefinition {
  /** The subgraph name: the same as its key in rover.yaml. */
  name: string;
  /** The subgraph SDL (the file rover.yaml names). */
  typeDefs: DocumentNode;
  resolvers: GraphQLResolverMap<ActionContext>;
  /** Who may call each Action directly; see ActionAccess. */
  access: ActionAccess;
  routes?: readonly Route[];
  /**
   * Background work while the Coordinator runs (e.g. consuming a Service's event bus); the function it
   * returns is awaited on shutdown, before the outbox is flushed.
   */
  start?(runtime: PluginRuntime): Promise<void | (() => Promise<void>)>;
  /**
   * The readers of the Plugin's settings (its config.ts functions), each throwing a ConfigError that
   * names what is missing or invalid. In production the Coordinator calls every one at start and
   * refuses to start on a problem; elsewhere they run when first needed. `cc config check` calls them.
   */
  config?: readonly ConfigReader[];
  /** How /readyz tells whether the Plugin's Service answers; see ServiceHealth. */
  health?: ServiceHealth;
}

/** Reads (and checks) some of a Plugin's settings from the environment. */
export type ConfigReader = (env: Env) => unknown;

/**
 * A cheap authenticated call to the Plugin's Service, as the real Service answers it: `check`
 * resolves when the Service answers, and throws (the reason) when it does not or is not configured.
 * /readyz runs it bounded by READINESS_TIMEOUT_MS.
 */
export interface ServiceHealth {
  /** The Service's name as /readyz reports it, e.g. `stripe`. */
  service: string;
  check(): Promise<void>;
}

export interface Plugin extends PluginDefinition {
  schema: GraphQLSchema;
}

/** Declares a Plugin; `schemaFile` is read once, so the gateway and Rover compose the same SDL. */
export function definePlugin(
  definition: Omit<PluginDefinition, 'typeDefs'> & { schemaFile: string | URL },
): Plugin {
  const typeDefs = parse(readFileSync(definition.schemaFile, 'utf8'));
  const schema = buildSubgraphSchema({
    typeDefs,
    resolvers: definition.resolvers as GraphQLResolverMap<unknown>,
  });
  guardActions(definition.name, schema, definition.access);
  const { schemaFile: _file, ...rest } = definition;
  return { ...rest, typeDefs, schema };
}

/** Federation's own root fields: entity resolution carries its own checks, per entity. */
const FEDERATION_FIELDS = new Set(['_entities', '_service']);

/**
 * Puts the access check in front of every Action's resolver. Throws, naming them, when an Action has
 * no entry or an entry names no Action: an Action nobody decided about must not be callable.
 */
function guardActions(plugin: string, schema: GraphQLSchema, access: ActionAccess): void {
  const problems: string[] = [];
  for (const operation of ['Query', 'Mutation'] as const) {
    const type = schema.getType(operation);
    const fields = isObjectType(type) ? type.getFields() : {};
    const declared = access[operation] ?? {};
    for (const name of Object.keys(declared))
      if (!fields[name])
        problems.push(`access.${operation}.${name} names no ${operation} field of the schema`);
    for (const field of Object.values(fields)) {
      if (FEDERATION_FIELDS.has(field.name)) continue;
      const callers = declared[field.name];
      if (!callers) {
        problems.push(`${operation}.${field.name} is not in access.${operation}: say who may call it`);
        continue;
      }
      const resolve: GraphQLFieldResolver<unknown, ActionContext> = field.resolve ?? defaultFieldResolver;
      field.resolve = (source, args, ctx: ActionContext, info) => {
        authorizeCall(field.name, callers, ctx);
        return unconfiguredAsUnavailable(plugin, () => resolve(source, args, ctx, info));
      };
    }
  }
  if (problems.length)
    throw new Error(
      `Plugin '${plugin}' does not declare who may call its Actions:\n  - ${problems.join('\n  - ')}`,
    );
}

/**
 * An Action whose Service has no settings cannot reach it: SERVICE_UNAVAILABLE, a public code, so its
 * flow fails saying so rather than skipping the step (`onError: continue` skips only errors without
 * a code) and answering as if the Service had no data.
 */
function unconfiguredAsUnavailable(plugin: string, run: () => unknown): unknown {
  const unavailable = (error: unknown): never => {
    if (!(error instanceof ConfigError)) throw error;
    throw new DomainError(
      ErrorCode.SERVICE_UNAVAILABLE,
      `The ${plugin} Plugin's Service is not configured: ${error.problems.join('; ')}`,
    );
  };
  try {
    const result = run();
    return result instanceof Promise ? result.catch(unavailable) : result;
  } catch (error) {
    return unavailable(error);
  }
}

const CALLERS: Record<Caller, string> = {
  anonymous: 'anyone',
  learner: 'learners',
  staff: 'staff',
  service: 'Services',
};
const named = (callers: readonly Caller[]) => callers.map((c) => CALLERS[c]).join(', ');

function authorizeCall(action: string, callers: readonly Caller[], ctx: ActionContext): void {
  // A flow's step: authorised as a whole when the flow started (its filter's callers).
  if (ctx.flowId) return;
  const caller: Caller = ctx.principal?.kind ?? 'anonymous';
  if (callers.includes(caller) || callers.includes('anonymous')) return;
  if (caller === 'anonymous')
    throw new DomainError(ErrorCode.UNAUTHENTICATED, `${action} needs a signed-in caller`);
  throw new DomainError(
    ErrorCode.FORBIDDEN,
    callers.length
      ? `${action} is for ${named(callers)} and the flows that run it, not for ${CALLERS[caller]} directly`
      : `${action} runs only as a step of a flow`,
  );
}

/** Evaluates a flag for the principal of a request; absent where no flags are configured. */
export type Variation = (
  flag: string,
  principal: Principal | undefined,
  defaultValue: boolean,
) => Promise<boolean>;

export interface EmittedSignal {
  signal: string;
  payload: Record<string, unknown>;
}

/** A subgraph's result with the errors its resolvers reported beside the data (`ActionContext.partial`). */
export function withPartialErrors<R extends { errors?: readonly GraphQLError[] }>(
  result: R,
  partial: readonly GraphQLError[],
): R {
  return partial.length ? { ...result, errors: [...(result.errors ?? []), ...partial] } : result;
}

/** The response extension in which a subgraph returns the signals its resolvers emitted. */
export const SIGNALS_EXTENSION = 'coordinatorSignals';

/** Who calls an Action and, for a flow step, which step: what an ActionContext is built from. */
export type ActionIdentity = Pick<ActionContext, 'principal' | 'flowId' | 'stepIndex' | 'idempotencyKey'> & {
  /** @default 1 */
  attempt?: number;
};

/**
 * Builds the ActionContext of one subgraph request. `identity` comes from the gateway's own context
 * in process, or from the verified assertion of a remote call (serveSubgraph), never from headers a
 * client could send. `emitted` collects the signals, returned to the gateway with the response;
 * `partial` the errors reported beside the data (see `withPartialErrors`).
 */
export function createActionContext(
  identity: ActionIdentity,
  emitted: EmittedSignal[],
  variation?: Variation,
  partial: GraphQLError[] = [],
): ActionContext {
  const loaders = new Map<string, DataLoader<unknown, unknown>>();
  const { principal } = identity;
  return {
    principal,
    variation: async (flag, defaultValue) =>
      variation ? variation(flag, principal, defaultValue) : defaultValue,
    idempotencyKey: identity.idempotencyKey,
    flowId: identity.flowId,
    stepIndex: identity.stepIndex,
    attempt: identity.attempt ?? 1,
    emit(signal, payload) {
      emitted.push({ signal, payload });
    },
    partial(error) {
      partial.push(error);
    },
    loader<K, V>(name: string, batch: (keys: readonly K[]) => Promise<ReadonlyArray<V | Error>>) {
      let loader = loaders.get(name);
      if (!loader) {
        loader = new DataLoader(batch as (keys: readonly unknown[]) => Promise<ReadonlyArray<unknown>>);
        loaders.set(name, loader);
      }
      return loader as DataLoader<K, V>;
    },
  };
}
