import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import Stripe from 'stripe';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { STRIPE_WEBHOOK_SECRET } from '../../services/embedded.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { seedPaidOrder } from '../support/orders.js';
import { waitFor } from '../support/wait.js';
import {
  callerTraceparent,
  child,
  failed,
  spanForest,
  type SpanForest,
  type SpanNode,
} from './tracing-spans.js';

/**
 * The traces of a refund on the commerce Coordinator (the real Plugins, every Service stand-in), read
 * from an in-memory exporter of this Coordinator's own: the request, its flow, the flow's steps, their
 * Action calls, the subgraph fetches and the Services' HTTP calls beneath; then the run of the signal's
 * receiver, in a trace of its own linked back to the flow.
 */

const exporter = new InMemorySpanExporter();
let cc: CommerceCoordinator;

beforeAll(async () => {
  cc = await startCommerceCoordinator('tracing-refund', {
    overrides: {
      tracing: {
        serviceName: 'cc-tracing-test',
        exporter: { kind: 'custom', exporter, processor: 'simple' },
      },
    },
  });
});
afterAll(async () => {
  await cc?.stop();
});
beforeEach(() => exporter.reset());

const REFUND = /* GraphQL */ `
  mutation Refund($input: RefundRequestInput!) {
    requestRefund(input: $input) {
      flow {
        id
        status
      }
    }
  }
`;

async function refund(
  input: { orderId: string; lineItemIds: string[] },
  traceparent: string,
): Promise<{ id?: string; status?: string; errors?: Array<{ extensions?: { flowId?: string } }> }> {
  const res = await fetch(`${cc.url}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${cc.tokens.staff}`,
      traceparent,
    },
    body: JSON.stringify({ query: REFUND, variables: { input } }),
  });
  const body = (await res.json()) as {
    data?: { requestRefund: { flow: { id: string; status: string } } | null };
    errors?: Array<{ extensions?: { flowId?: string } }>;
  };
  return { ...body.data?.requestRefund?.flow, errors: body.errors };
}

const portOf = (url: string) => Number(new URL(url).port);
const httpCallsTo = (forest: SpanForest, node: SpanNode, url: string) =>
  forest
    .descendants(node)
    .filter((n) => n.span.kind === SpanKind.CLIENT && n.attribute('server.port') === portOf(url));

