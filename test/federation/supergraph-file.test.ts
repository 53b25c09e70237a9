import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Supergraph } from '@apollo/federation-internals';
import type { GraphQLObjectType } from 'graphql';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../../gateway/auth/tokens.js';
import { DEVELOPMENT_JWT_SECRET } from '../../gateway/env.js';
import { ConfigError } from '../../gateway/errors.js';
import { buildSupergraph, buildSupergraphFromFile } from '../../gateway/federation/supergraph.js';
import { createLogger } from '../../gateway/log.js';
import { serveSubgraph } from '@commerce-coordinator/plugin-sdk';
import ordersPlugin from '../fixtures/subgraphs/orders/index.js';
import { startLedger, type Ledger } from '../fixtures/services/ledger.js';
import { REQUEST_REFUND, fixture, startTestCoordinator } from '../support/coordinator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { gatewayEnv, killGateways, spawnGateway } from '../support/gateway-process.js';
import { freePort } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import {
  ASSERTION_HEADER,
  serveFixturePlugins,
  type CallClaims,
  type RemoteSubgraphs,
} from '../support/remote-subgraphs.js';

/**
 * The gateway started on a composed supergraph file (SUPERGRAPH_FILE), as a router with `--supergraph`:
 * every Plugin is called at the routing URL the file gives it, none is loaded in process, and rover.yaml
 * and the Plugins' schema files are not read.
 */

let remote: RemoteSubgraphs;
let ledger: Ledger;
let database: TestDatabase;
let dir: string;
let supergraphFile: string;

