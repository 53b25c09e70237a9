import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../../gateway/auth/tokens.js';
import { DEVELOPMENT_JWT_SECRET } from '../../gateway/env.js';
import { fixture } from '../support/coordinator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  gatewayEnv,
  isRunning,
  killGateways,
  portOpen,
  repositoryConfigEnv,
  spawnGateway,
  type GatewayProcess,
} from '../support/gateway-process.js';
import { deleteNamespace, freePort, machineRedisUrl, requireRedis, testNamespace } from '../support/redis.js';
import { collect, subscriptionClient } from '../support/subscriptions.js';
import { waitFor } from '../support/wait.js';

/**
 * WORKERS=2: one gateway process (the primary) forks two Coordinators sharing its port. Requests reach
 * both; what one worker records the other reads; a subscriber on either sees the events of flows run on
 * both; a killed worker is replaced; SIGTERM stops them all.
 */

let database: TestDatabase;
let redisUrl: string;
let keyPrefix: string;
let gateway: GatewayProcess;
let bearer: string;
let metricsPort: number;

const env = (vars: Record<string, string | undefined>) =>
  gatewayEnv({
    ROVER_CONFIG: fixture('rover.yaml'),
    CONNECTIONS_FILE: fixture('connections.yaml'),
    SUBGRAPHS_DIR: fixture('subgraphs'),
    LOG_LEVEL: 'info',
    ...vars,
  });

beforeAll(async () => {
  redisUrl = await requireRedis(machineRedisUrl());
  keyPrefix = `${testNamespace('workers')}:`;
  database = await createTestDatabase('workers');
  bearer = await signToken(DEVELOPMENT_JWT_SECRET, { kind: 'staff', username: 'staff' });
  const port = await freePort();
  metricsPort = await freePort();
  gateway = spawnGateway({
    port,
    env: env({
      WORKERS: '2',
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: keyPrefix,
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
    }),
  });
  await gateway.ready(60_000);
  await waitFor(() => bothWorkersStarted(gateway.output()), {
    timeoutMs: 60_000,
    what: 'both workers to start',
  });
}, 90_000);

afterAll(async () => {
  await killGateways();
  await database?.drop();
  if (keyPrefix) await deleteNamespace(redisUrl, keyPrefix);
});

/**
 * The primary said every worker started, and both workers' own start lines are in: a worker's line may
 * reach the pipe after the primary's (its logger flushes on its own).
 */
const bothWorkersStarted = (output: string) =>
  output.includes('"msg":"every worker started"') &&
  (output.match(/"msg":"coordinator started"/g)?.length ?? 0) >= 2;

/** The pids of the Coordinators that logged they started, in order. */
const startedPids = () =>
  [...gateway.output().matchAll(/"pid":(\d+)[^\n]*"msg":"coordinator started"/g)].map((m) => Number(m[1]));

