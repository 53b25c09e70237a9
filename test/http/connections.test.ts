import { request as httpRequest } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectionLimits, readEnv } from '../../gateway/env.js';
import { ConfigError } from '../../gateway/errors.js';
import {
  defaultMaxConnections,
  openFileLimit,
  resolveHttpLimits,
} from '../../gateway/http/connection-limits.js';
import { createHttpServer } from '../../gateway/http/server.js';
import { createLogger, silentLogger } from '../../gateway/log.js';
import { resolveSubscriptionLimits } from '../../gateway/subscriptions/limits.js';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { wsUrl } from '../support/subscriptions.js';
import { createDeferred, waitFor, type Deferred } from '../support/wait.js';

/** A raw TCP connection to the gateway, with what it received and whether the gateway closed it. */
interface RawConnection {
  socket: Socket;
  received(): string;
  readonly closed: Deferred<void>;
}

const sockets = new Set<Socket>();
const webSockets = new Set<WebSocket>();

async function rawConnection(url: string, send?: string): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  sockets.add(socket);
  let received = '';
  const closed = createDeferred<void>();
  socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
  socket.on('error', () => {});
  socket.on('close', () => closed.resolve());
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  if (send) socket.write(send);
  return { socket, received: () => received, closed };
}

/** The connections the gateway holds open, as its server counts them. */
const openConnections = (t: TestCoordinator) =>
  new Promise<number>((resolve, reject) =>
    t.coordinator.components.server.getConnections((error, n) => (error ? reject(error) : resolve(n))),
  );

async function connectionsOpen(t: TestCoordinator, test: (open: number) => boolean, what: string) {
  await waitFor(async () => test(await openConnections(t)), { what });
}

/** One HTTP request on a connection of its own (no keep-alive pool that could hold a closed socket). */
function request(
  url: string,
  { method = 'GET', body }: { method?: string; body?: unknown } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method,
        agent: false,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, json: JSON.parse(text) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

interface GraphQLWs {
  ws: WebSocket;
  /** Messages received, parsed, in order. */
  messages: Array<{ type: string; id?: string; payload?: unknown }>;
  readonly closed: Deferred<{ code: number; reason: string }>;
  /** Resolves with the first message of `type` (and `id`) not yet returned by an earlier call. */
  next(type: string, id?: string): Promise<{ type: string; id?: string; payload?: unknown }>;
  send(message: Record<string, unknown>): void;
}

/** Whether subscription `id` of `c` delivered an event (a `next` with data, not errors). */
const delivered = (c: GraphQLWs, id: string) =>
  c.messages.some((m) => m.type === 'next' && m.id === id && (m.payload as { data?: unknown }).data);

/** A graphql-transport-ws connection on a raw WebSocket: the test decides every message. */
async function graphqlWs(url: string, { init = true }: { init?: boolean } = {}): Promise<GraphQLWs> {
  const ws = new WebSocket(wsUrl(url), 'graphql-transport-ws');
  webSockets.add(ws);
  const messages: GraphQLWs['messages'] = [];
  const taken = new Set<number>();
  const closed = createDeferred<{ code: number; reason: string }>();
  ws.on('message', (data) => messages.push(JSON.parse(String(data)) as GraphQLWs['messages'][number]));
  ws.on('close', (code, reason) => closed.resolve({ code, reason: String(reason) }));
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const connection: GraphQLWs = {
    ws,
    messages,
    closed,
    send: (message) => ws.send(JSON.stringify(message)),
    next: (type, id) =>
      waitFor(
        () => {
          const index = messages.findIndex(
            (m, i) => !taken.has(i) && m.type === type && (id === undefined || m.id === id),
          );
          if (index < 0) {
            if (closed.settled) throw new Error(`closed before a '${type}' message arrived`);
            return false;
          }
          taken.add(index);
          return messages[index]!;
        },
        { what: `a '${type}' message` },
      ),
  };
  if (init) connection.send({ type: 'connection_init' });
  return connection;
}

const SIGNALS = 'subscription Signals($name: String!) { signals(name: $name) { id } }';
/** A signal of the fixture's connections (one no flow of these tests emits): the feed serves declared signals only. */
const SIGNAL = 'order.refunded.v1';
const subscribe = (c: GraphQLWs, id: string, name: string) =>
  c.send({ id, type: 'subscribe', payload: { query: SIGNALS, variables: { name } } });

const publishSignal = (t: TestCoordinator, name: string, id: string) =>
  t.coordinator.components.feed.publish(`signal:${name}`, 'SIGNAL', {
    id,
    name,
    payload: {},
    source: 'test',
  });

/** Closes the test's connections; websockets with a close handshake, so the gateway is not reset mid-send. */
function closeAll() {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  for (const ws of webSockets) {
    if (ws.readyState === WebSocket.OPEN) ws.close();
    else ws.terminate();
  }
  webSockets.clear();
}

afterEach(closeAll);

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase('http-connections');
});
afterAll(async () => {
  await database?.drop();
});

