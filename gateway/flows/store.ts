import { randomUUID } from 'node:crypto';
import { Prisma, type FlowRun, type FlowStep, type PrismaClient } from '../db/generated/client.js';
import type { Failure } from '../errors.js';
import type { FlagDecision } from '../federation/context.js';
import { FlowKind, FlowStatus, StepStatus } from './status.js';

export type { FlowRun, FlowStep };
export type FlowRunWithSteps = FlowRun & { steps: FlowStep[] };

export interface SignalDraft {
  name: string;
  payload: Record<string, unknown>;
}

const json = (value: unknown) =>
  value === undefined || value === null ? Prisma.JsonNull : (value as Prisma.InputJsonValue);

const failureColumns = (failure: Failure | undefined) =>
  failure
    ? {
        errorCode: failure.type,
        errorMessage: failure.message,
        failure: failure as unknown as Prisma.InputJsonValue,
      }
    : {};

/**
 * The durable record of flows, steps and the signal outbox. Every write that emits signals writes them
 * in the same transaction: a signal exists if and only if the record that emitted it does.
 */
export class FlowStore {
  constructor(private readonly prisma: PrismaClient) {}

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
    const id = randomUUID();
    const inserted = await this.prisma.$executeRaw`
      INSERT INTO "FlowRun" ("id", "kind", "name", "receiver", "status", "idempotencyKey", "inputHash", "signalId",
                             "orderId", "input", "principal", "owner", "heartbeatAt", "startedAt")
      VALUES (${id}::uuid, ${init.kind}, ${init.name}, ${init.receiver ?? null}, ${FlowStatus.RUNNING},
              ${init.idempotencyKey ?? null}, ${init.inputHash}, ${init.signalId ?? null}::uuid, ${init.orderId ?? null},
              ${JSON.stringify(init.input)}::jsonb, ${init.principal ? JSON.stringify(init.principal) : null}::jsonb,
              ${init.owner}, now(), now())
      ON CONFLICT DO NOTHING`;
    if (inserted === 1)
      return { created: true, flow: await this.prisma.flowRun.findUniqueOrThrow({ where: { id } }) };
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

  flow(id: string): Promise<FlowRunWithSteps | null> {
    return this.prisma.flowRun.findUnique({
      where: { id },
      include: { steps: { orderBy: { index: 'asc' } } },
    });
  }

  async startStep(step: {
    flowId: string;
    index: number;
    action: string;
    input: Record<string, unknown>;
    idempotencyKey: string;
    attempt: number;
  }): Promise<void> {
    const data = {
      action: step.action,
      status: StepStatus.RUNNING,
      input: json(step.input),
      attempt: step.attempt,
      startedAt: new Date(),
      finishedAt: null,
      output: Prisma.JsonNull,
      errorCode: null,
      errorMessage: null,
      failure: Prisma.JsonNull,
    };
    await this.prisma.flowStep.upsert({
      where: { flowId_index: { flowId: step.flowId, index: step.index } },
      create: {
        id: randomUUID(),
        flowId: step.flowId,
        index: step.index,
        idempotencyKey: step.idempotencyKey,
        ...data,
      },
      update: data,
    });
  }

  /** Records a step its `when` condition skipped, so the record shows every step of the filter. */
  async skipStep(flowId: string, index: number, action: string): Promise<void> {
    const now = new Date();
    const data = {
      action,
      status: StepStatus.SKIPPED,
      input: {},
      attempt: 0,
      startedAt: now,
      finishedAt: now,
    };
    await this.prisma.flowStep.upsert({
      where: { flowId_index: { flowId, index } },
      create: { id: randomUUID(), flowId, index, idempotencyKey: `${flowId}:${index}`, ...data },
      update: data,
    });
  }

  /** Records a step's end, with the signals it emitted, in one transaction. */
  async finishStep(
    flowId: string,
    index: number,
    end: {
      status: StepStatus;
      output?: unknown;
      implementation?: string;
      decisions?: FlagDecision[];
      failure?: Failure;
      signals?: SignalDraft[];
    },
  ): Promise<void> {
    const update = this.prisma.flowStep.update({
      where: { flowId_index: { flowId, index } },
      data: {
        status: end.status,
        output: json(end.output),
        implementation: end.implementation ?? null,
        flagDecisions: end.decisions?.length ? json(end.decisions) : Prisma.JsonNull,
        finishedAt: new Date(),
        ...failureColumns(end.failure),
      },
    });
    const outbox = this.outbox(flowId, end.signals);
    // One statement is atomic by itself: BEGIN and COMMIT only when signals are written with it.
    if (outbox.length) await this.prisma.$transaction([update, ...outbox]);
    else await update;
  }

  async setStepStatus(flowId: string, index: number, status: StepStatus) {
    await this.prisma.flowStep.update({ where: { flowId_index: { flowId, index } }, data: { status } });
  }

  /** Records the flow's end, with the signals it emits, in one transaction. */
  async finishFlow(
    flowId: string,
    end: {
      status: FlowStatus;
      output?: unknown;
      failure?: Failure;
      haltedAt?: number;
      signals?: SignalDraft[];
    },
  ): Promise<FlowRun> {
    const update = this.prisma.flowRun.update({
      where: { id: flowId },
      data: {
        status: end.status,
        output: json(end.output),
        haltedAt: end.haltedAt ?? null,
        finishedAt: new Date(),
        owner: null,
        ...failureColumns(end.failure),
      },
    });
    const outbox = this.outbox(flowId, end.signals);
    if (!outbox.length) return update;
    const [flow] = await this.prisma.$transaction([update, ...outbox]);
    return flow;
  }

  private outbox(flowId: string, signals: SignalDraft[] = []) {
    return signals.map((s) =>
      this.prisma.outboxSignal.create({
        data: { id: randomUUID(), name: s.name, payload: json(s.payload), source: `flow:${flowId}`, flowId },
      }),
    );
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
    const inserted = await this.prisma.$executeRaw`
      INSERT INTO "OutboxSignal" ("id", "name", "payload", "source", "dedupeKey", "createdAt")
      VALUES (${randomUUID()}::uuid, ${signal.name}, ${JSON.stringify(signal.payload)}::jsonb, ${signal.source},
              ${signal.dedupeKey}, now())
      ON CONFLICT ("dedupeKey") DO NOTHING`;
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
  async byOrders(orderIds: readonly string[]): Promise<Map<string, FlowRunWithSteps[]>> {
    const flows = await this.prisma.flowRun.findMany({
      where: { orderId: { in: [...orderIds] } },
      orderBy: { startedAt: 'desc' },
      include: { steps: { orderBy: { index: 'asc' } } },
    });
    const byOrder = new Map<string, FlowRunWithSteps[]>(orderIds.map((id) => [id, []]));
    for (const flow of flows) byOrder.get(flow.orderId!)?.push(flow);
    return byOrder;
  }

  list(filter: { orderId?: string; status?: string; name?: string; limit: number; before?: Date }) {
    return this.prisma.flowRun.findMany({
      where: {
        ...(filter.orderId ? { orderId: filter.orderId } : {}),
        ...(filter.status ? { status: filter.status } : {}),
        ...(filter.name ? { name: filter.name } : {}),
        ...(filter.before ? { startedAt: { lt: filter.before } } : {}),
      },
      orderBy: { startedAt: 'desc' },
      take: filter.limit,
      include: { steps: { orderBy: { index: 'asc' } } },
    });
  }
}
