import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLedger, type Ledger } from '../fixtures/services/ledger.js';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { waitFor } from '../support/wait.js';
import {
  OPERATOR,
  cancelFlow,
  codeOf,
  flowOf,
  ledgerOps,
  newOrder,
  operatorActions,
  refund,
  retryFlow,
} from './support.js';

/**
 * cancelFlow of a flow held mid-step: gateway `a` runs the flow, its PSP call held by the ledger
 * stand-in; the operator cancels it through gateway `b`, which shares a's database. The stuck process
 * is fenced: whatever it writes after is refused.
 */

// Long enough that no sweep or heartbeat interferes by itself: the recovery test sweeps by hand.
const LEASE_MS = 120_000;
const HOLD_MS = 2_000;

let ledger: Ledger;
let database: TestDatabase;
let a: TestCoordinator;
let b: TestCoordinator;

beforeAll(async () => {
  ledger = await startLedger();
  database = await createTestDatabase('operators-cancel');
  const options = { ledger, database, authenticated: true, overrides: { leaseMs: LEASE_MS } };
  a = await startTestCoordinator('operators-cancel-a', options);
  b = await startTestCoordinator('operators-cancel-b', options);
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await ledger?.close();
  await database?.drop();
});

const prisma = () => a.coordinator.components.database.prisma;

/** A refund on `a` whose `kind` call the ledger holds; resolves once that call is under way. */
async function heldRefund(kind: 'refund' | 'return') {
  const orderId = newOrder(`cancel-${kind}`);
  ledger.fault({ kind, orderId, delayMs: HOLD_MS });
  const path = `/operations/${kind}`;
  const before = ledger.calls(path);
  const answer = refund(a, orderId);
  await waitFor(() => ledger.calls(path) > before, { what: `the ${kind} call to be held` });
  const { id: flowId } = await prisma().flowRun.findFirstOrThrow({ where: { orderId } });
  return { orderId, flowId, answer };
}

/** The held call answered and the stuck process is done with the flow. */
const stuckCallDone = (orderId: string, kind: string) =>
  waitFor(
    () =>
      ledger.operations().some((op) => op.orderId === orderId && op.kind === kind) &&
      a.coordinator.components.engine.activeFlows().length === 0,
    { timeoutMs: HOLD_MS + 10_000, what: 'the held call to end in the stuck process' },
  );

const recordOf = (flowId: string) =>
  prisma().flowRun.findUniqueOrThrow({
    where: { id: flowId },
    include: { steps: { orderBy: { index: 'asc' } }, signals: true },
  });

