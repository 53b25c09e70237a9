import { randomUUID } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrismaClient } from '../../gateway/db/generated/client.js';
import { createMemoryEventFeed } from '../../gateway/events/memory-feed.js';
import { FlowRecorder } from '../../gateway/flows/recorder.js';
import { FlowKind, FlowStatus, StepStatus } from '../../gateway/flows/status.js';
import { FlowStore } from '../../gateway/flows/store.js';
import { silentLogger } from '../../gateway/log.js';
import { createMemorySignalBus } from '../../gateway/signals/memory-bus.js';
import { startOutboxDispatcher } from '../../gateway/signals/outbox.js';
import { compileRetryPolicy } from '../../gateway/retry-policy.js';
import type { SignalEnvelope } from '../../gateway/signals/types.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { waitFor } from '../support/wait.js';

let database: TestDatabase;
let prisma: PrismaClient;
let pool: pg.Pool;
let store: FlowStore;
let committed = 0;
const retry = compileRetryPolicy({ maximumAttempts: 3 });

beforeAll(async () => {
  database = await createTestDatabase('record');
  pool = new pg.Pool({ connectionString: database.url });
  prisma = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
  store = new FlowStore(prisma, pool, { signalsCommitted: () => committed++ });
});
afterAll(async () => {
  await prisma?.$disconnect();
  await database?.drop();
});

async function newFlow() {
  const created = await store.createFlow({
    kind: FlowKind.FILTER,
    name: 'test.flow.v1',
    idempotencyKey: randomUUID(),
    inputHash: 'h',
    input: { orderId: 'o-1' },
    owner: 'test',
  });
  if (created.outcome !== 'created') throw new Error(`not created: ${created.outcome}`);
  return created.flow;
}

const stepsOf = async (flowId: string) =>
  prisma.flowStep.findMany({ where: { flowId }, orderBy: { index: 'asc' } });
const outboxOf = (flowId: string) => prisma.outboxSignal.findMany({ where: { flowId } });
const start = (index: number) => ({
  index,
  action: `action${index}`,
  input: { orderId: 'o-1', index },
  idempotencyKey: `k:${index}`,
  attempt: 1,
});

