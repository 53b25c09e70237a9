import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FlowPlugin } from '../../gateway/flows/hooks.js';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';

/**
 * The flow plugins' wrappers of a flow's and a step's run (what the tracing makes its spans active
 * with): nested in plugin order around the phase, handed how it ended — and unable to change a flow,
 * whatever they do.
 */

const logged: Array<{ msg: string; plugin?: string }> = [];
const logger = pino(
  { level: 'error' },
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      logged.push(JSON.parse(chunk.toString('utf8')) as { msg: string; plugin?: string });
      done();
    },
  }),
);

const seen: string[] = [];
/** The refund filter's runs only: its signal's receiver runs later, when it will. */
const REFUND = 'order.refund.requested.v1';
/** Wraps both phases, recording when it enters and what it is handed back. */
const observer = (name: string): FlowPlugin => ({
  name,
  instrumentation: {
    async flow(start, run) {
      if (start.name !== REFUND) return run();
      seen.push(`${name} > flow ${start.name}`);
      const end = await run();
      seen.push(`${name} < flow ${end.status}`);
    },
    async step(start, run) {
      if (start.name !== REFUND) return run();
      seen.push(
        `${name} > step ${start.action}#${start.attempt} ${start.idempotencyKey === `${start.flowId}:${start.stepIndex}`}`,
      );
      const end = await run();
      seen.push(`${name} < step ${end.status}`);
    },
  },
});
/** Never runs the flow, throws around each step, and swallows a failed step's outcome. */
const misbehaving: FlowPlugin = {
  name: 'misbehaving',
  instrumentation: {
    async flow(start, run) {
      if (start.name !== REFUND) return run();
      return 'not run';
    },
    async step(start, run) {
      if (start.name !== REFUND) return run();
      const end = await run().catch(() => undefined);
      if (end?.status === 'completed') throw new Error('the plugin broke');
      return end;
    },
  },
};

let t: TestCoordinator;
beforeAll(async () => {
  t = await startTestCoordinator('tracing-instrumentation', {
    redis: false,
    overrides: { logger, flowPlugins: [observer('outer'), observer('inner'), misbehaving] },
  });
});
afterAll(async () => {
  await t?.stop();
});

describe('flow plugin instrumentation', () => {
  it('nests the wrappers in plugin order, each handed the outcome, and the flow runs as without them', async () => {
    const { data } = await t.graphql<{
      requestRefund: { flow: { status: string; steps: Array<{ status: string }> } };
    }>(REQUEST_REFUND, { input: { orderId: `wrapped-${randomUUID()}`, amount: 5 } });
    expect(data?.requestRefund.flow.status).toBe('COMPLETED');
    expect(data?.requestRefund.flow.steps.map((s) => s.status)).toEqual([
      'COMPLETED',
      'COMPLETED',
      'COMPLETED',
      'COMPLETED',
    ]);
    expect(seen.slice(0, 6)).toEqual([
      'outer > flow order.refund.requested.v1',
      'inner > flow order.refund.requested.v1',
      'outer > step haltIfLegacy#1 true',
      'inner > step haltIfLegacy#1 true',
      'inner < step completed',
      'outer < step completed',
    ]);
    expect(seen.slice(-2)).toEqual(['inner < flow completed', 'outer < flow completed']);
    // The misbehaving plugin is named in the log, once per phase it broke.
    expect(logged.filter((l) => l.plugin === 'misbehaving').map((l) => l.msg)).toEqual([
      'flow plugin instrumentation did not run its phase',
      ...Array(4).fill('flow plugin instrumentation failed'),
    ]);
  });

  it('keeps a failed step failed even when a wrapper swallows the failure', async () => {
    const orderId = `refused-${randomUUID()}`;
    t.ledger.fault({ kind: 'return', orderId, status: 409, times: 1 });
    const { errors } = await t.graphql(REQUEST_REFUND, { input: { orderId, amount: 5 } });
    expect(errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT', flowStatus: 'FAILED' });
    expect(seen.slice(-4)).toEqual([
      'inner < step failed',
      'outer < step failed',
      'inner < flow failed',
      'outer < flow failed',
    ]);
  });
});
