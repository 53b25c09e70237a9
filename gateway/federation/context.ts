import type { LDContext } from '@launchdarkly/node-server-sdk';
import type { EmittedSignal, Principal } from '@commerce-coordinator/plugin-sdk';

/** A flag evaluated while planning a request, as recorded on the flow step it served. */
export interface FlagDecision {
  flag: string;
  value: boolean;
  reason: string;
}

/** Identity of the flow step an operation runs for; sent to every subgraph the step reaches. */
export interface StepIdentity {
  flowId: string;
  stepIndex: number;
  attempt: number;
  idempotencyKey: string;
}

/**
 * The per-request context of the gateway. Apollo Server hands it to the executor and the executor to
 * every subgraph data source; the flow engine reads back what the request did.
 */
export interface GatewayContext {
  step?: StepIdentity;
  /**
   * Set on the Action calls the flow engine makes itself (their documents come from the connections
   * config): the rules for client operations (operation limits, error masking) skip them.
   */
  internal?: true;
  /** The verified caller; sent to every subgraph the request reaches. */
  principal?: Principal;
  /** When the caller's token expires (ms since the epoch): a websocket it opened is closed then. */
  credentialsExpireAt?: number;
  /** Who and what the request is about, for Transition-to-Plugin flags. */
  flagContext: LDContext;
  /** Filled by the executor: the flags that decided progressive overrides for this request. */
  decisions: FlagDecision[];
  /** Filled by the executor: the subgraphs that resolved the operation's root fields. */
  implementations: string[];
  /** Filled by the data sources: signals the subgraphs' resolvers emitted. */
  emitted: EmittedSignal[];
}

export function createGatewayContext(init: {
  flagContext: LDContext;
  step?: StepIdentity;
  principal?: Principal;
  credentialsExpireAt?: number;
}): GatewayContext {
  return { ...init, decisions: [], implementations: [], emitted: [] };
}
