import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { LINE_ITEM_STATE_KEYS } from '../../services/order-management/store.js';
import { startServiceStandIns, type ServiceStandIns } from '../../services/embedded.js';
import { startBalancer, type Balancer } from '../support/balancer.js';
import { TEST_AUTH, TEST_JWT_SECRET, token } from '../support/coordinator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  gatewayEnv,
  repositoryConfigEnv,
  killGateways,
  spawnGateway,
  type GatewayProcess,
} from '../support/gateway-process.js';
import { seedPaidOrder, standInState, type PaidOrder } from '../support/orders.js';
import { deleteNamespace, freePort, machineRedisUrl, requireRedis, testNamespace } from '../support/redis.js';
import { resumingSubscriber, type ResumingSubscriber } from '../support/subscriptions.js';
import { waitFor } from '../support/wait.js';

/**
 * Three gateway processes on one PostgreSQL database and one Redis key prefix, behind a round-robin
 * balancer, sharing the Service stand-ins. Clients run refunds and fulfillments through the balancer
 * with idempotency keys and subscribers follow the feed; one process is SIGKILLed midway. Afterwards
 * every flow finished once, every Service effect happened once, every signal reached its receiver once
 * and every subscriber received every event.
 */

const INSTANCES = 3;
/** A dead instance's flows and deliveries are taken over after this. */
const LEASE_MS = 1_000;
const REFUND_ORDERS = 40;
const LINES_PER_REFUND_ORDER = 3;
const FULFILLMENT_ORDERS = 120;
/** Requests in flight at once, over as many keep-alive connections spread over the instances. */
const CLIENTS = 12;
const FULFILLMENT = 'order.fulfillment.requested.v1';
const REFUNDED = 'order.refunded.v1';

let services: ServiceStandIns;
let database: TestDatabase;
let db: pg.Client;
let redisUrl: string;
let keyPrefix: string;
let balancer: Balancer;
const gateways: GatewayProcess[] = [];
const subscribers: ResumingSubscriber[] = [];

beforeAll(async () => {
  redisUrl = await requireRedis(machineRedisUrl());
  keyPrefix = `${testNamespace('scale-instances')}:`;
  services = await startServiceStandIns({ demo: true });
  database = await createTestDatabase('scale-instances');
  db = new pg.Client({ connectionString: database.url });
  await db.connect();
  const ports = await Promise.all(Array.from({ length: INSTANCES }, () => freePort()));
  for (const port of ports) {
    gateways.push(
      spawnGateway({
        port,
        env: gatewayEnv({
          ...services.env,
          ...repositoryConfigEnv(),
          DATABASE_URL: database.url,
          REDIS_URL: redisUrl,
          REDIS_KEY_PREFIX: keyPrefix,
          JWT_SECRET: TEST_JWT_SECRET,
          JWT_SERVICE_CLIENTS: TEST_AUTH.serviceClients.join(','),
          FLOW_LEASE_MS: String(LEASE_MS),
          PORT: String(port),
          LOG_LEVEL: 'warn',
        }),
      }),
    );
  }
  await Promise.all(gateways.map((g) => g.ready(60_000)));
  balancer = await startBalancer(ports.map((port) => ({ host: '127.0.0.1', port })));
}, 90_000);

afterAll(async () => {
  for (const subscriber of subscribers) subscriber.stop();
  await killGateways();
  await balancer?.close();
  await db?.end().catch(() => {});
  await services?.close();
  await database?.drop();
  if (keyPrefix) await deleteNamespace(redisUrl, keyPrefix);
});

interface Job {
  mutation: 'requestRefund' | 'requestFulfillment';
  input: Record<string, unknown>;
  idempotencyKey: string;
}
interface Answer {
  id: string;
  status: string;
  /** Requests it took: more than 1 when one died with its instance or found the flow still running. */
  attempts: number;
}

/**
 * Sends a filter mutation through the balancer until it answers the flow ended, with the same
 * idempotency key every time: a request cut by the SIGKILL, or answered FLOW_IN_PROGRESS while another
 * instance takes the flow over, is sent again and must get the one flow's record.
 */
