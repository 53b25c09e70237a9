import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { waitFor } from '../support/wait.js';

type Flow = {
  id: string;
  status: string;
  orderId: string;
  output: Record<string, unknown>;
  error: { code: string; message: string } | null;
  steps: Array<{
    index: number;
    action: string;
    status: string;
    implementation: string | null;
    attempt: number;
    idempotencyKey: string;
    output: Record<string, unknown> | null;
    flagDecisions: Array<{ flag: string; value: boolean; reason: string }>;
    error: { code: string; message: string } | null;
  }>;
};

let t: TestCoordinator;
let orderSeq = 0;
const nextOrder = () => `order-${++orderSeq}-${Date.now()}`;

const refund = (input: Record<string, unknown>, key?: string) =>
  t.graphql<{ requestRefund: { flow: Flow } }>(REQUEST_REFUND, { input, key });

const FLOW = /* GraphQL */ `
  query Flow($id: ID!) {
    flow(id: $id) {
      id
      status
      steps {
        index
        action
        status
        attempt
      }
    }
  }
`;

describe.each([{ bus: 'redis' }, { bus: 'memory' }])(
  'a filter run as a Purchase Flow ($bus bus)',
  ({ bus }) => {
    beforeAll(async () => {
      t = await startTestCoordinator(`flows-${bus}`, { redis: bus === 'redis' });
    });
    afterAll(async () => t?.stop());

    it('runs every step through the gateway, accumulates results and records each step', async () => {
      const orderId = nextOrder();
      const { data, errors } = await refund({ orderId, amount: 40, learnerId: 'learner-1' });
      expect(errors).toBeUndefined();
      const flow = data!.requestRefund.flow;
      expect(flow.status).toBe('COMPLETED');
      expect(flow.orderId).toBe(orderId);
      expect(flow.steps.map((s) => [s.action, s.status, s.implementation])).toEqual([
        ['haltIfLegacy', 'COMPLETED', 'orders'],
        ['createReturn', 'COMPLETED', 'orders'],
        ['refundPayment', 'COMPLETED', 'payments'],
        ['recordRefund', 'COMPLETED', 'orders'],
      ]);
      // The accumulated data: the input, plus every step's result fields.
      expect(flow.output).toMatchObject({
        orderId,
        amount: 40,
        refundAmount: 40,
        psp: 'payments',
        recorded: true,
      });
      expect(flow.output.refundId).toMatch(/^refund-/);
      // Each Service call carried the step's idempotency key.
      const keys = t.ledger
        .operations()
        .filter((o) => o.key.startsWith(flow.id))
        .map((o) => [o.kind, o.key]);
      expect(keys).toEqual([
        ['return', `${flow.id}:1`],
        ['refund', `${flow.id}:2`],
        ['record', `${flow.id}:3`],
      ]);
      expect(flow.steps[2]!.flagDecisions).toEqual([
        { flag: 'transition.refunds.payments-v2', value: false, reason: expect.any(String) },
      ]);
    });

    it('halts when a step returns null and returns what had accumulated', async () => {
      const { data } = await refund({ orderId: 'EDX-123456', amount: 10 });
      const flow = data!.requestRefund.flow;
      expect(flow.status).toBe('HALTED');
      expect(flow.steps).toHaveLength(1);
      expect(flow.steps[0]!.status).toBe('HALTED');
      expect(flow.output).toEqual({ orderId: 'EDX-123456', amount: 10 });
      expect(t.ledger.operations().filter((o) => o.orderId === 'EDX-123456')).toEqual([]);
    });

    it('retries a step that fails transiently, with the same idempotency key', async () => {
      const orderId = nextOrder();
      t.ledger.fault({ kind: 'return', orderId, status: 503, times: 2 });
      const flow = (await refund({ orderId, amount: 5 })).data!.requestRefund.flow;
      expect(flow.status).toBe('COMPLETED');
      expect(flow.steps[1]).toMatchObject({ action: 'createReturn', status: 'COMPLETED', attempt: 3 });
      expect(t.ledger.operations().filter((o) => o.orderId === orderId && o.kind === 'return')).toHaveLength(
        1,
      );
    });

    it('sends a domain error to the caller and compensates the steps that changed a Service', async () => {
      const orderId = nextOrder();
      t.ledger.fault({ kind: 'refund', orderId, status: 409, times: 1 });
      const { data, errors } = await refund({ orderId, amount: 7 });
      expect(data).toBeNull();
      expect(errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT', flowStatus: 'COMPENSATED' });
      const flowId = errors![0]!.extensions!.flowId as string;
      const recorded = (await t.graphql<{ flow: Flow }>(FLOW, { id: flowId })).data!.flow;
      expect(recorded.status).toBe('COMPENSATED');
      expect(recorded.steps.map((s) => [s.action, s.status, s.attempt])).toEqual([
        ['haltIfLegacy', 'COMPLETED', 1],
        ['createReturn', 'COMPENSATED', 1],
        // A domain error is never retried.
        ['refundPayment', 'FAILED', 1],
        ['cancelReturn', 'COMPLETED', 1],
      ]);
      expect(
        t.ledger
          .operations()
          .filter((o) => o.key.startsWith(flowId))
          .map((o) => o.kind),
      ).toEqual(['return', 'cancel-return']);
    });

    it('runs once per idempotency key, also for concurrent duplicates', async () => {
      const orderId = nextOrder();
      const key = `key-${orderId}`;
      const results = await Promise.all(Array.from({ length: 5 }, () => refund({ orderId, amount: 3 }, key)));
      const ids = new Set(results.map((r) => r.data!.requestRefund.flow.id));
      expect(ids.size).toBe(1);
      expect(results.every((r) => r.data!.requestRefund.flow.status === 'COMPLETED')).toBe(true);
      const again = await refund({ orderId, amount: 3 }, key);
      expect(again.data!.requestRefund.flow.id).toBe([...ids][0]);
      expect(t.ledger.operations().filter((o) => o.orderId === orderId && o.kind === 'refund')).toHaveLength(
        1,
      );
    });

    it('rejects a reused idempotency key with another input, writing nothing', async () => {
      const orderId = nextOrder();
      const key = `key-${orderId}`;
      await refund({ orderId, amount: 3 }, key);
      const { errors } = await refund({ orderId, amount: 4 }, key);
      expect(errors?.[0]?.extensions?.code).toBe('IDEMPOTENCY_KEY_REUSED');
      const { data } = await t.graphql<{ flows: Flow[] }>(
        `query($o: String) { flows(orderId: $o, name: "order.refund.requested.v1") { id } }`,
        { o: orderId },
      );
      expect(data!.flows).toHaveLength(1);
    });

    it('answers invalid input with a stable code and records no flow', async () => {
      const orderId = nextOrder();
      const missing = await t.graphql(REQUEST_REFUND, { input: { orderId } });
      expect(missing.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      const wrongType = await t.graphql(REQUEST_REFUND, { input: { orderId, amount: 'ten' } });
      expect(wrongType.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      const unknownField = await t.graphql(
        `mutation { requestRefund(input: { orderId: "x", amount: 1, nope: 1 }) { flow { id } } }`,
      );
      expect(unknownField.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      const badId = await t.graphql(`query { flow(id: "not-a-uuid") { id } }`);
      expect(badId.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      const { data } = await t.graphql<{ flows: Flow[] }>(
        `query($o: String) { flows(orderId: $o, name: "order.refund.requested.v1") { id } }`,
        { o: orderId },
      );
      expect(data!.flows).toEqual([]);
    });

    it('lists flow records by order, by status and by recency', async () => {
      const orderId = nextOrder();
      const first = (await refund({ orderId, amount: 1 })).data!.requestRefund.flow;
      t.ledger.fault({ kind: 'refund', orderId, status: 409, times: 1 });
      await refund({ orderId, amount: 2 });
      const byOrder = await t.graphql<{ flows: Flow[] }>(
        `query($o: String) { flows(orderId: $o, name: "order.refund.requested.v1") { id status } }`,
        { o: orderId },
      );
      expect(byOrder.data!.flows.map((f) => f.status)).toEqual(['COMPENSATED', 'COMPLETED']);
      expect(byOrder.data!.flows[1]!.id).toBe(first.id);
      const failed = await t.graphql<{ flows: Flow[] }>(
        `{ flows(status: COMPENSATED, limit: 50) { orderId } }`,
      );
      expect(failed.data!.flows.map((f) => f.orderId)).toContain(orderId);
      const recent = await t.graphql<{ flows: Flow[] }>(`{ flows(limit: 1) { orderId } }`);
      expect(recent.data!.flows).toEqual([{ orderId }]);
    });

    it('moves an Action to another Implementation when its Transition-to-Plugin flag says so, and records why', async () => {
      const orderId = nextOrder();
      await t.testData.update(
        t.testData
          .flag('transition.refunds.payments-v2')
          .booleanFlag()
          .fallthroughVariation(false)
          .variationForContext('order', orderId, true),
      );
      const moved = (await refund({ orderId, amount: 9 })).data!.requestRefund.flow;
      expect(moved.steps[2]).toMatchObject({ implementation: 'payments-v2', output: { psp: 'payments-v2' } });
      expect(moved.steps[2]!.flagDecisions).toEqual([
        { flag: 'transition.refunds.payments-v2', value: true, reason: 'TARGET_MATCH' },
      ]);
      const other = (await refund({ orderId: nextOrder(), amount: 9 })).data!.requestRefund.flow;
      expect(other.steps[2]!.implementation).toBe('payments');
    });

    it('emits signals in the flow and step transactions and runs each receiver once per signal', async () => {
      const orderId = nextOrder();
      const flow = (await refund({ orderId, amount: 11, learnerId: 'learner-9' })).data!.requestRefund.flow;
      // order.refunded.v1 (emitted by the filter) → revoke-enrollment; payment.refunded.v1 (emitted by
      // the payments plugin inside its step) → record-psp-refund.
      await waitFor(() => t.ledger.operations().some((o) => o.orderId === orderId && o.kind === 'revoke'), {
        timeoutMs: 10_000,
      });
      const all = await waitFor(
        async () => {
          const { data } = await t.graphql<{
            flows: Array<{ name: string; receiver: string | null; status: string }>;
          }>(`query($o: String) { flows(orderId: $o) { name receiver status } }`, { o: orderId });
          const runs = data!.flows.filter((f) => f.receiver);
          return runs.length === 2 && runs.every((f) => f.status === 'COMPLETED') ? runs : false;
        },
        { timeoutMs: 10_000 },
      );
      expect(
        (all as Array<{ name: string; receiver: string }>).map((f) => [f.name, f.receiver]).sort(),
      ).toEqual([
        ['order.refunded.v1', 'revoke-enrollment'],
        ['payment.refunded.v1', 'record-psp-refund'],
      ]);
      expect(t.ledger.operations().filter((o) => o.orderId === orderId && o.kind === 'revoke')).toHaveLength(
        1,
      );
      expect(flow.status).toBe('COMPLETED');
    });
  },
);