describe('connection caps', () => {
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('http-connections-caps', {
      redis: false,
      database,
      overrides: {
        httpLimits: { maxConnections: 8, healthReserve: 2 },
        subscriptionLimits: { maxConnections: 3, maxSubscriptionsPerConnection: 2 },
        shutdownTimeoutMs: 2_000,
      },
    });
  });
  afterAll(async () => t?.stop());
  // Each test starts with every connection of the one before closed on the gateway's side too.
  afterEach(async () => {
    if (t.coordinator.state.phase !== 'started') return;
    closeAll();
    await connectionsOpen(t, (n) => n === 0, 'the previous connections to close');
  });

  it('closes the longest-idle connections when idle sockets exceed the cap, and /healthz still answers 200', async () => {
    const first: RawConnection[] = [];
    for (let i = 0; i < 8; i++) first.push(await rawConnection(t.url));
    await connectionsOpen(t, (n) => n === 8, 'the gateway to accept 8 connections');
    const extra: RawConnection[] = [];
    for (let i = 0; i < 4; i++) extra.push(await rawConnection(t.url));

    // The four oldest made room for the four newest; none of the newest was turned away.
    await waitFor(() => first.slice(0, 4).every((c) => c.closed.settled), {
      what: 'the four longest-idle connections to be closed',
    });
    expect(first.slice(4).map((c) => c.closed.settled)).toEqual([false, false, false, false]);
    expect(extra.map((c) => c.closed.settled)).toEqual([false, false, false, false]);

    const health = await request(`${t.url}/healthz`);
    expect(health.status).toBe(200);
    expect(health.json).toEqual({ status: 'ok' });
  });

  it('serves only /healthz and /readyz on the reserve when every connection is busy; others get 503 SERVICE_UNAVAILABLE with Retry-After', async () => {
    // Eight requests whose bodies never finish arriving: each keeps its connection busy.
    const busy: RawConnection[] = [];
    const requests = t.coordinator.components.requests;
    for (let i = 0; i < 8; i++) {
      busy.push(
        await rawConnection(
          t.url,
          'POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{',
        ),
      );
      await waitFor(() => requests.inFlight() === i + 1, { what: `request ${i + 1} to be read` });
    }

    const refused = await request(`${t.url}/graphql`, { method: 'POST', body: { query: '{ __typename }' } });
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.json).toEqual({
      errors: [
        {
          message: 'The gateway has too many connections open; retry later',
          extensions: { code: 'SERVICE_UNAVAILABLE' },
        },
      ],
    });
    const route = await request(`${t.url}/no-such-route`);
    expect(route.status).toBe(503);
    expect(route.json).toEqual({
      code: 'SERVICE_UNAVAILABLE',
      message: 'The gateway has too many connections open; retry later',
    });

    expect((await request(`${t.url}/healthz`)).status).toBe(200);
    const ready = await request(`${t.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.json).toMatchObject({ status: 'ready' });

    // With the reserve taken too, a connection is answered 503 at once and closed.
    await connectionsOpen(t, (n) => n === 8, 'the reserve connections to close after their answer');
    await rawConnection(t.url);
    await rawConnection(t.url);
    await connectionsOpen(t, (n) => n === 10, 'the gateway to accept 2 reserve connections');
    const over = await rawConnection(t.url);
    await over.closed.promise;
    expect(over.received()).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(over.received()).toMatch(/\r\nRetry-After: 1\r\n/i);
    expect(JSON.parse(over.received().split('\r\n\r\n')[1]!)).toEqual({
      code: 'SERVICE_UNAVAILABLE',
      message: 'The gateway has too many connections open; retry later',
    });
    expect(busy.map((c) => c.closed.settled)).toEqual(Array(8).fill(false));
  });

  it('closes websocket connections beyond their cap with 1013 (try again later)', async () => {
    const open = await Promise.all([graphqlWs(t.url), graphqlWs(t.url), graphqlWs(t.url)]);
    for (const c of open) await c.next('connection_ack');
    const over = await graphqlWs(t.url);
    await waitFor(() => over.closed.settled, { what: 'the websocket over the cap to be closed' });
    expect(await over.closed.promise).toEqual({
      code: 1013,
      reason: 'The gateway has too many websocket connections open; retry later',
    });
    expect(over.messages).toEqual([]);
    // One closing makes room for another.
    open[0]!.ws.close();
    await open[0]!.closed.promise;
    const again = await graphqlWs(t.url);
    await again.next('connection_ack');
    expect(open.slice(1).map((c) => c.closed.settled)).toEqual([false, false]);
  });

  it('refuses a subscription beyond the cap of a connection with TOO_MANY_REQUESTS, and keeps the others', async () => {
    const c = await graphqlWs(t.url);
    await c.next('connection_ack');
    subscribe(c, 'a', SIGNAL);
    subscribe(c, 'b', SIGNAL);
    subscribe(c, 'c', SIGNAL);
    const refused = await c.next('error', 'c');
    expect(refused.payload).toEqual([
      {
        message: 'Too many subscriptions on this connection: at most 2 at once',
        extensions: { code: 'TOO_MANY_REQUESTS', limit: 2 },
      },
    ]);
    // The two accepted ones still deliver (graphql-ws does not acknowledge a subscription: probe it).
    await waitFor(
      async () => {
        await publishSignal(t, SIGNAL, 'a-probe');
        await publishSignal(t, SIGNAL, 'b-probe');
        return delivered(c, 'a') && delivered(c, 'b');
      },
      { what: 'both subscriptions to deliver', intervalMs: 50 },
    );
    // Completing one frees its place (graphql-ws reads a connection's messages in order).
    c.send({ id: 'a', type: 'complete' });
    subscribe(c, 'd', SIGNAL);
    await waitFor(
      async () => {
        await publishSignal(t, SIGNAL, 'd-probe');
        return delivered(c, 'd');
      },
      { what: 'a subscription after one completed', intervalMs: 50 },
    );
    expect(c.messages.filter((m) => m.type === 'error')).toHaveLength(1);
    expect(c.closed.settled).toBe(false);
  });

  it('stops gracefully with idle sockets and websockets open', async () => {
    await rawConnection(t.url);
    const c = await graphqlWs(t.url);
    await c.next('connection_ack');
    await t.coordinator.stop();
    expect(t.coordinator.state.phase).toBe('stopped');
    expect((await c.closed.promise).code).toBe(1001);
  });
});

describe('connection timeouts', () => {
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('http-connections-timeouts', {
      redis: false,
      database,
      overrides: {
        httpLimits: { headersTimeoutMs: 300, requestTimeoutMs: 600 },
        subscriptionLimits: { connectionInitWaitTimeoutMs: 300, idleTimeoutMs: 400 },
      },
    });
  });
  afterAll(async () => t?.stop());

  it('closes a socket that sends half a request header and stops, with 408', async () => {
    const slow = await rawConnection(t.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\n');
    await waitFor(() => slow.closed.settled, {
      timeoutMs: 5_000,
      what: 'the half-sent request to be closed',
    });
    expect(slow.received()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
  });

  it('closes a websocket that never sends connection_init with 4408', async () => {
    const silent = await graphqlWs(t.url, { init: false });
    await waitFor(() => silent.closed.settled, {
      timeoutMs: 2_000,
      what: 'the uninitialised socket to close',
    });
    expect(await silent.closed.promise).toEqual({ code: 4408, reason: 'Connection initialisation timeout' });
  });

  it('closes an idle websocket with 1000 even while it pings, and keeps one with a subscription', async () => {
    const idle = await graphqlWs(t.url);
    const active = await graphqlWs(t.url);
    await idle.next('connection_ack');
    await active.next('connection_ack');
    subscribe(active, 's', SIGNAL);
    // graphql-ws clients ping to keep a connection alive: that is not using it.
    const pings = setInterval(() => idle.ws.readyState === WebSocket.OPEN && idle.send({ type: 'ping' }), 50);
    try {
      await waitFor(() => idle.closed.settled, { timeoutMs: 5_000, what: 'the idle websocket to close' });
    } finally {
      clearInterval(pings);
    }
    expect(idle.messages.some((m) => m.type === 'pong')).toBe(true);
    expect(await idle.closed.promise).toEqual({ code: 1000, reason: 'Idle' });
    await waitFor(
      async () => {
        await publishSignal(t, SIGNAL, 'after-idle');
        return delivered(active, 's');
      },
      { what: 'the subscribed websocket to deliver after the idle one closed', intervalMs: 50 },
    );
    expect(active.closed.settled).toBe(false);
  });
});

describe('a subscription fan-out', () => {
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('http-connections-fan-out', { redis: false, database });
  });
  afterAll(async () => t?.stop());

  it('leaves /healthz answering while 1,000 subscribers receive a burst of events', async () => {
    const subscribers = 1_000;
    const burst = 40;
    const received = new Map<WebSocket, number>();
    const ready = new Set<WebSocket>();
    let acked = 0;
    for (let i = 0; i < subscribers; i++) {
      const ws = new WebSocket(wsUrl(t.url), 'graphql-transport-ws');
      webSockets.add(ws);
      received.set(ws, 0);
      ws.on('error', () => {});
      ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init' })));
      ws.on('message', (data) => {
        const message = JSON.parse(String(data)) as {
          type: string;
          payload?: { data?: { signals?: { id: string } } };
        };
        if (message.type === 'connection_ack') {
          acked++;
          ws.send(
            JSON.stringify({
              id: '1',
              type: 'subscribe',
              payload: { query: SIGNALS, variables: { name: SIGNAL } },
            }),
          );
        } else if (message.type === 'next') {
          if (message.payload?.data?.signals?.id.startsWith('probe')) ready.add(ws);
          else received.set(ws, received.get(ws)! + 1);
        }
      });
    }
    await waitFor(() => acked === subscribers, { timeoutMs: 30_000, what: 'every subscriber to connect' });
    let probe = 0;
    await waitFor(
      async () => {
        await publishSignal(t, SIGNAL, `probe-${probe++}`);
        return ready.size === subscribers;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'every subscriber to receive a probe' },
    );
    const delivered = () => [...received.values()].reduce((a, b) => a + b, 0);

    for (let i = 0; i < burst; i++) void publishSignal(t, SIGNAL, `event-${i}`);
    const health = await request(`${t.url}/healthz`);
    const deliveredWhenHealthy = delivered();
    expect(health.status).toBe(200);
    // It answered during the fan-out, not after it.
    expect(deliveredWhenHealthy).toBeLessThan(subscribers * burst);

    await waitFor(() => delivered() === subscribers * burst, {
      timeoutMs: 60_000,
      what: 'every subscriber to receive the whole burst',
    });
  }, 120_000);
});

describe('an HTTP server without subscriptions', () => {
  it('closes a websocket upgrade request, as Node does when nobody handles upgrades', async () => {
    const server = createHttpServer({
      apollo: undefined as never,
      context: async () => undefined as never,
      routes: new Map(),
      draining: () => false,
      logger: silentLogger,
    });
    // An upgraded socket is no longer Node's to close (closeAllConnections skips it): these are.
    const accepted = new Set<Socket>();
    server.on('connection', (socket: Socket) => accepted.add(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const upgrade = await rawConnection(
        url,
        'GET /graphql HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      await waitFor(() => upgrade.closed.settled, { what: 'the unhandled upgrade to be closed' });
      expect(upgrade.received()).toBe('');
    } finally {
      for (const socket of accepted) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('requests the server cannot route', () => {
  let server: ReturnType<typeof createHttpServer>;
  let url: string;
  const errors: string[] = [];
  beforeAll(async () => {
    server = createHttpServer({
      apollo: undefined as never,
      context: async () => undefined as never,
      routes: new Map([
        [
          '/broken',
          () => {
            throw new Error('a route that fails');
          },
        ],
      ]),
      draining: () => false,
      logger: createLogger({
        level: 'error',
        destination: { write: (line: string) => void errors.push(line) },
      }),
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** One request with `target` as it is on the request line: its status and JSON body. */
  const send = (target: string) =>
    new Promise<{ status: number; body: unknown }>((resolve, reject) => {
      const { hostname, port } = new URL(url);
      httpRequest({ host: hostname, port, path: target, agent: false }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(body) as unknown }));
      })
        .on('error', reject)
        .end();
    });

  it('answers a request target that is not a URL with 400 BAD_REQUEST, and logs no error', async () => {
    for (const target of ['//[/', 'http://[', 'http://%zz/graphql', 'http://a%20b/'])
      expect({ target, ...(await send(target)) }).toEqual({
        target,
        status: 400,
        body: { code: 'BAD_REQUEST', message: 'The request target is not a valid URL' },
      });
    expect(errors).toEqual([]);
  });

  it('answers a REST route that fails with 500 in the REST shape, and logs it', async () => {
    expect(await send('/broken')).toEqual({
      status: 500,
      body: { code: 'INTERNAL_SERVER_ERROR', message: 'Internal server error' },
    });
    expect(errors.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual(['request failed']);
  });
});

describe('connection limits configuration', () => {
  it('defaults the connection cap to half the open-file limit, at most 10,000', async () => {
    expect(defaultMaxConnections(20_000)).toBe(10_000);
    expect(defaultMaxConnections(1_024)).toBe(512);
    expect(defaultMaxConnections(1_048_576)).toBe(10_000);
    expect(defaultMaxConnections(undefined)).toBe(10_000);
    const dir = await mkdtemp(join(tmpdir(), 'limits-'));
    try {
      const limits = join(dir, 'limits');
      await writeFile(
        limits,
        'Max cpu time              unlimited            unlimited            seconds\nMax open files            20000                20000                files\n',
      );
      expect(openFileLimit(limits)).toBe(20_000);
      await writeFile(limits, 'Max open files            unlimited            unlimited            files\n');
      expect(openFileLimit(limits)).toBeUndefined();
      expect(openFileLimit(join(dir, 'missing'))).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps websockets within the HTTP connection cap: 90 % of it by default, never more', () => {
    expect(resolveSubscriptionLimits({}, { maxConnections: 100 }).maxConnections).toBe(90);
    expect(() => resolveSubscriptionLimits({ maxConnections: 11 }, { maxConnections: 10 })).toThrow(
      new ConfigError('subscriptionLimits', [
        "maxConnections: 11 websockets cannot fit in the HTTP server's 10 connections",
      ]),
    );
  });

  it('refuses a headers timeout longer than the request timeout, naming the field', () => {
    expect(() => resolveHttpLimits({ headersTimeoutMs: 2_000, requestTimeoutMs: 1_000 })).toThrow(
      new ConfigError('httpLimits', [
        'headersTimeoutMs: headersTimeoutMs must not exceed requestTimeoutMs (the headers are part of the request)',
      ]),
    );
    expect(() => resolveHttpLimits({ maxConnections: 0 })).toThrow(ConfigError);
  });

  it('reads the limits from the environment, and names the variables of a bad combination', () => {
    const env = readEnv({
      HTTP_MAX_CONNECTIONS: '200',
      HTTP_HEALTH_RESERVE: '4',
      HTTP_HEADERS_TIMEOUT_MS: '1000',
      WS_MAX_SUBSCRIPTIONS: '7',
      WS_MAX_SUBSCRIPTIONS_PER_CALLER: '70',
      WS_IDLE_TIMEOUT_MS: '0',
    });
    expect(connectionLimits(env)).toEqual({
      httpLimits: {
        maxConnections: 200,
        healthReserve: 4,
        headersTimeoutMs: 1_000,
        requestTimeoutMs: undefined,
        keepAliveTimeoutMs: undefined,
        socketTimeoutMs: undefined,
      },
      subscriptionLimits: {
        maxConnections: undefined,
        maxSubscriptionsPerConnection: 7,
        maxSubscriptionsPerCaller: 70,
        connectionInitWaitTimeoutMs: undefined,
        idleTimeoutMs: 0,
      },
    });
    expect(() => readEnv({ HTTP_MAX_CONNECTIONS: 'many' })).toThrow(/HTTP_MAX_CONNECTIONS: /);
    expect(() => connectionLimits(readEnv({ HTTP_MAX_CONNECTIONS: '10', WS_MAX_CONNECTIONS: '11' }))).toThrow(
      new ConfigError('environment', [
        "WS_MAX_CONNECTIONS: 11 websockets cannot fit in the HTTP server's 10 connections",
      ]),
    );
  });
});