async function runToEnd(job: Job, bearer: string): Promise<Answer> {
  let attempts = 0;
  let last: unknown;
  const answer = await waitFor(
    async () => {
      attempts++;
      const res = await fetch(`${balancer.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
        body: JSON.stringify({
          query: `mutation ($input: ${job.mutation === 'requestRefund' ? 'RefundRequestInput' : 'FulfillmentRequestInput'}!, $key: String) {
            ${job.mutation}(input: $input, idempotencyKey: $key) { flow { id status } }
          }`,
          variables: { input: job.input, key: job.idempotencyKey },
        }),
      }).catch((error: Error) => error);
      if (res instanceof Error) {
        last = res.message;
        return false;
      }
      const body = (await res.json().catch(() => ({}))) as {
        data?: Record<string, { flow: { id: string; status: string } }> | null;
        errors?: Array<{ extensions?: { code?: string } }>;
      };
      last = body;
      const flow = body.data?.[job.mutation]?.flow;
      if (flow && flow.status !== 'RUNNING') return { id: flow.id, status: flow.status };
      // Only these say "not yet": the flow is being taken over, or its order is held by one that is.
      const codes = (body.errors ?? []).map((e) => e.extensions?.code);
      if (!codes.every((c) => c === 'FLOW_IN_PROGRESS' || c === 'ORDER_BUSY' || c === 'SERVICE_UNAVAILABLE'))
        throw new Error(`${job.idempotencyKey}: ${JSON.stringify(body)}`);
      return false;
    },
    { timeoutMs: 40_000, intervalMs: 50, what: `${job.idempotencyKey} to end` },
  ).catch((error: Error) => {
    error.message += ` (last answer: ${JSON.stringify(last)})`;
    throw error;
  });
  return { ...answer, attempts };
}

function seedFulfillmentOrder(n: number): { orderId: string; courseRunKeys: string[] } {
  const learner = DEMO.learners.bob;
  const courseRunKeys = [0, 1].map((i) => `course-v1:ScaleX+F${process.pid}N${n}L${i}+2026`);
  services.lms.seed({ courses: courseRunKeys.map((courseId) => ({ courseId, name: courseId })) });
  const [order] = services.orderManagement.seed({
    orders: [
      {
        orderNumber: `2U-2029${String(100_000 + n)}`,
        customer: { lmsUserId: learner.lmsUserId, username: learner.username, email: learner.email },
        lineItems: courseRunKeys.map((courseRunKey, i) => ({
          title: `F${n} ${i}`,
          priceCents: 5_000,
          courseRunKey,
          state: 'PENDING' as const,
        })),
      },
    ],
  }).orders;
  return { orderId: order!.id, courseRunKeys };
}

const SIGNALS = /* GraphQL */ `
  subscription ($name: String!, $after: String) {
    signals(name: $name, after: $after) {
      cursor
      id
    }
  }
`;
const FLOW_EVENTS = /* GraphQL */ `
  subscription ($name: String, $after: String) {
    flowEvents(name: $name, after: $after) {
      cursor
      type
      flowId
      status
    }
  }
`;

describe('three instances behind a round-robin balancer, one SIGKILLed midway', () => {
  it('finish every flow once, do every Service effect once, deliver every signal once and every event to every subscriber', async () => {
    const staff = await token({
      kind: 'staff',
      username: DEMO.staff.username,
      lmsUserId: DEMO.staff.lmsUserId,
    });
    const refundOrders: PaidOrder[] = Array.from({ length: REFUND_ORDERS }, (_, i) =>
      seedPaidOrder({ services }, i % 2 ? 'PAYPAL' : 'STRIPE', {
        prices: Array.from({ length: LINES_PER_REFUND_ORDER }, (_, l) => 4_900 + 1_000 * l),
      }),
    );
    const fulfillmentOrders = Array.from({ length: FULFILLMENT_ORDERS }, (_, i) => seedFulfillmentOrder(i));

    // Subscribers through the balancer, two per instance; each resumes from its last cursor when its
    // connection dies. From the feed's start ('0-0'), so none misses what happens before it is live.
    const connectionParams = { authorization: `Bearer ${staff}` };
    for (let i = 0; i < 2 * INSTANCES; i++) {
      subscribers.push(
        i % 2
          ? resumingSubscriber(balancer.url, { query: SIGNALS, variables: { name: REFUNDED } }, 'signals', {
              connectionParams,
              after: '0-0',
            })
          : resumingSubscriber(
              balancer.url,
              { query: FLOW_EVENTS, variables: { name: FULFILLMENT } },
              'flowEvents',
              { connectionParams, after: '0-0' },
            ),
      );
    }

    // Interleaved so that flows of one order overlap (the order's claim keeps them apart).
    const jobs: Job[] = [];
    for (let i = 0; i < Math.max(REFUND_ORDERS * LINES_PER_REFUND_ORDER, FULFILLMENT_ORDERS); i++) {
      const refund = refundOrders[i % REFUND_ORDERS];
      const line = Math.floor(i / REFUND_ORDERS);
      if (refund && line < LINES_PER_REFUND_ORDER)
        jobs.push({
          mutation: 'requestRefund',
          input: { orderId: refund.orderId, lineItemIds: [refund.lineItemIds[line]] },
          idempotencyKey: `scale-refund-${refund.orderId}-${line}`,
        });
      const fulfillment = fulfillmentOrders[i];
      if (fulfillment)
        jobs.push({
          mutation: 'requestFulfillment',
          input: { orderId: fulfillment.orderId },
          idempotencyKey: `scale-fulfil-${fulfillment.orderId}`,
        });
    }

    const answers = new Map<string, Answer>();
    let answered = 0;
    const victim = gateways[INSTANCES - 1]!;
    // Killed midway while it runs a flow: killed between two of its flows, it would leave none to take over.
    const victimRuns = async () => {
      const { rows } = await db.query<{ n: number }>(
        `select count(*)::int as n from "FlowRun" where "status" = 'running' and "owner" like $1`,
        [`${hostname()}:${victim.child.pid}:%`],
      );
      return rows[0]!.n > 0;
    };
    let killed: Promise<unknown> | undefined;
    const queue = [...jobs];
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        for (let job = queue.shift(); job; job = queue.shift()) {
          answers.set(job.idempotencyKey, await runToEnd(job, staff));
          if (++answered === Math.floor(jobs.length / 2)) {
            expect(balancer.accepted[INSTANCES - 1]).toBeGreaterThan(0);
            killed = waitFor(victimRuns, { intervalMs: 2, what: 'the instance to kill to run a flow' }).then(
              () => {
                victim.child.kill('SIGKILL');
                return victim.exited;
              },
            );
          }
        }
      }),
    );
    expect(await killed).toEqual({ code: null, signal: 'SIGKILL' });

    // Every request got its flow's end; the flows of the killed instance were taken over.
    const refundJobs = jobs.filter((j) => j.mutation === 'requestRefund');
    for (const job of jobs)
      expect(answers.get(job.idempotencyKey)?.status, job.idempotencyKey).toBe('COMPLETED');

    // The record: one flow per idempotency key, all completed, none left running; one receiver run per
    // signal, completed.
    const runs = async () =>
      (
        await db.query<{
          id: string;
          kind: string;
          name: string;
          receiver: string | null;
          status: string;
          idempotencyKey: string | null;
          signalId: string | null;
          attempt: number;
        }>(
          `select "id"::text, "kind", "name", "receiver", "status", "idempotencyKey", "signalId"::text, "attempt" from "FlowRun"`,
        )
      ).rows;
    const signals = (
      await db.query<{ id: string; name: string }>(`select "id"::text, "name" from "OutboxSignal"`)
    ).rows;
    const refundedSignals = signals.filter((s) => s.name === REFUNDED).map((s) => s.id);
    expect(refundedSignals).toHaveLength(refundJobs.length);
    await waitFor(
      async () => {
        const all = await runs();
        expect(all.filter((r) => r.status !== 'completed')).toEqual([]);
        // The refunds' revocations (the analytics and email receivers run beside them, completed too).
        const receiverRuns = all.filter(
          (r) => r.kind === 'receiver' && r.receiver === 'revoke-returned-line-items',
        );
        expect(receiverRuns.map((r) => `${r.receiver} ${r.signalId}`).sort()).toEqual(
          refundedSignals.map((id) => `revoke-returned-line-items ${id}`).sort(),
        );
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'every receiver run to complete' },
    );
    const filterRuns = (await runs()).filter((r) => r.kind === 'filter');
    // Flows the killed instance was running were taken over (their attempt incremented) and finished.
    expect(filterRuns.filter((r) => r.attempt > 1).length).toBeGreaterThan(0);
    expect(filterRuns.map((r) => r.idempotencyKey).sort()).toEqual(jobs.map((j) => j.idempotencyKey).sort());
    for (const job of jobs) {
      const run = filterRuns.find((r) => r.idempotencyKey === job.idempotencyKey)!;
      expect(answers.get(job.idempotencyKey)!.id).toBe(run.id);
    }

    // The Services: one return, one PSP refund and one refund transaction per refunded line, of its
    // share; each refunded course revoked; each fulfilled course enrolled once, every line a success.
    for (const order of refundOrders) {
      const state = standInState({ services }, order);
      expect(state.returns, order.orderNumber).toHaveLength(LINES_PER_REFUND_ORDER);
      expect(state.pspRefunds.sort(), order.orderNumber).toEqual([4_900, 5_900, 6_900]);
      expect(state.refundTransactions, order.orderNumber).toHaveLength(LINES_PER_REFUND_ORDER);
      expect(state.enrolled, order.orderNumber).toEqual([false, false, false]);
    }
    const { enrollments } = services.lms.state();
    for (const order of fulfillmentOrders) {
      for (const courseId of order.courseRunKeys)
        expect(enrollments.filter((e) => e.courseId === courseId).map((e) => e.isActive)).toEqual([true]);
      const { store } = services.orderManagement;
      const success = store.stateByKey(LINE_ITEM_STATE_KEYS.SUCCESS)!.id;
      const stored = store.orders.get(order.orderId)!;
      expect(stored.lineItems.map((l) => l.state.map((s) => s.state.id))).toEqual(
        stored.lineItems.map(() => [success]),
      );
    }

    // The subscribers: every signal, and the end of every fulfillment flow, to each of them. Signals
    // reach the feed at least once (a dispatch cut before its commit is published again, with the same
    // id); each distinct cursor is delivered once.
    const fulfillmentFlows = filterRuns.filter((r) => r.name === FULFILLMENT).map((r) => r.id);
    const missing = (subscriber: ResumingSubscriber) => {
      const expected = subscriber.field === 'signals' ? refundedSignals : fulfillmentFlows;
      const received = new Set(
        subscriber.field === 'signals'
          ? subscriber.events.map((e) => e.id)
          : subscriber.events.filter((e) => e.type === 'FLOW_FINISHED').map((e) => e.flowId),
      );
      return expected.filter((id) => !received.has(id));
    };
    await waitFor(
      () => {
        for (const [i, subscriber] of subscribers.entries()) {
          const about = `subscriber ${i} (${subscriber.field}, ${subscriber.connections} connections, ${subscriber.events.length} events)`;
          expect(subscriber.errors, about).toEqual([]);
          const cursors = subscriber.events.map((e) => e.cursor);
          expect(new Set(cursors).size, about).toBe(cursors.length);
          expect(missing(subscriber), about).toEqual([]);
        }
      },
      // Generous: on a loaded machine the fan-out to six subscribers trails the flows.
      { timeoutMs: 20_000, intervalMs: 100, what: 'every subscriber to have every event' },
    );
    // The ones connected to the killed instance came back through the balancer.
    expect(subscribers.some((s) => s.connections > 1)).toBe(true);
  }, 120_000);

  it('publish, once, the end of a flow whose process committed it and died before publishing it', async () => {
    // What a SIGKILL between a flow's last commit and its FLOW_FINISHED leaves: the end in the record,
    // not on the feed. The surviving instances publish it a lease later, one of them.
    const flowId = randomUUID();
    await db.query(
      `insert into "FlowRun" ("id", "kind", "name", "status", "inputHash", "input", "startedAt", "finishedAt", "attempt")
       values ($1, 'filter', $2, 'completed', 'h', '{}', now(), $3, 1)`,
      [flowId, FULFILLMENT, new Date()],
    );
    const flowSubscribers = subscribers.filter((s) => s.field === 'flowEvents');
    const ends = (s: ResumingSubscriber) =>
      s.events.filter((e) => e.type === 'FLOW_FINISHED' && e.flowId === flowId);
    await waitFor(
      () => {
        for (const subscriber of flowSubscribers) expect(ends(subscriber)).toHaveLength(1);
      },
      { timeoutMs: 5 * LEASE_MS, intervalMs: 50, what: 'the lost end to reach every subscriber' },
    );
    expect(ends(flowSubscribers[0]!)[0]).toMatchObject({ status: 'COMPLETED' });
    // Marked by the one that published it (in the transaction it published it in): no other sweep
    // publishes it again.
    await waitFor(
      async () => {
        const { rows: swept } = await db.query<{ n: number }>(
          `select count(*)::int as n from "FlowRun" where "endPublishedAt" is null and "finishedAt" is not null`,
        );
        return swept[0]!.n === 0;
      },
      { timeoutMs: 5 * LEASE_MS, what: 'every end to be marked published' },
    );
    for (const subscriber of flowSubscribers) expect(ends(subscriber)).toHaveLength(1);
  });
});
