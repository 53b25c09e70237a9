import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { silentLogger } from '../../gateway/log.js';
import type { FilterResult, Plugin, PluginRuntime } from '@commerce-coordinator/plugin-sdk';
import { DEFAULT_LMS_CLIENT, startLms, type LmsStandIn } from '../../services/lms/server.js';
import { createLmsPlugin } from '../../subgraphs/lms/index.js';
import { lmsEventBusConfig } from '../../subgraphs/lms/config.js';
import { REFUND_REQUESTED_EVENT_TYPE } from '../../schema/contracts/lms-refund-event.js';
import {
  adminRedis,
  type AdminRedis,
  deleteNamespace,
  machineRedisUrl,
  requireRedis,
  testNamespace,
} from '../support/redis.js';
import { createDeferred, waitFor } from '../support/wait.js';
import { codes, learner, runAction, service, staff } from './run-action.js';

const COURSE = 'course-v1:edX+DemoX+Demo_Course';
const OTHER_COURSE = 'course-v1:edX+Other+2026';
const PROGRAM_COURSE_UUID = '0b1f6a0e-9a38-4c5e-8a43-7f0f7a8a1b2c';

let lms: LmsStandIn;
let plugin: Plugin;
const lmsEnv = () => ({
  LMS_URL: lms.url,
  LMS_CLIENT_ID: DEFAULT_LMS_CLIENT.clientId,
  LMS_CLIENT_SECRET: DEFAULT_LMS_CLIENT.clientSecret,
});

beforeAll(async () => {
  lms = await startLms();
  lms.seed({
    users: [
      { id: 7, username: 'ada', email: 'ada@example.com', name: 'Ada Lovelace' },
      { id: 8, username: 'bob' },
    ],
    courses: [
      { courseId: COURSE, modes: ['audit', 'verified'] },
      { courseId: OTHER_COURSE, modes: ['audit'] },
    ],
  });
  plugin = createLmsPlugin({ env: lmsEnv() });
});

afterAll(async () => {
  await lms?.close();
});

const FULFILL = `mutation($input: FulfillOrderInput!) {
  fulfillOrder(input: $input) { fulfillments { lineItemId fulfilled entitlementUuid error } }
}`;
const REVOKE = `mutation($input: RevokeLineItemsInput!) { revokeLineItems(input: $input) { revoked } }`;
const DEACTIVATE = `mutation($input: DeactivateLearnerInput!) { deactivateLearner(input: $input) { deactivated } }`;
const LEARNER = `query($username: String, $lmsUserId: Int) {
  learner(username: $username, lmsUserId: $lmsUserId) { lmsUserId username email name isActive dateJoined }
}`;

type Fulfillments = {
  fulfillOrder: {
    fulfillments: Array<{
      lineItemId: string;
      fulfilled: boolean;
      entitlementUuid: string | null;
      error: string | null;
    }>;
  };
};

const fulfillInput = (orderId: string, lineItems: Array<Record<string, unknown>>) => ({
  input: { orderId, orderNumber: `2U-${orderId.slice(0, 8)}`, lmsUserId: 7, username: 'ada', lineItems },
});

