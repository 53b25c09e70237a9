import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { Plugin } from '../../gateway/sdk/plugin.js';
import { serveSubgraph, type SubgraphServer } from '../../gateway/sdk/serve.js';
import ordersPlugin from '../fixtures/subgraphs/orders/index.js';
import paymentsV2Plugin from '../fixtures/subgraphs/payments-v2/index.js';
import paymentsPlugin from '../fixtures/subgraphs/payments/index.js';
import { fixture } from './coordinator.js';

export const fixturePlugins: readonly Plugin[] = [ordersPlugin, paymentsPlugin, paymentsV2Plugin];

export interface ReceivedRequest {
  headers: IncomingHttpHeaders;
  body: { query: string; variables?: Record<string, unknown> };
}

export interface RemoteSubgraphs {
  /** A copy of the fixture rover.yaml whose routing URLs point at the served plugins. */
  roverConfig: string;
  servers: ReadonlyMap<string, SubgraphServer>;
  /** What each subgraph server received over HTTP, in order. */
  requests(subgraph: string): ReceivedRequest[];
  close(): Promise<void>;
}

/**
 * Serves every fixture plugin with `serveSubgraph` on a free port and writes a rover.yaml (a copy of
 * test/fixtures/rover.yaml, schema paths made absolute) that routes each of them to its server, for a
 * Coordinator started with `remoteSubgraphs: ['*']`.
 */
export async function serveFixturePlugins(): Promise<RemoteSubgraphs> {
  const servers = new Map<string, SubgraphServer>();
  const received = new Map<string, ReceivedRequest[]>();
  const dir = await mkdtemp(join(tmpdir(), 'cc-remote-'));
  try {
    for (const plugin of fixturePlugins) {
      const server = await serveSubgraph(plugin);
      servers.set(plugin.name, server);
      const log: ReceivedRequest[] = [];
      received.set(plugin.name, log);
      // A second listener sees every request the subgraph serves; the body is re-read from the stream.
      server.server.prependListener('request', (req) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          log.push({
            headers: req.headers,
            body: text ? (JSON.parse(text) as ReceivedRequest['body']) : { query: '' },
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
      servers,
      requests: (subgraph) => received.get(subgraph) ?? [],
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