describe('the flow record', () => {
  it("commits a step's end, with its signals, together with the next step's start", async () => {
    const flow = await newFlow();
    const recorder = new FlowRecorder(store, flow);
    await recorder.stepStarting(start(0));
    expect((await stepsOf(flow.id)).map((s) => [s.index, s.status])).toEqual([[0, 'running']]);

    let recorded = 0;
    const before = committed;
    recorder.stepEnded(
      0,
      {
        status: StepStatus.COMPLETED,
        output: { reservationId: 'r-1' },
        signals: [{ name: 's.v1', payload: { a: 1 } }],
      },
      () => recorded++,
    );
    // Not yet written: the Action of the next step has not run, so nothing depends on it.
    expect((await stepsOf(flow.id))[0]!.status).toBe('running');
    expect(await outboxOf(flow.id)).toEqual([]);
    expect(recorded).toBe(0);

    await recorder.stepStarting(start(1));
    const steps = await stepsOf(flow.id);
    expect(steps.map((s) => [s.index, s.status, s.output])).toEqual([
      [0, 'completed', { reservationId: 'r-1' }],
      [1, 'running', null],
    ]);
    expect(steps[0]!.finishedAt).toBeInstanceOf(Date);
    expect((await outboxOf(flow.id)).map((o) => [o.name, o.payload, o.source])).toEqual([
      ['s.v1', { a: 1 }, `flow:${flow.id}`],
    ]);
    expect(recorded).toBe(1);
    expect(committed).toBe(before + 1);
  });

  it("writes a new run's first step start with its end: the run's own row makes that step recoverable", async () => {
    const flow = await newFlow();
    const recorder = new FlowRecorder(store, flow, { created: true });
    await recorder.stepStarting(start(0));
    // A crash here leaves the run with no step: recovery runs step 0 with the same key, as it would
    // a step recorded as running.
    expect(await stepsOf(flow.id)).toEqual([]);
    recorder.stepEnded(0, { status: StepStatus.COMPLETED, output: { a: 1 } });
    await recorder.stepStarting(start(1));
    expect((await stepsOf(flow.id)).map((s) => [s.index, s.status])).toEqual([
      [0, 'completed'],
      [1, 'running'],
    ]);

    // A retry of the first step is visible while it waits: the failed attempt is written, then the next start.
    const retried = await newFlow();
    const again = new FlowRecorder(store, retried, { created: true });
    await again.stepStarting(start(0));
    again.stepEnded(0, {
      status: StepStatus.FAILED,
      failure: { type: 'Down', message: 'down', nonRetryable: false },
    });
    await again.flush();
    await again.stepStarting({ ...start(0), attempt: 2 });
    expect((await stepsOf(retried.id)).map((s) => [s.status, s.attempt])).toEqual([['running', 2]]);
  });

  it("writes the flow's end with what is pending and returns exactly what was recorded", async () => {
    const flow = await newFlow();
    const recorder = new FlowRecorder(store, flow);
    await recorder.stepStarting(start(0));
    recorder.stepEnded(0, { status: StepStatus.COMPLETED, output: { a: 1 }, implementation: 'shop' });
    recorder.stepSkipped(1, 'action1');
    await recorder.stepStarting(start(2));
    recorder.stepEnded(2, {
      status: StepStatus.FAILED,
      failure: { type: 'ServiceDown', message: 'down', nonRetryable: false },
    });
    const finished = await recorder.finish({
      status: FlowStatus.FAILED,
      output: { a: 1 },
      failure: { type: 'ServiceDown', message: 'down', nonRetryable: false },
      signals: [{ name: 'flow.failed.v1', payload: { orderId: 'o-1' } }],
    });
    const read = (await store.flow(flow.id))!;
    expect(finished).toEqual(read);
    expect(read.status).toBe('failed');
    expect(read.owner).toBeNull();
    expect(read.errorCode).toBe('ServiceDown');
    expect(read.steps.map((s) => [s.status, s.errorCode, s.implementation])).toEqual([
      ['completed', null, 'shop'],
      ['skipped', null, null],
      ['failed', 'ServiceDown', null],
    ]);
    expect((await outboxOf(flow.id)).map((o) => o.name)).toEqual(['flow.failed.v1']);
  });

  it('a new attempt of a step replaces its row, keeping its id; a status change of an earlier step is kept', async () => {
    const flow = await newFlow();
    const recorder = new FlowRecorder(store, flow);
    await recorder.stepStarting(start(0));
    const [first] = await stepsOf(flow.id);
    recorder.stepEnded(0, {
      status: StepStatus.FAILED,
      failure: { type: 'Timeout', message: 'slow', nonRetryable: false },
    });
    await recorder.flush();
    expect((await stepsOf(flow.id))[0]!.errorCode).toBe('Timeout');
    await recorder.stepStarting({ ...start(0), attempt: 2 });
    recorder.stepEnded(0, { status: StepStatus.COMPLETED, output: { ok: true } });
    await recorder.setStepStatus(0, StepStatus.COMPENSATED);
    await recorder.flush();
    const [row] = await stepsOf(flow.id);
    expect(row).toMatchObject({
      id: first!.id,
      attempt: 2,
      status: 'compensated',
      errorCode: null,
      failure: null,
    });
  });

  it('writes nothing of a write that fails: steps, end and signals are one statement', async () => {
    const flow = await newFlow();
    const recorder = new FlowRecorder(store, flow);
    await recorder.stepStarting(start(0));
    recorder.stepEnded(0, { status: StepStatus.COMPLETED, output: { a: 1 } });
    // A signal without a name violates the outbox's NOT NULL: the whole statement must fail.
    await expect(
      recorder.finish({
        status: FlowStatus.COMPLETED,
        signals: [{ name: undefined as unknown as string, payload: {} }],
      }),
    ).rejects.toThrow();
    const read = (await store.flow(flow.id))!;
    expect(read.status).toBe('running');
    expect(read.steps.map((s) => s.status)).toEqual(['running']);
    expect(await outboxOf(flow.id)).toEqual([]);
  });
});

