import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { compileResumePolicy, resumeDueAt, unknownOutcomeStep } from '../../gateway/flows/resume.js';
import { Coordinator } from '../../gateway/coordinator.js';
import { openDatabase } from '../../gateway/db/database.js';
import { FlowStore } from '../../gateway/flows/store.js';
import { connectionsSchema } from '../../gateway/connections/schema.js';
import { createLogger, silentLogger } from '../../gateway/log.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { TEST_AUTH } from '../support/coordinator.js';
import { requestRefund, seedPaidOrder, standInState } from '../support/orders.js';
import { waitFor } from '../support/wait.js';

/**
 * A refund flow that failed with its PSP refund's outcome unknown (the money may have moved) is retried
 * by the Coordinator itself, on the refund filter's `retryUnknownOutcome` schedule, as an operator's
 * retryFlow would: the PSP answers the refund it made under the step's key, and the flow completes.
 * A refusal is not retried, and a flow that keeps failing stops at the policy's maximumAttempts. Two
 * gateway processes sweep at once: each due time is one retry, never two.
 */

// The repository's connections.yaml with the refund filter's schedule shortened for the test.
const TEST_POLICY =
  'retryUnknownOutcome: { initialInterval: 500ms, maximumInterval: 1s, maximumAttempts: 3 }';
const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const connectionsFile = join(mkdtempSync(join(tmpdir(), 'refund-resumed-')), 'connections.yaml');
writeFileSync(
  connectionsFile,
  readFileSync(root('connections.yaml'), 'utf8').replace(
    /^(\s+)retryUnknownOutcome: .*$/m,
    `$1${TEST_POLICY}`,
  ),
);

/** What both gateways log, as JSON lines: each Coordinator retry is one info line. */
const lines: Array<Record<string, unknown>> = [];
const logger = createLogger({
  level: 'info',
  destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
});
const retryLines = (flowId: string) =>
  lines.filter((l) => l.flowId === flowId && String(l.msg).startsWith('retrying a flow'));

let cc: CommerceCoordinator;
/** A second gateway process on the same database and Redis, sweeping as often: each due flow is retried once. */
let second: Coordinator;
beforeAll(async () => {
  cc = await startCommerceCoordinator('flows-refund-resumed', {
    overrides: { connectionsFile, resumeSweepMs: 100, logger },
  });
  second = new Coordinator({
    roverConfig: root('rover.yaml'),
    connectionsFile,
    subgraphsDir: root('subgraphs'),
    database: { url: cc.database.url },
    redis: { url: cc.redisUrl, keyPrefix: `${cc.eventStream.replace(/:commerce-order-lifecycle$/, '')}:` },
    flags: { testData: cc.testData },
    auth: TEST_AUTH,
    port: 0,
    logger,
    resumeSweepMs: 100,
  });
  await second.start();
});
afterAll(async () => {
  await second?.stop();
  await cc?.stop();
});
afterEach(() => cc?.services.stripe.clearFaults());

interface FlowView {
  status: string;
  attempt: number;
  error: { code: string } | null;
  operatorActions: Array<{
    action: string;
    actor: Record<string, unknown>;
    reason: string;
    status: string;
    outcome: Record<string, unknown> | null;
  }>;
}
async function flowOf(id: string): Promise<FlowView> {
  const read = await cc.graphql<{ flow: FlowView }>(
    `query ($id: ID!) { flow(id: $id) {
       status attempt error { code } operatorActions { action actor reason status outcome } } }`,
    { id },
    cc.tokens.staff,
  );
  expect(read.errors).toBeUndefined();
  return read.data!.flow;
}

const stripeRefundPosts = () =>
  cc.services.stripe.calls('/v1/refunds').filter((c) => c.method === 'POST').length;