describe('lms plugin: fulfillOrder', () => {
  it('enrolls course lines with the order attributes and grants entitlements for bundle lines, idempotently', async () => {
    const orderId = randomUUID();
    const variables = fulfillInput(orderId, [
      { lineItemId: 'line-1', kind: 'COURSE', courseRunKey: COURSE, mode: 'verified' },
      { lineItemId: 'line-2', kind: 'BUNDLE', bundleKey: PROGRAM_COURSE_UUID, mode: null },
    ]);
    const first = await runAction<Fulfillments>(plugin, FULFILL, variables, {
      principal: service,
      idempotencyKey: 'flow-1:1',
    });
    expect(first.errors).toBeUndefined();
    const [course, bundle] = first.data!.fulfillOrder.fulfillments;
    expect(course).toEqual({ lineItemId: 'line-1', fulfilled: true, entitlementUuid: null, error: null });
    expect(bundle).toMatchObject({ lineItemId: 'line-2', fulfilled: true, error: null });
    expect(bundle!.entitlementUuid).toMatch(/^[0-9a-f-]{36}$/);

    const enrollment = lms.state().enrollments.find((e) => e.username === 'ada' && e.courseId === COURSE);
    expect(enrollment).toMatchObject({ mode: 'verified', isActive: true });
    expect(enrollment!.attributes).toEqual(
      expect.arrayContaining([
        { namespace: 'order', name: 'order_id', value: orderId },
        { namespace: 'order', name: 'order_number', value: variables.input.orderNumber },
        { namespace: 'order', name: 'line_item_id', value: 'line-1' },
      ]),
    );

    // A retried step: same outcome, nothing granted twice.
    const again = await runAction<Fulfillments>(plugin, FULFILL, variables, {
      principal: service,
      idempotencyKey: 'flow-1:1',
    });
    expect(again.data).toEqual(first.data);
    expect(
      lms.state().entitlements.filter((e) => e.username === 'ada' && e.courseUuid === PROGRAM_COURSE_UUID),
    ).toHaveLength(1);
    expect(lms.state().enrollments.filter((e) => e.username === 'ada' && e.courseId === COURSE)).toHaveLength(
      1,
    );
  });

  it('reports lines the LMS refuses (4xx) as not fulfilled, with the LMS message', async () => {
    const result = await runAction<Fulfillments>(
      plugin,
      FULFILL,
      fulfillInput(randomUUID(), [
        { lineItemId: 'ok', kind: 'COURSE', courseRunKey: OTHER_COURSE, mode: 'audit' },
        { lineItemId: 'mode', kind: 'COURSE', courseRunKey: OTHER_COURSE, mode: 'verified' },
        { lineItemId: 'course', kind: 'COURSE', courseRunKey: 'course-v1:No+Such+Run' },
        { lineItemId: 'uuid', kind: 'BUNDLE', bundleKey: 'not-a-uuid' },
      ]),
      { principal: service },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data!.fulfillOrder.fulfillments).toEqual([
      { lineItemId: 'ok', fulfilled: true, entitlementUuid: null, error: null },
      {
        lineItemId: 'mode',
        fulfilled: false,
        entitlementUuid: null,
        error: `The [verified] course mode is expired or otherwise unavailable for course run [${OTHER_COURSE}].`,
      },
      {
        lineItemId: 'course',
        fulfilled: false,
        entitlementUuid: null,
        error: "No course 'course-v1:No+Such+Run' found for enrollment",
      },
      {
        lineItemId: 'uuid',
        fulfilled: false,
        entitlementUuid: null,
        error: 'course_uuid: Must be a valid UUID.',
      },
    ]);
  });

  it('fails the Action on an LMS outage (5xx) so that the engine retries it; the retry fulfils', async () => {
    const variables = fulfillInput(randomUUID(), [{ lineItemId: 'l', kind: 'COURSE', courseRunKey: COURSE }]);
    lms.failNext(1, 503, '/api/enrollment/v1/enrollment');
    const failed = await runAction(plugin, FULFILL, variables, { principal: service });
    expect(failed.data).toBeNull();
    expect(codes(failed)).toEqual([undefined]); // not a domain error: transient
    expect(failed.errors![0]!.message).toContain('503');
    const retried = await runAction<Fulfillments>(plugin, FULFILL, variables, { principal: service });
    expect(retried.data!.fulfillOrder.fulfillments[0]!.fulfilled).toBe(true);
  });

  it('fails the Action when the LMS does not answer within LMS_TIMEOUT_MS', async () => {
    const impatient = createLmsPlugin({ env: { ...lmsEnv(), LMS_TIMEOUT_MS: '200' } });
    lms.delayNext(1, 1_000, '/api/enrollment/v1/enrollment');
    const result = await runAction(
      impatient,
      FULFILL,
      fulfillInput(randomUUID(), [{ lineItemId: 'l', kind: 'COURSE', courseRunKey: COURSE }]),
      { principal: service },
    );
    expect(codes(result)).toEqual([undefined]);
    expect(result.errors![0]!.message).toContain('timed out after 200ms');
  });

  it('is for staff and Services: a learner gets FORBIDDEN, an anonymous caller UNAUTHENTICATED', async () => {
    const variables = fulfillInput(randomUUID(), [{ lineItemId: 'l', kind: 'COURSE', courseRunKey: COURSE }]);
    expect(codes(await runAction(plugin, FULFILL, variables, { principal: learner(7, 'ada') }))).toEqual([
      'FORBIDDEN',
    ]);
    expect(codes(await runAction(plugin, FULFILL, variables))).toEqual(['UNAUTHENTICATED']);
  });

  it('names the missing variable when the configuration is incomplete', async () => {
    const unconfigured = createLmsPlugin({ env: { LMS_CLIENT_ID: 'x' } });
    const result = await runAction(
      unconfigured,
      FULFILL,
      fulfillInput(randomUUID(), [{ lineItemId: 'l', kind: 'COURSE', courseRunKey: COURSE }]),
      { principal: service },
    );
    expect(result.errors![0]!.message).toContain('LMS_URL is not set');
    expect(result.errors![0]!.message).toContain('LMS_CLIENT_SECRET is not set');
  });
});

