import { afterEach, describe, expect, it } from 'vitest';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { waitFor } from '../support/wait.js';

const SHUTDOWN_TIMEOUT_MS = 1_000;
/** What stopping may take beyond the timeout: closing what is left, not waiting on anything more. */
const CLOSE_MARGIN_MS = 500;

/**
 * A stop is bounded by the shutdown timeout even when a flow outlives it: the request waiting on that
 * flow gets a 503 SHUTTING_DOWN answer (its flow stays recorded as running, for the next gateway to
 * recover), never a reset connection, and the Coordinator has stopped soon after the timeout.
 */
describe('a stop with a flow that outlives the shutdown timeout', () => {
  let t: TestCoordinator | undefined;
  afterEach(async () => {
    await t?.stop();
    t = undefined;
  });

  it('stops within the timeout and answers the waiting request with 503 SHUTTING_DOWN', async () => {
    t = await startTestCoordinator('shutdown-deadline', {
      overrides: { shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS },
    });
    const orderId = `deadline-${Date.now()}`;
    // The refund step is held at the Service well past the timeout.
    t.ledger.fault({ kind: 'refund', orderId, delayMs: 3_000 });
    const refundsBefore = t.ledger.calls('/operations/refund');
    const inFlight = fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: REQUEST_REFUND, variables: { input: { orderId, amount: 5 } } }),
    });
    await waitFor(() => t!.ledger.calls('/operations/refund') > refundsBefore, {
      what: 'the refund step to reach the Service',
    });

    const started = performance.now();
    await t.coordinator.stop();
    const stopMs = performance.now() - started;

    expect(stopMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS + CLOSE_MARGIN_MS);
    const res = await inFlight;
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      errors: [
        {
          message: expect.stringContaining('shutting down'),
          extensions: { code: 'SHUTTING_DOWN' },
        },
      ],
    });
  });
});
