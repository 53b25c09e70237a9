import { register as globalRegistry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_REFUND, startTestCoordinator, token, type TestCoordinator } from '../support/coordinator.js';
import { waitFor } from '../support/wait.js';
import { labelValues, parseExposition, valueOf, type Sample } from './exposition.js';

const REFUND = 'order.refund.requested.v1';
let orderSeq = 0;
const nextOrder = () => `metrics-order-${++orderSeq}-${Date.now()}`;

const scrape = async (url: string, bearer?: string): Promise<Sample[]> => {
  const res = await fetch(url, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return parseExposition(await res.text());
};

describe('/metrics after refund flows', () => {
  let t: TestCoordinator;
  let staff: string;
  const metricsOf = () => scrape(t.coordinator.components.metricsUrl, staff);
  const refund = (input: Record<string, unknown>) => t.graphql(REQUEST_REFUND, { input }, { token: staff });

  beforeAll(async () => {
    t = await startTestCoordinator('observability-metrics', { authenticated: true });
    staff = await token({ kind: 'staff', username: 'operator' });
  });
  afterAll(async () => t?.stop());

  it('counts flows, steps, retries, compensations and flag decisions with their labels', async () => {
    const before = await metricsOf();
    const completed = nextOrder();
    const retried = nextOrder();
    const compensated = nextOrder();
    // createReturn answers 503 twice: two retries, then success.
    t.ledger.fault({ kind: 'return', orderId: retried, status: 503, times: 2 });
    // refundPayment answers 409 (a domain error): the return is compensated.
    t.ledger.fault({ kind: 'refund', orderId: compensated, status: 409, times: 1 });
    expect((await refund({ orderId: completed, amount: 10 })).errors).toBeUndefined();
    expect((await refund({ orderId: retried, amount: 10 })).errors).toBeUndefined();
    expect((await refund({ orderId: compensated, amount: 10 })).errors?.[0]?.extensions?.code).toBe(
      'CONFLICT',
    );
    const after = await metricsOf();
    const moved = (name: string, labels: Record<string, string>) =>
      valueOf(after, name, labels) - valueOf(before, name, labels);

    expect(moved('coordinator_flows_started_total', { flow: REFUND, receiver: '' })).toBe(3);
    expect(
      moved('coordinator_flows_finished_total', { flow: REFUND, receiver: '', status: 'completed' }),
    ).toBe(2);
    expect(
      moved('coordinator_flows_finished_total', { flow: REFUND, receiver: '', status: 'compensated' }),
    ).toBe(1);
    expect(
      moved('coordinator_flow_duration_seconds_count', { flow: REFUND, receiver: '', status: 'completed' }),
    ).toBe(2);
    // Each attempt is one observation, by the Implementation that ran it.
    const step = (action: string, implementation: string, status: string) =>
      moved('coordinator_step_duration_seconds_count', { flow: REFUND, action, implementation, status });
    expect(step('createReturn', 'orders', 'failed')).toBe(2);
    expect(step('createReturn', 'orders', 'completed')).toBe(3);
    expect(step('refundPayment', 'payments', 'completed')).toBe(2);
    expect(step('refundPayment', 'payments', 'failed')).toBe(1);
    expect(step('cancelReturn', 'orders', 'completed')).toBe(1);
    expect(moved('coordinator_step_retries_total', { flow: REFUND, action: 'createReturn' })).toBe(2);
    expect(moved('coordinator_step_retries_total', { flow: REFUND, action: 'refundPayment' })).toBe(0);
    expect(
      moved('coordinator_compensations_total', { flow: REFUND, action: 'cancelReturn', status: 'completed' }),
    ).toBe(1);
    // A filter's own steps are never counted as compensations.
    expect(labelValues(after, 'coordinator_compensations_total', 'action')).toEqual(['cancelReturn']);
    // Every refundPayment call decided the Transition-to-Plugin flag (off: not in TestData).
    expect(
      moved('coordinator_flag_decisions_total', {
        flag: 'transition.refunds.payments-v2',
        value: 'false',
        reason: 'ERROR:FLAG_NOT_FOUND',
      }),
    ).toBeGreaterThanOrEqual(3);
  });

  it('measures GraphQL operations, subgraph fetches and HTTP requests', async () => {
    const before = await metricsOf();
    const orderId = nextOrder();
    t.ledger.fault({ kind: 'refund', orderId, status: 409, times: 1 });
    await refund({ orderId: nextOrder(), amount: 3 });
    await refund({ orderId, amount: 3 });
    const after = await metricsOf();
    const moved = (name: string, labels: Record<string, string>) =>
      valueOf(after, name, labels) - valueOf(before, name, labels);
    const operation = (outcome: string) =>
      moved('coordinator_graphql_operation_duration_seconds_count', {
        operation: 'Refund',
        type: 'mutation',
        outcome,
      });
    expect(operation('success')).toBe(1);
    expect(operation('error')).toBe(1);
    expect(moved('coordinator_graphql_errors_total', { operation: 'Refund', code: 'CONFLICT' })).toBe(1);
    // The engine's own Action calls are steps, not client operations.
    expect(labelValues(after, 'coordinator_graphql_operation_duration_seconds_count', 'operation')).toEqual([
      'Refund',
    ]);
    expect(
      moved('coordinator_subgraph_fetch_duration_seconds_count', {
        subgraph: 'payments',
        outcome: 'success',
      }),
    ).toBe(1);
    expect(
      moved('coordinator_subgraph_fetch_duration_seconds_count', { subgraph: 'payments', outcome: 'error' }),
    ).toBe(1);
    expect(
      moved('coordinator_subgraph_fetch_duration_seconds_count', {
        subgraph: 'coordinator',
        outcome: 'success',
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      moved('coordinator_http_request_duration_seconds_count', {
        route: '/graphql',
        method: 'POST',
        status: '200',
      }),
    ).toBe(2);
    // The scrape before this one was counted too.
    expect(
      moved('coordinator_http_request_duration_seconds_count', {
        route: '/metrics',
        method: 'GET',
        status: '200',
      }),
    ).toBe(1);
  });

  it('measures signal delivery, receiver failures and dead letters by receiver', async () => {
    const before = await metricsOf();
    const delivered = nextOrder();
    const dead = nextOrder();
    // revoke-enrollment has 3 attempts: the third failure dead-letters the signal.
    t.ledger.fault({ kind: 'revoke', orderId: dead, status: 503, times: 3 });
    await refund({ orderId: delivered, amount: 5, learnerId: 'learner-1' });
    await refund({ orderId: dead, amount: 5, learnerId: 'learner-2' });
    const receiver = { receiver: 'revoke-enrollment' };
    const receiverRun = { flow: 'order.refunded.v1', receiver: 'revoke-enrollment' };
    const after = await waitFor(
      async () => {
        const samples = await metricsOf();
        return valueOf(samples, 'coordinator_dead_letters_total', receiver) >
          valueOf(before, 'coordinator_dead_letters_total', receiver)
          ? samples
          : false;
      },
      { timeoutMs: 15_000, what: 'the dead letter' },
    );
    const moved = (name: string, labels: Record<string, string>) =>
      valueOf(after, name, labels) - valueOf(before, name, labels);
    expect(moved('coordinator_dead_letters_total', receiver)).toBe(1);
    expect(moved('coordinator_receiver_failures_total', receiver)).toBe(3);
    // First deliveries only: the dead signal's three attempts count once. (A signal of an earlier test
    // may have been delivered since the first scrape, so at least these two.)
    expect(
      moved('coordinator_signal_delivery_latency_seconds_count', {
        signal: 'order.refunded.v1',
        receiver: 'revoke-enrollment',
      }),
    ).toBeGreaterThanOrEqual(2);
    expect(
      moved('coordinator_signal_delivery_latency_seconds_count', {
        signal: 'order.refunded.v1',
        receiver: 'revoke-enrollment',
      }),
    ).toBeLessThan(moved('coordinator_flows_started_total', receiverRun));
    expect(
      moved('coordinator_flows_finished_total', {
        flow: 'order.refunded.v1',
        receiver: 'revoke-enrollment',
        status: 'failed',
      }),
    ).toBe(3);
    expect(moved('coordinator_outbox_published_total', {})).toBeGreaterThanOrEqual(4);
  });

  it('reads the outbox gauges and the process metrics at scrape time', async () => {
    const samples = await metricsOf();
    const names = new Set(samples.map((s) => s.name));
    for (const name of [
      'coordinator_outbox_backlog',
      'coordinator_outbox_oldest_signal_age_seconds',
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
    ])
      expect(names, name).toContain(name);
    expect(valueOf(samples, 'coordinator_outbox_backlog')).toBeGreaterThanOrEqual(0);
  });

  it('keeps label values bounded: unknown routes, methods and operations are bucketed', async () => {
    await fetch(`${t.url}/orders/6a1f0c7e-1d2b-4c3a-9e8f-000000000001/secret?token=abc`);
    await fetch(`${t.url}/graphql`, { method: 'PROPFIND' });
    const graphql = (body: unknown) =>
      fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${staff}` },
        body: JSON.stringify(body),
      });
    await graphql({ query: '{ flows(limit: 1) { id } }' });
    await graphql({ query: 'query Broken { flows(' });
    await graphql({ query: `query ${'Long'.repeat(20)} { flows(limit: 1) { id } }` });
    const samples = await metricsOf();
    const routes = labelValues(samples, 'coordinator_http_request_duration_seconds_count', 'route');
    expect(routes).toContain('(unmatched)');
    expect(routes.every((r) => r === '(unmatched)' || !r.includes('6a1f0c7e'))).toBe(true);
    expect(labelValues(samples, 'coordinator_http_request_duration_seconds_count', 'method')).toContain(
      '(other)',
    );
    const operations = labelValues(
      samples,
      'coordinator_graphql_operation_duration_seconds_count',
      'operation',
    );
    expect(operations).toEqual(expect.arrayContaining(['(anonymous)', '(unresolved)', '(other)']));
    expect(operations.some((o) => o.startsWith('LongLong'))).toBe(false);
    expect(
      valueOf(samples, 'coordinator_graphql_errors_total', {
        operation: '(unresolved)',
        code: 'GRAPHQL_PARSE_FAILED',
      }),
    ).toBe(1);
  });

  it('registers nothing on prom-client’s global registry', () => {
    expect(globalRegistry.getMetricsAsArray()).toEqual([]);
  });
});

describe('operation names as labels', () => {
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('observability-operation-names', {
      redis: false,
      overrides: { metrics: { maxOperationNames: 2, processMetrics: false } },
    });
  });
  afterAll(async () => t?.stop());

  it('keeps the first names up to the cap and buckets the rest; each Coordinator has its own registry', async () => {
    for (const name of ['First', 'Second', 'Third', 'First'])
      await t.graphql(`query ${name} { flows(limit: 1) { id } }`);
    const samples = await scrape(t.coordinator.components.metricsUrl);
    const count = (operation: string) =>
      valueOf(samples, 'coordinator_graphql_operation_duration_seconds_count', {
        operation,
        type: 'query',
        outcome: 'success',
      });
    expect([count('First'), count('Second'), count('(other)')]).toEqual([2, 1, 1]);
    // Nothing of the other Coordinator of this file, nor process metrics when turned off.
    expect(valueOf(samples, 'coordinator_flows_started_total', { flow: REFUND, receiver: '' })).toBe(0);
    expect(samples.some((s) => s.name.startsWith('process_') || s.name.startsWith('nodejs_'))).toBe(false);
  });
});
