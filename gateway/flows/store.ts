import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { Prisma, type FlowRun, type FlowStep, type PrismaClient } from '../db/generated/client.js';
import type { Failure } from '../errors.js';
import { run } from '../db/prepared.js';
import { createFlowStatement, publishSignalStatement, recordStatement } from './statements.js';
import type { StepStatus } from './status.js';
import { FlowKind, FlowStatus } from './status.js';

export type { FlowRun, FlowStep };
export type FlowRunWithSteps = FlowRun & { steps: FlowStep[] };

/**
 * Which parts of a flow record a read loads. Its JSON columns (a flow's input and output can be large)
 * and its steps are most of a record's size: a reader that does not show them does not load them.
 */
export interface FlowFields {
  input: boolean;
  output: boolean;
  failure: boolean;
  principal: boolean;
  /** The steps, with which of their JSON columns; false loads none. */
  steps: false | StepFields;
}
export interface StepFields {
  input: boolean;
  output: boolean;
  failure: boolean;
  flagDecisions: boolean;
}

/** Every column and every step: what the engine and recovery read. */
export const WHOLE_FLOW: Readonly<FlowFields> = Object.freeze({
  input: true,
  output: true,
  failure: true,
  principal: true,
  steps: Object.freeze({ input: true, output: true, failure: true, flagDecisions: true }),
});

type FlowJson = 'input' | 'output' | 'failure' | 'principal';
type StepJson = 'input' | 'output' | 'failure' | 'flagDecisions';
/** A step as a read loads it: the JSON columns it left out are absent. */
export type StepRead = Omit<FlowStep, StepJson> & Partial<Pick<FlowStep, StepJson>>;
/** A flow record as a read loads it: the JSON columns it left out are absent, the steps if not asked for. */
export type FlowRead = Omit<FlowRun, FlowJson> & Partial<Pick<FlowRun, FlowJson>> & { steps?: StepRead[] };

/** Prisma's `omit` (so columns added later are read by default) and `include` for `fields`. */
function readArgs(fields: FlowFields) {
  const { steps } = fields;
  return {
    omit: {
      input: !fields.input,
      output: !fields.output,
      failure: !fields.failure,
      principal: !fields.principal,
    },
    ...(steps
      ? {
          include: {
            steps: {
              omit: {
                input: !steps.input,
                output: !steps.output,
                failure: !steps.failure,
                flagDecisions: !steps.flagDecisions,
              },
              orderBy: { index: 'asc' as const },
            },
          },
        }
      : {}),
  };
}

export interface SignalDraft {
  name: string;
  payload: Record<string, unknown>;
}

/** The end of a flow run, as `FlowStore.record` writes it. */
export interface FlowEnd {
  status: FlowStatus;
  output?: unknown;
  failure?: Failure;
  haltedAt?: number;
}

/** One write of the record: step rows (whole), the flow's end, signals — all or nothing. */
export interface RecordWrite {
  steps?: readonly FlowStep[];
  end?: FlowEnd;
  /** Committed to the outbox with this write, as emitted by the flow. */
  signals?: readonly SignalDraft[];
}

/**
 * The durable record of flows, steps and the signal outbox. Every write is one SQL statement, so it is
 * atomic by itself: a signal exists if and only if the record that emitted it does, and a step's end,
 * the next step's start and the flow's end can be committed together (see FlowRecorder) in one round
 * trip instead of a transaction each.
 */
export class FlowStore {
  constructor(
    private readonly prisma: PrismaClient,
    /** The pool under Prisma's adapter: the hot writes run on it as prepared statements. */
    private readonly pool: pg.Pool,
    private readonly options: {
      /** Called after a write that committed signals: the outbox dispatcher publishes them at once. */
      signalsCommitted?: () => void;
    } = {},
  ) {}

  /**
   * Creates a flow run, or returns the existing one when the unique key (idempotency key per filter,
   * or signal per receiver) is taken — atomically, so concurrent duplicates create exactly one.
   */
  async createFlow(init: {
    kind: FlowKind;
    name: string;
    receiver?: string;
    idempotencyKey?: string;
    signalId?: string;
    inputHash: string;
    orderId?: string;
    input: Record<string, unknown>;
    principal?: unknown;
    owner: string;
  }): Promise<{ created: boolean; flow: FlowRun }> {
    const now = new Date();
    const {
      rows: [inserted],
    } = await run<FlowRun>(this.pool, createFlowStatement, [
      randomUUID(),
      init.kind,
      init.name,
      init.receiver ?? null,
      FlowStatus.RUNNING,
      init.idempotencyKey ?? null,
      init.inputHash,
      init.signalId ?? null,
      init.orderId ?? null,
      JSON.stringify(init.input),
      init.principal ? JSON.stringify(init.principal) : null,
      init.owner,
      now,
    ]);
    if (inserted) return { created: true, flow: inserted };
    const existing = init.idempotencyKey
      ? await this.prisma.flowRun.findUnique({
          where: { name_idempotencyKey: { name: init.name, idempotencyKey: init.idempotencyKey } },
        })
      : await this.prisma.flowRun.findUnique({
          where: { signalId_receiver: { signalId: init.signalId!, receiver: init.receiver! } },
        });
    if (!existing) throw new Error('Flow insert conflicted but no existing flow was found');
    return { created: false, flow: existing };
  }

  /** A flow with its steps; `fields` loads only those parts of it. */
  flow(id: string): Promise<FlowRunWithSteps | null>;
  flow(id: string, fields: FlowFields): Promise<FlowRead | null>;
  flow(id: string, fields: FlowFields = WHOLE_FLOW): Promise<FlowRead | null> {
    return this.prisma.flowRun.findUnique({ where: { id }, ...readArgs(fields) }) as Promise<FlowRead | null>;
  }

