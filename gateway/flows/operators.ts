import type { Connections } from '../connections/schema.js';
import { DomainError, ErrorCode, domainCodeOf, toFailure } from '../errors.js';
import type { Logger } from '../log.js';
import type { Principal } from '@commerce-coordinator/plugin-sdk';
import {
  deadLetterId,
  findDeadLetters,
  parseDeadLetterId,
  replayDeadLetters,
  type ReplaySelection,
} from '../signals/dead-letters.js';
import type { SignalBus, SignalEnvelope } from '../signals/types.js';
import type { FlowEngine } from './engine.js';
import { checkStorableArguments } from './input.js';
import {
  OperatorActionKind,
  OperatorActionStatus,
  type OperatorActionStart,
  type OperatorLog,
} from './operator-log.js';
import { FlowStatus } from './status.js';
import type { FlowRun, FlowRunWithSteps, FlowStore, OutboxSignal } from './store.js';

/** Characters of an operator's reason. */
export const REASON_MAX_LENGTH = 1_000;
/** Dead letters named in one replay. */
export const REPLAY_MAX_IDS = 1_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const badInput = (message: string) => new DomainError(ErrorCode.BAD_USER_INPUT, message);

/**
 * What operators do to flows and signals: retry a failed flow, cancel a stuck one, replay dead
 * letters, redeliver a signal to a receiver. Each is recorded (OperatorLog) before it acts — who (the
 * verified principal), why (the reason, required), what it acted on — and completed with what came of
 * it: done with its result, refused with the public code and message its caller got, or failed.
 * Input that names nothing valid (a malformed id, a blank reason) is BAD_USER_INPUT and not recorded.
 */
export class OperatorActions {
  /** Receiver name → the signal it receives, as configured. */
  private readonly receivers: ReadonlyMap<string, string>;

  constructor(
    private readonly deps: {
      engine: FlowEngine;
      store: FlowStore;
      bus: SignalBus;
      log: OperatorLog;
      connections: Connections;
      logger: Logger;
    },
  ) {
    this.receivers = new Map(
      Object.entries(deps.connections.signals).flatMap(([signal, s]) =>
        s.receivers.map((r) => [r.name, signal] as const),
      ),
    );
  }

  async retryFlow(actor: Principal | undefined, id: string, reason: string): Promise<FlowRunWithSteps> {
    checkFlowId(id);
    return this.perform(
      { action: OperatorActionKind.RETRY_FLOW, target: id, flowId: id, actor, reason: checkReason(reason) },
      async () => {
        const retried = await this.deps.engine.retry(id);
        return { result: retried.flow, outcome: retryOutcome(retried) };
      },
    );
  }

  async cancelFlow(actor: Principal | undefined, id: string, reason: string): Promise<FlowRunWithSteps> {
    checkFlowId(id);
    const why = checkReason(reason);
    return this.perform(
      { action: OperatorActionKind.CANCEL_FLOW, target: id, flowId: id, actor, reason: why },
      async () => {
        const flow = await this.deps.engine.cancel(id, {
          cancelledBy: actor ?? { kind: 'anonymous' },
          reason: why,
        });
        return { result: flow, outcome: { flowStatus: flow.status.toUpperCase(), attempt: flow.attempt } };
      },
    );
  }

  async replayDeadLetters(
    actor: Principal | undefined,
    selection: ReplaySelection,
    reason: string,
  ): Promise<number> {
    const why = checkReason(reason);
    const { receiver, signal, ids } = selection;
    checkStorableArguments({ receiver, signal, ids });
    if (receiver === undefined && signal === undefined && ids === undefined)
      throw badInput('Name what to replay: a receiver, a signal, or dead letter ids');
    if (ids !== undefined && (ids.length === 0 || ids.length > REPLAY_MAX_IDS))
      throw badInput(`ids must name between 1 and ${REPLAY_MAX_IDS} dead letters`);
    for (const id of ids ?? []) parseDeadLetterId(id, receiver);
    const target = [
      receiver !== undefined ? `receiver:${receiver}` : undefined,
      signal !== undefined ? `signal:${signal}` : undefined,
      ids !== undefined ? `ids:${ids.join(',')}` : undefined,
    ]
      .filter(Boolean)
      .join(' ');
    return this.perform(
      { action: OperatorActionKind.REPLAY_DEAD_LETTERS, target, actor, reason: why },
      async () => {
        if (receiver !== undefined && !this.receivers.has(receiver))
          throw new DomainError(ErrorCode.NOT_FOUND, `No receiver '${receiver}' is configured`);
        const replayed = await replayDeadLetters(this.deps.bus, selection, new Set(this.receivers.keys()));
        return { result: replayed, outcome: { replayed } };
      },
    );
  }

