import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FlowPlugin } from '../../gateway/flows/hooks.js';
import { createLogger, flowLogger, prettyLogs } from '../../gateway/log.js';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { waitFor } from '../support/wait.js';

type Line = Record<string, unknown>;

/** A logger that keeps every line it writes, parsed. */
function recordingLogger() {
  const lines: Line[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
let orderSeq = 0;
const nextOrder = () => `logs-order-${++orderSeq}-${Date.now()}`;

describe('access log and request ids', () => {
  const log = recordingLogger();
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('observability-access-log', {
      redis: false,
      overrides: { logger: log.logger },
    });
  });
  afterAll(async () => t?.stop());

  const accessLines = (requestId: string) =>
    log.lines.filter((l) => l.msg === 'request' && l.requestId === requestId);

  it('writes one line per request with method, route, path, status, duration and the caller’s request id', async () => {
    const res = await fetch(`${t.url}/healthz`, { headers: { 'x-request-id': 'lb-7f3a.2:9' } });
    expect(res.headers.get('x-request-id')).toBe('lb-7f3a.2:9');
    await waitFor(() => expect(accessLines('lb-7f3a.2:9')).toHaveLength(1));
    expect(accessLines('lb-7f3a.2:9')[0]).toMatchObject({
      level: 30,
      method: 'GET',
      route: '/healthz',
      path: '/healthz',
      status: 200,
      durationMs: expect.any(Number),
    });
  });

  it('gives a request without a usable id a new one, and never echoes a bad one', async () => {
    for (const header of [undefined, 'a'.repeat(129), 'two words', '<script>', 'é']) {
      const res = await fetch(`${t.url}/healthz`, {
        headers: header === undefined ? {} : { 'x-request-id': header },
      });
      const id = res.headers.get('x-request-id')!;
      expect(id, String(header)).toMatch(UUID);
      await waitFor(() => expect(accessLines(id)).toHaveLength(1));
    }
    expect(JSON.stringify(log.lines)).not.toContain('<script>');
  });

  it('logs an unknown route as (unmatched) with its path, without the query string', async () => {
    const res = await fetch(`${t.url}/no/such/route?email=ada@example.com`, {
      headers: { 'x-request-id': 'r-404' },
    });
    expect(res.status).toBe(404);
    await waitFor(() => expect(accessLines('r-404')).toHaveLength(1));
    expect(accessLines('r-404')[0]).toMatchObject({
      route: '(unmatched)',
      path: '/no/such/route',
      status: 404,
    });
    expect(JSON.stringify(accessLines('r-404'))).not.toContain('ada@example.com');
  });

  it('logs GraphQL requests under /graphql', async () => {
    const res = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'r-graphql' },
      body: JSON.stringify({ query: '{ flows(limit: 1) { id } }' }),
    });
    expect(res.headers.get('x-request-id')).toBe('r-graphql');
    await waitFor(() => expect(accessLines('r-graphql')).toHaveLength(1));
    expect(accessLines('r-graphql')[0]).toMatchObject({ method: 'POST', route: '/graphql', status: 200 });
  });
});

