import { connect, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runReadinessChecks } from '../../gateway/http/readiness.js';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { startPrivateRedis, type PrivateRedis } from '../support/redis.js';
import { tryConnect } from '../support/resources.js';
import { createDeferred, waitFor } from '../support/wait.js';

/** What /readyz shows of the loaded configuration. */
const LOADED_CONFIG = { hash: expect.stringMatching(/^[0-9a-f]{16}$/), loadedAt: expect.any(String) };

const get = (url: string, headers: Record<string, string> = {}) => fetch(url, { headers });
const post = (url: string, body: string, contentType = 'application/json') =>
  fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body });

describe('operations endpoints and HTTP errors (development mode)', () => {
  let redis: PrivateRedis;
  let t: TestCoordinator;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    t = await startTestCoordinator('http-operations', {
      overrides: { redis: { url: redis.url, keyPrefix: 'http-operations:' } },
    });
  });
  afterAll(async () => {
    await t?.stop();
    await redis?.dispose();
  });

  it('answers /healthz with 200', async () => {
    const res = await get(`${t.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('answers /readyz with 200 when the database, the bus and the supergraph are ready', async () => {
    // Each check has a 1 s bound: on a loaded machine the first one after start (a new pool
    // connection) may miss it once.
    const body = await waitFor(
      async () => {
        const res = await get(`${t.url}/readyz`);
        expect(res.status).toBe(200);
        return res.json();
      },
      { what: '/readyz to answer 200' },
    );
    expect(body).toEqual({
      status: 'ready',
      checks: { database: true, bus: true, flags: true, supergraph: true },
      services: {},
      config: LOADED_CONFIG,
    });
  });

  it("answers /readyz with 503 naming the bus while the coordinator's Redis is down, and 200 once it is back", async () => {
    await redis.stop();
    const down = await waitFor(
      async () => {
        const res = await get(`${t.url}/readyz`);
        expect(res.status).toBe(503);
        return res.json();
      },
      { what: '/readyz to report Redis down' },
    );
    expect(down).toEqual({
      status: 'not ready',
      checks: { database: true, bus: false, flags: true, supergraph: true },
      services: {},
      config: LOADED_CONFIG,
    });
    // The process itself is fine: liveness does not depend on Redis.
    expect((await get(`${t.url}/healthz`)).status).toBe(200);

    await redis.restart();
    const up = await waitFor(
      async () => {
        const res = await get(`${t.url}/readyz`);
        expect(res.status).toBe(200);
        return res.json();
      },
      { timeoutMs: 15_000, what: '/readyz to recover with Redis' },
    );
    expect(up).toEqual({
      status: 'ready',
      checks: { database: true, bus: true, flags: true, supergraph: true },
      services: {},
      config: LOADED_CONFIG,
    });
  });

  it('answers /readyz with 503 within its bound while Redis hangs (connections open, no answers), and 200 once it answers again', async () => {
    redis.pause();
    try {
      // The checks are bounded by about a second: a probe must not hang with the hung Redis (its
      // command timeout is 5 s). The generous abort only keeps a hanging probe from hanging the test.
      const res = await fetch(`${t.url}/readyz`, { signal: AbortSignal.timeout(3_000) });
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        status: 'not ready',
        checks: { database: true, bus: false, flags: true, supergraph: true },
        services: {},
        config: LOADED_CONFIG,
      });
      // Liveness depends on neither Redis nor PostgreSQL.
      const health = await fetch(`${t.url}/healthz`, { signal: AbortSignal.timeout(1_000) });
      expect(health.status).toBe(200);
    } finally {
      redis.resume();
    }
    const up = await waitFor(
      async () => {
        const res = await get(`${t.url}/readyz`);
        expect(res.status).toBe(200);
        return res.json();
      },
      { timeoutMs: 10_000, what: '/readyz to recover once Redis answers' },
    );
    expect(up).toEqual({
      status: 'ready',
      checks: { database: true, bus: true, flags: true, supergraph: true },
      services: {},
      config: LOADED_CONFIG,
    });
  });

  it('serves the Apollo Sandbox at GET /graphql to a browser', async () => {
    const res = await get(`${t.url}/graphql`, { accept: 'text/html' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain('embeddable-sandbox.cdn.apollographql.com');
    expect(html).toContain('new window.EmbeddedSandbox');
    expect(html).not.toContain('%22isProd%22%3Atrue');
  });

  it('answers a body that is not JSON with 400 and a code', async () => {
    const res = await post(`${t.url}/graphql`, '{"query": "{ __typename }"');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      errors: [{ message: 'The request body is not valid JSON', extensions: { code: 'BAD_REQUEST' } }],
    });
  });

  it('answers an unknown route with a 404 JSON body', async () => {
    const res = await get(`${t.url}/no/such/route`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({
      code: 'NOT_FOUND',
      message: 'No route GET /no/such/route',
    });
  });

  it('answers a GraphQL syntax error with GRAPHQL_PARSE_FAILED', async () => {
    const res = await post(`${t.url}/graphql`, JSON.stringify({ query: '{ flows( }' }));
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
    expect(body.errors).toHaveLength(1);
    expect(body.errors[0]!.message).toBe('Syntax Error: Expected Name, found "}".');
    expect(body.errors[0]!.extensions.code).toBe('GRAPHQL_PARSE_FAILED');
  });

  it('answers a query against fields the supergraph lacks with GRAPHQL_VALIDATION_FAILED', async () => {
    const res = await post(`${t.url}/graphql`, JSON.stringify({ query: '{ noSuchField }' }));
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
    expect(body.errors.map((e) => [e.message, e.extensions.code])).toEqual([
      ['Cannot query field "noSuchField" on type "Query".', 'GRAPHQL_VALIDATION_FAILED'],
    ]);
  });
});

describe('the landing page in production mode', () => {
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('http-production', { redis: false, overrides: { production: true } });
  });
  afterAll(async () => t?.stop());

  it('does not serve the Apollo Sandbox', async () => {
    const res = await get(`${t.url}/graphql`, { accept: 'text/html' });
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    // Apollo's production landing page (its configuration is URL-encoded JSON), not the embedded Sandbox.
    expect(html).toContain('window.landingPage = "%7B%22isProd%22%3Atrue');
    expect(html).not.toContain('new window.EmbeddedSandbox');
    // GraphQL itself is served, without introspection.
    const { errors } = await t.graphql('{ __schema { queryType { name } } }');
    expect(errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
  });
});

describe('graceful shutdown', () => {
  let t: TestCoordinator;
  let stopping: Promise<unknown> | undefined;
  beforeEach(async () => {
    stopping = undefined;
    t = await startTestCoordinator('http-shutdown');
  });
  afterEach(async () => {
    // stop() refuses to run while another stop() drains; let the test's own stop finish first.
    await stopping?.catch(() => undefined);
    await t?.stop();
  });

  /** The response to one raw HTTP/1.1 request on `socket`, which the server closes after it (connection: close). */
  const readResponse = (socket: Socket) => {
    const response = createDeferred<{ status: number; body: unknown }>();
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', (error) => response.reject(error));
    socket.once('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const head = text.slice(0, split);
      let body = text.slice(split + 4);
      if (/^transfer-encoding: chunked$/im.test(head)) {
        let decoded = '';
        for (let size = parseInt(body, 16); size > 0; size = parseInt(body, 16)) {
          const start = body.indexOf('\r\n') + 2;
          decoded += body.slice(start, start + size);
          body = body.slice(start + size + 2);
        }
        body = decoded;
      }
      try {
        response.resolve({ status: Number(head.split(' ')[1]), body: JSON.parse(body) });
      } catch {
        response.reject(new Error(`not a whole HTTP response with a JSON body: ${JSON.stringify(text)}`));
      }
    });
    return response.promise;
  };

  it('finishes the in-flight flow before stopping, and refuses new requests while it drains', async () => {
    const orderId = `shutdown-${Date.now()}`;
    const port = Number(new URL(t.url).port);
    // The refund step is held at the Service long enough for the checks below.
    t.ledger.fault({ kind: 'refund', orderId, delayMs: 1_500 });
    const refundsBefore = t.ledger.calls('/operations/refund');
    const inFlight = t.graphql<{ requestRefund: { flow: { id: string; status: string } } }>(REQUEST_REFUND, {
      input: { orderId, amount: 5 },
    });
    await waitFor(() => t.ledger.calls('/operations/refund') > refundsBefore, {
      what: 'the refund step to reach the Service',
    });

    // A request that is still arriving when the drain starts: its headers are completed afterwards.
    const late = connect({ port, host: '127.0.0.1' });
    await new Promise<void>((resolve, reject) => late.once('connect', resolve).once('error', reject));
    const lateResponse = readResponse(late);
    await new Promise<void>((resolve) =>
      late.write('POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n', () => resolve()),
    );
    // A full round trip after the partial write: the server has read those bytes, so the connection
    // is busy (not idle) when the drain starts and is not closed under it.
    expect((await get(`${t.url}/healthz`)).status).toBe(200);

    let stopped = false;
    stopping = t.coordinator.stop().then(() => (stopped = true));
    expect(t.coordinator.state.phase).toBe('draining');

    // New connections are refused at once...
    expect(await tryConnect(port)).toBe('ECONNREFUSED');
    // ...and a request on an open connection gets 503 SHUTTING_DOWN, while the flow still runs.
    const body = JSON.stringify({ query: '{ flows(limit: 1) { id } }' });
    late.write(`content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    expect(await lateResponse).toEqual({
      status: 503,
      body: { errors: [{ message: 'The gateway is shutting down', extensions: { code: 'SHUTTING_DOWN' } }] },
    });
    expect(t.ledger.operations().filter((o) => o.orderId === orderId)).toEqual([
      expect.objectContaining({ kind: 'return' }),
    ]);
    expect(stopped).toBe(false);
    late.destroy();

    // The in-flight request gets its answer: the flow ran to the end.
    const { data, errors } = await inFlight;
    expect(errors).toBeUndefined();
    expect(data!.requestRefund.flow.status).toBe('COMPLETED');

    await stopping;
    expect(t.coordinator.state.phase).toBe('stopped');
    // Recorded as completed by the time stop() resolved, with every step.
    const client = new pg.Client({ connectionString: t.database.url });
    await client.connect();
    try {
      const flow = await client.query<{ status: string }>('select status from "FlowRun" where id = $1', [
        data!.requestRefund.flow.id,
      ]);
      expect(flow.rows).toEqual([{ status: 'completed' }]);
      const steps = await client.query<{ status: string }>(
        'select status from "FlowStep" where "flowId" = $1 order by "index"',
        [data!.requestRefund.flow.id],
      );
      expect(steps.rows.map((s) => s.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
    } finally {
      await client.end();
    }
    const flowId = data!.requestRefund.flow.id;
    expect(
      t.ledger
        .operations()
        .filter((o) => o.key.startsWith(`${flowId}:`))
        .map((o) => o.kind),
    ).toEqual(['return', 'refund', 'record']);
  });

  it('answers a request waiting on an in-flight flow of the same idempotency key before closing its connection', async () => {
    const orderId = `shutdown-duplicate-${Date.now()}`;
    const key = `key-${orderId}`;
    t.ledger.fault({ kind: 'refund', orderId, delayMs: 1_000 });
    const refundsBefore = t.ledger.calls('/operations/refund');
    type Answer = Awaited<
      ReturnType<typeof t.graphql<{ requestRefund: { flow: { id: string; status: string } } }>>
    >;
    const send = () =>
      t.graphql<{ requestRefund: { flow: { id: string; status: string } } }>(REQUEST_REFUND, {
        input: { orderId, amount: 5 },
        key,
      });
    const first = send();
    await waitFor(() => t.ledger.calls('/operations/refund') > refundsBefore, {
      what: 'the refund step to reach the Service',
    });
    // The duplicate does not run the flow again: it waits for the first run's record.
    const duplicate = send().catch(
      (error: Error) => ({ failed: `${error.message}: ${String(error.cause)}` }) as const,
    );
    await waitFor(() => t.coordinator.components.requests.inFlight() === 2, {
      what: 'both requests to be in flight',
    });

    stopping = t.coordinator.stop();
    await stopping;
    const [a, b] = (await Promise.all([first, duplicate])) as [Answer, Answer | { failed: string }];
    expect(a.data!.requestRefund.flow.status).toBe('COMPLETED');
    expect(b).toEqual({
      data: {
        requestRefund: {
          flow: expect.objectContaining({ id: a.data!.requestRefund.flow.id, status: 'COMPLETED' }),
        },
      },
    });
    expect(t.ledger.operations().filter((o) => o.orderId === orderId && o.kind === 'refund')).toHaveLength(1);
  });
});

describe('readiness checks', () => {
  it('run concurrently, each bounded: one that hangs or throws counts as not ready, and the others still answer', async () => {
    const databaseAsked = createDeferred();
    const checks = await runReadinessChecks(
      {
        // Answers only once the bus check has started: checks run one after another would never get here.
        database: async () => {
          await databaseAsked.promise;
          return true;
        },
        bus: () => {
          databaseAsked.resolve();
          return new Promise<boolean>(() => {});
        },
        flags: () => Promise.reject(new Error('unreachable')),
      },
      200,
    );
    expect(checks).toEqual({ database: true, bus: false, flags: false });
  });
});
