import { signToken } from '../../gateway/auth/tokens.js';
import { DEVELOPMENT_JWT_SECRET } from '../../gateway/env.js';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLedger, type Ledger } from '../fixtures/services/ledger.js';
import { fixture } from '../support/coordinator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  gatewayEnv,
  killGateways,
  repoRoot,
  spawnGateway,
  type GatewayProcess,
} from '../support/gateway-process.js';
import { deleteNamespace, freePort, machineRedisUrl, requireRedis, testNamespace } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

/** How long the ledger holds the calls that keep flows mid-step: far longer than it takes to kill the gateway. */
const HOLD_MS = 3_000;
/** FLOW_LEASE_MS of both gateways: a dead gateway's flows and deliveries are taken over after this. */
const LEASE_MS = 1_000;
/**
 * The restarted gateway must have finished everything within this: its start, a few leases, and the
 * held calls (which it may have to wait for again). Far below the signal bus's own 30 s default lease,
 * so deliveries of a dead gateway must be taken over on FLOW_LEASE_MS too.
 */
const RECOVERY_MS = 20_000;

let ledger: Ledger;
let database: TestDatabase;
let db: pg.Client;
let redisUrl: string;
let keyPrefix: string;
let flagsDir: string;

beforeAll(async () => {
  ledger = await startLedger();
  database = await createTestDatabase('recovery-crash');
  db = new pg.Client({ connectionString: database.url });
  await db.connect();
  redisUrl = await requireRedis(machineRedisUrl());
  keyPrefix = `${testNamespace('recovery-crash')}:`;
  flagsDir = await mkdtemp(join(tmpdir(), 'cc-flags-'));
  await copyFile(join(repoRoot, 'flags.json'), join(flagsDir, 'flags.json'));
});

afterAll(async () => {
  await killGateways();
  await db?.end().catch(() => {});
  await ledger?.close();
  await database?.drop();
  if (keyPrefix) await deleteNamespace(redisUrl, keyPrefix);
  if (flagsDir) await rm(flagsDir, { recursive: true, force: true });
});

async function startGateway(): Promise<GatewayProcess> {
  const port = await freePort();
  const gateway = spawnGateway({
    port,
    env: gatewayEnv({
      ROVER_CONFIG: fixture('rover.yaml'),
      CONNECTIONS_FILE: fixture('connections-recovery.yaml'),
      SUBGRAPHS_DIR: fixture('subgraphs'),
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: keyPrefix,
      FLAGS_FILE: join(flagsDir, 'flags.json'),
      PORT: String(port),
      FLOW_LEASE_MS: String(LEASE_MS),
      LEDGER_URL: ledger.url,
      LOG_LEVEL: 'info',
    }),
  });
  await gateway.ready();
  return gateway;
}

/** Sends a refund mutation and never fails: the gateway may die before it answers. */
/** The gateway processes run `gateway/main.ts`, which verifies callers: a development staff token. */
const staffToken = () => signToken(DEVELOPMENT_JWT_SECRET, { kind: 'staff', username: 'staff' });

async function startRefund(
  gateway: GatewayProcess,
  mutation: 'requestRefund' | 'requestStrictRefund',
  orderId: string,
) {
  return fetch(`${gateway.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${await staffToken()}` },
    body: JSON.stringify({
      query: `mutation($input: RefundRequestInput!) { ${mutation}(input: $input) { flow { id status } } }`,
      variables: { input: { orderId, amount: 25, learnerId: `learner-${orderId}` } },
    }),
  }).then(
    async (res) =>
      (await res.json()) as {
        data?: Record<string, { flow: { id: string; status: string } }> | null;
        errors?: unknown[];
      },
    (error: Error) => ({ transportError: error.message }),
  );
}

interface FlowRow {
  id: string;
  kind: string;
  name: string;
  receiver: string | null;
  status: string;
  orderId: string | null;
  signalId: string | null;
  errorCode: string | null;
  attempt: number;
}
interface SignalRow {
  id: string;
  name: string;
  flowId: string;
  publishedAt: Date | null;
}

const flows = async () =>
  (
    await db.query<FlowRow>(
      `select "id"::text, "kind", "name", "receiver", "status", "orderId", "signalId"::text, "errorCode", "attempt" from "FlowRun"`,
    )
  ).rows;
const signals = async () =>
  (await db.query<SignalRow>(`select "id"::text, "name", "flowId"::text, "publishedAt" from "OutboxSignal"`))
    .rows;