describe('lms plugin: revokeLineItems and deactivateLearner', () => {
  it('unenrolls returned course runs and expires returned entitlements, idempotently', async () => {
    const orderId = randomUUID();
    const fulfilled = await runAction<Fulfillments>(
      plugin,
      FULFILL,
      {
        input: {
          orderId,
          orderNumber: '2U-2026000777',
          lmsUserId: 8,
          username: 'bob',
          lineItems: [
            { lineItemId: 'c', kind: 'COURSE', courseRunKey: COURSE },
            { lineItemId: 'b', kind: 'BUNDLE', bundleKey: PROGRAM_COURSE_UUID },
          ],
        },
      },
      { principal: service },
    );
    const entitlementUuid = fulfilled.data!.fulfillOrder.fulfillments[1]!.entitlementUuid;
    const input = {
      orderId,
      lmsUserId: 8,
      username: 'bob',
      returnedItems: [
        { lineItemId: 'c', kind: 'COURSE', courseRunKey: COURSE },
        { lineItemId: 'b', kind: 'BUNDLE', bundleKey: PROGRAM_COURSE_UUID, entitlementUuid },
      ],
    };
    for (let i = 0; i < 2; i++) {
      const result = await runAction(plugin, REVOKE, { input }, { principal: service });
      expect(result).toMatchObject({ data: { revokeLineItems: { revoked: 2 } } });
    }
    const state = lms.state();
    expect(state.enrollments.find((e) => e.username === 'bob' && e.courseId === COURSE)?.isActive).toBe(
      false,
    );
    expect(state.entitlements.find((e) => e.uuid === entitlementUuid)?.expiredAt).toEqual(expect.any(String));
  });

  it('fails with CONFLICT, naming the items, when the LMS refuses some (and still revokes the others)', async () => {
    const result = await runAction(
      plugin,
      REVOKE,
      {
        input: {
          orderId: randomUUID(),
          lmsUserId: 8,
          username: 'bob',
          returnedItems: [{ lineItemId: 'gone', kind: 'BUNDLE', entitlementUuid: randomUUID() }],
        },
      },
      { principal: service },
    );
    expect(codes(result)).toEqual(['CONFLICT']);
    expect(result.errors![0]!.message).toContain('gone: Not found.');
  });

  it('deactivates a learner (idempotent) and answers NOT_FOUND for an unknown one', async () => {
    for (let i = 0; i < 2; i++)
      expect(
        await runAction(plugin, DEACTIVATE, { input: { username: 'bob' } }, { principal: service }),
      ).toMatchObject({
        data: { deactivateLearner: { deactivated: true } },
      });
    expect(lms.state().users.find((u) => u.username === 'bob')?.deactivated).toBe(true);
    expect(
      codes(await runAction(plugin, DEACTIVATE, { input: { username: 'ghost' } }, { principal: service })),
    ).toEqual(['NOT_FOUND']);
  });
});

