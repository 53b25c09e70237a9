import { randomUUID } from 'node:crypto';
import type { OperatorAction, Prisma, PrismaClient } from '../db/generated/client.js';
import { whileAvailable } from '../db/availability.js';
import { storableJson } from './store.js';

export type { OperatorAction };

/** What operators do to flows and signals; the same names are stored in OperatorAction.action. */
export const OperatorActionKind = {
  RETRY_FLOW: 'RETRY_FLOW',
  CANCEL_FLOW: 'CANCEL_FLOW',
  REPLAY_DEAD_LETTERS: 'REPLAY_DEAD_LETTERS',
  REDELIVER_SIGNAL: 'REDELIVER_SIGNAL',
} as const;
export type OperatorActionKind = (typeof OperatorActionKind)[keyof typeof OperatorActionKind];

/** Lifecycle of an operator action; stored in OperatorAction.status. */
export const OperatorActionStatus = {
  /** Recorded, acting (left so by a crash: the record says it was attempted). */
  RUNNING: 'running',
  DONE: 'done',
  /** Refused before it changed anything (unknown id, wrong state, busy order): `outcome` says why. */
  REFUSED: 'refused',
  /** An unexpected error while it acted (the database, the bus): `outcome` says which. */
  FAILED: 'failed',
} as const;
export type OperatorActionStatus = (typeof OperatorActionStatus)[keyof typeof OperatorActionStatus];

export interface OperatorActionStart {
  action: OperatorActionKind;
  target: string;
  flowId?: string;
  signalId?: string;
  actor: unknown;
  reason: string;
}

/**
 * The record of operator actions: each is written before it acts (so an action cut short by a crash
 * is still on record, as running) and completed with its outcome.
 */
export class OperatorLog {
  constructor(private readonly prisma: PrismaClient) {}

  async start(entry: OperatorActionStart): Promise<string> {
    const id = randomUUID();
    await whileAvailable(() =>
      this.prisma.operatorAction.create({
        data: {
          id,
          action: entry.action,
          target: entry.target,
          flowId: entry.flowId ?? null,
          signalId: entry.signalId ?? null,
          actor: json(entry.actor ?? { kind: 'anonymous' }),
          reason: entry.reason,
          status: OperatorActionStatus.RUNNING,
        },
      }),
    );
    return id;
  }

  async finish(id: string, status: OperatorActionStatus, outcome: unknown): Promise<void> {
    await whileAvailable(() =>
      this.prisma.operatorAction.update({
        where: { id },
        data: { status, outcome: json(outcome), finishedAt: new Date() },
      }),
    );
  }

  /** Newest first; of one flow, or all. */
  list(filter: { flowId?: string; limit: number }): Promise<OperatorAction[]> {
    return whileAvailable(() =>
      this.prisma.operatorAction.findMany({
        where: filter.flowId ? { flowId: filter.flowId } : {},
        orderBy: { at: 'desc' },
        take: filter.limit,
      }),
    );
  }

  /** The actions on each flow, newest first, in one query. */
  async byFlows(flowIds: readonly string[]): Promise<Map<string, OperatorAction[]>> {
    const actions = await whileAvailable(() =>
      this.prisma.operatorAction.findMany({
        where: { flowId: { in: [...flowIds] } },
        orderBy: { at: 'desc' },
      }),
    );
    const byFlow = new Map<string, OperatorAction[]>(flowIds.map((id) => [id, []]));
    for (const action of actions) byFlow.get(action.flowId!)?.push(action);
    return byFlow;
  }
}

/** JSON as the record can hold it (see storableJson). */
const json = (value: unknown) => JSON.parse(storableJson(value ?? null)) as Prisma.InputJsonValue;