beforeAll(async () => {
  ledger = await startLedger();
  // The served fixture Plugins run in this process and call the ledger stand-in.
  process.env.LEDGER_URL = ledger.url;
  remote = await serveFixturePlugins();
  database = await createTestDatabase('supergraph-file');
  dir = await mkdtemp(join(tmpdir(), 'cc-supergraph-file-'));
  // What `npm run compose` writes, here routing to the served Plugins.
  supergraphFile = join(dir, 'supergraph.graphql');
  const { supergraphSdl } = buildSupergraph({
    roverConfig: remote.roverConfig,
    connections: fixture('connections.yaml'),
  });
  await writeFile(supergraphFile, supergraphSdl);
});
afterAll(async () => {
  await killGateways();
  await remote?.close();
  await ledger?.close();
  await database?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a gateway started with SUPERGRAPH_FILE', () => {
  it('runs a flow whose every step crosses HTTP to the routing URLs in the file', async () => {
    const port = await freePort();
    const gateway = spawnGateway({
      port,
      env: gatewayEnv({
        SUPERGRAPH_FILE: supergraphFile,
        // Neither is read: with a supergraph file nothing is composed from schema files or loaded in process.
        ROVER_CONFIG: join(dir, 'absent-rover.yaml'),
        SUBGRAPHS_DIR: join(dir, 'absent-subgraphs'),
        CONNECTIONS_FILE: fixture('connections.yaml'),
        SUBGRAPH_SIGNING_SECRET: remote.coordinatorOptions.subgraphSigningSecret,
        DATABASE_URL: database.url,
        FLAGS_FILE: fixture('../../flags.json'),
        PORT: String(port),
      }),
    });
    await gateway.ready();
    const staff = await signToken(DEVELOPMENT_JWT_SECRET, { kind: 'staff', username: 'staff' });
    const res = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${staff}` },
      body: JSON.stringify({
        query: REQUEST_REFUND,
        variables: { input: { orderId: 'supergraph-file-1', amount: 30 } },
      }),
    });
    const body = (await res.json()) as {
      data: {
        requestRefund: { flow: { id: string; status: string; steps: Array<Record<string, unknown>> } };
      };
    };
    const flow = body.data.requestRefund.flow;
    expect(flow.status).toBe('COMPLETED');
    expect(flow.steps.map((s) => [s.action, s.status, s.implementation])).toEqual([
      ['haltIfLegacy', 'COMPLETED', 'orders'],
      ['createReturn', 'COMPLETED', 'orders'],
      ['refundPayment', 'COMPLETED', 'payments'],
      ['recordRefund', 'COMPLETED', 'orders'],
    ]);
    // The served subgraphs answered the steps, each call signed for its step of this flow.
    const stepsServed = (subgraph: string) =>
      remote
        .requests(subgraph)
        .filter((r) => r.claims?.step?.flowId === flow.id)
        .map((r) => r.claims!.step!.stepIndex);
    expect(stepsServed('orders')).toEqual([0, 1, 3]);
    expect(stepsServed('payments')).toEqual([2]);
  });

  it('refuses to start without a signing secret, naming the subgraphs the file routes to', async () => {
    const port = await freePort();
    const gateway = spawnGateway({
      port,
      env: gatewayEnv({
        SUPERGRAPH_FILE: supergraphFile,
        CONNECTIONS_FILE: fixture('connections.yaml'),
        DATABASE_URL: database.url,
        PORT: String(port),
      }),
    });
    expect((await gateway.exited).code).toBe(1);
    expect(gateway.output()).toMatch(
      /SUBGRAPH_SIGNING_SECRET: .*SUPERGRAPH_FILE routes to orders, payments, payments-v2/,
    );
  });
});

describe('a change to the supergraph file', () => {
  it('reroutes new flows when valid; a broken file keeps the running one, logged naming the file', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger({
      destination: new Writable({
        write(chunk: Buffer, _encoding, done) {
          for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
          done();
        },
      }),
    });
    const watched = join(dir, 'watched-supergraph.graphql');
    await copyFile(supergraphFile, watched);
    const secondOrders = await serveSubgraph(ordersPlugin, {
      secret: remote.coordinatorOptions.subgraphSigningSecret!,
    });
    const t = await startTestCoordinator('supergraph-file-reload', {
      ledger,
      overrides: {
        supergraphFile: watched,
        subgraphSigningSecret: remote.coordinatorOptions.subgraphSigningSecret,
        logger,
        watchConfig: { debounceMs: 50 },
      },
    });
    // The flow steps the second server answered, from the gateway's signed assertion of each call.
    const secondOrdersSteps: Array<{ flowId: string; stepIndex: number }> = [];
    secondOrders.server.prependListener('request', (req) => {
      const assertion = req.headers[ASSERTION_HEADER];
      const step = typeof assertion === 'string' ? decodeJwt<CallClaims>(assertion).step : undefined;
      if (step) secondOrdersSteps.push(step);
    });
    const servedBySecond = (flowId: string) =>
      secondOrdersSteps.filter((s) => s.flowId === flowId).map((s) => s.stepIndex);
    const refund = async (orderId: string) => {
      const { data } = await t.graphql<{ requestRefund: { flow: { id: string; status: string } } }>(
        REQUEST_REFUND,
        { input: { orderId, amount: 5 } },
      );
      expect(data?.requestRefund.flow.status).toBe('COMPLETED');
      return data!.requestRefund.flow.id;
    };
    const hash = async () =>
      ((await (await fetch(`${t.url}/readyz`)).json()) as { config: { hash: string } }).config.hash;
    try {
      const first = await hash();
      expect(servedBySecond(await refund('supergraph-reload-1'))).toEqual([]);

      // The orders subgraph moved: the file routes it to another server.
      const ordersUrl = remote.servers.get('orders')!.url;
      const moved = readFileSync(supergraphFile, 'utf8').replace(
        `url: "${ordersUrl}"`,
        `url: "${secondOrders.url}"`,
      );
      expect(moved).not.toBe(readFileSync(supergraphFile, 'utf8'));
      await writeFile(watched, moved);
      await waitFor(async () => expect(await hash()).not.toBe(first), { what: 'the moved supergraph' });
      // haltIfLegacy, createReturn and recordRefund: on the new server now.
      expect(servedBySecond(await refund('supergraph-reload-2'))).toEqual([0, 1, 3]);

      const running = await hash();
      await writeFile(watched, moved.replace('@join__graph(name: "orders"', '@join__graph(nom: "orders"'));
      const refusal = await waitFor(
        () => lines.find((l) => String(l.msg).startsWith('configuration not reloaded')) ?? false,
        { what: 'the refusal to be logged' },
      );
      expect(refusal).toMatchObject({ level: 50, file: watched, configHash: running });
      expect(String(refusal.msg)).toContain(`${watched}:\n  - is not a composed supergraph`);
      expect(await hash()).toBe(running);
      expect(servedBySecond(await refund('supergraph-reload-3'))).toEqual([0, 1, 3]);
    } finally {
      await t.stop();
      await secondOrders.close();
    }
  });

  it('is re-read on SIGHUP', async () => {
    const port = await freePort();
    const gateway = spawnGateway({
      port,
      env: gatewayEnv({
        SUPERGRAPH_FILE: supergraphFile,
        CONNECTIONS_FILE: fixture('connections.yaml'),
        SUBGRAPH_SIGNING_SECRET: remote.coordinatorOptions.subgraphSigningSecret,
        DATABASE_URL: database.url,
        FLAGS_FILE: fixture('../../flags.json'),
        PORT: String(port),
      }),
    });
    await gateway.ready();
    const { config } = (await (await fetch(`${gateway.url}/readyz`)).json()) as { config: { hash: string } };
    expect(gateway.output()).toContain(`"configHash":"${config.hash}","msg":"configuration loaded"`);
    gateway.child.kill('SIGHUP');
    await waitFor(
      () =>
        expect(gateway.output()).toContain(`"configHash":"${config.hash}","msg":"configuration reloaded"`),
      { what: 'the reload SIGHUP asks for' },
    );
    // Still serving, not stopped by the signal.
    expect((await fetch(`${gateway.url}/readyz`)).status).toBe(200);
  });
});

describe('buildSupergraphFromFile', () => {
  it('takes the subgraphs and their routing URLs from the file, and composes the same supergraph', () => {
    const built = buildSupergraphFromFile({ supergraphFile, connections: fixture('connections.yaml') });
    expect(built.rover.file).toBe(supergraphFile);
    expect(built.rover.subgraphs.map((s) => [s.name, s.routingUrl])).toEqual([
      ['coordinator', 'http://127.0.0.1:4000/graphql'],
      ...['orders', 'payments', 'payments-v2'].map((name) => [name, remote.servers.get(name)!.url]),
    ]);
    expect(built.compiled.filters.has('order.refund.requested.v1')).toBe(true);
    // The same API (the file's Plugin schemas lose their descriptions in the extraction, nothing else).
    const fieldsOf = (sdl: string) =>
      ['Query', 'Mutation'].map((root) =>
        Object.keys(
          (
            Supergraph.build(sdl).apiSchema().toGraphQLJSSchema().getType(root) as GraphQLObjectType
          ).getFields(),
        ).sort(),
      );
    expect(fieldsOf(built.supergraphSdl)).toEqual(fieldsOf(readFileSync(supergraphFile, 'utf8')));
  });

  it('validates the connections against the file: an unknown Action names the connections file', () => {
    const connections = fixture('broken/connections/unknown-action.yaml');
    let error: unknown;
    try {
      buildSupergraphFromFile({ supergraphFile, connections });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain(connections);
  });

  it('refuses a file that is not a composed supergraph, naming it', async () => {
    const notSupergraph = join(dir, 'subgraph.graphql');
    await writeFile(notSupergraph, 'type Query { hello: String }');
    expect(() =>
      buildSupergraphFromFile({ supergraphFile: notSupergraph, connections: fixture('connections.yaml') }),
    ).toThrow(new RegExp(`${notSupergraph}.*is not a composed supergraph`, 's'));
  });
});