describe('lms plugin: learner query', () => {
  it('answers staff and the learner themself, refuses other learners, null for unknown users', async () => {
    const expected = {
      lmsUserId: 7,
      username: 'ada',
      email: 'ada@example.com',
      name: 'Ada Lovelace',
      isActive: true,
    };
    expect((await runAction(plugin, LEARNER, { username: 'ada' }, { principal: staff })).data).toMatchObject({
      learner: expected,
    });
    expect(
      (await runAction(plugin, LEARNER, { lmsUserId: 7 }, { principal: learner(7, 'ada') })).data,
    ).toMatchObject({
      learner: expected,
    });
    expect(
      codes(await runAction(plugin, LEARNER, { lmsUserId: 7 }, { principal: learner(8, 'bob') })),
    ).toEqual(['FORBIDDEN']);
    expect(
      codes(await runAction(plugin, LEARNER, { username: 'ada' }, { principal: learner(8, 'bob') })),
    ).toEqual(['FORBIDDEN']);
    expect((await runAction(plugin, LEARNER, { lmsUserId: 4242 }, { principal: staff })).data).toEqual({
      learner: null,
    });
    expect(codes(await runAction(plugin, LEARNER, {}, { principal: staff }))).toEqual(['BAD_USER_INPUT']);
  });

  it('answers SERVICE_UNAVAILABLE when the LMS is down', async () => {
    lms.failNext(1, 500, '/api/user/v1/accounts');
    expect(codes(await runAction(plugin, LEARNER, { username: 'ada' }, { principal: staff }))).toEqual([
      'SERVICE_UNAVAILABLE',
    ]);
  });
});

describe('lms plugin: Order.enrollments', () => {
  const ENTITIES = `query($representations: [_Any!]!) {
    _entities(representations: $representations) {
      ... on Order { id enrollments { username courseRunKey mode isActive lineItemId createdAt } }
    }
  }`;

  it('resolves 50 order references with one LMS call', async () => {
    const orderIds = Array.from({ length: 50 }, () => randomUUID());
    lms.seed({
      enrollments: orderIds.slice(0, 3).map((orderId, i) => ({
        username: `learner-${i}`,
        courseId: COURSE,
        mode: 'verified',
        attributes: [
          { namespace: 'order', name: 'order_id', value: orderId },
          { namespace: 'order', name: 'line_item_id', value: `line-${i}` },
        ],
      })),
    });
    const before = lms.calls('/api/coordinator/v1/order-enrollments/');
    const result = await runAction<{
      _entities: Array<{ id: string; enrollments: Array<Record<string, unknown>> }>;
    }>(
      plugin,
      ENTITIES,
      { representations: orderIds.map((id) => ({ __typename: 'Order', id })) },
      { principal: staff },
    );
    expect(result.errors).toBeUndefined();
    expect(lms.calls('/api/coordinator/v1/order-enrollments/') - before).toBe(1);
    expect(result.data!._entities).toHaveLength(50);
    expect(result.data!._entities[0]).toEqual({
      id: orderIds[0],
      enrollments: [
        {
          username: 'learner-0',
          courseRunKey: COURSE,
          mode: 'verified',
          isActive: true,
          lineItemId: 'line-0',
          createdAt: expect.any(String),
        },
      ],
    });
    expect(result.data!._entities[49]).toEqual({ id: orderIds[49], enrollments: [] });
  });
});

// ---- the refund-request consumer (start) against the machine's Redis ----

interface RecordedCall {
  name: string;
  input: Record<string, unknown>;
  options: { idempotencyKey?: string; principal?: unknown } | undefined;
}

