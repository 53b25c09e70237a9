import {
  RemoteGraphQLDataSource,
  type GraphQLDataSource,
  type GraphQLDataSourceProcessOptions,
} from '@apollo/gateway';
import type { GatewayGraphQLResponse } from '@apollo/server-gateway-interface';
import { execute, GraphQLError, parse, validate, type DocumentNode } from 'graphql';
import { ErrorCode } from '../errors.js';
import {
  CALL_ASSERTION_HEADER,
  type ActionCall,
  type CallSigner,
} from '@commerce-coordinator/plugin-sdk/call-assertion';
import {
  createActionContext,
  SIGNALS_EXTENSION,
  withPartialErrors,
  type EmittedSignal,
  type Plugin,
  type Principal,
} from '@commerce-coordinator/plugin-sdk';
import type { FlagDecision, GatewayContext } from './context.js';
import { createSubgraphFetcher } from './subgraph-fetcher.js';

/** Evaluates a flag for a caller, with the reason, so the decision can be recorded on the step. */
export type FlagEvaluator = (
  flag: string,
  principal: Principal | undefined,
  fallback: boolean,
) => Promise<FlagDecision>;

/** Who calls and for which step: the gateway's context only, which no client header reaches. */
const callOf = (context: GatewayContext | undefined): ActionCall => ({
  principal: context?.principal,
  step: context?.step,
});

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
    const emitted: EmittedSignal[] = [];
    const context = options.context as GatewayContext | undefined;
    const { principal, step } = callOf(context);
    const evaluate = this.evaluate;
    // Transition-to-Coordinator flags an Action evaluates are recorded like the gateway's own decisions.
    const variation = evaluate
      ? async (flag: string, principal: Principal | undefined, fallback: boolean) => {
          const decision = await evaluate(flag, principal, fallback);
          context?.decisions.push(decision);
          return decision.value;
        }
      : undefined;
    const partial: GraphQLError[] = [];
    const result = withPartialErrors(
      await execute({
        schema: this.plugin.schema,
        document,
        variableValues: request.variables,
        operationName: request.operationName,
        contextValue: createActionContext({ principal, ...step }, emitted, variation, partial),
      }),
      partial,
    );
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

type Fetcher = RemoteGraphQLDataSource['fetcher'];

/**
 * Carries a call's identity from `willSendRequest` to the signing fetcher, which replaces it with the
 * signed assertion: only the fetcher sees the exact body bytes the assertion is bound to. It never
 * leaves the process.
 */
const UNSIGNED_CALL_HEADER = 'x-coordinator-unsigned-call';

export interface RemoteDataSourceOptions {
  /** The subgraph's routing_url. */
  url: string;
  /** The subgraph's name in rover.yaml: the audience of its calls' assertions. */
  name: string;
  /** Signs every call with the secret the subgraph verifies (SUBGRAPH_SIGNING_SECRET). */
  signer: CallSigner;
  /** Sends the signed request. @default the process's keep-alive pool */
  fetcher?: Fetcher;
}

/**
 * Calls a Plugin served as a remote subgraph: each call carries the gateway's signed assertion of its
 * caller, flow step, subgraph and body (and no bare step headers); the signals it emitted come back.
 */
export class RemoteDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  private readonly subgraph: string;

  constructor({ url, name, signer, fetcher = subgraphFetcher }: RemoteDataSourceOptions) {
    super({
      url,
      fetcher: async (target, init = {}) => {
        const headers = { ...(init.headers as Record<string, string> | undefined) };
        const unsigned = headers[UNSIGNED_CALL_HEADER];
        delete headers[UNSIGNED_CALL_HEADER];
        const call = unsigned
          ? (JSON.parse(Buffer.from(unsigned, 'base64url').toString('utf8')) as ActionCall)
          : {};
        headers[CALL_ASSERTION_HEADER] = signer.sign(call, name, init.body ?? '');
        return fetcher(target, { ...init, headers });
      },
    });
    this.subgraph = name;
  }

  override willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>) {
    const call = callOf(context as GatewayContext | undefined);
    request.http?.headers.set(UNSIGNED_CALL_HEADER, Buffer.from(JSON.stringify(call)).toString('base64url'));
  }

  /**
   * A subgraph answers 401 only when it refuses the gateway's own assertion (another secret, a clock
   * off by more than the leeway): the gateway's fault, not the caller's, who must not read it as
   * UNAUTHENTICATED. It becomes an internal error (retried in a flow, masked in production).
   */
  override async errorFromResponse(response: Awaited<ReturnType<Fetcher>>) {
    const error = await super.errorFromResponse(response);
    if (response.status !== 401) return error;
    const refusal = (error.extensions.response as { body?: { errors?: Array<{ message?: string }> } }).body
      ?.errors?.[0]?.message;
    return new GraphQLError(
      `Subgraph ${this.subgraph} refused the gateway's signed call${refusal ? ` (${refusal})` : ''}: check that both use the same SUBGRAPH_SIGNING_SECRET and that their clocks agree`,
      { extensions: { ...error.extensions, code: ErrorCode.INTERNAL_SERVER_ERROR } },
    );
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