describe('cancelFlow', () => {
  it('cancels a flow held mid-step in another process: that process is fenced, what ran is undone', async () => {
    const { orderId, flowId, answer } = await heldRefund('refund');

    const { data, errors } = await cancelFlow(b, flowId, 'the PSP call hangs');

    expect(errors).toBeUndefined();
    const flow = data!.cancelFlow;
    expect(flow).toMatchObject({
      id: flowId,
      status: 'COMPENSATED',
      attempt: 2,
      error: {
        code: 'FLOW_CANCELLED',
        message: 'Cancelled by an operator: the PSP call hangs',
        details: { cancelledBy: OPERATOR, reason: 'the PSP call hangs' },
      },
    });
    expect(
      flow.steps.map((s) => [s.index, s.action, s.status, s.error?.code ?? null, s.compensates]),
    ).toEqual([
      [0, 'haltIfLegacy', 'COMPLETED', null, null],
      [1, 'createReturn', 'COMPENSATED', null, null],
      [2, 'refundPayment', 'FAILED', 'FLOW_CANCELLED', null],
      [4, 'cancelReturn', 'COMPLETED', null, 1],
    ]);
    // The caller of the stuck flow is told, with who and why.
    const stuck = await answer;
    expect(stuck.errors?.[0]?.extensions).toMatchObject({
      code: 'FLOW_CANCELLED',
      flowId,
      flowStatus: 'COMPENSATED',
      reason: 'the PSP call hangs',
    });
    // Once the held call answered, the stuck process wrote nothing: no step, no signal, no end.
    const cancelled = await recordOf(flowId);
    await stuckCallDone(orderId, 'refund');
    expect(await recordOf(flowId)).toEqual(cancelled);
    expect(cancelled.signals).toEqual([]);
    expect(await operatorActions(b, flowId)).toMatchObject([
      {
        action: 'CANCEL_FLOW',
        actor: OPERATOR,
        reason: 'the PSP call hangs',
        status: 'DONE',
        outcome: { flowStatus: 'COMPENSATED', attempt: 2 },
      },
    ]);

    // The refund the stuck call made (the ledger did it after all) is not made twice by a retry: the
    // interrupted step keeps its key, the undone return gets a new one.
    const retried = await retryFlow(b, flowId, 'after the cancel');
    expect(retried.data?.retryFlow).toMatchObject({ status: 'COMPLETED', attempt: 3 });
    expect(ledgerOps(b, flowId)).toEqual([
      `return ${flowId}:1`,
      `cancel-return ${flowId}:4`,
      `refund ${flowId}:2`,
      `return ${flowId}:1:2`,
      `record ${flowId}:3`,
    ]);
  });

  it('ends FAILED when nothing it ran can be undone', async () => {
    const { orderId, flowId, answer } = await heldRefund('return');

    const { data } = await cancelFlow(b, flowId, 'no return today');

    expect(data!.cancelFlow.status).toBe('FAILED');
    expect(data!.cancelFlow.steps.map((s) => [s.action, s.status, s.error?.code ?? null])).toEqual([
      ['haltIfLegacy', 'COMPLETED', null],
      ['createReturn', 'FAILED', 'FLOW_CANCELLED'],
    ]);
    expect((await answer).errors?.[0]?.extensions).toMatchObject({
      code: 'FLOW_CANCELLED',
      flowStatus: 'FAILED',
    });
    await stuckCallDone(orderId, 'return');
    expect((await recordOf(flowId)).steps).toHaveLength(2);
  });

  it('refuses a flow that is not RUNNING (CONFLICT), an unknown one (NOT_FOUND), a receiver run', async () => {
    const done = await refund(a, newOrder('cancel-done'));
    const flowId = done.data!.requestRefund.flow.id;
    const answer = await cancelFlow(b, flowId, 'too late');
    expect(answer.errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT', flowStatus: 'COMPLETED' });
    expect((await flowOf(b, flowId)).status).toBe('COMPLETED');
    expect(codeOf(await cancelFlow(b, '00000000-0000-4000-8000-000000000002', 'gone'))).toBe('NOT_FOUND');
    const run = await waitFor(() =>
      prisma()
        .flowRun.findFirst({ where: { kind: 'receiver', status: 'completed' } })
        .then((r) => r ?? false),
    );
    expect(codeOf(await cancelFlow(b, run.id, 'a receiver'))).toBe('BAD_USER_INPUT');
    expect(await operatorActions(b, flowId)).toMatchObject([
      { status: 'REFUSED', outcome: { code: 'CONFLICT' } },
    ]);
  });

  it('a cancel cut short by a crash is finished by recovery, never resumed', async () => {
    const { orderId, flowId, answer } = await heldRefund('refund');
    // As the cancel's takeover leaves the flow when its process dies right after it.
    const failure = {
      type: 'FLOW_CANCELLED',
      message: 'Cancelled by an operator: crashed midway',
      nonRetryable: true,
      details: { cancelledBy: OPERATOR, reason: 'crashed midway' },
    };
    await prisma().$executeRaw`
      UPDATE "FlowRun" SET "attempt" = "attempt" + 1, "owner" = 'a-process-that-died',
        "heartbeatAt" = now() - interval '1 hour', "errorCode" = 'FLOW_CANCELLED',
        "errorMessage" = ${failure.message}, "failure" = ${JSON.stringify(failure)}::jsonb
      WHERE "id" = ${flowId}::uuid`;

    await b.coordinator.components.leases.sweep();

    await waitFor(async () => expect((await recordOf(flowId)).status).toBe('compensated'), {
      timeoutMs: 10_000,
      what: 'recovery to finish the cancel',
    });
    const flow = await flowOf(b, flowId);
    expect(flow).toMatchObject({
      attempt: 3,
      error: { code: 'FLOW_CANCELLED', details: { reason: 'crashed midway' } },
    });
    expect(flow.steps.map((s) => [s.action, s.status])).toEqual([
      ['haltIfLegacy', 'COMPLETED'],
      ['createReturn', 'COMPENSATED'],
      ['refundPayment', 'FAILED'],
      ['cancelReturn', 'COMPLETED'],
    ]);
    expect((await answer).errors?.[0]?.extensions?.code).toBe('FLOW_CANCELLED');
    await stuckCallDone(orderId, 'refund');
    expect((await recordOf(flowId)).signals).toEqual([]);
  });
});
