import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { FlowRun, FlowStep, OutboxSignal, Prisma, PrismaClient } from '../db/generated/client.js';
import type { Failure } from '../errors.js';
import { whileAvailable } from '../db/availability.js';
import type { TraceContext } from '../observability/trace-context.js';
import { run, utcTypes } from '../db/prepared.js';
import { replaceUnstorable } from './input.js';
import { createFlowStatement, publishSignalStatement, recordStatement } from './statements.js';
import type { StepStatus } from './status.js';
import { FlowKind, FlowStatus } from './status.js';

export type { FlowRun, FlowStep, OutboxSignal };
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

/** How `reopen…` of an ended flow went: running again, not in a state to reopen, or the order is taken. */
export type ReopenOutcome =
  | { readonly outcome: 'reopened'; readonly flow: FlowRun }
  | { readonly outcome: 'not reopened' }
  | { readonly outcome: 'order claimed'; readonly holder?: string };

/** Which flows a list shows; every criterion given must hold. */
export interface FlowFilter {
  orderId?: string;
  status?: string;
  name?: string;
  /** A username or an LMS user id: the flow's caller's, or its input's (`username`, `lmsUserId`). */
  learner?: string;
  /** Started at or after. */
  from?: Date;
  /** Started before. */
  to?: Date;
  /** Started before (the page's cursor). */
  before?: Date;
  limit: number;
}

/** How `createFlow` ended: a new run, the run that already holds the key, or the order is taken. */
export type CreateFlowOutcome =
  | { readonly outcome: 'created'; readonly flow: FlowRun }
  | { readonly outcome: 'existing'; readonly flow: FlowRun }
  /** Another running flow holds the order (`holder`, its id; gone already if it just ended). */
  | { readonly outcome: 'order claimed'; readonly holder?: string };

/**
 * A write of a run that this process no longer runs: another took it over (its lease lapsed while it
 * still ran) and owns its record now. Nothing of the write was committed.
 */
