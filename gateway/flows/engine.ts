import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { GraphQLFormattedError } from 'graphql';
import type {
  CompiledAction,
  CompiledConnections,
  CompiledFilter,
  CompiledReceiver,
  CompiledStep,
} from '../connections/compile.js';
import { actionVariables, valueAt } from '../connections/actions.js';
import { DomainError, ErrorCode, UnreachableCaseError, domainCodeOf, type Failure } from '../errors.js';
import { createGatewayContext, type GatewayContext } from '../federation/context.js';
import type { Logger } from '../log.js';
import { principalSchema, type Principal } from '@commerce-coordinator/plugin-sdk';
import { compileRetryPolicy, retryDelayMs, shouldRetry } from '../retry-policy.js';
import { traceContextSchema, type TraceContext } from '../observability/trace-context.js';
import type { Delivery } from '../signals/types.js';
import { isExclusive } from '../connections/schema.js';
import {
  chainInstruments,
  invokeStartHooks,
  type FlowDidEndPayload,
  type FlowPlugin,
  type FlowWillStartPayload,
  type Instrumented,
  type StepDidEndPayload,
  type StepWillRunPayload,
} from './hooks.js';
import { checkFlowRequest } from './input.js';
import { FlowKind, FlowStatus, StepStatus } from './status.js';
import { FlowRecorder } from './recorder.js';
import {
  FlowTakenOver,
  idempotencyScopeOf,
  type FlowRun,
  type FlowRunWithSteps,
  type FlowStep,
  type FlowStore,
  type SignalDraft,
} from './store.js';

/** Runs one Action call through the gateway (never by calling resolvers directly). */
export type ActionCaller = (
  call: CompiledAction,
  variables: Record<string, unknown>,
  context: GatewayContext,
) => Promise<{ data?: Record<string, unknown> | null; errors?: readonly GraphQLFormattedError[] }>;

export interface FlowEngineOptions {
  store: FlowStore;
  connections: CompiledConnections;
  callAction: ActionCaller;
  plugins: readonly FlowPlugin[];
  logger: Logger;
  /** This process's identity on the leases of the flows it runs. */
  owner: string;
  /** Builds the flag context of a flow's Action calls from its input. */
  flagContext(flow: {
    name: string;
    input: Record<string, unknown>;
    orderId?: string;
    principal?: Principal;
  }): GatewayContext['flagContext'];
  /** How long a duplicate request waits for the original run of its idempotency key. @default 30 s */
  idempotencyWaitMs?: number;
  /**
   * Whether callers are verified: then a flow needs one, of a kind its filter admits (`callers`),
   * decided before anything runs. False only on a Coordinator without authentication (the core's tests).
   */
  authorizeCallers: boolean;
  /**
   * How long a flow waits for another flow of the same order to finish (exclusive filters) before it
   * is refused with ORDER_BUSY. @default 10 s
   */
  orderWaitMs?: number;
  /** A receiver run whose owner has not renewed its lease this long may be taken over. @default 15 s */
  leaseMs?: number;
}

type Data = Record<string, unknown>;

/** The outcome of running a flow's steps, before it is recorded. */
type Outcome =
  | { status: typeof FlowStatus.COMPLETED; data: Data }
  | { status: typeof FlowStatus.HALTED; data: Data; haltedAt: number }
  | {
      status: typeof FlowStatus.FAILED | typeof FlowStatus.COMPENSATED;
      data: Data;
      failure: Failure;
      /** The step that failed; -1 when none did (a cancel). */
      stepIndex: number;
    };

/**
 * Runs filters as recorded Purchase Flows and signal receivers as recorded receiver runs.
 * The data of a pipeline is one accumulated object: a step's inputs are taken from it by name, its
 * result fields are merged back (last writer wins), and a step returning null halts the pipeline.
 */
export class FlowEngine {
  /** The work under way per flow: a stuck run and the cancel that took it over may both be here. */
  private readonly running = new Map<string, Set<Promise<unknown>>>();
  private readonly idempotencyWaitMs: number;
  private readonly orderWaitMs: number;
  private readonly leaseMs: number;
  private readonly instrumentFlow?: Instrumented<FlowWillStartPayload, FlowDidEndPayload>;
  private readonly instrumentStep?: Instrumented<StepWillRunPayload, StepDidEndPayload>;
  /** The filters and signals new flows run (and recovered ones are looked up in); see `useConnections`. */
  private connections: CompiledConnections;

  constructor(private readonly options: FlowEngineOptions) {
    this.connections = options.connections;
    this.idempotencyWaitMs = options.idempotencyWaitMs ?? 30_000;
    this.orderWaitMs = options.orderWaitMs ?? 10_000;
    this.leaseMs = options.leaseMs ?? 15_000;
    this.instrumentFlow = chainInstruments(options.plugins, (i) => i.flow, options.logger);
    this.instrumentStep = chainInstruments(options.plugins, (i) => i.step, options.logger);
  }

  /** Ids of the flows this process is running now. */
  activeFlows(): string[] {
    return [...this.running.keys()];
  }

