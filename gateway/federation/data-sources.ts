import {
  RemoteGraphQLDataSource,
  type GraphQLDataSource,
  type GraphQLDataSourceProcessOptions,
} from '@apollo/gateway';
import type { GatewayGraphQLResponse } from '@apollo/server-gateway-interface';
import { execute, parse, validate, type DocumentNode } from 'graphql';
import {
  createActionContext,
  SIGNALS_EXTENSION,
  StepHeader,
  type EmittedSignal,
  type Plugin,
} from '../sdk/plugin.js';
import type { Principal } from '../sdk/principal.js';
import { encodePrincipal } from '../sdk/principal.js';
import type { FlagDecision, GatewayContext } from './context.js';
import { createSubgraphFetcher } from './subgraph-fetcher.js';

/** Evaluates a flag for a caller, with the reason, so the decision can be recorded on the step. */
export type FlagEvaluator = (
  flag: string,
  principal: Principal | undefined,
  fallback: boolean,
) => Promise<FlagDecision>;

/** The headers that tell a subgraph who calls and which flow step it serves. */
export function stepHeaders(context: GatewayContext | undefined): Record<string, string> {
  const principal: Record<string, string> = context?.principal
    ? { [StepHeader.principal]: encodePrincipal(context.principal) }
    : {};
  const step = context?.step;
  if (!step) return principal;
  return {
    ...principal,
    [StepHeader.idempotencyKey]: step.idempotencyKey,
    [StepHeader.flowId]: step.flowId,
    [StepHeader.stepIndex]: String(step.stepIndex),
    [StepHeader.attempt]: String(step.attempt),
  };
}

/**
 * Runs a Plugin in the gateway's process: no HTTP hop, but the same ActionContext and the same signal
 * hand-back as a remote subgraph, so a Plugin behaves alike in both modes.
 */
export class InProcessDataSource implements GraphQLDataSource<GatewayContext> {
  // Subgraph operations come from query plans, so there are few distinct ones: parse each once.
  private readonly documents = new Map<string, DocumentNode>();

  constructor(
    private readonly plugin: Plugin,
    private readonly evaluate?: FlagEvaluator,
  ) {}

  async process(options: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<GatewayGraphQLResponse> {
    const { request } = options;
    const document = this.document(request.query!);
    if ('errors' in document) return { errors: document.errors };
    const headers = stepHeaders(options.context as GatewayContext | undefined);
    const emitted: EmittedSignal[] = [];
    const context = options.context as GatewayContext | undefined;
    const evaluate = this.evaluate;
    // Transition-to-Coordinator flags an Action evaluates are recorded like the gateway's own decisions.
    const variation = evaluate
      ? async (flag: string, principal: Principal | undefined, fallback: boolean) => {
          const decision = await evaluate(flag, principal, fallback);
          context?.decisions.push(decision);
          return decision.value;
        }
      : undefined;
    const result = await execute({
      schema: this.plugin.schema,
      document,
      variableValues: request.variables,
      operationName: request.operationName,
      contextValue: createActionContext((name) => headers[name], emitted, variation),
    });
    options.context?.emitted?.push(...emitted);
    return result as GatewayGraphQLResponse;
  }

  private document(query: string): DocumentNode | { errors: GatewayGraphQLResponse['errors'] } {
    let document = this.documents.get(query);
    if (!document) {
      document = parse(query);
      const errors = validate(this.plugin.schema, document);
      if (errors.length) return { errors };
      if (this.documents.size > 1000) this.documents.clear();
      this.documents.set(query, document);
    }
    return document;
  }
}

/**
 * One keep-alive pool for every subgraph fetch of the process. Before it: @apollo/gateway's default
 * fetcher (make-fetch-happen) spent a third of the gateway's CPU on features a subgraph fetch does not
 * use, then Node's fetch two fifths on WHATWG streams and signals (see subgraph-fetcher.ts).
 */
const subgraphFetcher = createSubgraphFetcher();

/** Calls a Plugin served as a remote subgraph, forwarding the step identity and collecting its signals. */
export class RemoteDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  constructor(config?: Partial<RemoteGraphQLDataSource<GatewayContext>>) {
    super({ fetcher: subgraphFetcher, ...config });
  }

  override willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>) {
    for (const [name, value] of Object.entries(stepHeaders(context as GatewayContext)))
      request.http?.headers.set(name, value);
  }

  override didReceiveResponse({
    response,
    context,
  }: {
    response: GatewayGraphQLResponse;
    context: GatewayContext;
  }): GatewayGraphQLResponse {
    const signals = response.extensions?.[SIGNALS_EXTENSION];
    if (Array.isArray(signals)) context.emitted?.push(...(signals as EmittedSignal[]));
    return response;
  }
}
