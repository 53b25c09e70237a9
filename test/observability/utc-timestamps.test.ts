import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FeedEvent } from '../../gateway/events/types.js';
import { WEBHOOK_SECRET } from '../fixtures/subgraphs/payments/index.js';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';

// A gateway whose process runs in another time zone than UTC (a developer's laptop): the record's
// times, and a signal's commit time that its delivery latency is measured from, must not move.
process.env.TZ = 'America/New_York';

describe('times written by the prepared statements, in a process outside UTC', () => {
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('observability-utc', { redis: false });
  });
  afterAll(async () => t?.stop());

  it('runs in a time zone other than UTC', () => {
    expect(new Date(Date.UTC(2026, 0, 15)).getTimezoneOffset()).toBe(300);
  });

  it('records when a flow started as the time it started', async () => {
    const before = Date.now();
    const { data } = await t.graphql<{ requestRefund: { flow: { id: string } } }>(REQUEST_REFUND, {
      input: { orderId: `utc-${before}`, amount: 1 },
    });
    const after = Date.now();
    const read = await t.graphql<{ flow: { startedAt: string } }>(
      `query($id: ID!) { flow(id: $id) { startedAt } }`,
      { id: data!.requestRefund.flow.id },
    );
    const startedAt = Date.parse(read.data!.flow.startedAt);
    // The record keeps milliseconds: the bounds are the test's own clock readings around the call.
    expect(startedAt).toBeGreaterThanOrEqual(before - 1);
    expect(startedAt).toBeLessThanOrEqual(after);
  });

  it('gives a signal a Plugin published the time it was committed', async () => {
    const signals = t.coordinator.components.feed.subscribe(['signal:payment.refunded.v1'], {
      signal: AbortSignal.timeout(10_000),
    });
    const first = (async () => {
      for await (const event of signals) return event;
      throw new Error('no signal event');
    })();
    const before = Date.now();
    const body = JSON.stringify({ id: `evt-${before}`, orderId: `utc-webhook-${before}`, refundId: 're-1' });
    const res = await fetch(`${t.url}/payments/webhook`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-ledger-signature': createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex'),
      },
      body,
    });
    expect(res.status).toBe(200);
    const event: FeedEvent = await first;
    const after = Date.now();
    const committed = Date.parse((event.data as { time: string }).time);
    expect(committed).toBeGreaterThanOrEqual(before - 1);
    expect(committed).toBeLessThanOrEqual(after);
  });
});