describe('the trace of a refund', () => {
  it('nests request → flow → steps → Action calls → subgraph fetches → Service calls, and links the receiver run back', async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [14_900, 14_900] });
    const caller = callerTraceparent();

    const flow = await refund(
      { orderId: order.orderId, lineItemIds: [order.lineItemIds[0]!] },
      caller.traceparent,
    );
    expect(flow.errors).toBeUndefined();
    expect(flow.status).toBe('COMPLETED');
    const receiverSpan = (forest: SpanForest) =>
      forest.one(
        (n) => n.attribute('coordinator.receiver') === 'revoke-returned-line-items',
        'of the receiver run',
      );
    await waitFor(() => receiverSpan(spanForest(exporter)), { timeoutMs: 15_000, what: 'the receiver run' });
    const forest = spanForest(exporter);
    const env = cc.services.env;

    // The request continues the caller's trace.
    const request = forest.one((n) => n.name === 'mutation Refund', 'of the request');
    expect(request).toMatchObject({ traceId: caller.traceId, parentId: caller.spanId });
    expect(request.span.kind).toBe(SpanKind.SERVER);
    expect(request.span.attributes).toMatchObject({
      'graphql.operation.type': 'mutation',
      'graphql.operation.name': 'Refund',
    });
    expect(request.span.resource.attributes['service.name']).toBe('cc-tracing-test');

    // The Coordinator's own subgraph runs the filter: the flow is a child of its fetch.
    const flowSpan = child(child(request, 'subgraph coordinator'), 'flow order.refund.requested.v1');
    expect(flowSpan.span.attributes).toMatchObject({
      'coordinator.flow.id': flow.id,
      'coordinator.flow.name': 'order.refund.requested.v1',
      'coordinator.flow.kind': 'filter',
      'coordinator.flow.attempt': 1,
      'coordinator.flow.status': 'completed',
    });
    expect(failed(flowSpan)).toBe(false);
    // Started in the request it belongs to: nothing earlier to link to.
    expect(flowSpan.span.links).toEqual([]);

    // One span per step that ran (settleReturn and the PayPal refund were skipped by their `when`), in order.
    expect(flowSpan.children.map((s) => s.name)).toEqual([
      'step refundLines',
      'step createReturn',
      'step refundStripePayment',
      'step recordRefundTransaction',
    ]);
    const [, createReturn, refundStripe, recordRefund] = flowSpan.children as [
      SpanNode,
      SpanNode,
      SpanNode,
      SpanNode,
    ];
    expect(refundStripe.span.attributes).toMatchObject({
      'coordinator.flow.id': flow.id,
      'coordinator.step.index': 3,
      'coordinator.action': 'refundStripePayment',
      'coordinator.step.attempt': 1,
      'coordinator.step.idempotency_key': `${flow.id}:3`,
      'coordinator.implementation': 'stripe',
      'coordinator.step.status': 'completed',
    });
    expect(createReturn.attribute('coordinator.implementation')).toBe('order-management');
    expect(recordRefund.attribute('coordinator.step.index')).toBe(5);

    // Each step's Action call, the fetch of the Plugin that implements it, and that Plugin's Service calls.
    for (const [step, action, subgraph, service] of [
      [createReturn, 'createReturn', 'order-management', env.ORDER_MANAGEMENT_URL!],
      [refundStripe, 'refundStripePayment', 'stripe', env.STRIPE_API_BASE!],
      [recordRefund, 'recordRefundTransaction', 'order-management', env.ORDER_MANAGEMENT_URL!],
    ] as const) {
      const call = child(step, `action ${action}`);
      expect(call.span.attributes).toMatchObject({
        'coordinator.action': action,
        'coordinator.flow.id': flow.id,
        'coordinator.step.index': step.attribute('coordinator.step.index'),
        'coordinator.implementation': subgraph,
      });
      const fetch = child(call, `subgraph ${subgraph}`);
      const calls = httpCallsTo(forest, fetch, service);
      expect(calls.length, `${action}'s calls to its Service`).toBeGreaterThan(0);
      for (const http of calls) {
        expect(http.span.attributes).toMatchObject({
          'http.request.method': expect.any(String),
          'server.address': '127.0.0.1',
          'http.response.status_code': expect.any(Number),
        });
      }
    }
    // Stripe's SDK calls over node:http, the order management SDK over fetch (undici): both are seen.
    expect(httpCallsTo(forest, refundStripe, env.STRIPE_API_BASE!).map((n) => n.name)).toContain('POST');

    // The signal's receiver run is a trace of its own, linked to the flow that emitted the signal.
    const receiver = receiverSpan(forest);
    expect(receiver.name).toBe('receiver revoke-returned-line-items');
    expect(receiver.span.kind).toBe(SpanKind.CONSUMER);
    expect(receiver.traceId).not.toBe(caller.traceId);
    expect(receiver.parentId).toBeUndefined();
    expect(receiver.span.links.map((l) => [l.context.traceId, l.context.spanId])).toEqual([
      [caller.traceId, flowSpan.spanId],
    ]);
    expect(receiver.span.attributes).toMatchObject({
      'coordinator.flow.kind': 'receiver',
      'coordinator.flow.name': 'order.refunded.v1',
      'coordinator.flow.status': 'completed',
    });
    const revoke = child(receiver, 'step revokeLineItems');
    const lms = child(child(revoke, 'action revokeLineItems'), 'subgraph lms');
    expect(httpCallsTo(forest, lms, env.LMS_URL!).length).toBeGreaterThan(0);

    // The record carries the contexts: the flow's row the request's (for recovery), the outbox row the
    // flow's (for its receivers).
    const { prisma } = cc.coordinator.components.database;
    const row = await prisma.flowRun.findUniqueOrThrow({ where: { id: flow.id } });
    expect(row.traceContext).toEqual({
      traceparent: `00-${caller.traceId}-${child(request, 'subgraph coordinator').spanId}-01`,
    });
    const signal = await prisma.outboxSignal.findFirstOrThrow({ where: { flowId: flow.id } });
    expect(signal.traceContext).toEqual({ traceparent: `00-${caller.traceId}-${flowSpan.spanId}-01` });

    // No span holds the learner's data: not in an attribute, not in an event.
    const learner = DEMO.learners.ada;
    const recorded = JSON.stringify(
      forest.all.map((n) => [n.span.attributes, n.span.events, n.span.links.map((l) => l.attributes)]),
    );
    for (const value of [learner.email, learner.name, order.lineItemIds[0]!, order.orderNumber])
      expect(recorded).not.toContain(value);
  });

  it('marks the failed step, its Action call, the flow and the request as failed, with the exception', async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [14_900, 14_900] });
    const lineItemIds = [order.lineItemIds[0]!];
    expect(
      (await refund({ orderId: order.orderId, lineItemIds }, callerTraceparent().traceparent)).status,
    ).toBe('COMPLETED');
    exporter.reset();
    const caller = callerTraceparent();

    // The order management Service refuses the return (400: CONFLICT). The same line again would not
    // do: it is answered as already refunded.
    cc.services.orderManagement.failNext(1, 400, '/edx-commerce/orders', 'POST');
    const again = await refund(
      { orderId: order.orderId, lineItemIds: [order.lineItemIds[1]!] },
      caller.traceparent,
    );
    expect(again.errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT' });
    const forest = spanForest(exporter);

    const request = forest.one((n) => n.name === 'mutation Refund', 'of the request');
    const flowSpan = child(child(request, 'subgraph coordinator'), 'flow order.refund.requested.v1');
    expect(flowSpan.span.attributes).toMatchObject({
      'coordinator.flow.id': again.errors?.[0]?.extensions?.flowId,
      'coordinator.flow.status': 'failed',
      'error.type': 'CONFLICT',
    });
    const step = child(flowSpan, 'step createReturn');
    const call = child(step, 'action createReturn');
    const fetch = child(call, 'subgraph order-management');
    for (const node of [request, flowSpan, step, call, fetch]) expect(failed(node), node.name).toBe(true);
    expect(step.span.attributes).toMatchObject({
      'coordinator.step.status': 'failed',
      'error.type': 'CONFLICT',
    });
    for (const node of [flowSpan, step])
      expect(node.span.events.map((e) => [e.name, e.attributes?.['exception.type']])).toEqual([
        ['exception', 'CONFLICT'],
      ]);
    // Nothing to undo before the return (the lines step only reads): no compensation ran, so no
    // other step span.
    expect(flowSpan.children.map((s) => s.name)).toEqual(['step refundLines', 'step createReturn']);
  });

  it("traces a Service's webhook, and links the receiver run of the signal it commits back to it", async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [14_900, 14_900] });
    // A refund made in Stripe's dashboard; its charge.refunded event, sent here as a Service that traces.
    const { event } = await cc.services.stripe.refundFromDashboard(order.pspPaymentId, 1_000, {
      deliver: false,
    });
    const body = JSON.stringify(event);
    const stripe = callerTraceparent();
    const res = await cc.request('/stripe/webhook/', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'stripe-signature': Stripe.webhooks.generateTestHeaderString({
          payload: body,
          secret: STRIPE_WEBHOOK_SECRET,
        }),
        traceparent: stripe.traceparent,
      },
      body,
    });
    expect(res.status).toBe(200);

    // The stand-in's own deliveries of earlier refunds may arrive meanwhile: these are this webhook's.
    const { route, receiver } = await waitFor(
      () => {
        const forest = spanForest(exporter);
        const route = forest.one(
          (n) => n.name === 'POST /stripe/webhook/' && n.traceId === stripe.traceId,
          'of the webhook',
        );
        const receiver = forest.one(
          (n) =>
            n.name === 'receiver record-psp-refund' &&
            n.span.links.some((l) => l.context.spanId === route.spanId),
          'of the receiver run',
        );
        return { route, receiver };
      },
      { timeoutMs: 15_000 },
    );
    expect(route.parentId).toBe(stripe.spanId);
    expect(route.span.kind).toBe(SpanKind.SERVER);
    expect(route.span.attributes).toMatchObject({
      'http.route': '/stripe/webhook/',
      'http.response.status_code': 200,
    });
    expect(receiver.span.links.map((l) => [l.context.traceId, l.context.spanId])).toEqual([
      [stripe.traceId, route.spanId],
    ]);
    expect(receiver.attribute('coordinator.flow.status')).toBe('completed');
  });
});