  /**
   * Delivers one signal to one receiver again: its dead letter, if it has one, or the signal as the
   * outbox holds it. A receiver's run that completed (or halted) is not run again — receivers run once
   * per signal, so a redelivery would do nothing: that is refused with CONFLICT, as is one while the
   * run is running.
   */
  async redeliverSignal(
    actor: Principal | undefined,
    signalId: string,
    receiver: string,
    reason: string,
  ): Promise<boolean> {
    if (!UUID.test(signalId)) throw badInput(`'${signalId}' is not a signal id`);
    if (!receiver.trim()) throw badInput('receiver must not be empty');
    checkStorableArguments({ receiver });
    const why = checkReason(reason);
    return this.perform(
      {
        action: OperatorActionKind.REDELIVER_SIGNAL,
        target: `${signalId} receiver:${receiver}`,
        signalId,
        actor,
        reason: why,
      },
      async () => {
        const { store, bus } = this.deps;
        const signal = await store.signal(signalId);
        if (!signal) throw new DomainError(ErrorCode.NOT_FOUND, `No signal ${signalId}`);
        if (this.receivers.get(receiver) !== signal.name)
          throw new DomainError(ErrorCode.NOT_FOUND, `Signal '${signal.name}' has no receiver '${receiver}'`);
        const runs = (await store.receiverRunsOf([signalId])).get(signalId) ?? [];
        const run = runs.find((r) => r.receiver === receiver);
        if (run?.status === FlowStatus.COMPLETED || run?.status === FlowStatus.HALTED)
          throw new DomainError(
            ErrorCode.CONFLICT,
            `Receiver '${receiver}' already ran signal ${signalId} to its end (${run.status.toUpperCase()}, flow ${run.id}); a receiver runs once per signal, so a redelivery would do nothing`,
            { flowId: run.id, flowStatus: run.status.toUpperCase() },
          );
        if (run?.status === FlowStatus.RUNNING)
          throw new DomainError(
            ErrorCode.CONFLICT,
            `Receiver '${receiver}' is running signal ${signalId} now (flow ${run.id})`,
            { flowId: run.id, flowStatus: 'RUNNING' },
          );
        const [letter] = await findDeadLetters(bus, { receiver, signalId });
        if (letter && (await bus.replay(receiver, [letter.id])) === 1)
          return {
            result: true,
            outcome: { delivered: 'dead letter', deadLetter: deadLetterId(letter), run: run?.id ?? null },
          };
        await bus.redeliver(receiver, envelopeOf(signal));
        return { result: true, outcome: { delivered: 'signal', run: run?.id ?? null } };
      },
    );
  }

  /** Records the action, runs it, and records what came of it; the caller gets the result or the error. */
  private async perform<T>(
    start: OperatorActionStart,
    act: () => Promise<{ result: T; outcome: Record<string, unknown> }>,
  ): Promise<T> {
    const { log, logger } = this.deps;
    const id = await log.start(start);
    let status: OperatorActionStatus = OperatorActionStatus.DONE;
    let outcome: Record<string, unknown>;
    try {
      const done = await act();
      outcome = done.outcome;
      return done.result;
    } catch (error) {
      const code = domainCodeOf(error);
      const failure = toFailure(error);
      status = failedActionStatus(error);
      outcome = { code: code ?? ErrorCode.INTERNAL_SERVER_ERROR, message: failure.message };
      throw error;
    } finally {
      logger.info(
        { operatorAction: id, action: start.action, target: start.target, actor: start.actor, status },
        'operator action',
      );
      await log
        .finish(id, status, outcome!)
        .catch((err: unknown) =>
          logger.error({ err, operatorAction: id }, 'operator action outcome not recorded'),
        );
    }
  }
}

/** What the operator log records of a retry that ran: how the flow ended again, and how it was before. */
export function retryOutcome({
  flow,
  from,
  previous,
}: {
  flow: FlowRun;
  from: number;
  previous: FlowRun;
}): Record<string, unknown> {
  return {
    flowStatus: flow.status.toUpperCase(),
    fromStep: from,
    previous: {
      status: previous.status.toUpperCase(),
      attempt: previous.attempt,
      error: previous.errorCode ? { code: previous.errorCode, message: previous.errorMessage } : null,
    },
  };
}

/** The operator log's status of an action that threw: refused with a public code, else failed. */
export function failedActionStatus(error: unknown): OperatorActionStatus {
  const code = domainCodeOf(error);
  return code && code !== ErrorCode.SERVICE_UNAVAILABLE
    ? OperatorActionStatus.REFUSED
    : OperatorActionStatus.FAILED;
}

function checkFlowId(id: string): void {
  if (!UUID.test(id)) throw badInput(`'${id}' is not a flow id`);
}

/** An operator's reason: required, and something the record can hold. */
function checkReason(reason: string): string {
  const trimmed = reason.trim();
  if (!trimmed) throw badInput('reason must say why (it is recorded with the action)');
  if (trimmed.length > REASON_MAX_LENGTH)
    throw badInput(`reason is longer than ${REASON_MAX_LENGTH} characters`);
  checkStorableArguments({ reason: trimmed });
  return trimmed;
}

/** A signal as the outbox dispatcher publishes it. */
const envelopeOf = (signal: OutboxSignal): SignalEnvelope => ({
  id: signal.id,
  name: signal.name,
  payload: signal.payload as Record<string, unknown>,
  time: signal.createdAt.toISOString(),
  source: signal.source,
  // The bus reads it as it reads the dispatcher's (a context that does not read is dropped).
  ...(signal.traceContext ? { traceContext: signal.traceContext as SignalEnvelope['traceContext'] } : {}),
});
