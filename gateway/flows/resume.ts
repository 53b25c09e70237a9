import type { CompiledConnections, CompiledFilter } from '../connections/compile.js';
import type { RetryUnknownOutcomePolicy } from '../connections/schema.js';
import { ErrorCode, domainCodeOf, toFailure, type Failure } from '../errors.js';
import type { Logger } from '../log.js';
import { toMs } from '../retry-policy.js';
import { COORDINATOR_PRINCIPAL, type FlowEngine } from './engine.js';
import { OperatorActionKind, OperatorActionStatus, type OperatorLog } from './operator-log.js';
import { failedActionStatus, retryOutcome } from './operators.js';
import { FlowStatus, StepStatus } from './status.js';
import type { FlowRun, FlowStore } from './store.js';

/**
 * Retries, as the Coordinator itself, the flows that ended FAILED on a step that may have acted (a
 * mutation that failed transiently to its last attempt: the money may have moved), per their filter's
 * `retryUnknownOutcome` schedule. Each retry is an operator's retryFlow (engine.retry: the same claim
 * of the order, fencing and step keys), recorded in the operator log with the Coordinator as actor.
 * Several gateways may sweep at once: a retry names the attempt it was due for, so of two sweeps that
 * found a flow due, one reopens it and the other is refused (someone else took it).
 */

/** A filter's `retryUnknownOutcome` in milliseconds. */
export interface ResumePolicy {
  initialIntervalMs: number;
  maximumIntervalMs: number;
  maximumAttempts: number;
}

export function compileResumePolicy(policy: RetryUnknownOutcomePolicy): ResumePolicy {
  const initialIntervalMs = toMs(policy.initialInterval);
  return {
    initialIntervalMs,
    maximumIntervalMs: toMs(policy.maximumInterval ?? initialIntervalMs * 100),
    maximumAttempts: policy.maximumAttempts,
  };
}

/**
 * When a flow that ended at `finishedAt` after `attempt` attempts is due again: `initialInterval`
 * after its first, doubling up to `maximumInterval`; never once its attempts reach `maximumAttempts`.
 * FlowStore.unknownOutcomesDue computes the same in SQL.
 */
export function resumeDueAt(
  policy: ResumePolicy,
  flow: { finishedAt: Date | null; attempt: number },
): Date | undefined {
  if (!flow.finishedAt || flow.attempt >= policy.maximumAttempts) return undefined;
  const waitMs = Math.min(policy.initialIntervalMs * 2 ** (flow.attempt - 1), policy.maximumIntervalMs);
  return new Date(flow.finishedAt.getTime() + waitMs);
}

/** The step whose outcome a FAILED flow does not know (a mutation, failed but not refused), if any. */
export function unknownOutcomeStep(
  flow: {
    status: string;
    failure: unknown;
    steps: ReadonlyArray<{
      index: number;
      status: string;
      compensates: number | null;
      action?: string;
      failure?: unknown;
    }>;
  },
  filter: Pick<CompiledFilter, 'steps'>,
): { index: number; action: string } | undefined {
  // A cancel, a recovery that failed the flow and a refusal are failures that say what happened.
  if (flow.status !== FlowStatus.FAILED || (flow.failure as Failure | null)?.nonRetryable !== false)
    return undefined;
  const failed = flow.steps.findLast((s) => s.status === StepStatus.FAILED && s.compensates === null);
  const step = failed && filter.steps.find((s) => s.index === failed.index);
  if (!failed || !step?.action || step.action.operation !== 'mutation') return undefined;
  if ((failed.failure as Failure | null)?.nonRetryable !== false) return undefined;
  return { index: failed.index, action: step.action.name };
}

export interface FlowResumer {
  stop(): void;
  /** One sweep: starts the retry of every flow due (in the background) and resolves. */
  sweep(): Promise<void>;
}