  /** Waits for the flows this process runs (new ones are refused by the caller). */
  async drain(signal?: AbortSignal): Promise<void> {
    const all = Promise.allSettled([...this.running.values()].flatMap((work) => [...work]));
    if (!signal) return void (await all);
    // Already past the deadline (the requests before the flows used it up): an 'abort' never comes again.
    if (signal.aborted) return;
    await Promise.race([
      all,
      new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true })),
    ]);
  }

  /**
   * A reloaded configuration: flows started from now on run its filters. A flow already running keeps
   * the filter it started with; a recorded flow whose filter is gone is recovered as its policy for a
   * missing filter says (failed, naming the filter).
   */
  useConnections(connections: CompiledConnections): void {
    this.connections = connections;
  }

  filter(name: string): CompiledFilter {
    const filter = this.connections.filters.get(name);
    if (!filter) throw new DomainError(ErrorCode.NOT_FOUND, `Unknown filter '${name}'`);
    return filter;
  }

  /**
   * Runs a filter. With an idempotency key, a second call with the same key (concurrent or later)
   * from the same caller returns the first run's recorded result instead of running again.
   *
   * Nothing runs or is recorded for a caller the filter does not admit, nor for input the record
   * cannot hold. A filter that changes an order (`exclusive`) runs one flow per order at a time, across
   * processes: a flow of an order another flow holds waits for it, then runs, or is refused with
   * ORDER_BUSY after `orderWaitMs`.
   */
  async runFilter(
    name: string,
    input: Data,
    options: { idempotencyKey?: string; principal?: Principal } = {},
  ): Promise<FlowRunWithSteps> {
    const filter = this.filter(name);
    const { store } = this.options;
    const { principal, idempotencyKey } = options;
    this.authorize(filter, principal);
    const orderKey = filter.definition.orderKey;
    const orderId = orderKey && input[orderKey] != null ? String(input[orderKey]) : undefined;
    checkFlowRequest({ input, orderId, idempotencyKey });
    const inputHash = hashInput(input);
    const deadline = Date.now() + this.orderWaitMs;
    for (let wait = 20; ; wait = Math.min(wait * 2, 250)) {
      const created = await store.createFlow({
        kind: FlowKind.FILTER,
        name,
        idempotencyKey,
        idempotencyScope: idempotencyScopeOf(principal),
        inputHash,
        orderId,
        claimOrder: isExclusive(filter.definition),
        input,
        principal,
        owner: this.options.owner,
      });
      switch (created.outcome) {
        case 'created':
          return this.resultOf(
            await this.runToEnd(created.flow, () =>
              this.execute(filter, new FlowRecorder(store, created.flow, { created: true }), input, 0),
            ),
          );
        case 'existing':
          if (created.flow.inputHash !== inputHash) {
            throw new DomainError(
              ErrorCode.IDEMPOTENCY_KEY_REUSED,
              `Idempotency key '${idempotencyKey}' was already used for '${name}' with a different input`,
              { flowId: created.flow.id },
            );
          }
          return this.resultOf(await this.awaitFinished(created.flow));
        case 'order claimed':
          if (Date.now() + wait > deadline) {
            throw new DomainError(
              ErrorCode.ORDER_BUSY,
              `Another flow is changing order ${orderId}; retry later`,
              { orderId, ...(created.holder ? { busyWith: created.holder } : {}) },
            );
          }
          await sleep(wait);
          continue;
        default:
          throw new UnreachableCaseError(created);
      }
    }
  }

  /** A filter's callers are decided before it runs: never midway, after a step changed a Service. */
  private authorize(filter: CompiledFilter, principal: Principal | undefined): void {
    if (!this.options.authorizeCallers) return;
    if (!principal)
      throw new DomainError(ErrorCode.UNAUTHENTICATED, `'${filter.name}' needs a signed-in caller`);
    const callers = filter.definition.callers;
    if (!callers.includes(principal.kind)) {
      throw new DomainError(
        ErrorCode.FORBIDDEN,
        `'${filter.name}' is run by ${callers.map((c) => `${c}s`).join(' and ')} only, not by ${principal.kind}s`,
      );
    }
  }

  /**
   * Runs a flow this process created or took over to its end. When another process takes it over
   * meanwhile (this one's lease lapsed), this one stops at its next write and answers with the run the
   * other process finishes.
   */
  private async runToEnd(flow: FlowRun, work: () => Promise<FlowRunWithSteps>): Promise<FlowRunWithSteps> {
    try {
      return await this.track(flow.id, work());
    } catch (error) {
      if (!(error instanceof FlowTakenOver)) throw error;
      this.options.logger.warn({ flowId: flow.id }, 'flow taken over by another process; awaiting its end');
      return this.awaitFinished(flow);
    }
  }

  /** Finishes (or fails, per the filter's policy) a flow a crashed process left running: `flow` is the run it claimed. */
  async recover(flow: FlowRun): Promise<void> {
    const filter = this.connections.filters.get(flow.name);
    // A cancel the crash interrupted is finished, never undone by resuming the flow.
    if (flow.errorCode === ErrorCode.FLOW_CANCELLED) {
      await this.track(flow.id, this.finishCancel(flow, filter)).catch(ignoreTakenOver);
      return;
    }
    if (!filter || filter.definition.recovery === 'fail') {
      const failure: Failure = {
        type: 'FlowInterrupted',
        message: filter
          ? 'The gateway stopped while the flow ran; the filter is configured not to resume'
          : `The filter '${flow.name}' is no longer configured`,
        nonRetryable: true,
      };
      await this.options.store.finishFlow(flow.id, flow.attempt, { status: FlowStatus.FAILED, failure });
      return;
    }
    const record = await this.recordOf(flow.id);
    const { data, from } = resumePoint(record, filter);
    // Every step keeps the key it was recorded with: a step the crash cut short may have acted.
    const recorder = new FlowRecorder(this.options.store, flow, { keys: stepKeys(record, false) });
    await this.track(flow.id, this.execute(filter, recorder, data, from)).catch(ignoreTakenOver);
  }

  /**
   * Runs a FAILED or COMPENSATED filter flow again, as its next attempt, from its first step that is
   * not done: the step that failed, or for a COMPENSATED flow its first undone step. A step done
   * (completed, not undone) keeps its record, result and key and is not called again, wherever it is;
   * every other step runs, in order: the one that failed or was cut short under the key it had (its
   * Service answers what it did, if it did anything), one whose effect is known to be gone — undone by
   * its compensation, or refused by its Service with a domain error — under the next key (see
   * `stepKeys`: its old key would replay an effect that no longer exists). The flow claims its order as
   * a new run does (waiting for another flow of it up to `orderWaitMs`, then ORDER_BUSY), and its new
   * attempt fences any process still running an older one. Answers the flow as it ended again,
   * whatever its status.
   *
   * With `attempt`, only that run of the flow is retried: one that moved on meanwhile (retried by
   * another process, or ended again) is refused with CONFLICT, as a flow not FAILED is. `reopened` is
   * awaited once the flow is running again, before any step runs.
   */
  async retry(
    flowId: string,
    options: { attempt?: number; reopened?: (flow: FlowRun) => Promise<void> } = {},
  ): Promise<{ flow: FlowRunWithSteps; from: number; previous: FlowRun }> {
    const previous = await this.recordOf(flowId);
    if (previous.kind !== FlowKind.FILTER)
      throw new DomainError(
        ErrorCode.BAD_USER_INPUT,
        `Flow ${flowId} is a run of receiver '${previous.receiver}'; redeliver its signal to it instead (redeliverSignal)`,
      );
    const filter = this.connections.filters.get(previous.name);
    if (!filter)
      throw new DomainError(
        ErrorCode.CONFLICT,
        `Flow ${flowId} ran the filter '${previous.name}', which is no longer configured`,
      );
    if (options.attempt !== undefined && previous.attempt !== options.attempt)
      throw notReopened(previous, `is at attempt ${previous.attempt}, not ${options.attempt}`);
    const reopened = await this.reopen(previous, isExclusive(filter.definition), options.attempt);
    await options.reopened?.(reopened);
    const record = await this.recordOf(flowId);
    const { data, from } = resumePoint(record, filter);
    const recorder = new FlowRecorder(this.options.store, reopened, { keys: stepKeys(record, true) });
    const flow = await this.runToEnd(reopened, () =>
      this.execute(filter, recorder, data, from, doneSteps(record, filter, from)),
    );
    return { flow, from, previous };
  }

  /** Reopens an ended flow for a retry, waiting for its order as `runFilter` does. */
  private async reopen(flow: FlowRun, claimOrder: boolean, attempt?: number): Promise<FlowRun> {
    const deadline = Date.now() + this.orderWaitMs;
    for (let wait = 20; ; wait = Math.min(wait * 2, 250)) {
      const reopened = await this.options.store.reopenFlow(flow.id, this.options.owner, claimOrder, attempt);
      switch (reopened.outcome) {
        case 'reopened':
          return reopened.flow;
        case 'not reopened': {
          const now = await this.recordOf(flow.id);
          if (attempt !== undefined && now.attempt !== attempt)
            throw notReopened(now, `is at attempt ${now.attempt}, not ${attempt}`);
          throw notReopened(
            now,
            `is ${now.status.toUpperCase()}: only a FAILED or COMPENSATED flow can be retried`,
          );
        }
        case 'order claimed':
          if (Date.now() + wait > deadline)
            throw new DomainError(
              ErrorCode.ORDER_BUSY,
              `Another flow is changing order ${flow.orderId}; retry later`,
              { orderId: flow.orderId, ...(reopened.holder ? { busyWith: reopened.holder } : {}) },
            );
          await sleep(wait);
          continue;
        default:
          throw new UnreachableCaseError(reopened);
      }
    }
  }

  /**
   * Cancels a running filter flow, wherever it runs: takes it over — the process running it is fenced,
   * its next write refused with nothing of it committed —, records the step it was running as failed
   * (its Action's effect unknown), undoes what the flow did with its compensations, in this process,
   * and ends it COMPENSATED, or FAILED when there was nothing to undo or an undo failed, with the
   * failure FLOW_CANCELLED (`details`: who and why). Answers the flow as it ended.
   */
  async cancel(
    flowId: string,
    cancellation: { cancelledBy: unknown; reason: string },
  ): Promise<FlowRunWithSteps> {
    const record = await this.recordOf(flowId);
    if (record.kind !== FlowKind.FILTER)
      throw new DomainError(
        ErrorCode.BAD_USER_INPUT,
        `Flow ${flowId} is a run of receiver '${record.receiver}': the signal bus retries it, then dead-letters it`,
      );
    const notRunning = (status: string) =>
      new DomainError(
        ErrorCode.CONFLICT,
        `Flow ${flowId} is ${status.toUpperCase()}: only a RUNNING flow can be cancelled`,
        { flowId, flowStatus: status.toUpperCase() },
      );
    if (record.status !== FlowStatus.RUNNING) throw notRunning(record.status);
    const failure: Failure = {
      type: ErrorCode.FLOW_CANCELLED,
      message: `Cancelled by an operator: ${cancellation.reason}`,
      nonRetryable: true,
      details: { cancelledBy: cancellation.cancelledBy, reason: cancellation.reason },
    };
    const flow = await this.options.store.takeOverToCancel(flowId, this.options.owner, failure);
    if (!flow) throw notRunning((await this.recordOf(flowId)).status);
    const filter = this.connections.filters.get(flow.name);
    return this.runToEnd(flow, () => this.finishCancel(flow, filter));
  }

  /** The rest of a cancel, once this process holds the flow (`flow.failure` says who and why). */
  private finishCancel(flow: FlowRun, filter: CompiledFilter | undefined): Promise<FlowRunWithSteps> {
    const failure = flow.failure as unknown as Failure;
    const recorder = new FlowRecorder(this.options.store, flow);
    return this.executeWith(flow.name, recorder, async () => {
      const record = await this.recordOf(flow.id);
      const interrupted: Failure = {
        type: ErrorCode.FLOW_CANCELLED,
        message:
          'The flow was cancelled while this step ran: whether its Action took effect is unknown (a retry runs it again with the same idempotency key)',
        nonRetryable: false,
        details: failure.details,
      };
      for (const step of record.steps)
        if (step.status === StepStatus.RUNNING) recorder.stepInterrupted(step, interrupted);
      // Compensations take their input from the data as the flow had accumulated it.
      let data = { ...(record.input as Data) };
      for (const step of record.steps)
        if (filter && step.index < filter.steps.length && step.status === StepStatus.COMPLETED)
          data = merge(data, step.output);
      const compensated = filter
        ? await this.compensate(recorder, filter, filter.steps.length, data, this.flagContextOf(flow))
        : false;
      return {
        status: compensated ? FlowStatus.COMPENSATED : FlowStatus.FAILED,
        data,
        failure,
        stepIndex: -1,
      };
    });
  }

  /** Runs one delivery of a signal to a receiver; throws to have the bus retry it. */
  async runReceiver(receiver: CompiledReceiver, delivery: Delivery): Promise<void> {
    const { envelope } = delivery;
    const input = envelope.payload;
    const created = await this.options.store.createFlow({
      kind: FlowKind.RECEIVER,
      name: envelope.name,
      receiver: receiver.name,
      signalId: envelope.id,
      // Receiver runs are about an order too when their payload names one.
      orderId: input.orderId != null ? String(input.orderId) : undefined,
      inputHash: hashInput(input),
      input,
      owner: this.options.owner,
      // The trace of what emitted the signal, not of whatever delivers it.
      traceContext: envelope.traceContext ?? null,
    });
    if (created.outcome === 'order claimed') throw new Error('A receiver run never claims an order');
    let { flow } = created;
    if (created.outcome === 'existing') {
      // A receiver runs once per signal: a redelivery after success is acknowledged without effect.
      if (flow.status === FlowStatus.COMPLETED || flow.status === FlowStatus.HALTED) return;
      if (this.running.has(flow.id)) throw new Error(`Receiver run ${flow.id} is still in progress`);
      const reopened = await this.options.store.reopen(
        flow.id,
        this.options.owner,
        new Date(Date.now() - this.leaseMs),
      );
      // Another process runs it and keeps its lease: retried later, by the bus.
      if (!reopened) throw new Error(`Receiver run ${flow.id} is running in another process`);
      flow = reopened;
    }
    const recorder = new FlowRecorder(this.options.store, flow, { created: created.outcome === 'created' });
    const outcome = await this.track(
      flow.id,
      this.executeReceiver(receiver, recorder, input, delivery.attempt, envelope.traceContext),
    );
    if (outcome.status === FlowStatus.FAILED) throw new ReceiverFailure(outcome.failure, flow.id);
  }

  private track<T>(flowId: string, work: Promise<T>): Promise<T> {
    let works = this.running.get(flowId);
    if (!works) this.running.set(flowId, (works = new Set()));
    works.add(work);
    return work.finally(() => {
      works.delete(work);
      if (!works.size && this.running.get(flowId) === works) this.running.delete(flowId);
    });
  }

  private async awaitFinished(flow: FlowRun): Promise<FlowRunWithSteps> {
    const deadline = Date.now() + this.idempotencyWaitMs;
    let wait = 20;
    let current = await this.options.store.flow(flow.id);
    while (current && current.status === FlowStatus.RUNNING) {
      if (Date.now() > deadline) {
        throw new DomainError(
          ErrorCode.FLOW_IN_PROGRESS,
          `Flow ${flow.id} for this idempotency key is still running; retry later`,
          {
            flowId: flow.id,
          },
        );
      }
      await sleep(wait);
      wait = Math.min(wait * 2, 500);
      current = await this.options.store.flow(flow.id);
    }
    if (!current) throw new Error(`Flow ${flow.id} disappeared`);
    return current;
  }

  /** A failed flow reaches its caller as the error that failed it, the same on every replay of its key. */
  private resultOf(flow: FlowRunWithSteps): FlowRunWithSteps {
    if (flow.status === FlowStatus.FAILED || flow.status === FlowStatus.COMPENSATED) {
      const failure = flow.failure as unknown as Failure | null;
      const code =
        failure && domainCodeOf({ extensions: { code: failure.type } })
          ? failure.type
          : ErrorCode.STEP_FAILED;
      throw new DomainError(code as ErrorCode, flow.errorMessage ?? 'The flow failed', {
        flowId: flow.id,
        // As the FlowRun type spells it.
        flowStatus: flow.status.toUpperCase(),
        ...(failure?.details ?? {}),
      });
    }
    return flow;
  }

  /** A flow's whole record; a flow that does not exist is NOT_FOUND. */
  private async recordOf(flowId: string): Promise<FlowRunWithSteps> {
    const record = await this.options.store.flow(flowId);
    if (!record) throw new DomainError(ErrorCode.NOT_FOUND, `No flow ${flowId}`, { flowId });
    return record;
  }

  private flagContextOf(flow: FlowRun): GatewayContext['flagContext'] {
    return this.options.flagContext({
      name: flow.name,
      input: flow.input as Data,
      orderId: flow.orderId ?? undefined,
      principal: principalOf(flow),
    });
  }

  private execute(
    filter: CompiledFilter,
    recorder: FlowRecorder,
    initial: Data,
    from: number,
    done?: ReadonlyMap<number, unknown>,
  ): Promise<FlowRunWithSteps> {
    return this.executeWith(
      filter.name,
      recorder,
      () => this.runSteps(filter, recorder, initial, from, done),
      (data, outcome) => emitsOf(filter, data, outcome),
    );
  }

  /** Runs one attempt of a filter flow to its recorded end: `run` decides the outcome, between the hooks. */
  private async executeWith(
    name: string,
    recorder: FlowRecorder,
    run: () => Promise<Outcome>,
    emits: (data: Data, outcome: Outcome) => SignalDraft[] = () => [],
  ): Promise<FlowRunWithSteps> {
    const { plugins, logger } = this.options;
    const { flow } = recorder;
    const start: FlowWillStartPayload = {
      flowId: flow.id,
      kind: FlowKind.FILTER,
      name,
      input: flow.input as Data,
      attempt: flow.attempt,
      ...recordedTrace(flow),
    };
    let recorded: FlowRunWithSteps | undefined;
    let flowDidEnd: (end: FlowDidEndPayload) => void = () => {};
    const end = await instrumented(this.instrumentFlow, start, async (): Promise<FlowDidEndPayload> => {
      // Inside the flow's instrumentation (its span, when traced): what the hooks log is the flow's.
      flowDidEnd = invokeStartHooks(plugins, (p) => p.flowWillStart, start, logger);
      let outcome: Outcome;
      try {
        outcome = await run();
      } catch (error) {
        // Only a broken database (or a takeover) gets here: the flow stays "running" and recovery
        // (or the process that took it over) finishes it.
        if (!(error instanceof FlowTakenOver))
          logger.error({ err: error, flowId: flow.id }, 'flow interrupted');
        throw error;
      }
      const signals = emits(outcome.data, outcome);
      recorded = await recorder.finish({
        status: outcome.status,
        output: outcome.data,
        ...('failure' in outcome ? { failure: outcome.failure } : {}),
        ...('haltedAt' in outcome ? { haltedAt: outcome.haltedAt } : {}),
        signals,
      });
      return {
        ...start,
        status: outcome.status,
        output: outcome.data,
        ...('failure' in outcome ? { failure: outcome.failure } : {}),
      };
    });
    flowDidEnd(end);
    return recorded!;
  }

  /** Runs the steps from `from` on; those in `done` (index → result) are kept as recorded, not run. */
  private async runSteps(
    filter: CompiledFilter,
    recorder: FlowRecorder,
    initial: Data,
    from: number,
    done: ReadonlyMap<number, unknown> = new Map(),
  ): Promise<Outcome> {
    const { flow } = recorder;
    let data = initial;
    const principal = principalOf(flow);
    const flagContext = this.options.flagContext({
      name: filter.name,
      input: initial,
      orderId: flow.orderId ?? undefined,
      principal,
    });
    for (const step of filter.steps.slice(from)) {
      if (done.has(step.index)) {
        data = merge(data, done.get(step.index));
        continue;
      }
      if (step.when && !matches(step.when, data)) {
        recorder.stepSkipped(step.index, step.action.name);
        continue;
      }
      const result = await this.runStep(recorder, filter.name, step, data, flagContext, {
        retry: step.retry,
      });
      if (result.kind === 'completed') {
        data = merge(data, result.output);
        continue;
      }
      if (result.kind === 'halted') return { status: FlowStatus.HALTED, data, haltedAt: step.index };
      if (filter.definition.onError === 'continue' && !result.failure.nonRetryable) {
        await recorder.setStepStatus(step.index, StepStatus.SKIPPED);
        continue;
      }
      const compensated = await this.compensate(recorder, filter, step.index, data, flagContext, {
        outcomeUnknown: mayHaveActed(step, result.failure),
      });
      return {
        status: compensated ? FlowStatus.COMPENSATED : FlowStatus.FAILED,
        data,
        failure: result.failure,
        stepIndex: step.index,
      };
    }
    return { status: FlowStatus.COMPLETED, data };
  }

  /**
   * Undoes, in reverse order, every completed step that declares a compensation. Returns whether
   * there was something to undo and all of it was undone; each compensation is recorded as a step.
   * With `outcomeUnknown` (the failed step may have acted) only the compensations declared safe
   * whatever it did run: the others would record what its effect may contradict (a return reopened
   * while its refund went through), so their steps stay done and a retry replays the failed one.
   */
  private async compensate(
    recorder: FlowRecorder,
    filter: CompiledFilter,
    failedIndex: number,
    data: Data,
    flagContext: GatewayContext['flagContext'],
    { outcomeUnknown = false } = {},
  ): Promise<boolean> {
    const compensable = filter.steps.slice(0, failedIndex).filter((s) => s.compensate);
    const undoing = compensable
      .filter((s) => !outcomeUnknown || s.definition.compensateOnUnknownOutcome)
      .reverse();
    if (!undoing.length) return false;
    await recorder.flush();
    const record = await this.recordOf(recorder.flow.id);
    const completed = new Set(
      record.steps.filter((s) => s.status === StepStatus.COMPLETED).map((s) => s.index),
    );
    // Compensations are recorded after every step the record holds, earlier runs' compensations
    // included (a retried flow's), so none is overwritten and each has a key of its own.
    let next = Math.max(filter.steps.length, ...record.steps.map((s) => s.index + 1));
    // A completed step held back is not undone.
    let all = compensable.every((s) => undoing.includes(s) || !completed.has(s.index));
    let undone = 0;
    for (const step of undoing) {
      if (!completed.has(step.index)) continue;
      // A compensation an earlier attempt left unfinished (cut short, or failed transiently) may
      // have acted: it is run again under its own index and key, not as a new one.
      const earlier = record.steps.filter((s) => s.compensates === step.index).at(-1);
      const resumed =
        earlier &&
        (earlier.status === StepStatus.RUNNING ||
          (earlier.status === StepStatus.FAILED && !isRefusal(earlier)))
          ? earlier
          : undefined;
      const index = resumed ? resumed.index : next++;
      const result = await this.runStep(
        recorder,
        filter.name,
        { ...step.compensate!, index },
        data,
        flagContext,
        { retry: step.retry, compensates: step.index, key: resumed?.idempotencyKey },
      );
      if (result.kind === 'failed') all = false;
      else {
        undone++;
        await recorder.setStepStatus(step.index, StepStatus.COMPENSATED);
      }
    }
    // Steps that declare a compensation but never completed (skipped, cut short) undid nothing.
    return all && undone > 0;
  }

  private async executeReceiver(
    receiver: CompiledReceiver,
    recorder: FlowRecorder,
    input: Data,
    attempt: number,
    traceContext: TraceContext | undefined,
  ): Promise<Outcome> {
    const { plugins, logger } = this.options;
    const { flow } = recorder;
    const start: FlowWillStartPayload = {
      flowId: flow.id,
      kind: FlowKind.RECEIVER,
      name: receiver.signal,
      receiver: receiver.name,
      input,
      attempt,
      ...(traceContext ? { traceContext } : {}),
    };
    let outcome: Outcome | undefined;
    let flowDidEnd: (end: FlowDidEndPayload) => void = () => {};
    const end = await instrumented(this.instrumentFlow, start, async (): Promise<FlowDidEndPayload> => {
      flowDidEnd = invokeStartHooks(plugins, (p) => p.flowWillStart, start, logger);
      // The order the run is about (its payload's orderId) is in the flag context, as for a filter's
      // steps: a Transition-to-Plugin flag targeted at an order moves its receivers' Actions too.
      const flagContext = this.options.flagContext({
        name: receiver.name,
        input,
        orderId: flow.orderId ?? undefined,
      });
      // The bus owns retries of receivers (with backoff across processes): one attempt per delivery.
      const once = compileRetryPolicy({ maximumAttempts: 1 });
      const result = await this.runStep(
        recorder,
        receiver.signal,
        { ...receiver, index: 0 },
        input,
        flagContext,
        { retry: once, firstAttempt: attempt },
      );
      const ended: Outcome =
        result.kind === 'completed'
          ? { status: FlowStatus.COMPLETED, data: merge(input, result.output) }
          : result.kind === 'halted'
            ? { status: FlowStatus.HALTED, data: input, haltedAt: 0 }
            : { status: FlowStatus.FAILED, data: input, failure: result.failure, stepIndex: 0 };
      await recorder.finish({
        status: ended.status,
        output: ended.data,
        ...('failure' in ended ? { failure: ended.failure } : {}),
        ...('haltedAt' in ended ? { haltedAt: ended.haltedAt } : {}),
      });
      outcome = ended;
      return {
        ...start,
        status: ended.status,
        output: ended.data,
        ...('failure' in ended ? { failure: ended.failure } : {}),
      };
    });
    flowDidEnd(end);
    return outcome!;
  }

  /** One step: its Action call with retries, each attempt recorded before and after it runs. */
  private async runStep(
    recorder: FlowRecorder,
    flowName: string,
    step: CompiledAction & { index: number },
    data: Data,
    flagContext: GatewayContext['flagContext'],
    options: {
      retry: CompiledStep['retry'];
      /** @default 1 */
      firstAttempt?: number;
      /** @default the recorder's key of the step (see `stepKeys`) */
      key?: string;
      /** For a compensation: the index of the step it undoes. */
      compensates?: number;
    },
  ): Promise<
    { kind: 'completed'; output: Data } | { kind: 'halted' } | { kind: 'failed'; failure: Failure }
  > {
    const { plugins, logger } = this.options;
    const { flow } = recorder;
    const variables = actionVariables(step.action, data, step.mapping);
    const input = (step.action.wrapsInput ? variables.input : variables) as Data;
    const { retry, compensates } = options;
    const idempotencyKey = options.key ?? recorder.keyOf(step.index);
    for (let attempt = options.firstAttempt ?? 1; ; attempt++) {
      await recorder.stepStarting({
        index: step.index,
        action: step.action.name,
        input,
        idempotencyKey,
        attempt,
        compensates,
      });
      const payload: StepWillRunPayload = {
        flowId: flow.id,
        name: flowName,
        stepIndex: step.index,
        action: step.action.name,
        attempt,
        idempotencyKey,
        input,
      };
      const stepDidEnd = invokeStartHooks(plugins, (p) => p.stepWillRun, payload, logger);
      const context = createGatewayContext({
        flagContext,
        // A filter's steps act for its caller (none: an anonymous flow, which Actions may refuse);
        // a receiver's act for the Coordinator itself.
        principal: flow.kind === FlowKind.RECEIVER ? COORDINATOR_PRINCIPAL : principalOf(flow),
        step: { flowId: flow.id, stepIndex: step.index, attempt, idempotencyKey },
      });
      const end = await instrumented(this.instrumentStep, payload, async (): Promise<StepDidEndPayload> => {
        const started = performance.now();
        let failure: Failure | undefined;
        let value: unknown;
        try {
          const result = await this.options.callAction(step, variables, context);
          if (result.errors?.length) failure = failureFromGraphQL(result.errors);
          else {
            value = result.data?.[step.action.name] ?? null;
            if (step.as && value !== null) value = { [step.as]: value };
          }
        } catch (error) {
          failure = {
            type: (error as Error).name ?? 'Error',
            message: (error as Error).message,
            nonRetryable: false,
          };
        }
        return {
          ...payload,
          status: failure ? StepStatus.FAILED : value === null ? StepStatus.HALTED : StepStatus.COMPLETED,
          output: failure ? undefined : stripTypename(value),
          failure,
          implementation: context.implementations[0],
          decisions: context.decisions,
          durationMs: performance.now() - started,
        };
      });
      const { status, output, failure, implementation, decisions } = end;
      // Signals of a failed attempt are dropped: the Action did not complete, so they did not happen.
      const signals =
        status === StepStatus.COMPLETED
          ? context.emitted.map((s) => ({ name: s.signal, payload: s.payload }))
          : [];
      recorder.stepEnded(step.index, { status, output, implementation, decisions, failure, signals }, () =>
        stepDidEnd(end),
      );
      if (!failure)
        return status === StepStatus.HALTED
          ? { kind: 'halted' }
          : { kind: 'completed', output: output as Data };
      if (!shouldRetry(retry, attempt, failure)) return { kind: 'failed', failure };
      // The failed attempt is visible while the retry waits.
      await recorder.flush();
      await sleep(retryDelayMs(retry, attempt));
    }
  }
}