describe('a Stripe refund whose answer was lost, Stripe then down for the rest of the step', () => {
  it('is retried by the Coordinator once Stripe is back, and completes with the one refund', async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [14_900, 9_900] });
    const before = stripeRefundPosts();
    cc.services.stripe.failNext({ method: 'POST', path: '/v1/refunds', dropResponse: true, delayMs: 300 });
    const answer = requestRefund(cc, order.orderId, [order.lineItemIds[1]!]);
    await waitFor(() => expect(stripeRefundPosts()).toBeGreaterThan(before), {
      what: 'the refund call to arrive',
    });
    cc.services.stripe.failNext({ path: '/v1/', status: 500, times: 10_000 });
    const first = await answer;
    expect(first.errors?.[0]?.extensions).toMatchObject({ code: 'STEP_FAILED', flowStatus: 'FAILED' });
    const flowId = String(first.errors![0]!.extensions!.flowId);
    expect(standInState(cc, order).pspRefunds).toEqual([9_900]);
    expect(standInState(cc, order).returnItems.map((i) => i.paymentState)).toEqual(['Initial']);

    // Stripe is back; nobody calls retryFlow.
    cc.services.stripe.clearFaults();
    const done = await waitFor(
      async () => {
        const flow = await flowOf(flowId);
        expect(flow.status).toBe('COMPLETED');
        return flow;
      },
      { what: 'the Coordinator to retry the flow to its end', timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(done.attempt).toBe(2);
    const state = standInState(cc, order);
    expect(state.pspRefunds).toEqual([9_900]);
    expect(state.refundTransactions.map((t) => t.amount.centAmount)).toEqual([9_900]);
    expect(state.returnItems.map((i) => i.paymentState)).toEqual(['Refunded']);
    await waitFor(() => expect(standInState(cc, order).enrolled).toEqual([true, false]), {
      what: 'order.refunded.v1 to revoke the refunded line',
      timeoutMs: 10_000,
    });
    expect(retryLines(flowId)).toEqual([
      expect.objectContaining({ level: 30, step: 3, action: 'refundStripePayment', attempt: 2 }),
    ]);
    // The operator log holds the Coordinator's retry, as it holds an operator's.
    expect(done.operatorActions).toHaveLength(1);
    expect(done.operatorActions[0]).toMatchObject({
      action: 'RETRY_FLOW',
      actor: { kind: 'service', subject: 'commerce-coordinator' },
      reason: expect.stringMatching(/outcome of step 3 \(refundStripePayment\) was unknown/),
      status: 'DONE',
      outcome: { flowStatus: 'COMPLETED', fromStep: 3, previous: { status: 'FAILED', attempt: 1 } },
    });
  }, 90_000);
});

let refusedFlowId: string | undefined;

describe('a refund Stripe refuses', () => {
  it('is not retried: the refusal says what Stripe did', async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [14_900, 9_900] });
    cc.services.stripe.failNext({
      method: 'POST',
      path: '/v1/refunds',
      status: 402,
      error: { type: 'card_error', code: 'card_declined', message: 'Your card was declined.' },
    });
    const refused = await requestRefund(cc, order.orderId, [order.lineItemIds[0]!]);
    const extensions = refused.errors?.[0]?.extensions;
    expect(extensions).toMatchObject({ code: 'CONFLICT' });
    const flowId = (refusedFlowId = String(extensions!.flowId));
    const ended = await flowOf(flowId);
    // Well past the schedule's first due time and several sweeps.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const later = await flowOf(flowId);
    expect(later).toMatchObject({ status: ended.status, attempt: 1, operatorActions: [] });
    expect(standInState(cc, order).pspRefunds).toEqual([]);
  }, 60_000);
});