  /**
   * Writes step rows (inserted, or replacing the row of the same index), the flow's end and its signals
   * in one statement. Returns the flow when `end` was written.
   */
  async record(flowId: string, write: RecordWrite): Promise<FlowRun | undefined> {
    const steps = write.steps ?? [];
    const signals = (write.signals ?? []).map((s) => ({
      id: randomUUID(),
      name: s.name,
      payload: s.payload,
      source: `flow:${flowId}`,
      createdAt: new Date(),
    }));
    const end = write.end && {
      status: write.end.status,
      output: write.end.output ?? null,
      haltedAt: write.end.haltedAt ?? null,
      errorCode: write.end.failure?.type ?? null,
      errorMessage: write.end.failure?.message ?? null,
      failure: write.end.failure ?? null,
      finishedAt: new Date(),
    };
    const {
      rows: [flow],
    } = await run<FlowRun>(this.pool, recordStatement, [
      JSON.stringify(steps),
      flowId,
      JSON.stringify(signals),
      JSON.stringify(end ? [end] : []),
    ]);
    if (signals.length) this.options.signalsCommitted?.();
    return flow;
  }

  /** Records the flow's end, with the signals it emits, in one statement. */
  async finishFlow(flowId: string, end: FlowEnd & { signals?: SignalDraft[] }): Promise<FlowRun> {
    const flow = await this.record(flowId, { end, signals: end.signals });
    if (!flow) throw new Error(`Flow ${flowId} not found`);
    return flow;
  }

  async setStepStatus(flowId: string, index: number, status: StepStatus) {
    await this.prisma.$executeRaw`
      UPDATE "FlowStep" SET "status" = ${status} WHERE "flowId" = ${flowId}::uuid AND "index" = ${index}`;
  }

  /**
   * Commits a signal that no flow emitted (a Service's webhook or event), once per `dedupeKey`: a
   * second commit of the same key is a no-op, however many processes receive the event at once.
   */
  async publishSignal(signal: {
    name: string;
    payload: Record<string, unknown>;
    source: string;
    dedupeKey: string;
  }): Promise<{ duplicate: boolean }> {
    const { rowCount: inserted } = await run(this.pool, publishSignalStatement, [
      randomUUID(),
      signal.name,
      JSON.stringify(signal.payload),
      signal.source,
      signal.dedupeKey,
      new Date(),
    ]);
    if (inserted) this.options.signalsCommitted?.();
    return { duplicate: inserted === 0 };
  }

  /** Keeps the lease of the flows this process runs. */
  async heartbeat(owner: string, flowIds: readonly string[]) {
    if (!flowIds.length) return;
    await this.prisma.flowRun.updateMany({
      where: { id: { in: [...flowIds] }, owner, status: FlowStatus.RUNNING },
      data: { heartbeatAt: new Date() },
    });
  }

  /** Running filter flows whose owner stopped renewing the lease: candidates for recovery. */
  async staleFlows(cutoff: Date, limit = 50): Promise<FlowRun[]> {
    return this.prisma.flowRun.findMany({
      where: {
        kind: FlowKind.FILTER,
        status: FlowStatus.RUNNING,
        OR: [{ heartbeatAt: { lt: cutoff } }, { heartbeatAt: null }],
      },
      orderBy: { startedAt: 'asc' },
      take: limit,
    });
  }

  /** Takes over a flow's lease if it is still stale (or already ours); false when another process won. */
  async claim(flowId: string, owner: string, cutoff: Date): Promise<boolean> {
    const taken = await this.prisma.flowRun.updateMany({
      where: {
        id: flowId,
        status: FlowStatus.RUNNING,
        OR: [{ heartbeatAt: { lt: cutoff } }, { heartbeatAt: null }, { owner }],
      },
      data: { owner, heartbeatAt: new Date(), attempt: { increment: 1 } },
    });
    return taken.count === 1;
  }

  /** Reopens a failed receiver run for its next delivery. */
  async reopen(flowId: string, owner: string): Promise<void> {
    await this.prisma.flowRun.update({
      where: { id: flowId },
      data: {
        status: FlowStatus.RUNNING,
        owner,
        heartbeatAt: new Date(),
        attempt: { increment: 1 },
        finishedAt: null,
        errorCode: null,
        errorMessage: null,
        failure: Prisma.JsonNull,
      },
    });
  }

  /** The flows of several orders in one query, newest first: for a page of federated orders. */
  async byOrders(
    orderIds: readonly string[],
    fields: FlowFields = WHOLE_FLOW,
  ): Promise<Map<string, FlowRead[]>> {
    const flows = (await this.prisma.flowRun.findMany({
      where: { orderId: { in: [...orderIds] } },
      orderBy: { startedAt: 'desc' },
      ...readArgs(fields),
    })) as FlowRead[];
    const byOrder = new Map<string, FlowRead[]>(orderIds.map((id) => [id, []]));
    for (const flow of flows) byOrder.get(flow.orderId!)?.push(flow);
    return byOrder;
  }

  list(
    filter: { orderId?: string; status?: string; name?: string; limit: number; before?: Date },
    fields: FlowFields = WHOLE_FLOW,
  ): Promise<FlowRead[]> {
    return this.prisma.flowRun.findMany({
      where: {
        ...(filter.orderId ? { orderId: filter.orderId } : {}),
        ...(filter.status ? { status: filter.status } : {}),
        ...(filter.name ? { name: filter.name } : {}),
        ...(filter.before ? { startedAt: { lt: filter.before } } : {}),
      },
      orderBy: { startedAt: 'desc' },
      take: filter.limit,
      ...readArgs(fields),
    }) as Promise<FlowRead[]>;
  }
}