export function startFlowResumer(options: {
  store: FlowStore;
  engine: FlowEngine;
  log: OperatorLog;
  /** The configuration now running (a reload may change the filters' policies). */
  connections: () => CompiledConnections;
  /** How often due flows are looked for. @default 30 s */
  sweepMs?: number;
  logger: Logger;
}): FlowResumer {
  const { store, engine, log, logger } = options;
  /** Flows this process is retrying (or waiting for their order to retry): never started twice. */
  const resuming = new Set<string>();
  let sweeping: Promise<void> | undefined;

  const resume = async (due: FlowRun, filter: CompiledFilter, policy: ResumePolicy) => {
    const record = await store.flow(due.id);
    const step = record && record.attempt === due.attempt && unknownOutcomeStep(record, filter);
    if (!step) return;
    const reason = `the outcome of step ${step.index} (${step.action}) was unknown`;
    let entry: string | undefined;
    try {
      const retried = await engine.retry(due.id, {
        attempt: due.attempt,
        reopened: async (flow) => {
          logger.info(
            { flowId: due.id, flow: due.name, step: step.index, action: step.action, attempt: flow.attempt },
            `retrying a flow: ${reason}`,
          );
          entry = await log.start({
            action: OperatorActionKind.RETRY_FLOW,
            target: due.id,
            flowId: due.id,
            actor: COORDINATOR_PRINCIPAL,
            reason,
          });
        },
      });
      await log.finish(entry!, OperatorActionStatus.DONE, retryOutcome(retried));
      const { flow } = retried;
      if (unknownOutcomeStep(flow, filter) && !resumeDueAt(policy, flow))
        logger.warn(
          { flowId: flow.id, flow: flow.name, attempt: flow.attempt },
          'flow left FAILED: its retries of an unknown outcome are spent (retryFlow finishes it)',
        );
    } catch (error) {
      // Not reopened: another process retried it, an operator did, it ended otherwise, or another flow
      // of its order runs (the next sweep tries again).
      if (entry === undefined) {
        logger.debug({ flowId: due.id, code: domainCodeOf(error) }, 'flow not retried: not due here');
        return;
      }
      await log.finish(entry, failedActionStatus(error), {
        code: domainCodeOf(error) ?? ErrorCode.INTERNAL_SERVER_ERROR,
        message: toFailure(error).message,
      });
      throw error;
    }
  };

  const sweep = () =>
    (sweeping ??= (async () => {
      const policies = new Map<string, { filter: CompiledFilter; policy: ResumePolicy }>();
      for (const filter of options.connections().filters.values()) {
        const policy = filter.definition.retryUnknownOutcome;
        if (policy) policies.set(filter.name, { filter, policy: compileResumePolicy(policy) });
      }
      if (!policies.size) return;
      const due = await store.unknownOutcomesDue(
        [...policies.values()].map(({ filter, policy }) => ({
          name: filter.name,
          mutations: filter.steps.filter((s) => s.action.operation === 'mutation').map((s) => s.index),
          ...policy,
        })),
        COORDINATOR_PRINCIPAL.subject,
      );
      const running = new Set(engine.activeFlows());
      for (const flow of due) {
        if (resuming.has(flow.id) || running.has(flow.id)) continue;
        const { filter, policy } = policies.get(flow.name)!;
        resuming.add(flow.id);
        // In the background: one flow waiting for its order must not hold up the others.
        resume(flow, filter, policy)
          .catch((err: unknown) => logger.error({ err, flowId: flow.id }, 'retry of a flow failed'))
          .finally(() => resuming.delete(flow.id));
      }
    })()
      .catch((err: unknown) => logger.error({ err }, 'sweep for flows to retry failed'))
      .finally(() => {
        sweeping = undefined;
      }));

  const sweeper = setInterval(() => void sweep(), options.sweepMs ?? 30_000);
  void sweep();
  return {
    sweep,
    stop() {
      clearInterval(sweeper);
    },
  };
}