describe.each([{ bus: 'redis' }, { bus: 'memory' }])('log lines about flows ($bus bus)', ({ bus }) => {
  const log = recordingLogger();
  let t: TestCoordinator;
  /** Throws in its start hooks for one order's flows. */
  let failingOrder: string | undefined;
  const throwing: FlowPlugin = {
    name: 'throwing',
    flowWillStart(start) {
      if (start.kind === 'filter' && start.input.orderId === failingOrder) throw new Error('observer broke');
    },
  };
  beforeAll(async () => {
    t = await startTestCoordinator(`observability-flow-logs-${bus}`, {
      redis: bus === 'redis',
      overrides: { logger: log.logger, flowPlugins: [throwing] },
    });
  });
  afterAll(async () => t?.stop());

  const refund = async (input: Record<string, unknown>) => {
    const { data } = await t.graphql<{ requestRefund: { flow: { id: string } } }>(REQUEST_REFUND, { input });
    return data!.requestRefund.flow.id;
  };

  it('carries the flow id and name on the flow’s and each step’s line', async () => {
    const flowId = await refund({ orderId: nextOrder(), amount: 4 });
    const lines = log.lines.filter((l) => l.flowId === flowId);
    expect(lines.filter((l) => l.msg === 'flow finished')).toEqual([
      expect.objectContaining({ flow: 'order.refund.requested.v1', status: 'completed' }),
    ]);
    expect(lines.filter((l) => l.msg === 'step finished').map((l) => l.action)).toEqual([
      'haltIfLegacy',
      'createReturn',
      'refundPayment',
      'recordRefund',
    ]);
  });

  it('names the flow when one of its plugins fails', async () => {
    failingOrder = nextOrder();
    const flowId = await refund({ orderId: failingOrder, amount: 4 });
    expect(log.lines.filter((l) => l.msg === 'flow plugin start hook failed')).toEqual([
      expect.objectContaining({
        flowId,
        plugin: 'throwing',
        err: expect.objectContaining({ message: 'observer broke' }),
      }),
    ]);
  });

  it('logs a receiver failure with its error’s stack', async () => {
    const orderId = nextOrder();
    t.ledger.fault({ kind: 'revoke', orderId, status: 503, times: 1 });
    await refund({ orderId, amount: 4, learnerId: 'learner-1' });
    const failed = await waitFor(
      () =>
        log.lines.find((l) => l.msg === 'Receiver failed; retrying' && l.receiver === 'revoke-enrollment') ??
        false,
      { timeoutMs: 10_000 },
    );
    const err = failed.err as { message: string; stack: string; type: string; flowId: string };
    expect(err.message).toContain('ledger answered 503');
    expect(err.type).toBe('ReceiverFailure');
    expect(err.stack).toMatch(/\n\s+at /);
    // The line names the receiver run, and the run's own line says how it ended.
    await waitFor(() =>
      expect(log.lines.filter((l) => l.msg === 'flow finished' && l.flowId === err.flowId)).toEqual([
        expect.objectContaining({
          flow: 'order.refunded.v1',
          receiver: 'revoke-enrollment',
          status: 'failed',
        }),
      ]),
    );
  });
});

describe('log format', () => {
  const collect = () => {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk, _encoding, done) {
        chunks.push(String(chunk));
        done();
      },
    });
    return { chunks, stream };
  };

  it('is pretty on a terminal in development only, unless LOG_FORMAT says', () => {
    expect(prettyLogs('auto', false, true)).toBe(true);
    expect(prettyLogs('auto', true, true)).toBe(false);
    expect(prettyLogs('auto', false, false)).toBe(false);
    expect(prettyLogs('json', false, true)).toBe(false);
    expect(prettyLogs('pretty', true, false)).toBe(true);
  });

  it('writes JSON lines, or pino-pretty lines', async () => {
    const json = collect();
    createLogger({ destination: json.stream }).info({ flowId: 'f-1' }, 'flow finished');
    await waitFor(() => json.chunks.length > 0);
    expect(JSON.parse(json.chunks.join(''))).toMatchObject({
      msg: 'flow finished',
      flowId: 'f-1',
      level: 30,
    });

    const pretty = collect();
    createLogger({ pretty: true, destination: pretty.stream }).info({ flowId: 'f-2' }, 'flow finished');
    await waitFor(() => pretty.chunks.join('').includes('flow finished'));
    const text = pretty.chunks.join('');
    expect(text).toContain('INFO');
    expect(text).toContain('flowId: "f-2"');
    expect(() => JSON.parse(text)).toThrow();
  });

  it('adds the fields of the active context (a trace) to every line, a flow’s included', async () => {
    const out = collect();
    let traceId = 'trace-a';
    const logger = createLogger({ destination: out.stream, mixin: () => ({ traceId }) });
    flowLogger(logger, { flowId: 'f-3', name: 'order.refund.requested.v1' }).info('step finished');
    traceId = 'trace-b';
    flowLogger(logger, { flowId: 'f-4', name: 'order.refunded.v1', receiver: 'revoke-enrollment' }).info('x');
    await waitFor(() => out.chunks.join('').split('\n').filter(Boolean).length === 2);
    const lines = out.chunks
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Line);
    expect(lines).toEqual([
      expect.objectContaining({ traceId: 'trace-a', flowId: 'f-3', flow: 'order.refund.requested.v1' }),
      expect.objectContaining({ traceId: 'trace-b', flowId: 'f-4', receiver: 'revoke-enrollment' }),
    ]);
  });
});