describe('the outbox dispatcher', () => {
  it('publishes a backlog in batches, in commit order, each signal once, and marks every one published', async () => {
    const bus = createMemorySignalBus({ logger: silentLogger });
    const feed = createMemoryEventFeed({ logger: silentLogger });
    const received: string[] = [];
    bus.consume({ signal: 'batch.v1', receiver: 'collect', retry }, async ({ envelope }) => {
      received.push(String(envelope.payload.n));
    });
    const source = `test:${randomUUID()}`;
    for (let n = 0; n < 250; n++)
      await store.publishSignal({ name: 'batch.v1', payload: { n }, source, dedupeKey: `${source}:${n}` });
    const dispatcher = startOutboxDispatcher({ pool, bus, feed, logger: silentLogger, batchSize: 100 });
    try {
      dispatcher.wake();
      await waitFor(() => received.length === 250, { timeoutMs: 10_000 });
      expect(received).toEqual(Array.from({ length: 250 }, (_, n) => String(n)));
      // A batch is marked published after its XADDs, so a receiver may see a signal first.
      await waitFor(
        async () => (await prisma.outboxSignal.count({ where: { source, publishedAt: null } })) === 0,
        {
          timeoutMs: 10_000,
        },
      );
    } finally {
      await dispatcher.stop();
      await bus.close();
      await feed.close();
    }
  });

  it('keeps the signals the bus refused, with the error, and publishes them once it accepts', async () => {
    const inner = createMemorySignalBus({ logger: silentLogger });
    const feed = createMemoryEventFeed({ logger: silentLogger });
    let refuse = true;
    // The bus refuses the odd signals, as a Redis failing part of a pipeline would.
    const bus = {
      ...inner,
      publish: (envelope: SignalEnvelope) =>
        refuse && Number(envelope.payload.n) % 2 === 1
          ? Promise.reject(new Error('bus refused'))
          : inner.publish(envelope),
    };
    const received: number[] = [];
    inner.consume({ signal: 'partial.v1', receiver: 'collect', retry }, async ({ envelope }) => {
      received.push(Number(envelope.payload.n));
    });
    const source = `test:${randomUUID()}`;
    for (let n = 0; n < 6; n++)
      await store.publishSignal({ name: 'partial.v1', payload: { n }, source, dedupeKey: `${source}:${n}` });
    const dispatcher = startOutboxDispatcher({ pool, bus, feed, logger: silentLogger, pollIntervalMs: 50 });
    try {
      // Delivery may precede the dispatcher's commit: wait for the outbox to show the refusals.
      const waiting = await waitFor(
        async () => {
          const rows = await prisma.outboxSignal.findMany({ where: { source, publishedAt: null } });
          return rows.length === 3 && rows.every((r) => r.publishAttempts > 0) ? rows : false;
        },
        { timeoutMs: 10_000 },
      );
      expect([...received].sort()).toEqual([0, 2, 4]);
      expect(waiting.map((w) => (w.payload as { n: number }).n).sort()).toEqual([1, 3, 5]);
      expect(waiting.every((w) => w.publishAttempts >= 1 && w.lastError === 'bus refused')).toBe(true);
      refuse = false;
      dispatcher.wake();
      await waitFor(() => received.length === 6, { timeoutMs: 10_000 });
      expect([...received].sort()).toEqual([0, 1, 2, 3, 4, 5]);
      // Delivery may precede the dispatcher's commit here too.
      await waitFor(
        async () => (await prisma.outboxSignal.count({ where: { source, publishedAt: null } })) === 0,
        {
          timeoutMs: 10_000,
        },
      );
    } finally {
      await dispatcher.stop();
      await inner.close();
      await feed.close();
    }
  });
});