describe('a refund whose outcome stays unknown', () => {
  it('is retried until its attempts reach maximumAttempts, then left FAILED', async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [14_900, 9_900] });
    cc.services.stripe.failNext({ path: '/v1/', status: 500, times: 100_000 });
    const first = await requestRefund(cc, order.orderId, [order.lineItemIds[0]!]);
    expect(first.errors?.[0]?.extensions).toMatchObject({ code: 'STEP_FAILED', flowStatus: 'FAILED' });
    const flowId = String(first.errors![0]!.extensions!.flowId);

    await waitFor(
      async () => {
        const flow = await flowOf(flowId);
        expect(flow).toMatchObject({ status: 'FAILED', attempt: 3 });
      },
      { what: 'the flow to be retried to its third attempt', timeoutMs: 60_000, intervalMs: 100 },
    );
    // Longer than the schedule's longest interval, and many sweeps: no fourth attempt.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const flow = await flowOf(flowId);
    expect(flow).toMatchObject({ status: 'FAILED', attempt: 3 });
    expect(flow.operatorActions.map((a) => [a.action, a.status, a.actor.subject])).toEqual([
      ['RETRY_FLOW', 'DONE', 'commerce-coordinator'],
      ['RETRY_FLOW', 'DONE', 'commerce-coordinator'],
    ]);
    expect(flow.operatorActions.map((a) => a.outcome?.flowStatus)).toEqual(['FAILED', 'FAILED']);
    expect(retryLines(flowId).map((l) => l.attempt)).toEqual([2, 3]);
    expect(
      lines.filter((l) => l.flowId === flowId && /retries .* are spent/.test(String(l.msg))),
    ).toHaveLength(1);
  }, 120_000);
});

describe('a flow an operator retried', () => {
  it('is left to the operator: the Coordinator makes no retry of it', async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [14_900, 9_900] });
    cc.services.stripe.failNext({ path: '/v1/', status: 500, times: 100_000 });
    const first = await requestRefund(cc, order.orderId, [order.lineItemIds[0]!]);
    const flowId = String(first.errors![0]!.extensions!.flowId);
    // At once, before the schedule's first due time: Stripe is still down, so it fails again.
    const retried = await cc.graphql<{ retryFlow: { status: string; attempt: number } }>(
      `mutation ($id: ID!) { retryFlow(id: $id, reason: "checking Stripe") { status attempt } }`,
      { id: flowId },
      cc.tokens.staff,
    );
    expect(retried.data?.retryFlow).toEqual({ status: 'FAILED', attempt: 2 });
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const flow = await flowOf(flowId);
    expect(flow).toMatchObject({ status: 'FAILED', attempt: 2 });
    expect(flow.operatorActions).toEqual([
      expect.objectContaining({
        action: 'RETRY_FLOW',
        reason: 'checking Stripe',
        actor: expect.objectContaining({ kind: 'staff' }),
      }),
    ]);
    expect(retryLines(flowId)).toEqual([]);
  }, 60_000);
});

describe('two retries of the same attempt at once', () => {
  it('reopen the flow once: the other is refused, as a retry of an attempt gone', async () => {
    const db = await openDatabase({ url: cc.database.url, dataDir: '', logger: silentLogger });
    try {
      const store = new FlowStore(db.prisma, db.pool);
      const id = refusedFlowId!;
      const { attempt, status } = (await store.flow(id))!;
      const both = await Promise.all([
        store.reopenFlow(id, 'sweeper-a', false, attempt),
        store.reopenFlow(id, 'sweeper-b', false, attempt),
      ]);
      expect(both.map((r) => r.outcome).sort()).toEqual(['not reopened', 'reopened']);
      // Ended again as it was (this test's "retry" ran no step); the attempt it was due for is gone.
      await store.finishFlow(id, attempt + 1, {
        status: status as 'compensated',
        failure: { type: 'CONFLICT', message: 'refused', nonRetryable: true },
      });
      expect((await store.reopenFlow(id, 'late-sweeper', false, attempt)).outcome).toBe('not reopened');
    } finally {
      await db.close();
    }
  });
});

