import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { waitFor } from '../support/wait.js';
import {
  OPERATOR,
  codeOf,
  flowOf,
  learnerToken,
  ledgerOps,
  newOrder,
  operatorActions,
  refund,
  retryFlow,
} from './support.js';

/**
 * retryFlow on the core's fixture refund filter (haltIfLegacy → createReturn [compensated by
 * cancelReturn] → refundPayment → recordRefund, emitting order.refunded.v1), asserted on the flow
 * record, the ledger stand-in's operations (one per idempotency key) and the operator actions.
 */

let t: TestCoordinator;

beforeAll(async () => {
  // A short order wait, so that a retry refused for a busy order is refused quickly.
  t = await startTestCoordinator('operators-retry', { authenticated: true, overrides: { orderWaitMs: 300 } });
});
afterAll(async () => {
  await t?.stop();
});

/** A refund whose PSP call fails transiently on every attempt: createReturn undone, COMPENSATED. */
async function compensatedRefund(orderId: string) {
  t.ledger.fault({ kind: 'refund', orderId, status: 503, times: 3 });
  const answer = await refund(t, orderId);
  expect(answer.errors?.[0]?.extensions).toMatchObject({ code: 'STEP_FAILED', flowStatus: 'COMPENSATED' });
  return String(answer.errors![0]!.extensions!.flowId);
}

const refundedSignals = (flowId: string) =>
  t.coordinator.components.database.prisma.outboxSignal.findMany({
    where: { flowId, name: 'order.refunded.v1' },
  });

