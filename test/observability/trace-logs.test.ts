import { randomUUID } from 'node:crypto';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { waitFor } from '../support/wait.js';
import { spanForest } from './tracing-spans.js';

/** With tracing on, every log line about a flow names its trace, so a line leads to the flow's spans. */

const exporter = new InMemorySpanExporter();
const lines: Array<Record<string, unknown>> = [];
let t: TestCoordinator;

beforeAll(async () => {
  t = await startTestCoordinator('trace-logs', {
    redis: false,
    overrides: {
      logger: pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) }),
      tracing: { exporter: { kind: 'custom', exporter, processor: 'simple' } },
    },
  });
});
afterAll(async () => {
  await t?.stop();
});

describe('flow log lines with tracing on', () => {
  it("carry the flow span's trace and span ids, on the flow's and its steps' lines", async () => {
    const { data } = await t.graphql<{ requestRefund: { flow: { id: string; status: string } } }>(
      REQUEST_REFUND,
      {
        input: { orderId: `logs-${randomUUID()}`, amount: 5 },
      },
    );
    const flowId = data!.requestRefund.flow.id;
    const flow = spanForest(exporter).one(
      (n) => n.name === 'flow order.refund.requested.v1' && n.attribute('coordinator.flow.id') === flowId,
      'of the flow',
    );
    const about = await waitFor(() => {
      const mine = lines.filter((l) => l.flowId === flowId && !l.receiver);
      return mine.some((l) => l.msg === 'flow finished') ? mine : false;
    });
    expect(about.map((l) => l.msg)).toEqual(expect.arrayContaining(['step finished', 'flow finished']));
    for (const line of about) expect(line).toMatchObject({ traceId: flow.traceId, spanId: flow.spanId });
  });
});