/** A PluginRuntime that records runFilter calls; `onRunFilter` decides each call's outcome. */
function recordingRuntime(onRunFilter?: (call: RecordedCall, index: number) => Promise<void>) {
  const calls: RecordedCall[] = [];
  const runtime: PluginRuntime = {
    logger: silentLogger,
    publish: async () => ({ duplicate: false }),
    async runFilter(name, input, options): Promise<FilterResult> {
      const call = { name, input, options };
      calls.push(call);
      await onRunFilter?.(call, calls.length - 1);
      return { flowId: `flow-${calls.length}`, status: 'COMPLETED', output: {} };
    },
    variation: async (_flag, _principal, defaultValue) => defaultValue,
  };
  return { runtime, calls };
}

describe('lms plugin: refund requests from the LMS event bus', () => {
  let redisUrl: string;
  let redis: AdminRedis;
  const group = 'commerce-coordinator';

  beforeAll(async () => {
    redisUrl = await requireRedis(machineRedisUrl());
    redis = await adminRedis(redisUrl);
  });
  afterAll(() => redis?.close());

  /** A stream of its own, an LMS producing on it, and a consumer's environment. */
  async function setup(title: string, extra: Record<string, string> = {}) {
    const namespace = testNamespace(title);
    const stream = `${namespace}:commerce-order-lifecycle`;
    const producer = await startLms({ redisUrl, eventStream: stream });
    producer.seed({ users: [{ id: 7, username: 'ada' }] });
    onTestFinished(async () => {
      await producer.close();
      await deleteNamespace(redisUrl, namespace);
    });
    const consumer = `gateway-${randomUUID().slice(0, 8)}`;
    const env = {
      ...lmsEnv(),
      LMS_EVENT_BUS_REDIS_URL: redisUrl,
      LMS_EVENT_BUS_STREAM: stream,
      LMS_EVENT_BUS_GROUP: group,
      LMS_EVENT_BUS_CONSUMER: consumer,
      LMS_EVENT_BUS_BLOCK_MS: '200',
      ...extra,
    };
    const pendingIds = async (): Promise<string[]> =>
      (
        (await redis.call('XPENDING', stream, group, '-', '+', 100)) as Array<
          [string, string, number, number]
        >
      ).map((p) => p[0]);
    return { stream, producer, env, consumer, pendingIds };
  }

  const lmsPrincipal = { kind: 'service', subject: 'lms', service: 'lms' };

  it('runs the refund filter once per event, keyed by the event id, and acks only after it returned', async () => {
    const { producer, env, pendingIds } = await setup('lms consumer acks after the filter');
    const pendingDuringFilter: string[][] = [];
    const { runtime, calls } = recordingRuntime(
      async () => void pendingDuringFilter.push(await pendingIds()),
    );
    const stop = (await createLmsPlugin({ env }).start!(runtime))!;
    onTestFinished(stop);

    const first = await producer.emitRefundRequested({
      orderId: 'order-1',
      lineItemIds: ['line-1'],
      username: 'ada',
    });
    const second = await producer.emitRefundRequested({
      orderId: 'order-2',
      lineItemIds: ['a', 'b'],
      username: 'ada',
    });
    await waitFor(() => expect(calls).toHaveLength(2));
    expect(calls).toEqual([
      {
        name: 'order.refund.requested.v1',
        input: { orderId: 'order-1', lineItemIds: ['line-1'] },
        options: { idempotencyKey: `lms-refund:${first.eventId}`, principal: lmsPrincipal },
      },
      {
        name: 'order.refund.requested.v1',
        input: { orderId: 'order-2', lineItemIds: ['a', 'b'] },
        options: { idempotencyKey: `lms-refund:${second.eventId}`, principal: lmsPrincipal },
      },
    ]);
    // While the filter ran, its entry was still pending (not acknowledged).
    expect(pendingDuringFilter[0]).toContain(first.messageId);
    expect(pendingDuringFilter[1]).toContain(second.messageId);
    await waitFor(async () => expect(await pendingIds()).toEqual([]));
    expect(calls).toHaveLength(2);
  });

  it('leaves an event pending when runFilter throws; after a restart it is processed with the same key', async () => {
    const { producer, env, consumer, pendingIds } = await setup('lms consumer redelivers after restart');
    const crashed = recordingRuntime(async () => {
      throw new Error('the flow store is unreachable');
    });
    const stopCrashed = (await createLmsPlugin({ env }).start!(crashed.runtime))!;
    const event = await producer.emitRefundRequested({
      orderId: 'order-9',
      lineItemIds: ['l'],
      username: 'ada',
    });
    await waitFor(() => expect(crashed.calls.length).toBeGreaterThanOrEqual(1));
    await stopCrashed();
    expect(await pendingIds()).toEqual([event.messageId]);
    const pending = (await redis.call('XPENDING', env.LMS_EVENT_BUS_STREAM, group, '-', '+', 10)) as Array<
      [string, string]
    >;
    expect(pending[0]![1]).toBe(consumer);

    const restarted = recordingRuntime();
    const stop = (await createLmsPlugin({ env }).start!(restarted.runtime))!;
    onTestFinished(stop);
    await waitFor(() => expect(restarted.calls).toHaveLength(1));
    const key = `lms-refund:${event.eventId}`;
    expect(restarted.calls[0]!.options?.idempotencyKey).toBe(key);
    expect(crashed.calls.every((c) => c.options?.idempotencyKey === key)).toBe(true);
    await waitFor(async () => expect(await pendingIds()).toEqual([]));
  });

  it('claims an event another consumer left pending longer than LMS_EVENT_BUS_CLAIM_IDLE_MS', async () => {
    const { producer, env, stream, consumer, pendingIds } = await setup('lms consumer claims stale entries', {
      LMS_EVENT_BUS_CLAIM_IDLE_MS: '50',
    });
    await redis.call('XGROUP', 'CREATE', stream, group, '$', 'MKSTREAM');
    const event = await producer.emitRefundRequested({
      orderId: 'order-5',
      lineItemIds: ['l'],
      username: 'ada',
    });
    // A consumer that read the entry and died before acknowledging it.
    await redis.call('XREADGROUP', 'GROUP', group, 'dead-pod', 'COUNT', 10, 'STREAMS', stream, '>');
    expect(await pendingIds()).toEqual([event.messageId]);

    const { runtime, calls } = recordingRuntime();
    const stop = (await createLmsPlugin({ env }).start!(runtime))!;
    onTestFinished(stop);
    await waitFor(() => expect(calls).toHaveLength(1));
    expect(calls[0]!.options?.idempotencyKey).toBe(`lms-refund:${event.eventId}`);
    await waitFor(async () => expect(await pendingIds()).toEqual([]));
    const consumers = (await redis.call('XINFO', 'CONSUMERS', stream, group)) as unknown[][];
    expect(consumers.map((c) => c[1])).toEqual(expect.arrayContaining(['dead-pod', consumer]));
  });

  it('dead-letters unusable entries, skips other event types, and goes on with the next event', async () => {
    const { producer, env, stream, pendingIds } = await setup('lms consumer dead letters');
    const { runtime, calls } = recordingRuntime();
    const stop = (await createLmsPlugin({ env }).start!(runtime))!;
    onTestFinished(stop);
    const header = (type: string, id: string) => ['type', type, 'id', id, 'source', 'openedx/lms/web'];
    await redis.call(
      'XADD',
      stream,
      '*',
      ...header(REFUND_REQUESTED_EVENT_TYPE, randomUUID()),
      'event_data',
      Buffer.from([0xff]),
    );
    await redis.call(
      'XADD',
      stream,
      '*',
      'type',
      REFUND_REQUESTED_EVENT_TYPE,
      'event_data',
      Buffer.from([0]),
    );
    await redis.call(
      'XADD',
      stream,
      '*',
      ...header('org.openedx.learning.course.enrollment.created.v1', randomUUID()),
      'event_data',
      'x',
    );
    const good = await producer.emitRefundRequested({
      orderId: 'order-ok',
      lineItemIds: ['l'],
      username: 'ada',
    });

    await waitFor(() => expect(calls).toHaveLength(1));
    expect(calls[0]!.options?.idempotencyKey).toBe(`lms-refund:${good.eventId}`);
    await waitFor(async () => expect(await pendingIds()).toEqual([]));
    const dead = (
      await redis.call<Array<[string, string[]]>>('XRANGE', `${stream}:dead-letter`, '-', '+')
    ).map(([, fields]) => {
      const record: Record<string, string> = {};
      for (let i = 0; i < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
      return record;
    });
    expect(dead).toHaveLength(2);
    expect(dead[0]!.dead_letter_reason).toContain(`event_data is not a ${REFUND_REQUESTED_EVENT_TYPE}`);
    expect(dead[1]!.dead_letter_reason).toBe('Missing "id" header on message, cannot continue');
  });

  it('stops at once while waiting for events, and closes its connections', async () => {
    const { env, consumer } = await setup('lms consumer stops while blocked', {
      LMS_EVENT_BUS_BLOCK_MS: '10000',
    });
    const { runtime } = recordingRuntime();
    const stop = (await createLmsPlugin({ env }).start!(runtime))!;
    const connections = async () =>
      String(await redis.call('CLIENT', 'LIST'))
        .split('\n')
        .filter((line) => line.includes(`name=lms-events:${consumer} `));
    // Blocked in XREADGROUP (flag b).
    await waitFor(async () =>
      expect((await connections()).some((line) => / flags=b /.test(line))).toBe(true),
    );
    const started = performance.now();
    await stop();
    expect(performance.now() - started).toBeLessThan(1_000);
    await waitFor(async () => expect(await connections()).toEqual([]));
  });

  it('stops after the filter in progress returned, and acks its event', async () => {
    const { producer, env, pendingIds } = await setup('lms consumer stops after the running filter');
    const release = createDeferred();
    const entered = createDeferred();
    const { runtime, calls } = recordingRuntime(async () => {
      entered.resolve();
      await release.promise;
    });
    const stop = (await createLmsPlugin({ env }).start!(runtime))!;
    const event = await producer.emitRefundRequested({
      orderId: 'order-3',
      lineItemIds: ['l'],
      username: 'ada',
    });
    await entered.promise;
    let stopped = false;
    const stopping = stop().then(() => (stopped = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    expect(await pendingIds()).toEqual([event.messageId]);
    release.resolve();
    await stopping;
    expect(calls).toHaveLength(1);
    expect(await pendingIds()).toEqual([]);
  });

  it('does not consume without LMS_EVENT_BUS_REDIS_URL', async () => {
    const { runtime } = recordingRuntime();
    expect(await createLmsPlugin({ env: lmsEnv() }).start!(runtime)).toBeUndefined();
  });
});

describe('lms plugin: the event-bus consumer name', () => {
  // Two workers of one host (WORKERS > 1) must not share a consumer: each would take the other's
  // pending entries for its own after a restart. Each names itself by its worker index, stable across
  // the worker's replacement.
  it('is the host name, with the worker index when the Coordinator runs on workers', () => {
    expect(lmsEventBusConfig({}).LMS_EVENT_BUS_CONSUMER).toBe(hostname());
    expect(lmsEventBusConfig({ WORKER_INDEX: '1' }).LMS_EVENT_BUS_CONSUMER).toBe(`${hostname()}:worker-1`);
    expect(
      lmsEventBusConfig({ LMS_EVENT_BUS_CONSUMER: 'lms-a', WORKER_INDEX: '0' }).LMS_EVENT_BUS_CONSUMER,
    ).toBe('lms-a:worker-0');
  });
});
