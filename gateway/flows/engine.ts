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
import { principalSchema, type Principal } from '../sdk/principal.js';
import { compileRetryPolicy, retryDelayMs, shouldRetry } from '../retry-policy.js';
import type { Delivery } from '../signals/types.js';
import { isExclusive } from '../connections/schema.js';
import { invokeStartHooks, type FlowPlugin } from './hooks.js';
import { checkFlowRequest } from './input.js';
import { FlowKind, FlowStatus, StepStatus } from './status.js';
import { FlowRecorder } from './recorder.js';
import {
  FlowTakenOver,
  idempotencyScopeOf,
  type FlowRun,
  type FlowRunWithSteps,
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
      stepIndex: number;
    };

/**
 * Runs filters as recorded Purchase Flows and signal receivers as recorded receiver runs.
 * The data of a pipeline is one accumulated object: a step's inputs are taken from it by name, its
 * result fields are merged back (last writer wins), and a step returning null halts the pipeline.
 */
export class FlowEngine {
  private readonly running = new Map<string, Promise<unknown>>();
  private readonly idempotencyWaitMs: number;
  private readonly orderWaitMs: number;
  private readonly leaseMs: number;

  constructor(private readonly options: FlowEngineOptions) {
    this.idempotencyWaitMs = options.idempotencyWaitMs ?? 30_000;
    this.orderWaitMs = options.orderWaitMs ?? 10_000;
    this.leaseMs = options.leaseMs ?? 15_000;
  }

  /** Ids of the flows this process is running now. */
  activeFlows(): string[] {
    return [...this.running.keys()];
  }

