import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../gateway/log.js';
import { GraphQLError } from 'graphql';
import { ClientErrors, MASKED_MESSAGE, STEP_FAILED_MESSAGE } from '../../gateway/federation/client-errors.js';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { collect, subscriptionClient } from '../support/subscriptions.js';
import { LEAKS, UNAVAILABLE_MESSAGE } from './fixtures/subgraphs/leaky/index.js';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** A logger that keeps every line it writes, parsed. */
function recordingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

/** A Coordinator on the leaky supergraph: one Plugin whose errors carry internal text. */
const startLeaky = (label: string, production: boolean, logger: Logger) =>
  startTestCoordinator(label, {
    redis: false,
    overrides: {
      roverConfig: here('./fixtures/rover.yaml'),
      connectionsFile: here('./fixtures/connections.yaml'),
      subgraphsDir: here('./fixtures/subgraphs'),
      production,
      logger,
    },
  });

const post = async (url: string, body: Record<string, unknown>) => {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, text: await res.text() };
};

const operationErrors = (lines: ReadonlyArray<Record<string, unknown>>) =>
  lines.filter((l) => l.msg === 'operation error');

describe('errors in production', () => {
  const log = recordingLogger();
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startLeaky('http-masking-production', true, log.logger);
  });
  afterAll(async () => t?.stop());

  it.each(Object.entries(LEAKS))(
    'answers a Plugin error with %s text as Internal server error, and logs the text once',
    async (kind, text) => {
      const before = operationErrors(log.lines).length;
      const { status, text: body } = await post(t.url, {
        query: `query Leaky { leak(kind: ${kind}) }`,
        operationName: 'Leaky',
      });
      expect(status).toBe(200);
      expect(JSON.parse(body)).toEqual({
        data: { leak: null },
        errors: [{ message: MASKED_MESSAGE, path: ['leak'], extensions: { code: 'INTERNAL_SERVER_ERROR' } }],
      });
      // Nothing of it reaches the client: not the text, not the subgraph's name, not the gateway's code.
      for (const secret of [text, 'leaky', 'DOWNSTREAM_SERVICE_ERROR', 'stacktrace'])
        expect(body).not.toContain(secret);
      const logged = operationErrors(log.lines).slice(before);
      expect(logged).toEqual([
        expect.objectContaining({
          level: 50,
          operationName: 'Leaky',
          path: ['leak'],
          code: 'DOWNSTREAM_SERVICE_ERROR',
          err: expect.objectContaining({ message: text }),
        }),
      ]);
    },
  );

  it('keeps the message of a domain error (SERVICE_UNAVAILABLE), and does not log it as an error', async () => {
    const before = operationErrors(log.lines).length;
    const { text } = await post(t.url, { query: '{ leak(kind: UNAVAILABLE) }' });
    expect(JSON.parse(text)).toEqual({
      data: { leak: null },
      errors: [
        {
          message: UNAVAILABLE_MESSAGE,
          path: ['leak'],
          extensions: { code: 'SERVICE_UNAVAILABLE' },
        },
      ],
    });
    expect(operationErrors(log.lines).slice(before)).toEqual([]);
  });

  it("answers a failed step with STEP_FAILED and the flow's id, not the Plugin's text; the record keeps it", async () => {
    const { text } = await post(t.url, {
      query: 'mutation Run { runLeak(input: { kind: BTREE }) { flow { id } } }',
    });
    const body = JSON.parse(text) as {
      errors: Array<{ message: string; extensions: Record<string, unknown> }>;
    };
    expect(text).not.toContain(LEAKS.BTREE);
    expect(body.errors).toEqual([
      {
        message: STEP_FAILED_MESSAGE,
        path: ['runLeak'],
        extensions: { code: 'STEP_FAILED', flowId: expect.any(String), flowStatus: 'FAILED' },
      },
    ]);
    const flowId = body.errors[0]!.extensions.flowId as string;
    const record = await post(t.url, {
      query:
        'query($id: ID!) { flow(id: $id) { status error { code message } steps { error { message } } } }',
      variables: { id: flowId },
    });
    expect(JSON.parse(record.text)).toEqual({
      data: {
        flow: {
          status: 'FAILED',
          error: { code: 'INTERNAL_SERVER_ERROR', message: LEAKS.BTREE },
          steps: [{ error: { message: LEAKS.BTREE } }],
        },
      },
    });
  });

  it('gives no field suggestions', async () => {
    const { status, text } = await post(t.url, { query: '{ fines }' });
    expect(status).toBe(400);
    expect(JSON.parse(text)).toEqual({
      errors: [
        {
          message: 'Cannot query field "fines" on type "Query".',
          locations: [{ line: 1, column: 3 }],
          extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
        },
      ],
    });
  });

  it("gives no suggestions of enum values in a variable's error", async () => {
    const { status, text } = await post(t.url, {
      query: 'query($kind: LeakKind!) { leak(kind: $kind) }',
      variables: { kind: 'BTRE' },
    });
    expect(status).toBe(400);
    expect(JSON.parse(text)).toEqual({
      errors: [
        {
          message:
            'Variable "$kind" got invalid value "BTRE"; Value "BTRE" does not exist in "LeakKind" enum.',
          locations: [{ line: 1, column: 7 }],
          extensions: { code: 'BAD_USER_INPUT' },
        },
      ],
    });
  });

  it('masks the errors of subscriptions too, and gives no suggestions there', async () => {
    const client = subscriptionClient(t.url);
    const before = operationErrors(log.lines).length;
    // A bad cursor is the subscriber's input: a domain error, shown as raised and not logged.
    const badCursor = collect(
      client,
      { query: 'subscription Events { flowEvents(after: "x") { cursor } }' },
      (d) => d,
    );
    expect(await badCursor.failed.promise).toEqual([
      { message: "Invalid cursor 'x'", extensions: { code: 'BAD_USER_INPUT' } },
    ]);
    expect(operationErrors(log.lines).slice(before)).toEqual([]);
    // Anything else a subscription raises is masked and logged, as over HTTP.
    const internal = new GraphQLError('connect ECONNREFUSED 127.0.0.1:5432', { path: ['flowEvents'] });
    const clientErrors = new ClientErrors({ production: true, logger: log.logger });
    expect(clientErrors.forClient(internal, 'Events')).toEqual({
      message: MASKED_MESSAGE,
      path: ['flowEvents'],
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
    expect(operationErrors(log.lines).slice(before)).toEqual([
      expect.objectContaining({
        operationName: 'Events',
        err: expect.objectContaining({ message: 'connect ECONNREFUSED 127.0.0.1:5432' }),
      }),
    ]);
    const typo = collect(client, { query: 'subscription { flowEvent { cursor } }' }, (d) => d);
    expect(await typo.failed.promise).toEqual([
      {
        message: 'Cannot query field "flowEvent" on type "Subscription".',
        locations: [{ line: 1, column: 16 }],
        extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
      },
    ]);
    await client.dispose();
  });
});

describe('errors in development', () => {
  const log = recordingLogger();
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startLeaky('http-masking-development', false, log.logger);
  });
  afterAll(async () => t?.stop());

  it('answers a Plugin error with its text, and logs it once', async () => {
    const { text } = await post(t.url, { query: 'query Leaky { leak(kind: ECONNREFUSED) }' });
    const body = JSON.parse(text) as { errors: Array<{ message: string }> };
    expect(body.errors.map((e) => e.message)).toEqual([LEAKS.ECONNREFUSED]);
    expect(operationErrors(log.lines)).toEqual([
      expect.objectContaining({
        operationName: 'Leaky',
        err: expect.objectContaining({ message: LEAKS.ECONNREFUSED }),
      }),
    ]);
  });

  it('suggests fields', async () => {
    const { text } = await post(t.url, { query: '{ fines }' });
    expect(text).toContain('Did you mean \\"fine\\" or \\"flows\\"?');
  });
});