describe('the policy in connections.yaml', () => {
  const problems = (filter: Record<string, unknown>) => {
    const parsed = connectionsSchema.safeParse({
      version: 1,
      filters: { 'order.refund.requested.v1': { input: 'I', steps: [{ action: 'a' }], ...filter } },
    });
    return parsed.success ? [] : parsed.error.issues.map((i) => `${String(i.path.at(-1))}: ${i.message}`);
  };
  const mutation = { mutation: 'requestRefund' };

  it('accepts initialInterval, maximumInterval and maximumAttempts', () => {
    expect(
      problems({
        ...mutation,
        retryUnknownOutcome: { initialInterval: '1m', maximumInterval: '1h', maximumAttempts: 8 },
      }),
    ).toEqual([]);
  });

  it('refuses a schedule that cannot run, and one on a query', () => {
    expect(
      problems({
        ...mutation,
        retryUnknownOutcome: { initialInterval: '1h', maximumInterval: '1m', maximumAttempts: 8 },
      }),
    ).toEqual(['maximumInterval: maximumInterval cannot be less than initialInterval']);
    expect(
      problems({ ...mutation, retryUnknownOutcome: { initialInterval: 0, maximumAttempts: 8 } }),
    ).toEqual(['initialInterval: initialInterval must be greater than 0']);
    expect(
      problems({ ...mutation, retryUnknownOutcome: { initialInterval: '1m', maximumAttempts: 1 } }),
    ).toEqual(['maximumAttempts: at least 2: the first run and one retry']);
    expect(problems({ ...mutation, retryUnknownOutcome: { initialInterval: '1m' } })).toHaveLength(1);
    expect(
      problems({
        ...mutation,
        retryUnknownOutcome: { initialInterval: '1m', maximumAttempts: 3, jitter: true },
      }),
    ).toHaveLength(1);
    expect(
      problems({ query: 'refundLines', retryUnknownOutcome: { initialInterval: '1m', maximumAttempts: 3 } }),
    ).toEqual([
      'retryUnknownOutcome: `retryUnknownOutcome` is for a mutation: a query acts on nothing, so its outcome is known',
    ]);
  });
});

describe('the schedule', () => {
  const policy = compileResumePolicy({ initialInterval: '1m', maximumInterval: '1h', maximumAttempts: 8 });
  const ended = new Date('2026-12-07T10:00:00Z');
  const dueAfter = (attempt: number) => {
    const due = resumeDueAt(policy, { finishedAt: ended, attempt });
    return due && (due.getTime() - ended.getTime()) / 60_000;
  };

  it('waits initialInterval after the first attempt, doubling up to maximumInterval', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map(dueAfter)).toEqual([1, 2, 4, 8, 16, 32, 60]);
  });

  it('has no due time once the attempts reach maximumAttempts', () => {
    expect(dueAfter(8)).toBeUndefined();
    expect(dueAfter(9)).toBeUndefined();
  });

  it('defaults: doubling from initialInterval, maximumInterval 100 × initialInterval', () => {
    const defaults = compileResumePolicy({ initialInterval: '1s', maximumAttempts: 20 });
    const after = (attempt: number) =>
      resumeDueAt(defaults, { finishedAt: ended, attempt })!.getTime() - ended.getTime();
    expect([1, 2, 8, 19].map(after)).toEqual([1_000, 2_000, 100_000, 100_000]);
  });
});

describe('which failed flows may have acted', () => {
  const mutation = { index: 3, action: { name: 'refundStripePayment', operation: 'mutation' as const } };
  const query = { index: 0, action: { name: 'refundLines', operation: 'query' as const } };
  const filter = { steps: [query, { index: 1 }, { index: 2 }, mutation] } as never;
  const failedStep = (index: number, nonRetryable: boolean) => ({
    index,
    status: 'failed',
    compensates: null,
    action: index === 3 ? 'refundStripePayment' : 'refundLines',
    failure: { type: 'Error', message: 'x', nonRetryable },
  });
  const flow = (step: ReturnType<typeof failedStep>, nonRetryable = step.failure.nonRetryable) =>
    ({
      status: 'failed',
      failure: { type: 'Error', message: 'x', nonRetryable },
      steps: [{ index: 0, status: 'completed', compensates: null }, step],
    }) as never;

  it('a mutation that failed transiently to its last attempt', () => {
    expect(unknownOutcomeStep(flow(failedStep(3, false)), filter)).toMatchObject({
      index: 3,
      action: 'refundStripePayment',
    });
  });

  it('not a refusal, a query, nor a cancelled flow', () => {
    expect(unknownOutcomeStep(flow(failedStep(3, true)), filter)).toBeUndefined();
    expect(unknownOutcomeStep(flow(failedStep(0, false)), filter)).toBeUndefined();
    // A cancel's failure (FLOW_CANCELLED) is a refusal of the flow, whatever its steps' records say.
    expect(unknownOutcomeStep(flow(failedStep(3, false), true), filter)).toBeUndefined();
  });
});