/** A retry refused because the flow is not the run it was asked for (CONFLICT, with its status). */
function notReopened(flow: FlowRun, why: string): DomainError {
  return new DomainError(ErrorCode.CONFLICT, `Flow ${flow.id} ${why}`, {
    flowId: flow.id,
    flowStatus: flow.status.toUpperCase(),
    attempt: flow.attempt,
  });
}

/** A takeover while this process ran the flow: the new owner finishes it. */
function ignoreTakenOver(error: unknown): void {
  if (!(error instanceof FlowTakenOver)) throw error;
}

/**
 * Where a flow resumes: after its last step done in order (completed, or skipped), with the data the
 * steps before it accumulated.
 */
function resumePoint(record: FlowRunWithSteps, filter: CompiledFilter): { data: Data; from: number } {
  let data = { ...(record.input as Data) };
  let from = 0;
  for (const step of record.steps) {
    if (step.index >= filter.steps.length) break;
    if (step.status === StepStatus.COMPLETED) data = merge(data, step.output);
    else if (step.status !== StepStatus.SKIPPED) break;
    from = step.index + 1;
  }
  return { data, from };
}

/** The results of the steps from `from` on that are done (completed, not undone): a retry keeps them. */
function doneSteps(record: FlowRunWithSteps, filter: CompiledFilter, from: number): Map<number, unknown> {
  return new Map(
    record.steps
      .filter((s) => s.index >= from && s.index < filter.steps.length && s.status === StepStatus.COMPLETED)
      .map((s) => [s.index, s.output]),
  );
}

