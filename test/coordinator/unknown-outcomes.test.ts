import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConnections } from '../../gateway/connections/compile.js';
import {
  fixture,
  REQUEST_REFUND,
  startTestCoordinator,
  type TestCoordinator,
} from '../support/coordinator.js';

/**
 * A step that failed without a refusal may have acted. The core's refund filter without
 * `compensateOnUnknownOutcome` on its return: a refund that fails transiently to its last attempt
 * leaves the return in place (the flow FAILED, a retry replays the refund under its key), while a
 * refund the Service refused still has the return undone.
 */

const dir = mkdtempSync(join(tmpdir(), 'unknown-outcomes-'));
const connectionsFile = join(dir, 'connections.yaml');
writeFileSync(
  connectionsFile,
  readFileSync(fixture('connections.yaml'), 'utf8').replace(/^\s+compensateOnUnknownOutcome: true\n/m, ''),
);

let t: TestCoordinator;
beforeAll(async () => {
  t = await startTestCoordinator('unknown-outcomes', { redis: false, overrides: { connectionsFile } });
});
afterAll(async () => {
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});

let seq = 0;
const nextOrder = () => `unknown-${++seq}-${Date.now()}`;
type Flow = { id: string; status: string; steps: Array<{ action: string; status: string }> };
const refund = (orderId: string) =>
  t.graphql<{ requestRefund: { flow: Flow } }>(REQUEST_REFUND, { input: { orderId, amount: 5 } });
const FLOW = `query ($id: ID!) { flow(id: $id) { id status steps { action status idempotencyKey } } }`;
const operations = (orderId: string) =>
  t.ledger
    .operations()
    .filter((o) => o.orderId === orderId)
    .map((o) => o.kind);

describe('a failed step whose outcome is unknown', () => {
  it('leaves the steps before it done: the flow FAILED, nothing undone; a retry replays the step', async () => {
    const orderId = nextOrder();
    // Every attempt (3) answered 503: the refund may or may not have happened, as far as the flow knows.
    t.ledger.fault({ kind: 'refund', orderId, status: 503, times: 3 });
    const { errors } = await refund(orderId);
    expect(errors?.[0]?.extensions).toMatchObject({ code: 'STEP_FAILED', flowStatus: 'FAILED' });
    const flowId = String(errors![0]!.extensions!.flowId);
    const recorded = (await t.graphql<{ flow: Flow }>(FLOW, { id: flowId })).data!.flow;
    expect(recorded.steps.map((s) => [s.action, s.status])).toEqual([
      ['haltIfLegacy', 'COMPLETED'],
      ['createReturn', 'COMPLETED'],
      ['refundPayment', 'FAILED'],
    ]);
    expect(operations(orderId)).toEqual(['return']);

    const retried = await t.graphql<{ retryFlow: Flow }>(
      `mutation ($id: ID!) { retryFlow(id: $id, reason: "the ledger is back") { status } }`,
      { id: flowId },
    );
    expect(retried.data?.retryFlow.status).toBe('COMPLETED');
    // One return, one refund (made now, under the key of the attempts that failed), never undone.
    const done = operations(orderId);
    expect(done.filter((k) => k === 'return' || k === 'refund')).toEqual(['return', 'refund']);
    expect(done).toContain('record');
    expect(done).not.toContain('cancel-return');
  });

  it('is not a refusal: a step the Service refused still has the steps before it undone', async () => {
    const orderId = nextOrder();
    t.ledger.fault({ kind: 'refund', orderId, status: 409, times: 1 });
    const { errors } = await refund(orderId);
    expect(errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT', flowStatus: 'COMPENSATED' });
    expect(operations(orderId)).toEqual(['return', 'cancel-return']);
  });
});

describe('compensateOnUnknownOutcome', () => {
  it('needs a compensate Action on its step', () => {
    const file = join(dir, 'invalid.yaml');
    writeFileSync(
      file,
      readFileSync(fixture('connections.yaml'), 'utf8').replace(
        '      - action: refundPayment\n',
        '      - action: refundPayment\n        compensateOnUnknownOutcome: true\n',
      ),
    );
    expect(() => loadConnections(file)).toThrow(/compensateOnUnknownOutcome needs a compensate Action/);
  });
});
