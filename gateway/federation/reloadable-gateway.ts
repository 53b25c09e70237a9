import type {
  GatewayExecutionResult,
  GatewayGraphQLRequestContext,
  GatewayInterface,
  GatewaySchemaLoadOrUpdateCallback,
} from '@apollo/server-gateway-interface';
import type { GraphQLSchema } from 'graphql';
import type { FederatedExecutor } from './executor.js';

/**
 * The gateway Apollo Server runs on, whose executor (a supergraph and its data sources) can be replaced
 * while it serves. Apollo Server validates each request against the schema current when it arrived
 * and keeps that schema on the request; the request then runs on the executor of that schema, so a
 * request in flight during a swap finishes on the configuration it started with.
 */
export class ReloadableGateway implements GatewayInterface {
  private current: FederatedExecutor;
  private readonly bySchema = new WeakMap<GraphQLSchema, FederatedExecutor>();
  private readonly listeners = new Set<GatewaySchemaLoadOrUpdateCallback>();

  constructor(initial: FederatedExecutor) {
    this.current = initial;
    this.bySchema.set(initial.schema, initial);
  }

  get executor(): FederatedExecutor {
    return this.current;
  }

  /** From now on, new requests run on `next`; those already validated keep theirs. */
  swap(next: FederatedExecutor): void {
    this.bySchema.set(next.schema, next);
    this.current = next;
    for (const listener of this.listeners)
      listener({ apiSchema: next.schema, coreSupergraphSdl: next.supergraphSdl });
  }

  async load(): Promise<{ executor: (rc: GatewayGraphQLRequestContext) => Promise<GatewayExecutionResult> }> {
    return {
      executor: (requestContext) =>
        (this.bySchema.get(requestContext.schema) ?? this.current).execute(requestContext),
    };
  }

  onSchemaLoadOrUpdate(callback: GatewaySchemaLoadOrUpdateCallback) {
    this.listeners.add(callback);
    callback({ apiSchema: this.current.schema, coreSupergraphSdl: this.current.supergraphSdl });
    return () => void this.listeners.delete(callback);
  }

  async stop() {}
}