/** A step its Service refused (a domain error): its Action did nothing. */
const isRefusal = (step: FlowStep) => (step.failure as unknown as Failure | null)?.nonRetryable === true;

/**
 * Whether a failed step may have acted: a domain error says what the Service did (a refusal, or a
 * "not now" that did nothing) and a query acts on nothing, but any other failure of a mutation (a
 * timeout, a 5xx, its attempts spent) may have come after the Service acted.
 */
const mayHaveActed = (step: CompiledStep, failure: Failure) =>
  step.action.operation === 'mutation' && !failure.nonRetryable;

/**
 * The idempotency key of each recorded step for the next run of the flow: the key it was recorded
 * with — so a step that acted, or may have (cut short, failed transiently), is answered by its Service
 * with what it did, never done twice. With `renewUndone` (an operator's retry), a step whose effect is
 * known to be gone — undone by its compensation, or refused by its Service — gets the next key
 * (`<flowId>:<index>:2`, then `:3`…), deterministic and recorded with the step: run under its old key,
 * the Service would answer the effect it no longer has (a cancelled return) instead of acting.
 */
function stepKeys(record: FlowRunWithSteps, renewUndone: boolean): Map<number, string> {
  const keys = new Map<number, string>();
  for (const step of record.steps) {
    const gone =
      step.status === StepStatus.COMPENSATED || (step.status === StepStatus.FAILED && isRefusal(step));
    keys.set(step.index, renewUndone && gone ? nextKey(step.idempotencyKey) : step.idempotencyKey);
  }
  return keys;
}

