import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../gateway/errors.js';
import { buildSupergraph } from '../../gateway/federation/supergraph.js';
import {
  fixture,
  REQUEST_REFUND,
  startTestCoordinator,
  type TestCoordinator,
} from '../support/coordinator.js';
import { waitFor } from '../support/wait.js';

/**
 * `emits: - signal: X, on: failed`: a signal emitted when a flow fails (FAILED or COMPENSATED, its
 * retries spent), with the error that failed it in the data as `failure`, and never when it completes;
 * the `on: completed` ones (the default) never when it fails.
 */

const dir = mkdtempSync(join(tmpdir(), 'failure-signals-'));
const connections = (emits: string) => {
  const file = join(dir, `connections-${Math.random().toString(36).slice(2)}.yaml`);
  const base = readFileSync(fixture('connections.yaml'), 'utf8');
  const marker = '    emits:\n      - signal: order.refunded.v1\n';
  if (!base.includes(marker)) throw new Error('the fixture connections changed: update this test');
  writeFileSync(file, base.replace(marker, `    emits:\n      - signal: order.refunded.v1\n${emits}`));
  return file;
};

let t: TestCoordinator;

beforeAll(async () => {
  t = await startTestCoordinator('failure-signals', {
    overrides: {
      connectionsFile: connections(
        // The failure's message stands in for the refund id the fixture's payload requires.
        '      - signal: payment.refunded.v1\n        on: failed\n        input: { refundId: failure.message }\n',
      ),
    },
  });
});
afterAll(async () => {
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});

type Run = { name: string; receiver: string | null; status: string; input: Record<string, unknown> };
const receiverRuns = async (orderId: string): Promise<Run[]> => {
  const { data } = await t.graphql<{ flows: Run[] }>(
    'query ($o: String) { flows(orderId: $o) { name receiver status input } }',
    { o: orderId },
  );
  return data!.flows.filter((f) => f.receiver);
};

let seq = 0;
const nextOrder = () => `order-failsig-${++seq}-${Date.now()}`;

describe('a signal emitted on failure', () => {
  it('is emitted when the flow fails, with its failure, and the on-completed one is not', async () => {
    const orderId = nextOrder();
    t.ledger.fault({ kind: 'refund', orderId, status: 409, times: 1 });

    const { errors } = await t.graphql(REQUEST_REFUND, { input: { orderId, amount: 7 } });

    expect(errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT', flowStatus: 'COMPENSATED' });
    const [run, ...more] = await waitFor(
      async () => {
        const runs = await receiverRuns(orderId);
        return runs.length > 0 && runs.every((r) => r.status === 'COMPLETED') ? runs : false;
      },
      { timeoutMs: 10_000, what: 'the failure signal delivered' },
    );
    expect(more).toEqual([]);
    expect(run).toMatchObject({ name: 'payment.refunded.v1', receiver: 'record-psp-refund' });
    // The payload carries the error that failed the flow, as the caller got it.
    expect(run!.input).toMatchObject({ orderId, refundId: errors![0]!.message });
  });

  it('is not emitted when the flow completes', async () => {
    const orderId = nextOrder();

    const { data } = await t.graphql<{ requestRefund: { flow: { status: string } } }>(REQUEST_REFUND, {
      input: { orderId, amount: 3 },
    });

    expect(data!.requestRefund.flow.status).toBe('COMPLETED');
    // The completed flow's signal (revoke-enrollment) and the step's own (record-psp-refund, with the
    // ledger's refund id): none carries a failure.
    const runs = await waitFor(
      async () => {
        const all = await receiverRuns(orderId);
        return all.length === 2 && all.every((r) => r.status === 'COMPLETED') ? all : false;
      },
      { timeoutMs: 10_000, what: 'both receivers' },
    );
    expect(runs.map((r) => r.receiver).sort()).toEqual(['record-psp-refund', 'revoke-enrollment']);
    const psp = runs.find((r) => r.receiver === 'record-psp-refund')!;
    expect(psp.input.refundId).toMatch(/^refund-/);
  });

  it('is refused at start-up when a required payload field comes from a step (absent if an earlier step failed)', () => {
    const file = connections(
      '      - signal: payment.refunded.v1\n        on: failed\n        input: { refundId: refundId }\n',
    );
    let error: unknown;
    try {
      buildSupergraph({ roverConfig: fixture('rover.yaml'), connections: file });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      expect.stringContaining(
        "filters.order.refund.requested.v1.emits[1]: payload field 'refundId' of 'payment.refunded.v1' is required but 'refundId'",
      ),
    ]);
  });

  it('is refused at start-up for an unknown `on`', () => {
    const file = connections('      - signal: payment.refunded.v1\n        on: halted\n');
    let error: unknown;
    try {
      buildSupergraph({ roverConfig: fixture('rover.yaml'), connections: file });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      'filters.order.refund.requested.v1.emits[1].on: must be "completed" or "failed"',
    ]);
  });
});
