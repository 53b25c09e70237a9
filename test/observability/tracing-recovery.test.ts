import { randomUUID } from 'node:crypto';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { serveFixturePlugins } from '../support/remote-subgraphs.js';
import { waitFor } from '../support/wait.js';
import { callerTraceparent, child, failed, spanForest } from './tracing-spans.js';

/**
 * Traces across what does not happen in one call: a signal delivered by the in-process bus, a step
 * retried, a call to a remote subgraph, and a flow that another process left running and this one
 * recovers, which continues the trace recorded with the flow.
 */

const exporter = new InMemorySpanExporter();
let t: TestCoordinator;

beforeAll(async () => {
  t = await startTestCoordinator('tracing-recovery', {
    redis: false,
    overrides: { tracing: { exporter: { kind: 'custom', exporter, processor: 'simple' } } },
  });
});
afterAll(async () => {
  await t?.stop();
});
beforeEach(() => exporter.reset());

describe('traces of the in-process bus and of recovery', () => {
  it('links the receiver run of a signal delivered in process to the flow that emitted it', async () => {
    const { data } = await t.graphql<{ requestRefund: { flow: { id: string; status: string } } }>(
      REQUEST_REFUND,
      {
        input: { orderId: `memory-${randomUUID()}`, amount: 5 },
      },
    );
    expect(data?.requestRefund.flow.status).toBe('COMPLETED');
    const receiver = await waitFor(() =>
      spanForest(exporter).one((n) => n.name === 'receiver revoke-enrollment', 'of the receiver run'),
    );
    const flow = spanForest(exporter).one((n) => n.name === 'flow order.refund.requested.v1', 'of the flow');
    expect(flow.attribute('coordinator.flow.id')).toBe(data!.requestRefund.flow.id);
    expect(receiver.traceId).not.toBe(flow.traceId);
    expect(receiver.span.links.map((l) => l.context.spanId)).toEqual([flow.spanId]);
    // Its Action's call to the ledger nests under it, not under the flow whose signal it received.
    const ledgerCall = child(
      child(child(child(receiver, 'step revokeEnrollment'), 'action revokeEnrollment'), 'subgraph orders'),
      'POST',
    );
    expect(ledgerCall.span.kind).toBe(SpanKind.CLIENT);
  });

  it('shows each attempt of a retried step, the failed one with its exception', async () => {
    const orderId = `retry-${randomUUID()}`;
    t.ledger.fault({ kind: 'refund', orderId, status: 503, times: 1 });
    const { data } = await t.graphql<{ requestRefund: { flow: { status: string } } }>(REQUEST_REFUND, {
      input: { orderId, amount: 5 },
    });
    expect(data?.requestRefund.flow.status).toBe('COMPLETED');
    const flow = spanForest(exporter).one((n) => n.name === 'flow order.refund.requested.v1', 'of the flow');
    const attempts = flow.children.filter((s) => s.name === 'step refundPayment');
    expect(
      attempts.map((s) => [s.attribute('coordinator.step.attempt'), s.attribute('coordinator.step.status')]),
    ).toEqual([
      [1, 'failed'],
      [2, 'completed'],
    ]);
    expect(failed(attempts[0]!)).toBe(true);
    expect(attempts[0]!.span.events.map((e) => e.name)).toEqual(['exception']);
    expect(failed(attempts[1]!)).toBe(false);
    // The ledger's 503 on its own span, beneath the attempt's Action call and fetch.
    const [refused, accepted] = attempts.map((s) =>
      child(child(child(s, 'action refundPayment'), 'subgraph payments'), 'POST'),
    );
    expect(refused!.span.attributes).toMatchObject({ 'http.response.status_code': 503, 'error.type': '503' });
    expect(failed(refused!)).toBe(true);
    expect(accepted!.attribute('http.response.status_code')).toBe(201);
    // The same idempotency key on both: the Service sees one refund asked twice.
    expect(new Set(attempts.map((s) => s.attribute('coordinator.step.idempotency_key'))).size).toBe(1);
    expect(failed(flow)).toBe(false);
  });

  it('sends the trace on to a remote subgraph, whose fetch is a client span', async () => {
    const remote = await serveFixturePlugins();
    const remoteSpans = new InMemorySpanExporter();
    const gateway = await startTestCoordinator('tracing-remote', {
      redis: false,
      ledger: t.ledger,
      overrides: {
        ...remote.coordinatorOptions,
        tracing: { exporter: { kind: 'custom', exporter: remoteSpans, processor: 'simple' } },
      },
    });
    try {
      const { data } = await gateway.graphql<{ requestRefund: { flow: { id: string; status: string } } }>(
        REQUEST_REFUND,
        {
          input: { orderId: `remote-${randomUUID()}`, amount: 5 },
        },
      );
      expect(data?.requestRefund.flow.status).toBe('COMPLETED');
      const forest = spanForest(remoteSpans);
      const step = forest.one((n) => n.name === 'step createReturn', 'of the step');
      const fetch = child(child(step, 'action createReturn'), 'subgraph orders');
      expect(fetch.span.kind).toBe(SpanKind.CLIENT);
      const http = child(fetch, 'POST');
      const [request] = remote
        .requests('orders')
        .filter(
          (r) => r.claims?.step?.flowId === data!.requestRefund.flow.id && r.claims.step.stepIndex === 1,
        );
      expect(request?.headers.traceparent).toBe(`00-${http.traceId}-${http.spanId}-01`);
    } finally {
      await gateway.stop();
      await remote.close();
    }
  });

  it("makes an operator's retry of a flow part of the retry's request, linked to the flow's first trace", async () => {
    const orderId = `retried-${randomUUID()}`;
    // The refund fails on every attempt: the flow is compensated.
    t.ledger.fault({ kind: 'refund', orderId, status: 503, times: 3 });
    const first = await t.graphql<{ requestRefund: null }>(REQUEST_REFUND, { input: { orderId, amount: 5 } });
    const flowId = first.errors?.[0]?.extensions?.flowId as string;
    expect(first.errors?.[0]?.extensions).toMatchObject({ flowStatus: 'COMPENSATED' });
    const original = spanForest(exporter).one((n) => n.name === 'mutation Refund', 'of the first request');
    const recorded = child(original, 'subgraph coordinator');
    exporter.reset();

    const { data } = await t.graphql<{ retryFlow: { status: string } }>(
      `mutation Retry($id: ID!) { retryFlow(id: $id, reason: "the PSP is back") { status } }`,
      { id: flowId },
    );

    expect(data?.retryFlow.status).toBe('COMPLETED');
    const forest = spanForest(exporter);
    const retry = forest.one((n) => n.name === 'mutation Retry', 'of the retry');
    const flow = child(child(retry, 'subgraph coordinator'), 'flow order.refund.requested.v1');
    expect(flow.span.attributes).toMatchObject({
      'coordinator.flow.id': flowId,
      'coordinator.flow.attempt': 2,
    });
    expect(flow.span.links.map((l) => [l.context.traceId, l.context.spanId])).toEqual([
      [original.traceId, recorded.spanId],
    ]);
  });

  it('continues the recorded trace of a flow another process left running', async () => {
    const caller = callerTraceparent();
    const flowId = randomUUID();
    // As a gateway that crashed after starting the flow leaves it: running, its lease long expired.
    const { pool } = t.coordinator.components.database;
    await pool.query(
      `INSERT INTO "FlowRun" ("id", "kind", "name", "status", "inputHash", "input", "owner", "heartbeatAt",
                              "startedAt", "traceContext")
       VALUES ($1, 'filter', 'caller.echo.v1', 'running', 'h', $2, 'crashed-gateway', now() - interval '1 hour',
               now() - interval '1 hour', $3)`,
      [flowId, JSON.stringify({ channel: 'WEB' }), JSON.stringify({ traceparent: caller.traceparent })],
    );

    await t.coordinator.components.leases.sweep();

    const flow = await waitFor(() =>
      spanForest(exporter).one(
        (n) => n.attribute('coordinator.flow.id') === flowId && n.name.startsWith('flow '),
        'of the recovered flow',
      ),
    );
    expect(flow).toMatchObject({
      name: 'flow caller.echo.v1',
      traceId: caller.traceId,
      parentId: caller.spanId,
    });
    expect(flow.span.attributes).toMatchObject({
      'coordinator.flow.attempt': 2,
      'coordinator.flow.status': 'completed',
    });
    expect(flow.children.map((s) => s.name)).toEqual(['step whoCalls']);
  });
});
