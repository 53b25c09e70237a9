import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLedger, type Ledger } from '../fixtures/services/ledger.js';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { waitFor } from '../support/wait.js';

/**
 * Recovery takes over the flows of a gateway that stopped renewing their leases, never the flows its
 * own process is running, however late their heartbeat; and a gateway that was only slow, not dead,
 * loses the flow for good: its next write is refused, so the flow's signals are committed once, by
 * the process that finished it.
 */

// Long enough that no sweep or heartbeat runs by itself during a test: the tests sweep by hand.
const LEASE_MS = 120_000;

let ledger: Ledger;
let database: TestDatabase;
let a: TestCoordinator;
let b: TestCoordinator;

beforeAll(async () => {
  ledger = await startLedger();
  database = await createTestDatabase('trust-flow-leases');
  const options = { ledger, database, overrides: { leaseMs: LEASE_MS } };
  a = await startTestCoordinator('trust-flow-leases-a', options);
  b = await startTestCoordinator('trust-flow-leases-b', options);
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await ledger?.close();
  await database?.drop();
});

const prisma = () => a.coordinator.components.database.prisma;

/** Starts a refund whose PSP call is held `holdMs`, and resolves once that call is under way. */
async function slowRefund(t: TestCoordinator, holdMs: number) {
  const orderId = `lease-${randomUUID()}`;
  ledger.fault({ kind: 'refund', orderId, delayMs: holdMs });
  const before = ledger.calls('/operations/refund');
  const answer = t.graphql<{ requestRefund: { flow: { id: string; status: string } } }>(REQUEST_REFUND, {
    input: { orderId, amount: 25, learnerId: 'l-lease' },
    key: randomUUID(),
  });
  await waitFor(() => ledger.calls('/operations/refund') > before, { what: 'the PSP call to start' });
  const flow = await prisma().flowRun.findFirstOrThrow({ where: { orderId } });
  return { orderId, flowId: flow.id, answer };
}

/** As if the owner's heartbeat had not run for a long while (an event loop stall, a slow database). */
const staleHeartbeat = (flowId: string) =>
  prisma()
    .$executeRaw`UPDATE "FlowRun" SET "heartbeatAt" = now() - interval '1 hour' WHERE "id" = ${flowId}::uuid`;

/** Waits until neither process runs anything (a run of the flow in the background included). */
const settled = () =>
  waitFor(
    () =>
      a.coordinator.components.engine.activeFlows().length === 0 &&
      b.coordinator.components.engine.activeFlows().length === 0,
    { timeoutMs: 10_000, what: 'both processes to run no flow' },
  );

const refundedSignals = (flowId: string) =>
  prisma().outboxSignal.count({ where: { flowId, name: 'order.refunded.v1' } });

describe('the lease sweep', () => {
  it('never takes over a flow its own process is running, however late its heartbeat', async () => {
    const { flowId, answer } = await slowRefund(a, 1_500);
    await staleHeartbeat(flowId);
    await a.coordinator.components.leases.sweep();

    const { data, errors } = await answer;
    expect(errors).toBeUndefined();
    expect(data!.requestRefund.flow.status).toBe('COMPLETED');
    await settled();
    const flow = await prisma().flowRun.findUniqueOrThrow({ where: { id: flowId } });
    expect(flow.attempt).toBe(1);
    expect(await refundedSignals(flowId)).toBe(1);
  });

  it("fences a slow owner once another process took its flow over: the flow's signals are committed once", async () => {
    const { flowId, answer } = await slowRefund(a, 1_500);
    await staleHeartbeat(flowId);
    await b.coordinator.components.leases.sweep();
    // b finishes the flow while a is still waiting for its PSP call.
    await waitFor(
      async () =>
        (await prisma().flowRun.findUniqueOrThrow({ where: { id: flowId } })).status === 'completed',
      { timeoutMs: 10_000, what: 'the process that took the flow over to finish it' },
    );

    // a's caller gets the flow as it ended, from the process that finished it.
    const { data, errors } = await answer;
    expect(errors).toBeUndefined();
    expect(data!.requestRefund.flow).toMatchObject({ id: flowId, status: 'COMPLETED' });
    await settled();
    const flow = await prisma().flowRun.findUniqueOrThrow({
      where: { id: flowId },
      include: { steps: true },
    });
    expect(flow.attempt).toBe(2);
    expect(flow.steps.every((s) => s.status === 'completed')).toBe(true);
    // Whatever a wrote after losing the flow was refused: one signal, from b's end.
    await settled();
    expect(await refundedSignals(flowId)).toBe(1);
  });
});