const stepStatuses = async (flowId: string) =>
  (
    await db.query<{ index: number; status: string }>(
      `select "index", "status" from "FlowStep" where "flowId" = $1 order by "index"`,
      [flowId],
    )
  ).rows;

const count = <T>(items: T[], test: (item: T) => boolean) => items.filter(test).length;

describe('kill -9 of the gateway in the middle of flows', () => {
  const run = `${Date.now()}`;
  // Held in the refund step (step 2), resumed after the restart.
  const resumed = [`r1-${run}`, `r2-${run}`];
  // Held in the record step (step 3), after step 2 committed payment.refunded.v1; that signal's
  // receiver (recordRefund too) is held as well.
  const heldLate = `r3-${run}`;
  // Completed; its order.refunded.v1 receiver is held in the revoke call.
  const receiverHeld = `r4-${run}`;
  // A `recovery: fail` filter held in the refund step.
  const strict = `s1-${run}`;
  const filterOrders = [...resumed, heldLate, receiverHeld];
  let survivor: GatewayProcess;

  it('resumes every in-flight flow to COMPLETED (or fails the recovery: fail one) and does every effect and delivers every signal once', async () => {
    const first = await startGateway();
    for (const orderId of [...resumed, strict]) ledger.fault({ kind: 'refund', orderId, delayMs: HOLD_MS });
    ledger.fault({ kind: 'record', orderId: heldLate, delayMs: HOLD_MS });
    ledger.fault({ kind: 'revoke', orderId: receiverHeld, delayMs: HOLD_MS });

    const responses = [
      ...filterOrders.map((orderId) => startRefund(first, 'requestRefund', orderId)),
      startRefund(first, 'requestStrictRefund', strict),
    ];
    // r4 is not held: it completes and answers.
    const completed = await responses[filterOrders.indexOf(receiverHeld)]!;
    expect(completed).toMatchObject({ data: { requestRefund: { flow: { status: 'COMPLETED' } } } });
    // Every call that is going to be held has reached the ledger: 5 refunds (3 held), 4 records (r3's
    // step and receiver held, r4's both done) and r4's revoke (held); r4's record-psp-refund finished.
    await waitFor(
      async () => {
        expect(ledger.calls('/operations/refund')).toBe(5);
        expect(ledger.calls('/operations/record')).toBe(4);
        expect(ledger.calls('/operations/revoke')).toBe(1);
        const r4 = (await flows()).filter((f) => f.orderId === receiverHeld);
        expect(r4.map((f) => [f.receiver, f.status]).sort()).toEqual(
          [
            [null, 'completed'],
            ['record-psp-refund', 'completed'],
            ['revoke-enrollment', 'running'],
          ].sort(),
        );
      },
      { timeoutMs: HOLD_MS / 2, what: 'the flows to reach their held calls' },
    );
    first.child.kill('SIGKILL');
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // The mutations of the flows that were mid-step never got an answer.
    const answers = await Promise.all(responses);
    expect(answers.filter((a) => 'transportError' in a)).toHaveLength(4);

    // What the crash left: four filter flows and two receiver runs "running" with a dead owner.
    const left = await flows();
    expect(
      left
        .filter((f) => f.status === 'running')
        .map((f) => [f.kind, f.receiver, f.orderId])
        .sort(),
    ).toEqual(
      [
        ['filter', null, resumed[0]],
        ['filter', null, resumed[1]],
        ['filter', null, heldLate],
        ['filter', null, strict],
        ['receiver', 'record-psp-refund', heldLate],
        ['receiver', 'revoke-enrollment', receiverHeld],
      ].sort(),
    );

    survivor = await startGateway();
    await waitFor(
      async () => {
        const all = await flows();
        expect(all.filter((f) => f.status === 'running')).toEqual([]);
        const published = await signals();
        // r1, r2, r3, r4 each emitted payment.refunded.v1 (step 2) and order.refunded.v1 (the flow's end).
        expect(published).toHaveLength(8);
        for (const signal of published) {
          expect(signal.publishedAt).not.toBeNull();
          expect(all.filter((f) => f.signalId === signal.id).map((f) => f.status)).toEqual(['completed']);
        }
      },
      {
        timeoutMs: RECOVERY_MS,
        intervalMs: 100,
        what: 'every flow and receiver run to finish after the restart',
      },
    );

    const all = await flows();
    const filterFlow = (orderId: string) => all.find((f) => f.kind === 'filter' && f.orderId === orderId)!;
    for (const orderId of filterOrders) {
      const flow = filterFlow(orderId);
      expect(flow).toMatchObject({ name: 'order.refund.requested.v1', status: 'completed' });
      expect((await stepStatuses(flow.id)).map((s) => [s.index, s.status])).toEqual([
        [0, 'completed'],
        [1, 'completed'],
        [2, 'completed'],
        [3, 'completed'],
      ]);
    }
    // Resumed by the second gateway (a second run of the same record), not started again.
    for (const orderId of [...resumed, heldLate]) expect(filterFlow(orderId).attempt).toBe(2);
    expect(filterFlow(receiverHeld).attempt).toBe(1);
    expect(count(all, (f) => f.kind === 'filter')).toBe(5);

    // The recovery: fail filter is failed explicitly, not resumed.
    const strictFlow = filterFlow(strict);
    expect(strictFlow).toMatchObject({
      name: 'order.refund.strict.v1',
      status: 'failed',
      errorCode: 'FlowInterrupted',
    });
    const staff = await staffToken();
    const strictRecord = await fetch(`${survivor.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${staff}` },
      body: JSON.stringify({
        query: `query($id: ID!) { flow(id: $id) { status error { code message } } }`,
        variables: { id: strictFlow.id },
      }),
    }).then((res) => res.json());
    expect(strictRecord).toEqual({
      data: {
        flow: {
          status: 'FAILED',
          error: {
            code: 'FlowInterrupted',
            message: 'The gateway stopped while the flow ran; the filter is configured not to resume',
          },
        },
      },
    });

    // Every Service effect exactly once, under the key of its step: the flow's own steps, then one
    // record-psp-refund and one revoke-enrollment receiver run per flow.
    const ops = ledger.operations();
    const published = await signals();
    for (const orderId of filterOrders) {
      const flow = filterFlow(orderId);
      const mine = ops.filter((o) => o.orderId === orderId);
      const receiverRun = (signal: string) => {
        const emitted = published.filter((s) => s.flowId === flow.id && s.name === signal);
        expect(emitted).toHaveLength(1);
        const runs = all.filter((f) => f.signalId === emitted[0]!.id);
        expect(runs).toHaveLength(1);
        return runs[0]!;
      };
      const psp = receiverRun('payment.refunded.v1');
      const revoke = receiverRun('order.refunded.v1');
      expect(psp).toMatchObject({ receiver: 'record-psp-refund', status: 'completed' });
      expect(revoke).toMatchObject({ receiver: 'revoke-enrollment', status: 'completed' });
      expect(mine.map((o) => [o.kind, o.key]).sort()).toEqual(
        [
          ['return', `${flow.id}:1`],
          ['refund', `${flow.id}:2`],
          ['record', `${flow.id}:3`],
          ['record', `${psp.id}:0`],
          ['revoke', `${revoke.id}:0`],
        ].sort(),
      );
    }
    // The strict flow's refund, held when the gateway died, went through once; nothing after it ran.
    expect(
      ops
        .filter((o) => o.orderId === strict)
        .map((o) => [o.kind, o.key])
        .sort(),
    ).toEqual(
      [
        ['return', `${strictFlow.id}:1`],
        ['refund', `${strictFlow.id}:2`],
      ].sort(),
    );
    expect(published.filter((s) => s.flowId === strictFlow.id)).toEqual([]);
    // Recovery resumed after the last completed step: no return was asked for again.
    expect(ledger.calls('/operations/return')).toBe(5);
    expect(survivor.output()).toContain('recovering an interrupted flow');
  }, 60_000);

  it('lets a running flow finish on SIGTERM, publishes its signals, then exits with 0', async () => {
    expect(survivor).toBeDefined();
    const orderId = `g1-${run}`;
    ledger.fault({ kind: 'refund', orderId, delayMs: 1_500 });
    const refundsBefore = ledger.calls('/operations/refund');
    const response = startRefund(survivor, 'requestRefund', orderId);
    await waitFor(() => expect(ledger.calls('/operations/refund')).toBe(refundsBefore + 1));
    survivor.child.kill('SIGTERM');
    expect(await survivor.exited).toEqual({ code: 0, signal: null });
    const flow = (await flows()).find((f) => f.orderId === orderId && f.kind === 'filter')!;
    expect(flow.status).toBe('completed');
    expect(await response).toEqual({
      data: { requestRefund: { flow: { id: flow.id, status: 'COMPLETED' } } },
    });
    const emitted = (await signals()).filter((s) => s.flowId === flow.id);
    expect(emitted.map((s) => s.name).sort()).toEqual(['order.refunded.v1', 'payment.refunded.v1']);
    expect(emitted.every((s) => s.publishedAt !== null)).toBe(true);
    expect(survivor.output()).toContain('"msg":"coordinator stopped"');
  });
});