/** `<flowId>:<index>` → `<flowId>:<index>:2`, `<flowId>:<index>:<n>` → `…:<n + 1>`. */
export function nextKey(key: string): string {
  const match = /^([^:]+:\d+)(?::(\d+))?$/.exec(key);
  if (!match) return `${key}:2`;
  return `${match[1]}:${Number(match[2] ?? 1) + 1}`;
}

/** Receivers act for the Coordinator itself (the caller of the flow that emitted a signal is gone). */
export const COORDINATOR_PRINCIPAL: Principal = {
  kind: 'service',
  subject: 'commerce-coordinator',
  service: 'commerce-coordinator',
};

function principalOf(flow: FlowRun): Principal | undefined {
  const parsed = principalSchema.safeParse(flow.principal);
  return parsed.success ? parsed.data : undefined;
}

/** A step's `when`: every named field of the accumulated data equals the value, or one of the values. */
function matches(when: Readonly<Record<string, unknown>>, data: Data): boolean {
  return Object.entries(when).every(([path, expected]) => {
    const value = valueAt(data, path);
    return Array.isArray(expected) ? expected.includes(value) : value === expected;
  });
}

/**
 * Thrown by `runReceiver` so the bus retries or dead-letters with the recorded failure; the bus's log
 * line of it names the receiver run (`flowId`).
 */
