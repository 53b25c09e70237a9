import { readFileSync } from 'node:fs';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/resolverMap.js';
import DataLoader from 'dataloader';
import { parse, type DocumentNode, type GraphQLSchema } from 'graphql';

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
  /** Queues a signal; it is committed with the step's record, never before the step succeeded. */
  emit(signal: string, payload: Record<string, unknown>): void;
  /**
   * A per-request DataLoader: every `load` of one subgraph request is batched into one `batch` call,
   * e.g. to resolve a page of entity references with one Service request.
   */
  loader<K, V>(
    name: string,
    batch: (keys: readonly K[]) => Promise<ReadonlyArray<V | Error>>,
  ): DataLoader<K, V>;
}

export interface PluginDefinition {
  /** The subgraph name: the same as its key in rover.yaml. */
  name: string;
  /** The subgraph SDL (the file rover.yaml names). */
  typeDefs: DocumentNode;
  resolvers: GraphQLResolverMap<ActionContext>;
}

export interface Plugin extends PluginDefinition {
  schema: GraphQLSchema;
}

/** Declares a Plugin; `schemaFile` is read once, so the gateway and Rover compose the same SDL. */
export function definePlugin(definition: {
  name: string;
  schemaFile: string | URL;
  resolvers: GraphQLResolverMap<ActionContext>;
}): Plugin {
  const typeDefs = parse(readFileSync(definition.schemaFile, 'utf8'));
  const schema = buildSubgraphSchema({
    typeDefs,
    resolvers: definition.resolvers as GraphQLResolverMap<unknown>,
  });
  return { name: definition.name, typeDefs, resolvers: definition.resolvers, schema };
}

/** The headers that carry a step's identity from the gateway to a subgraph. */
export const StepHeader = {
  idempotencyKey: 'idempotency-key',
  flowId: 'x-coordinator-flow-id',
  stepIndex: 'x-coordinator-step',
  attempt: 'x-coordinator-attempt',
} as const;

export interface EmittedSignal {
  signal: string;
  payload: Record<string, unknown>;
}

/** The response extension in which a subgraph returns the signals its resolvers emitted. */
export const SIGNALS_EXTENSION = 'coordinatorSignals';

/**
 * Builds the ActionContext of one subgraph request from its headers. `emitted` collects the signals,
 * returned to the gateway in the response's extensions.
 */
export function createActionContext(
  header: (name: string) => string | undefined | null,
  emitted: EmittedSignal[],
): ActionContext {
  const loaders = new Map<string, DataLoader<unknown, unknown>>();
  const stepIndex = header(StepHeader.stepIndex);
  return {
    idempotencyKey: header(StepHeader.idempotencyKey) ?? undefined,
    flowId: header(StepHeader.flowId) ?? undefined,
    stepIndex: stepIndex ? Number(stepIndex) : undefined,
    attempt: Number(header(StepHeader.attempt) ?? 1),
    emit(signal, payload) {
      emitted.push({ signal, payload });
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
