import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { decodeJwt, type JWTPayload } from 'jose';
import { parseDocument } from 'yaml';
import type { CoordinatorOptions } from '../../gateway/coordinator.js';
import { serveSubgraph, type Plugin, type SubgraphServer } from '@commerce-coordinator/plugin-sdk';
import ordersPlugin from '../fixtures/subgraphs/orders/index.js';
import paymentsV2Plugin from '../fixtures/subgraphs/payments-v2/index.js';
import paymentsPlugin from '../fixtures/subgraphs/payments/index.js';
import { fixture } from './coordinator.js';

export const fixturePlugins: readonly Plugin[] = [ordersPlugin, paymentsPlugin, paymentsV2Plugin];

/** The secret the test gateways sign their subgraph calls with, and the served fixture plugins verify. */
export const TEST_SUBGRAPH_SIGNING_SECRET = 'test-subgraph-signing-secret-of-32-bytes-or-more';

/** The header that carries the gateway's signed assertion of a call (the wire contract). */
export const ASSERTION_HEADER = 'x-coordinator-assertion';

/** What the gateway asserts about one call: who calls, for which step, to whom, over which body. */
export interface CallClaims extends JWTPayload {
  principal?: { kind: string; [field: string]: unknown };
  step?: { flowId: string; stepIndex: number; attempt: number; idempotencyKey: string };
  bodySha256?: string;
}

export interface ReceivedRequest {
  headers: IncomingHttpHeaders;
  /** The body exactly as received, to send it again. */
  raw: string;
  body: { query: string; variables?: Record<string, unknown> };
  /** The claims of its assertion, decoded without verification; undefined when unsigned. */
  claims?: CallClaims;
}

export interface RemoteSubgraphs {
  /** A copy of the fixture rover.yaml whose routing URLs point at the served plugins. */
  roverConfig: string;
  /** What a test Coordinator needs to call them: that rover.yaml, every subgraph remote, the secret. */
  coordinatorOptions: Pick<CoordinatorOptions, 'roverConfig' | 'remoteSubgraphs' | 'subgraphSigningSecret'>;
  servers: ReadonlyMap<string, SubgraphServer>;
  /** What each subgraph server received over HTTP, in order. */
  requests(subgraph: string): ReceivedRequest[];
  /** POSTs `body` to a served subgraph as anyone on the network could, and returns its answer. */
  post(
    subgraph: string,
    body: string,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

/**
 * Serves every fixture plugin with `serveSubgraph` on a free port and writes a rover.yaml (a copy of
 * test/fixtures/rover.yaml, schema paths made absolute) that routes each of them to its server, for a
 * Coordinator started with `coordinatorOptions`.
 */
export async function serveFixturePlugins(options: { secret?: string } = {}): Promise<RemoteSubgraphs> {
  const secret = options.secret ?? TEST_SUBGRAPH_SIGNING_SECRET;
  const servers = new Map<string, SubgraphServer>();
  const received = new Map<string, ReceivedRequest[]>();
  const dir = await mkdtemp(join(tmpdir(), 'cc-remote-'));
  try {
    for (const plugin of fixturePlugins) {
      const server = await serveSubgraph(plugin, { secret });
      servers.set(plugin.name, server);
      const log: ReceivedRequest[] = [];
      received.set(plugin.name, log);
      // A second listener sees every request the subgraph serves; the body is re-read from the stream.
      server.server.prependListener('request', (req) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          const assertion = req.headers[ASSERTION_HEADER];
          log.push({
            headers: req.headers,
            raw,
            body: raw ? (JSON.parse(raw) as ReceivedRequest['body']) : { query: '' },
            claims: typeof assertion === 'string' ? decodeJwt<CallClaims>(assertion) : undefined,
          });
        });
      });
    }
    const source = fixture('rover.yaml');
    const doc = parseDocument(await readFile(source, 'utf8'));
    const subgraphs = doc.toJS() as {
      subgraphs: Record<string, { routing_url: string; schema: { file: string } }>;
    };
    for (const [name, subgraph] of Object.entries(subgraphs.subgraphs)) {
      doc.setIn(['subgraphs', name, 'schema', 'file'], resolve(dirname(source), subgraph.schema.file));
      const server = servers.get(name);
      if (server) doc.setIn(['subgraphs', name, 'routing_url'], server.url);
    }
    const roverConfig = join(dir, 'rover.yaml');
    await writeFile(roverConfig, doc.toString());
    return {
      roverConfig,
      coordinatorOptions: { roverConfig, remoteSubgraphs: ['*'], subgraphSigningSecret: secret },
      servers,
      requests: (subgraph) => received.get(subgraph) ?? [],
      async post(subgraph, body, headers = {}) {
        const res = await fetch(servers.get(subgraph)!.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body,
        });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      },
      async close() {
        await Promise.all([...servers.values()].map((s) => s.close()));
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await Promise.all([...servers.values()].map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
