import { randomUUID } from 'node:crypto';
import type { Failure } from '../errors.js';
import type { FlagDecision } from '../federation/context.js';
import { StepStatus } from './status.js';
import type { FlowEnd, FlowRun, FlowRunWithSteps, FlowStep, FlowStore, SignalDraft } from './store.js';

/** A step attempt about to run its Action. */
export interface StepStart {
  index: number;
  action: string;
  input: Record<string, unknown>;
  idempotencyKey: string;
  attempt: number;
  /** For a compensation: the index of the step it undoes. */
  compensates?: number;
}

/** How a step attempt ended. */
export interface StepEnd {
  status: StepStatus;
  output?: unknown;
  implementation?: string;
  decisions?: readonly FlagDecision[];
  failure?: Failure;
  /** Committed with the step's end: emitted by the Action, so they exist only if it completed. */
  signals?: readonly SignalDraft[];
}

/**
 * The record of one flow as this process runs it. Only a step's start has to be durable before
 * anything else happens (its Action may act on a Service): a step's end is kept until the write that
 * follows it anyway — the next step's start or the flow's end — and committed with it in one
 * statement. A crash in between loses nothing a replay cannot redo: the step is still recorded as
 * running, and recovery runs it again with the same idempotency key.
 *
 * Every write is fenced by the run's attempt: once another process took the flow over, a write of
 * this one throws FlowTakenOver and commits nothing (see FlowStore.record).
 */
export class FlowRecorder {
  /** Every step row this run wrote or will write, by index: each write sends whole rows. */
  private readonly rows = new Map<number, FlowStep>();
  private readonly pending = new Set<number>();
  private signals: SignalDraft[] = [];
  private recorded: Array<() => void> = [];
  private written = false;

  constructor(
    private readonly store: FlowStore,
    readonly flow: FlowRun,
    private readonly options: {
      /** The run was created just now, so nothing of it is recorded beyond its own row. */
      created?: boolean;
      /** Idempotency keys of steps whose key is not the first one (see `stepKeys` in engine.ts). */
      keys?: ReadonlyMap<number, string>;
    } = {},
  ) {}

  /** The idempotency key of step `index` in this run: `<flowId>:<index>`, unless the record says otherwise. */
  keyOf(index: number): string {
    return this.options.keys?.get(index) ?? `${this.flow.id}:${index}`;
  }

  /**
   * Records the attempt's start, with whatever is pending; resolves once durable. The first step of a
   * run just created is the exception: the run's own row already makes it recoverable (recovery finds
   * no step and runs it with the same input and idempotency key), so its start is written with its end.
   */
  async stepStarting(start: StepStart): Promise<void> {
    const previous = this.rows.get(start.index);
    this.put({
      id: previous?.id ?? randomUUID(),
      flowId: this.flow.id,
      index: start.index,
      action: start.action,
      status: StepStatus.RUNNING,
      input: start.input as FlowStep['input'],
      output: null,
      implementation: null,
      flagDecisions: null,
      idempotencyKey: start.idempotencyKey,
      attempt: start.attempt,
      errorCode: null,
      errorMessage: null,
      failure: null,
      startedAt: new Date(),
      finishedAt: null,
      compensates: start.compensates ?? null,
    });
    if (this.options.created && !this.written && this.pending.size === 1 && !this.signals.length) return;
    await this.flush();
  }

  /** Keeps the attempt's end for the next write; `recorded` runs once it is durable. */
  stepEnded(index: number, end: StepEnd, recorded?: () => void): void {
    const row = this.rows.get(index);
    if (!row) throw new Error(`Step ${index} of flow ${this.flow.id} ended before it started`);
    this.put({
      ...row,
      status: end.status,
      output: (end.output ?? null) as FlowStep['output'],
      implementation: end.implementation ?? null,
      flagDecisions: end.decisions?.length ? (end.decisions as unknown as FlowStep['flagDecisions']) : null,
      errorCode: end.failure?.type ?? null,
      errorMessage: end.failure?.message ?? null,
      failure: (end.failure ?? null) as FlowStep['failure'],
      finishedAt: new Date(),
    });
    this.signals.push(...(end.signals ?? []));
    if (recorded) this.recorded.push(recorded);
  }

  /** Keeps, for the next write, a step its `when` condition skipped: the record shows every step. */
  stepSkipped(index: number, action: string): void {
    const now = new Date();
    this.put({
      id: randomUUID(),
      flowId: this.flow.id,
      index,
      action,
      status: StepStatus.SKIPPED,
      input: {},
      output: null,
      implementation: null,
      flagDecisions: null,
      idempotencyKey: this.keyOf(index),
      attempt: 0,
      errorCode: null,
      errorMessage: null,
      failure: null,
      startedAt: now,
      finishedAt: now,
      compensates: null,
    });
  }

  /**
   * Keeps, for the next write, the end of a step an earlier attempt of the run left running (it was
   * cancelled while its Action ran): failed with `failure`, its other columns as recorded.
   */
  stepInterrupted(row: FlowStep, failure: Failure): void {
    this.put({
      ...row,
      status: StepStatus.FAILED,
      errorCode: failure.type,
      errorMessage: failure.message,
      failure: failure as unknown as FlowStep['failure'],
      finishedAt: new Date(),
    });
  }

  /** Changes an earlier step's status (skipped after a failure, compensated). */
  async setStepStatus(index: number, status: StepStatus): Promise<void> {
    const row = this.rows.get(index);
    if (row) return void this.put({ ...row, status });
    // A step of an earlier run of this flow (before a recovery): not in memory, updated in place.
    await this.flush();
    await this.store.setStepStatus(this.flow.id, this.flow.attempt, index, status);
  }

  /** Writes whatever is pending now (before waiting, or before reading the record). */
  async flush(): Promise<void> {
    if (this.pending.size || this.signals.length) await this.write();
  }

  /**
   * Records the flow's end with whatever is pending, in one statement. Returns the run with its steps:
   * from memory when this run was created now and ran every step; otherwise as read back (a retried,
   * recovered or cancelled run's record also holds rows earlier attempts wrote).
   */
  async finish(end: FlowEnd & { signals?: readonly SignalDraft[] }): Promise<FlowRunWithSteps> {
    this.signals.push(...(end.signals ?? []));
    const flow = await this.write(end);
    if (!flow) throw new Error(`Flow ${this.flow.id} not found`);
    const steps = [...this.rows.values()].sort((a, b) => a.index - b.index);
    if (this.options.created && steps.every((s, i) => s.index === i)) return { ...flow, steps };
    const record = await this.store.flow(this.flow.id);
    return { ...flow, steps: record?.steps ?? steps };
  }

  private put(row: FlowStep): void {
    this.rows.set(row.index, row);
    this.pending.add(row.index);
  }

  private async write(end?: FlowEnd): Promise<FlowRun | undefined> {
    const steps = [...this.pending].map((index) => this.rows.get(index)!);
    const signals = this.signals;
    const recorded = this.recorded;
    this.pending.clear();
    this.signals = [];
    this.recorded = [];
    const flow = await this.store.record(this.flow.id, this.flow.attempt, { steps, end, signals });
    this.written = true;
    for (const callback of recorded) callback();
    return flow;
  }
}