describe('retryFlow', () => {
  it('runs a COMPENSATED flow again from its undone step: a new key for it, the same for the step that failed transiently', async () => {
    const orderId = newOrder('retry-compensated');
    const flowId = await compensatedRefund(orderId);
    const before = await flowOf(t, flowId);
    expect(before.steps.map((s) => [s.action, s.status])).toEqual([
      ['haltIfLegacy', 'COMPLETED'],
      ['createReturn', 'COMPENSATED'],
      ['refundPayment', 'FAILED'],
      ['cancelReturn', 'COMPLETED'],
    ]);

    const { data, errors } = await retryFlow(t, flowId, 'the PSP is back');

    expect(errors).toBeUndefined();
    const flow = data!.retryFlow;
    expect(flow).toMatchObject({ id: flowId, status: 'COMPLETED', attempt: 2, error: null });
    expect(flow.steps.map((s) => [s.index, s.action, s.status, s.idempotencyKey, s.compensates])).toEqual([
      [0, 'haltIfLegacy', 'COMPLETED', `${flowId}:0`, null],
      [1, 'createReturn', 'COMPLETED', `${flowId}:1:2`, null],
      [2, 'refundPayment', 'COMPLETED', `${flowId}:2`, null],
      [3, 'recordRefund', 'COMPLETED', `${flowId}:3`, null],
      // The first run's compensation stays on the record.
      [4, 'cancelReturn', 'COMPLETED', `${flowId}:4`, 1],
    ]);
    // The step done before keeps its record as it was; the compensation is the first run's.
    expect(flow.steps[0]!.startedAt).toBe(before.steps[0]!.startedAt);
    // A second return (the first was cancelled), one refund, one record.
    expect(ledgerOps(t, flowId)).toEqual([
      `return ${flowId}:1`,
      `cancel-return ${flowId}:4`,
      `return ${flowId}:1:2`,
      `refund ${flowId}:2`,
      `record ${flowId}:3`,
    ]);
    // The flow's signal once, and its receiver ran.
    const [signal, ...more] = await refundedSignals(flowId);
    expect(more).toEqual([]);
    await waitFor(
      async () =>
        expect(
          await t.coordinator.components.database.prisma.flowRun.findFirst({
            where: { signalId: signal!.id, receiver: 'revoke-enrollment' },
          }),
        ).toMatchObject({ status: 'completed' }),
      { what: 'the refund signal to be received' },
    );
    const [action, ...others] = await operatorActions(t, flowId);
    expect(others).toEqual([]);
    expect(action).toMatchObject({
      action: 'RETRY_FLOW',
      target: flowId,
      actor: OPERATOR,
      reason: 'the PSP is back',
      status: 'DONE',
      outcome: {
        flowStatus: 'COMPLETED',
        fromStep: 1,
        previous: { status: 'COMPENSATED', attempt: 1, error: { code: expect.any(String) } },
      },
    });
  });

  it('runs a FAILED flow again from the step that failed, keeping every step done before it', async () => {
    const orderId = newOrder('retry-failed');
    t.ledger.fault({ kind: 'refund', orderId, status: 503, times: 3 });
    // The compensation is refused: nothing is undone, the flow is FAILED.
    t.ledger.fault({ kind: 'cancel-return', orderId, status: 409, times: 1 });
    const first = await refund(t, orderId);
    expect(first.errors?.[0]?.extensions).toMatchObject({ flowStatus: 'FAILED' });
    const flowId = String(first.errors![0]!.extensions!.flowId);

    const { data, errors } = await retryFlow(t, flowId, 'retry after the PSP outage');

    expect(errors).toBeUndefined();
    expect(data!.retryFlow.steps.map((s) => [s.action, s.status, s.idempotencyKey])).toEqual([
      ['haltIfLegacy', 'COMPLETED', `${flowId}:0`],
      ['createReturn', 'COMPLETED', `${flowId}:1`],
      ['refundPayment', 'COMPLETED', `${flowId}:2`],
      ['recordRefund', 'COMPLETED', `${flowId}:3`],
      ['cancelReturn', 'FAILED', `${flowId}:4`],
    ]);
    expect(data!.retryFlow.status).toBe('COMPLETED');
    // The return made once, kept; the refund and the record made once.
    expect(ledgerOps(t, flowId)).toEqual([`return ${flowId}:1`, `refund ${flowId}:2`, `record ${flowId}:3`]);
    expect(await refundedSignals(flowId)).toHaveLength(1);
  });

  it('refuses a flow that is not FAILED or COMPENSATED (CONFLICT), and records the refusal', async () => {
    const orderId = newOrder('retry-completed');
    const done = await refund(t, orderId);
    const flowId = done.data!.requestRefund.flow.id;

    const answer = await retryFlow(t, flowId, 'by mistake');

    expect(answer.errors?.[0]).toMatchObject({
      message: `Flow ${flowId} is COMPLETED: only a FAILED or COMPENSATED flow can be retried`,
      extensions: { code: 'CONFLICT', flowStatus: 'COMPLETED' },
    });
    expect((await flowOf(t, flowId)).attempt).toBe(1);
    expect(await operatorActions(t, flowId)).toMatchObject([
      { action: 'RETRY_FLOW', status: 'REFUSED', outcome: { code: 'CONFLICT' } },
    ]);
  });

  it('answers an unknown flow NOT_FOUND, bad ids and blank reasons BAD_USER_INPUT, learners FORBIDDEN', async () => {
    const unknown = '00000000-0000-4000-8000-000000000001';
    expect(codeOf(await retryFlow(t, unknown, 'why not'))).toBe('NOT_FOUND');
    expect(codeOf(await retryFlow(t, 'not-a-flow', 'why not'))).toBe('BAD_USER_INPUT');
    const flowId = await compensatedRefund(newOrder('retry-refusals'));
    expect(codeOf(await retryFlow(t, flowId, '   '))).toBe('BAD_USER_INPUT');
    expect(codeOf(await retryFlow(t, flowId, 'x'.repeat(1001)))).toBe('BAD_USER_INPUT');
    expect(codeOf(await retryFlow(t, flowId, 'mine', await learnerToken()))).toBe('FORBIDDEN');
    // Only the unknown flow was an action to record (NOT_FOUND); the rest named nothing valid.
    expect(await operatorActions(t, flowId)).toEqual([]);
    expect(await operatorActions(t, unknown)).toMatchObject([
      { status: 'REFUSED', outcome: { code: 'NOT_FOUND' } },
    ]);
    expect((await flowOf(t, flowId)).status).toBe('COMPENSATED');
  });

  it('of two retries at once, runs one: the other is CONFLICT', async () => {
    const orderId = newOrder('retry-twice');
    const flowId = await compensatedRefund(orderId);
    // The retried refund is slow, so that both retries meet.
    t.ledger.fault({ kind: 'refund', orderId, delayMs: 500 });

    const answers = await Promise.all([retryFlow(t, flowId, 'one'), retryFlow(t, flowId, 'two')]);

    expect(answers.map((a) => a.data?.retryFlow.status ?? codeOf(a)).sort()).toEqual([
      'COMPLETED',
      'CONFLICT',
    ]);
    expect((await flowOf(t, flowId)).attempt).toBe(2);
    expect(ledgerOps(t, flowId).filter((op) => op.startsWith('refund'))).toEqual([`refund ${flowId}:2`]);
  });

  it("holds the flow's order as a new run does: ORDER_BUSY while another flow of the order runs", async () => {
    const orderId = newOrder('retry-busy');
    const flowId = await compensatedRefund(orderId);
    // Another refund of the order, held at its PSP call for longer than ORDER_WAIT_MS.
    t.ledger.fault({ kind: 'refund', orderId, delayMs: 1_500 });
    const calls = t.ledger.calls('/operations/refund');
    const other = refund(t, orderId);
    await waitFor(() => t.ledger.calls('/operations/refund') > calls, {
      what: 'the other flow to hold the order',
    });

    const busy = await retryFlow(t, flowId, 'while another runs');

    expect(busy.errors?.[0]?.extensions).toMatchObject({ code: 'ORDER_BUSY', orderId });
    expect(await flowOf(t, flowId)).toMatchObject({ status: 'COMPENSATED', attempt: 1 });
    expect((await other).data?.requestRefund.flow.status).toBe('COMPLETED');
    // Once the order is free, the retry runs.
    expect((await retryFlow(t, flowId, 'now')).data?.retryFlow.status).toBe('COMPLETED');
    expect((await operatorActions(t, flowId)).map((a) => a.status)).toEqual(['DONE', 'REFUSED']);
  });
});