/** POSTs a GraphQL operation on `agent`'s connection; answers the body and the pid that served it. */
async function post(
  agent: Agent | false,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<{ body: { data?: Record<string, unknown>; errors?: unknown[] }; pid: number }> {
  const requestId = randomUUID();
  const payload = JSON.stringify({ query, variables });
  const text = await new Promise<string>((resolve, reject) => {
    const req = request(
      `${gateway.url}/graphql`,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${bearer}`,
          'x-request-id': requestId,
        },
      },
      (res) => {
        let data = '';
        res.on('data', (chunk: Buffer) => (data += chunk.toString()));
        res.on('end', () => resolve(data));
      },
    );
    req.once('error', reject);
    req.end(payload);
  });
  // The access log line of the request names the process that served it.
  const pid = await waitFor(
    () => {
      const match = new RegExp(`"pid":(\\d+)[^\\n]*"requestId":"${requestId}"`).exec(gateway.output());
      return match ? Number(match[1]) : false;
    },
    { timeoutMs: 5_000, what: `the access log of ${requestId}` },
  );
  return { body: JSON.parse(text) as { data?: Record<string, unknown>; errors?: unknown[] }, pid };
}

/** Two keep-alive connections, each held by a different worker. */
async function connectionsToBothWorkers(): Promise<[Agent, Agent]> {
  const byPid = new Map<number, Agent>();
  for (let attempt = 0; attempt < 20 && byPid.size < 2; attempt++) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const { pid } = await post(agent, '{ __typename }');
    if (byPid.has(pid)) agent.destroy();
    else byPid.set(pid, agent);
  }
  expect(byPid.size).toBe(2);
  return [...byPid.values()] as [Agent, Agent];
}

const ECHO = `query ($input: EchoInput!) { echoCaller(input: $input) { callerKind flow { id status } } }`;
const FLOW = `query ($id: ID!) { flow(id: $id) { id status name } }`;

describe('WORKERS=2', () => {
  it('starts two Coordinators, and requests on new connections reach both', async () => {
    const workers = startedPids();
    expect(new Set(workers).size).toBe(2);
    expect(workers).not.toContain(gateway.child.pid);
    const served = new Set<number>();
    for (let i = 0; i < 20 && served.size < 2; i++) served.add((await post(false, '{ __typename }')).pid);
    expect([...served].sort()).toEqual([...workers].sort());
  });

  it('a flow run through one worker is read through the other', async () => {
    const [first, second] = await connectionsToBothWorkers();
    const run = await post(first, ECHO, { input: { channel: 'WEB' } });
    const flow = (run.body.data?.echoCaller as { flow: { id: string; status: string } }).flow;
    expect(flow.status).toBe('COMPLETED');
    const read = await post(second, FLOW, { id: flow.id });
    expect(read.pid).not.toBe(run.pid);
    expect(read.body.data?.flow).toEqual({ id: flow.id, status: 'COMPLETED', name: 'caller.echo.v1' });
    first.destroy();
    second.destroy();
  });

  it('a subscriber on either worker sees the events of flows run on both', async () => {
    const clients = [0, 1].map(() =>
      subscriptionClient(gateway.url, { connectionParams: { authorization: `Bearer ${bearer}` } }),
    );
    const subscribers = clients.map((client) =>
      collect(
        client,
        { query: 'subscription { flowEvents(name: "caller.echo.v1") { flowId type } }' },
        (data) => data.flowEvents as { flowId: string; type: string },
      ),
    );
    try {
      // Give the subscriptions time to reach the feed before the flows run.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const [first, second] = await connectionsToBothWorkers();
      const flows = await Promise.all(
        [first, second].map(async (agent) => {
          const run = await post(agent, ECHO, { input: { channel: 'WEB' } });
          return { id: (run.body.data?.echoCaller as { flow: { id: string } }).flow.id, pid: run.pid };
        }),
      );
      expect(new Set(flows.map((f) => f.pid)).size).toBe(2);
      for (const subscriber of subscribers)
        await waitFor(
          () =>
            flows.every((flow) =>
              subscriber.events.some((e) => e.flowId === flow.id && e.type === 'FLOW_FINISHED'),
            ),
          { timeoutMs: 10_000, what: 'each subscriber to see both flows finish' },
        );
      first.destroy();
      second.destroy();
    } finally {
      for (const subscriber of subscribers) subscriber.unsubscribe();
      for (const client of clients) await client.dispose();
    }
  });

  it("METRICS_PORT serves the workers' metrics aggregated, by the primary", async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    // Three flows ran so far, on both workers: their counts add up.
    const started = [...text.matchAll(/^coordinator_flows_started_total\{[^}]*\} (\d+)$/gm)].reduce(
      (sum, m) => sum + Number(m[1]),
      0,
    );
    expect(started).toBe(3);
  });

  it('replaces a worker that is killed', async () => {
    const [victim, survivor] = startedPids().slice(-2) as [number, number];
    process.kill(victim, 'SIGKILL');
    await waitFor(() => gateway.output().includes('"msg":"worker died: restarting it"'), {
      timeoutMs: 10_000,
      what: 'the primary to see the worker die',
    });
    await waitFor(() => startedPids().length === 3, { timeoutMs: 60_000, what: 'a new worker to start' });
    const replacement = startedPids()[2]!;
    expect([victim, survivor]).not.toContain(replacement);
    const served = new Set<number>();
    for (let i = 0; i < 20 && served.size < 2; i++) served.add((await post(false, '{ __typename }')).pid);
    expect([...served].sort()).toEqual([survivor, replacement].sort());
  }, 90_000);

  it('SIGTERM drains and stops every worker, then the primary exits 0', async () => {
    const workers = startedPids().slice(-2);
    const before = gateway.output().length;
    gateway.child.kill('SIGTERM');
    const exited = await gateway.exited;
    const output = gateway.output().slice(before);
    expect(exited, output).toEqual({ code: 0, signal: null });
    for (const pid of workers) expect(isRunning(pid)).toBe(false);
    expect(output.match(/"msg":"coordinator stopped"/g)?.length).toBeGreaterThanOrEqual(2);
    expect(output).not.toMatch(/unhandled|uncaught|"level":50/i);
  }, 30_000);
});

it('WORKERS=2 without REDIS_URL refuses to start, saying why', async () => {
  const port = await freePort();
  const refused = spawnGateway({
    port,
    env: env({ WORKERS: '2', DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/none', PORT: String(port) }),
  });
  expect(await refused.exited).toEqual({ code: 1, signal: null });
  expect(refused.output()).toContain(
    'WORKERS: more than 1 needs REDIS_URL: the in-process signal bus and event feed cannot span worker processes',
  );
});

it('`npm start` on WORKERS=2: one embedded PostgreSQL and one set of stand-ins for both workers', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'cc-workers-'));
  // Run as root, PostgreSQL runs as the postgres user, which must reach the data directory.
  await chmod(dataDir, 0o755);
  const namespace = `${testNamespace('workers-embedded')}:`;
  try {
    const [port, postgresPort] = [await freePort(), await freePort()];
    const started = spawnGateway({
      port,
      command: [process.execPath, '--import', 'tsx', 'launcher/main.ts'],
      env: gatewayEnv({
        ...repositoryConfigEnv(),
        SERVICES: 'stand-ins',
        WORKERS: '2',
        REDIS_URL: redisUrl,
        REDIS_KEY_PREFIX: namespace,
        DATA_DIR: dataDir,
        EMBEDDED_POSTGRES_PORT: String(postgresPort),
        PORT: String(port),
        LOG_LEVEL: 'info',
      }),
    });
    await started.ready(90_000);
    await waitFor(() => bothWorkersStarted(started.output()), {
      timeoutMs: 60_000,
      what: 'both workers to start',
    });
    const output = started.output();
    expect(output.match(/"msg":"embedded PostgreSQL is running"/g)).toHaveLength(1);
    expect(output.match(/"msg":"Service stand-ins running/g)).toHaveLength(1);
    expect(output.match(/"msg":"coordinator started"/g)).toHaveLength(2);
    expect(await portOpen(postgresPort)).toBe(true);
    started.child.kill('SIGTERM');
    expect(await started.exited, started.output()).toEqual({ code: 0, signal: null });
    expect(await portOpen(postgresPort)).toBe(false);
  } finally {
    await deleteNamespace(redisUrl, namespace);
    await rm(dataDir, { recursive: true, force: true });
  }
}, 150_000);