export class ReceiverFailure extends Error {
  override readonly name: string;
  readonly extensions?: Record<string, unknown>;
  constructor(
    readonly failure: Failure,
    readonly flowId: string,
  ) {
    super(failure.message);
    this.name = failure.type;
    if (failure.nonRetryable) this.extensions = { code: failure.type };
  }
}

function failureFromGraphQL(errors: readonly GraphQLFormattedError[]): Failure {
  const domain = errors.find((e) => domainCodeOf(e));
  const error = domain ?? errors[0]!;
  const code = domainCodeOf(error);
  const { code: _code, serviceName, ...details } = (error.extensions ?? {}) as Record<string, unknown>;
  return {
    type: code ?? (typeof _code === 'string' ? _code : 'ActionError'),
    message: error.message,
    nonRetryable: Boolean(code),
    details: {
      ...details,
      ...(serviceName ? { serviceName } : {}),
      ...(error.path ? { path: error.path } : {}),
    },
  };
}

function merge(data: Data, output: unknown): Data {
  return output && typeof output === 'object' ? { ...data, ...(output as Data) } : data;
}

function stripTypename(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripTypename);
  if (!value || typeof value !== 'object') return value;
  const out: Data = {};
  for (const [k, v] of Object.entries(value)) if (k !== '__typename') out[k] = stripTypename(v);
  return out;
}