export class FlowTakenOver extends Error {
  override readonly name = 'FlowTakenOver';
  constructor(readonly flowId: string) {
    super(`Flow ${flowId} was taken over by another gateway process; this process stopped running it`);
  }
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
      /**
       * The trace of the work writing now (tracing on), recorded with what it writes: a flow run's (a
       * recovered run continues it), each signal's (its receivers' runs link to it).
       */
      traceContext?: () => TraceContext | undefined;
    } = {},
  ) {}

  /**
   * Creates a flow run, atomically against concurrent duplicates and across processes: a run whose
   * unique key is taken (the caller's idempotency key for the filter, or the signal for the receiver)
   * is answered with the run that holds it; a run that would claim an order another running flow holds
   * is not created.
   */
  async createFlow(init: {
    kind: FlowKind;
    name: string;
    receiver?: string;
    idempotencyKey?: string;
    /** Whose key it is: see `idempotencyScopeOf`. */
    idempotencyScope?: string;
    signalId?: string;
    inputHash: string;
    orderId?: string;
    /** Claim the order for as long as the run runs. */
    claimOrder?: boolean;
    input: Record<string, unknown>;
    principal?: unknown;
    owner: string;
    /** The trace the run belongs to, when not the current one (a receiver run's: its signal's; null: none). */
    traceContext?: TraceContext | null;
  }): Promise<CreateFlowOutcome> {
    const traceContext = init.traceContext === undefined ? this.options.traceContext?.() : init.traceContext;
    return whileAvailable(async () => {
      const now = new Date();
      const scope = init.idempotencyScope ?? 'anonymous';
      const orderClaim = init.claimOrder && init.orderId !== undefined ? init.orderId : null;
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
        scope,
        orderClaim,
        traceContext ? JSON.stringify(traceContext) : null,
      ]);
      if (inserted) return { outcome: 'created', flow: inserted };
      const existing = init.idempotencyKey
        ? await this.prisma.flowRun.findUnique({
            where: {
              name_idempotencyScope_idempotencyKey: {
                name: init.name,
                idempotencyScope: scope,
                idempotencyKey: init.idempotencyKey,
              },
            },
          })
        : init.signalId
          ? await this.prisma.flowRun.findUnique({
              where: { signalId_receiver: { signalId: init.signalId, receiver: init.receiver! } },
            })
          : null;
      if (existing) return { outcome: 'existing', flow: existing };
      if (orderClaim === null) throw new Error('Flow insert conflicted but no existing flow was found');
      const holder = await this.prisma.flowRun.findUnique({ where: { orderClaim }, select: { id: true } });
      return { outcome: 'order claimed', holder: holder?.id };
    });
  }

  /** A flow with its steps; `fields` loads only those parts of it. */
  flow(id: string): Promise<FlowRunWithSteps | null>;
  flow(id: string, fields: FlowFields): Promise<FlowRead | null>;
  flow(id: string, fields: FlowFields = WHOLE_FLOW): Promise<FlowRead | null> {
    return whileAvailable(
      () =>
        this.prisma.flowRun.findUnique({ where: { id }, ...readArgs(fields) }) as Promise<FlowRead | null>,
    );
  }

  /**
   * Writes step rows (inserted, or replacing the row of the same index), the flow's end and its signals
   * in one statement, if run `attempt` of the flow is still the one running (see recordStatement);
   * otherwise writes nothing and throws FlowTakenOver. Returns the flow when `end` was written.
   */
  async record(flowId: string, attempt: number, write: RecordWrite): Promise<FlowRun | undefined> {
    const steps = write.steps ?? [];
    const traceContext = write.signals?.length ? (this.options.traceContext?.() ?? null) : null;
    const signals = (write.signals ?? []).map((s) => ({
      id: randomUUID(),
      name: s.name,
      payload: s.payload,
      source: `flow:${flowId}`,
      createdAt: new Date(),
      traceContext,
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
      rows: [row],
    } = await whileAvailable(() =>
      run<FlowRun & { owned: number }>(this.pool, recordStatement, [
        storableJson(steps),
        flowId,
        storableJson(signals),
        storableJson(end ? [end] : []),
        attempt,
      ]),
    );
    if (!row?.owned) throw new FlowTakenOver(flowId);
    if (signals.length) this.options.signalsCommitted?.();
    if (!end) return undefined;
    const { owned: _owned, ...flow } = row;
    return flow as FlowRun;
  }

  /** Records the flow's end, with the signals it emits, in one statement. */
  async finishFlow(
    flowId: string,
    attempt: number,
    end: FlowEnd & { signals?: SignalDraft[] },
  ): Promise<FlowRun> {
    const flow = await this.record(flowId, attempt, { end, signals: end.signals });
    if (!flow) throw new Error(`Flow ${flowId} not found`);
    return flow;
  }

  /** Changes a step's status in place, under the same fence as `record`. */
  async setStepStatus(flowId: string, attempt: number, index: number, status: StepStatus) {
    const updated = await whileAvailable(
      () => this.prisma.$executeRaw`
      UPDATE "FlowStep" SET "status" = ${status}
      WHERE "flowId" = ${flowId}::uuid AND "index" = ${index}
        AND EXISTS (SELECT 1 FROM "FlowRun" WHERE "id" = ${flowId}::uuid AND "attempt" = ${attempt}
                    AND "status" = 'running')`,
    );
    if (updated === 0) {
      const owned = await this.prisma.flowRun.count({
        where: { id: flowId, attempt, status: FlowStatus.RUNNING },
      });
      if (!owned) throw new FlowTakenOver(flowId);
    }
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
    const traceContext = this.options.traceContext?.();
    const { rowCount: inserted } = await whileAvailable(() =>
      run(this.pool, publishSignalStatement, [
        randomUUID(),
        signal.name,
        storableJson(signal.payload),
        signal.source,
        signal.dedupeKey,
        new Date(),
        traceContext ? JSON.stringify(traceContext) : null,
      ]),
    );
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

  /**
   * Running filter flows whose owner stopped renewing the lease: candidates for recovery. `running`:
   * the flows this process runs itself, never candidates, however late their heartbeat.
   */
  async staleFlows(cutoff: Date, running: readonly string[] = [], limit = 50): Promise<FlowRun[]> {
    return this.prisma.flowRun.findMany({
      where: {
        kind: FlowKind.FILTER,
        status: FlowStatus.RUNNING,
        OR: [{ heartbeatAt: { lt: cutoff } }, { heartbeatAt: null }],
        ...(running.length ? { id: { notIn: [...running] } } : {}),
      },
      orderBy: { startedAt: 'asc' },
      take: limit,
    });
  }

  /**
   * Takes over a flow whose lease is still stale: the next attempt, owned by `owner`. Returns that
   * attempt's run, or undefined when another process won (or the owner renewed its lease meanwhile).
   * The new attempt fences the previous one's writes (see `record`).
   */
  async claim(flowId: string, owner: string, cutoff: Date): Promise<FlowRun | undefined> {
    const { rows } = await this.pool.query<FlowRun>({
      text: `UPDATE "FlowRun" SET "owner" = $2, "heartbeatAt" = now(), "attempt" = "attempt" + 1
             WHERE "id" = $1::uuid AND "status" = 'running' AND ("heartbeatAt" IS NULL OR "heartbeatAt" < $3)
             RETURNING *`,
      values: [flowId, owner, cutoff],
      types: utcTypes,
    });
    return rows[0];
  }

  /**
   * Reopens a receiver run for a new delivery: one that failed, or one still "running" whose owner
   * stopped renewing its lease. Undefined when another process runs it now (a live lease).
   */
  async reopen(flowId: string, owner: string, cutoff: Date): Promise<FlowRun | undefined> {
    const { rows } = await whileAvailable(() =>
      this.pool.query<FlowRun>({
        text: `UPDATE "FlowRun" SET "status" = 'running', "owner" = $2, "heartbeatAt" = now(),
                 "attempt" = "attempt" + 1, "finishedAt" = NULL, "errorCode" = NULL, "errorMessage" = NULL,
                 "failure" = NULL
               WHERE "id" = $1::uuid AND ("status" <> 'running' OR "heartbeatAt" IS NULL OR "heartbeatAt" < $3)
               RETURNING *`,
        values: [flowId, owner, cutoff],
        types: utcTypes,
      }),
    );
    return rows[0];
  }

  /** The flows of several orders in one query, newest first: for a page of federated orders. */
  async byOrders(
    orderIds: readonly string[],
    fields: FlowFields = WHOLE_FLOW,
  ): Promise<Map<string, FlowRead[]>> {
    const flows = (await whileAvailable(() =>
      this.prisma.flowRun.findMany({
        where: { orderId: { in: [...orderIds] } },
        orderBy: { startedAt: 'desc' },
        ...readArgs(fields),
      }),
    )) as FlowRead[];
    const byOrder = new Map<string, FlowRead[]>(orderIds.map((id) => [id, []]));
    for (const flow of flows) byOrder.get(flow.orderId!)?.push(flow);
    return byOrder;
  }

  list(filter: FlowFilter, fields: FlowFields = WHOLE_FLOW): Promise<FlowRead[]> {
    const startedAt = {
      ...(filter.from ? { gte: filter.from } : {}),
      ...(filter.to || filter.before
        ? { lt: new Date(Math.min(filter.to?.getTime() ?? Infinity, filter.before?.getTime() ?? Infinity)) }
        : {}),
    };
    return whileAvailable(
      () =>
        this.prisma.flowRun.findMany({
          where: {
            ...(filter.orderId ? { orderId: filter.orderId } : {}),
            ...(filter.status ? { status: filter.status } : {}),
            ...(filter.name ? { name: filter.name } : {}),
            ...(Object.keys(startedAt).length ? { startedAt } : {}),
            ...(filter.learner !== undefined ? { OR: learnerMatches(filter.learner) } : {}),
          },
          orderBy: { startedAt: 'desc' },
          take: filter.limit,
          ...readArgs(fields),
        }) as Promise<FlowRead[]>,
    );
  }

  /**
   * Runs an ended filter flow again, as its next attempt owned by `owner`: a FAILED or COMPENSATED one
   * only, atomically (of two retries at once, one reopens it). The flow claims its order again when
   * `claimOrder`, as at its start; another running flow holding it is `order claimed`. The new attempt
   * fences any process still running an older one (FlowStore.record).
   */
  async reopenFlow(
    flowId: string,
    owner: string,
    claimOrder: boolean,
    /** Only if the flow is still at this attempt: a retry decided on a read of it reopens that run only. */
    attempt?: number,
  ): Promise<ReopenOutcome> {
    try {
      const { rows } = await whileAvailable(() =>
        this.pool.query<FlowRun>({
          text: `UPDATE "FlowRun" SET "status" = 'running', "owner" = $2, "heartbeatAt" = now(),
                   "attempt" = "attempt" + 1, "finishedAt" = NULL, "errorCode" = NULL, "errorMessage" = NULL,
                   "failure" = NULL, "haltedAt" = NULL,
                   "orderClaim" = CASE WHEN $3::boolean THEN "orderId" ELSE NULL END
                 WHERE "id" = $1::uuid AND "kind" = 'filter' AND "status" IN ('failed', 'compensated')
                   AND ($4::int IS NULL OR "attempt" = $4::int)
                 RETURNING *`,
          values: [flowId, owner, claimOrder, attempt ?? null],
          types: utcTypes,
        }),
      );
      return rows[0] ? { outcome: 'reopened', flow: rows[0] } : { outcome: 'not reopened' };
    } catch (error) {
      const { code, constraint } = error as { code?: string; constraint?: string };
      if (code !== '23505' || constraint !== 'FlowRun_orderClaim_key') throw error;
      const flow = await this.prisma.flowRun.findUnique({ where: { id: flowId }, select: { orderId: true } });
      const holder = flow?.orderId
        ? await this.prisma.flowRun.findUnique({ where: { orderClaim: flow.orderId }, select: { id: true } })
        : null;
      return { outcome: 'order claimed', holder: holder?.id };
    }
  }

  /**
   * FAILED filter flows due for a retry of their unknown outcome, in one query (the FlowRun index on
   * status, name and finishedAt): of the filters named, whose failure was not a refusal (a cancel's
   * and a recovery's failures are refusals too) and failed one of the filter's `mutations` (step
   * indexes: a query that failed acted on nothing), whose attempts are fewer than the filter's
   * `maximumAttempts`, due `min(initial × 2^(attempt - 1), maximum)` after they ended (as
   * flows/resume.ts `resumeDueAt`), and that no operator retried or cancelled (`actor`: the
   * Coordinator's own retries are recorded as this actor). Oldest end first.
   */
  async unknownOutcomesDue(
    filters: readonly {
      name: string;
      mutations: readonly number[];
      initialIntervalMs: number;
      maximumIntervalMs: number;
      maximumAttempts: number;
    }[],
    coordinatorSubject: string,
    limit = 20,
  ): Promise<FlowRun[]> {
    if (!filters.length) return [];
    const { rows } = await whileAvailable(() =>
      this.pool.query<FlowRun>({
        text: `SELECT f.* FROM unnest($1::text[], $2::float8[], $3::float8[], $4::int[], $7::text[])
                 AS p("name", "initialMs", "maximumMs", "maximumAttempts", "mutations")
               JOIN "FlowRun" f ON f."status" = 'failed' AND f."name" = p."name"
                 AND f."finishedAt" <= now() - p."initialMs" * interval '1 millisecond'
               WHERE f."kind" = 'filter' AND f."attempt" < p."maximumAttempts"
                 AND (f."failure"->>'nonRetryable') = 'false'
                 AND f."finishedAt" <= now() - LEAST(p."initialMs" * power(2, f."attempt" - 1), p."maximumMs")
                                             * interval '1 millisecond'
                 AND EXISTS (
                   SELECT 1 FROM "FlowStep" s
                   WHERE s."flowId" = f."id" AND s."status" = 'failed' AND s."compensates" IS NULL
                     AND s."index" = ANY (p."mutations"::int[]) AND (s."failure"->>'nonRetryable') = 'false')
                 AND NOT EXISTS (
                   SELECT 1 FROM "OperatorAction" a
                   WHERE a."flowId" = f."id" AND a."action" IN ('RETRY_FLOW', 'CANCEL_FLOW')
                     AND a."actor"->>'subject' IS DISTINCT FROM $5)
               ORDER BY f."finishedAt" LIMIT $6`,
        values: [
          filters.map((f) => f.name),
          filters.map((f) => f.initialIntervalMs),
          filters.map((f) => f.maximumIntervalMs),
          filters.map((f) => f.maximumAttempts),
          coordinatorSubject,
          limit,
          // One int[] literal per filter: unnest takes one-dimensional arrays.
          filters.map((f) => `{${f.mutations.join(',')}}`),
        ],
        types: utcTypes,
      }),
    );
    return rows;
  }

  /**
   * Takes a running filter flow away from whichever process runs it, to cancel it: its next attempt,
   * owned by `owner`, with `failure` recorded on the run at once, so that a recovery of this attempt
   * (this process crashing mid-cancel) finishes the cancellation instead of resuming the flow.
   * Undefined when the flow is not running (it ended meanwhile).
   */
  async takeOverToCancel(flowId: string, owner: string, failure: Failure): Promise<FlowRun | undefined> {
    const { rows } = await whileAvailable(() =>
      this.pool.query<FlowRun>({
        text: `UPDATE "FlowRun" SET "owner" = $2, "heartbeatAt" = now(), "attempt" = "attempt" + 1,
                 "errorCode" = $3, "errorMessage" = $4, "failure" = $5::jsonb
               WHERE "id" = $1::uuid AND "kind" = 'filter' AND "status" = 'running'
               RETURNING *`,
        values: [flowId, owner, failure.type, failure.message, storableJson(failure)],
        types: utcTypes,
      }),
    );
    return rows[0];
  }

  /** A signal of the outbox. */
  signal(id: string): Promise<OutboxSignal | null> {
    return whileAvailable(() => this.prisma.outboxSignal.findUnique({ where: { id } }));
  }

  /** The signals each flow emitted, oldest first, in one query. */
  async signalsOf(flowIds: readonly string[]): Promise<Map<string, OutboxSignal[]>> {
    const signals = await whileAvailable(() =>
      this.prisma.outboxSignal.findMany({
        where: { flowId: { in: [...flowIds] } },
        orderBy: { createdAt: 'asc' },
      }),
    );
    const byFlow = new Map<string, OutboxSignal[]>(flowIds.map((id) => [id, []]));
    for (const signal of signals) byFlow.get(signal.flowId!)?.push(signal);
    return byFlow;
  }

  /** The receiver runs of each signal (one per receiver that started it), in one query. */
  async receiverRunsOf(signalIds: readonly string[]): Promise<Map<string, FlowRunWithSteps[]>> {
    const runs = await whileAvailable(() =>
      this.prisma.flowRun.findMany({
        where: { signalId: { in: [...signalIds] }, kind: FlowKind.RECEIVER },
        orderBy: { startedAt: 'asc' },
        include: { steps: { orderBy: { index: 'asc' } } },
      }),
    );
    const bySignal = new Map<string, FlowRunWithSteps[]>(signalIds.map((id) => [id, []]));
    for (const run of runs) bySignal.get(run.signalId!)?.push(run);
    return bySignal;
  }
}

/** A flow is a learner's when its caller or its input names them, by username or LMS user id. */
function learnerMatches(learner: string): Prisma.FlowRunWhereInput[] {
  const byName = [
    { principal: { path: ['username'], equals: learner } },
    { input: { path: ['username'], equals: learner } },
  ];
  if (!/^\d{1,15}$/.test(learner)) return byName;
  const id = Number(learner);
  return [
    ...byName,
    { principal: { path: ['lmsUserId'], equals: id } },
    { input: { path: ['lmsUserId'], equals: id } },
  ];
}

/** Whose idempotency keys a caller's are: each caller has keys of its own, as in Stripe's API. */
export function idempotencyScopeOf(principal: { kind: string; subject: string } | undefined): string {
  return principal ? `${principal.kind}:${principal.subject}` : 'anonymous';
}

/**
 * JSON that PostgreSQL's jsonb accepts. It refuses the NUL character and lone surrogates, which a
 * Service's answer may hold; the record keeps U+FFFD in their place rather than failing the write (and
 * the flow with it). Client input with them is refused before a flow starts (see flows/input.ts).
 */
export function storableJson(value: unknown): string {
  const text = JSON.stringify(value);
  // The common case costs one scan; only text that may hold such a character is rebuilt.
  if (!/\\u0000|\\ud[89a-f]/i.test(text)) return text;
  return JSON.stringify(storable(value));
}

function storable(value: unknown): unknown {
  if (typeof value === 'string') return replaceUnstorable(value);
  if (Array.isArray(value)) return value.map(storable);
  if (value && typeof value === 'object' && !(value instanceof Date))
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [storable(k), storable(v)]));
  return value;
}