  /** Waits for the flows this process runs (new ones are refused by the caller). */
  async drain(signal?: AbortSignal): Promise<void> {
    const all = Promise.allSettled([...this.running.values()]);
    if (!signal) return void (await all);
    await Promise.race([
      all,
      new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true })),
    ]);
  }

  filter(name: string): CompiledFilter {
    const filter = this.options.connections.filters.get(name);
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
    const filter = this.options.connections.filters.get(flow.name);
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
    const { data, from } = await this.replayRecord(flow.id, filter);
    await this.track(
      flow.id,
      this.execute(filter, new FlowRecorder(this.options.store, flow), data, from),
    ).catch((error: unknown) => {
      // Taken over again (this process stalled past its lease): the new owner finishes it.
      if (!(error instanceof FlowTakenOver)) throw error;
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
      this.executeReceiver(receiver, recorder, input, delivery.attempt),
    );
    if (outcome.status === FlowStatus.FAILED) throw new ReceiverFailure(outcome.failure, flow.id);
  }

  private track<T>(flowId: string, work: Promise<T>): Promise<T> {
    this.running.set(flowId, work);
    return work.finally(() => this.running.delete(flowId));
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

  /** Rebuilds the accumulated data from the recorded steps, to resume after the last completed one. */
  private async replayRecord(flowId: string, filter: CompiledFilter): Promise<{ data: Data; from: number }> {
    const record = await this.options.store.flow(flowId);
    if (!record) throw new Error(`Flow ${flowId} not found`);
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

  private async execute(
    filter: CompiledFilter,
    recorder: FlowRecorder,
    initial: Data,
    from: number,
  ): Promise<FlowRunWithSteps> {
    const { plugins, logger } = this.options;
    const { flow } = recorder;
    const flowDidEnd = invokeStartHooks(
      plugins,
      (p) => p.flowWillStart,
      {
        flowId: flow.id,
        kind: FlowKind.FILTER,
        name: filter.name,
        input: flow.input as Data,
        attempt: flow.attempt,
      },
      logger,
    );
    let outcome: Outcome;
    try {
      outcome = await this.runSteps(filter, recorder, initial, from);
    } catch (error) {
      // Only a broken database gets here: the flow stays "running" and recovery finishes it.
      logger.error({ err: error, flowId: flow.id }, 'flow interrupted');
      throw error;
    }
    const signals = outcome.status === FlowStatus.COMPLETED ? emitsOf(filter, outcome.data) : [];
    const recorded = await recorder.finish({
      status: outcome.status,
      output: outcome.data,
      ...('failure' in outcome ? { failure: outcome.failure } : {}),
      ...('haltedAt' in outcome ? { haltedAt: outcome.haltedAt } : {}),
      signals,
    });
    flowDidEnd({
      flowId: flow.id,
      kind: FlowKind.FILTER,
      name: filter.name,
      input: flow.input as Data,
      attempt: flow.attempt,
      status: outcome.status,
      output: outcome.data,
      ...('failure' in outcome ? { failure: outcome.failure } : {}),
    });
    return recorded;
  }

  private async runSteps(
    filter: CompiledFilter,
    recorder: FlowRecorder,
    initial: Data,
    from: number,
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
      if (step.when && !matches(step.when, data)) {
        recorder.stepSkipped(step.index, step.action.name);
        continue;
      }
      const result = await this.runStep(recorder, filter.name, step, data, flagContext, step.retry);
      if (result.kind === 'completed') {
        data = merge(data, result.output);
        continue;
      }
      if (result.kind === 'halted') return { status: FlowStatus.HALTED, data, haltedAt: step.index };
      if (filter.definition.onError === 'continue' && !result.failure.nonRetryable) {
        await recorder.setStepStatus(step.index, StepStatus.SKIPPED);
        continue;
      }
      const compensated = await this.compensate(recorder, filter, step.index, data, flagContext);
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
   */
  private async compensate(
    recorder: FlowRecorder,
    filter: CompiledFilter,
    failedIndex: number,
    data: Data,
    flagContext: GatewayContext['flagContext'],
  ): Promise<boolean> {
    const done = filter.steps
      .slice(0, failedIndex)
      .filter((s) => s.compensate)
      .reverse();
    if (!done.length) return false;
    await recorder.flush();
    const record = await this.options.store.flow(recorder.flow.id);
    const completed = new Set(
      record?.steps.filter((s) => s.status === StepStatus.COMPLETED).map((s) => s.index),
    );
    let all = true;
    let index = filter.steps.length;
    for (const step of done) {
      if (!completed.has(step.index)) continue;
      const result = await this.runStep(
        recorder,
        filter.name,
        { ...step.compensate!, index: index++ },
        data,
        flagContext,
        step.retry,
      );
      if (result.kind === 'failed') all = false;
      else await recorder.setStepStatus(step.index, StepStatus.COMPENSATED);
    }
    return all;
  }

  private async executeReceiver(
    receiver: CompiledReceiver,
    recorder: FlowRecorder,
    input: Data,
    attempt: number,
  ): Promise<Outcome> {
    const { plugins, logger } = this.options;
    const { flow } = recorder;
    const flowDidEnd = invokeStartHooks(
      plugins,
      (p) => p.flowWillStart,
      {
        flowId: flow.id,
        kind: FlowKind.RECEIVER,
        name: receiver.signal,
        receiver: receiver.name,
        input,
        attempt,
      },
      logger,
    );
    const flagContext = this.options.flagContext({ name: receiver.name, input });
    // The bus owns retries of receivers (with backoff across processes): one attempt per delivery.
    const once = compileRetryPolicy({ maximumAttempts: 1 });
    const result = await this.runStep(
      recorder,
      receiver.signal,
      { ...receiver, index: 0 },
      input,
      flagContext,
      once,
      attempt,
    );
    const outcome: Outcome =
      result.kind === 'completed'
        ? { status: FlowStatus.COMPLETED, data: merge(input, result.output) }
        : result.kind === 'halted'
          ? { status: FlowStatus.HALTED, data: input, haltedAt: 0 }
          : { status: FlowStatus.FAILED, data: input, failure: result.failure, stepIndex: 0 };
    await recorder.finish({
      status: outcome.status,
      output: outcome.data,
      ...('failure' in outcome ? { failure: outcome.failure } : {}),
      ...('haltedAt' in outcome ? { haltedAt: outcome.haltedAt } : {}),
    });
    flowDidEnd({
      flowId: flow.id,
      kind: FlowKind.RECEIVER,
      name: receiver.signal,
      receiver: receiver.name,
      input,
      attempt,
      status: outcome.status,
      output: outcome.data,
      ...('failure' in outcome ? { failure: outcome.failure } : {}),
    });
    return outcome;
  }

  /** One step: its Action call with retries, each attempt recorded before and after it runs. */
  private async runStep(
    recorder: FlowRecorder,
    flowName: string,
    step: CompiledAction & { index: number },
    data: Data,
    flagContext: GatewayContext['flagContext'],
    retry: CompiledStep['retry'],
    firstAttempt = 1,
  ): Promise<
    { kind: 'completed'; output: Data } | { kind: 'halted' } | { kind: 'failed'; failure: Failure }
  > {
    const { plugins, logger } = this.options;
    const { flow } = recorder;
    const variables = actionVariables(step.action, data, step.mapping);
    const input = (step.action.wrapsInput ? variables.input : variables) as Data;
    const idempotencyKey = `${flow.id}:${step.index}`;
    for (let attempt = firstAttempt; ; attempt++) {
      await recorder.stepStarting({
        index: step.index,
        action: step.action.name,
        input,
        idempotencyKey,
        attempt,
      });
      const payload = {
        flowId: flow.id,
        name: flowName,
        stepIndex: step.index,
        action: step.action.name,
        attempt,
        input,
      };
      const stepDidEnd = invokeStartHooks(plugins, (p) => p.stepWillRun, payload, logger);
      const started = performance.now();
      const context = createGatewayContext({
        flagContext,
        // A filter's steps act for its caller (none: an anonymous flow, which Actions may refuse);
        // a receiver's act for the Coordinator itself.
        principal: flow.kind === FlowKind.RECEIVER ? COORDINATOR_PRINCIPAL : principalOf(flow),
        step: { flowId: flow.id, stepIndex: step.index, attempt, idempotencyKey },
      });
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
      const implementation = context.implementations[0];
      const decisions = context.decisions;
      const status = failure ? StepStatus.FAILED : value === null ? StepStatus.HALTED : StepStatus.COMPLETED;
      const output = failure ? undefined : stripTypename(value);
      // Signals of a failed attempt are dropped: the Action did not complete, so they did not happen.
      const signals =
        status === StepStatus.COMPLETED
          ? context.emitted.map((s) => ({ name: s.signal, payload: s.payload }))
          : [];
      const durationMs = performance.now() - started;
      recorder.stepEnded(step.index, { status, output, implementation, decisions, failure, signals }, () =>
        stepDidEnd({ ...payload, status, output, failure, implementation, decisions, durationMs }),
      );
      if (!failure)
        return value === null ? { kind: 'halted' } : { kind: 'completed', output: output as Data };
      if (!shouldRetry(retry, attempt, failure)) return { kind: 'failed', failure };
      // The failed attempt is visible while the retry waits.
      await recorder.flush();
      await sleep(retryDelayMs(retry, attempt));
    }
  }
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

function emitsOf(filter: CompiledFilter, data: Data): SignalDraft[] {
  return filter.emits.map((emit) => {
    const payload: Data = {};
    for (const field of Object.keys(emit.payloadType.getFields())) {
      const value = valueAt(data, emit.mapping[field] ?? field);
      if (value !== undefined) payload[field] = value;
    }
    return { name: emit.signal, payload };
  });
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