/**
 * The signals a flow's end emits: those `on: completed` when it completed, those `on: failed` (with the
 * failure in their data) when it failed or was compensated; none when it halted.
 */
function emitsOf(filter: CompiledFilter, flowData: Data, outcome: Outcome): SignalDraft[] {
  const failed = outcome.status === FlowStatus.FAILED || outcome.status === FlowStatus.COMPENSATED;
  if (outcome.status !== FlowStatus.COMPLETED && !failed) return [];
  const data: Data =
    failed && 'failure' in outcome
      ? { ...flowData, failure: { type: outcome.failure.type, message: outcome.failure.message } }
      : flowData;
  return filter.emits
    .filter((emit) => emit.on === (failed ? 'failed' : 'completed'))
    .map((emit) => {
      const payload: Data = {};
      for (const field of Object.keys(emit.payloadType.getFields())) {
        const value = valueAt(data, emit.mapping[field] ?? field);
        if (value !== undefined) payload[field] = value;
      }
      return { name: emit.signal, payload };
    });
}

/** A phase through its plugins' wrappers, or as it is when none wraps it. */
function instrumented<Start, End>(
  wrap: Instrumented<Start, End> | undefined,
  start: Start,
  run: () => Promise<End>,
): Promise<End> {
  return wrap ? wrap(start, run) : run();
}

/** The trace context recorded with a run, if any (and readable). */
function recordedTrace(flow: FlowRun): { traceContext?: TraceContext } {
  if (flow.traceContext === null) return {};
  const parsed = traceContextSchema.safeParse(flow.traceContext);
  return parsed.success ? { traceContext: parsed.data } : {};
}

/** sha256 of the input with keys sorted, so the same input in another key order is the same input. */
export function hashInput(input: unknown): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, canonical((v as Data)[k])]),
          )
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canonical(input)))
    .digest('hex');
}
