import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteDataSource } from '../../gateway/federation/data-sources.js';
import { createSubgraphFetcher } from '../../gateway/federation/subgraph-fetcher.js';
import { createGatewayContext } from '../../gateway/federation/context.js';
import { createCallSigner } from '@commerce-coordinator/plugin-sdk/call-assertion';

const signer = createCallSigner('subgraph-fetcher-test-signing-secret-32+');

let server: Server;
let base: string;
const seen: Array<{ headers: Record<string, unknown>; body: unknown }> = [];

beforeAll(async () => {
  // A subgraph over real HTTP: answers by path, and records what the gateway sent.
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      seen.push({ headers: req.headers, body: JSON.parse(body) });
      if (req.url === '/ok') {
        res.writeHead(200, {
          'content-type': 'application/json; charset=utf-8',
          'cache-control': 'max-age=5',
        });
        res.end(JSON.stringify({ data: { hello: 'world' } }));
      } else if (req.url === '/graphql-error') {
        res.writeHead(200, { 'content-type': 'application/graphql-response+json' });
        res.end(JSON.stringify({ errors: [{ message: 'no such field', extensions: { code: 'X' } }] }));
      } else if (req.url === '/hangs') {
        // Accepts the request and never answers.
      } else if (req.url === '/huge') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ data: { hello: 'x'.repeat(64 * 1024) } }));
      } else if (req.url === '/unauthorized') {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: 'who are you' }));
      } else {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('bad gateway upstream');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function call(path: string, fetcher?: ReturnType<typeof createSubgraphFetcher>) {
  const source = new RemoteDataSource({ url: `${base}${path}`, name: 'test', signer, fetcher });
  const context = createGatewayContext({
    flagContext: { kind: 'user', key: 'anonymous', anonymous: true },
    principal: { kind: 'service', subject: 'test', service: 'test' },
  });
  return source.process({
    kind: 0 as never,
    request: {
      query: '{ hello }',
      variables: { a: 1 },
      http: { method: 'POST', url: `${base}${path}`, headers: new Headers() } as never,
    },
    context,
  } as never);
}

describe('subgraph fetches (undici request on a keep-alive pool)', () => {
  it('sends the operation as JSON with its signed assertion, and returns the parsed response', async () => {
    const response = await call('/ok');
    expect(response.data).toEqual({ hello: 'world' });
    const sent = seen.at(-1)!;
    expect(sent.body).toEqual({ query: '{ hello }', variables: { a: 1 } });
    expect(sent.headers['x-coordinator-assertion']).toEqual(expect.any(String));
    expect(sent.headers['x-coordinator-unsigned-call']).toBeUndefined();
    expect(response.http?.headers.get('Cache-Control')).toBe('max-age=5');
  });

  it("passes a subgraph's GraphQL errors through", async () => {
    const response = await call('/graphql-error');
    expect(response.errors).toEqual([{ message: 'no such field', extensions: { code: 'X' } }]);
  });

  it('turns an HTTP error into an error that carries the status and the body, JSON or text', async () => {
    // A subgraph's 401 refuses the gateway's own signed call: the gateway's fault, not the caller's.
    await expect(call('/unauthorized')).rejects.toMatchObject({
      message: expect.stringMatching(/^Subgraph test refused the gateway's signed call: check/),
      extensions: {
        code: 'INTERNAL_SERVER_ERROR',
        response: { status: 401, statusText: 'Unauthorized', body: { message: 'who are you' } },
      },
    });
    await expect(call('/down')).rejects.toMatchObject({
      message: '502: Bad Gateway',
      extensions: { response: { status: 502, body: 'bad gateway upstream', url: `${base}/down` } },
    });
  });

  it('rejects when the subgraph cannot be reached', async () => {
    const source = new RemoteDataSource({ url: 'http://127.0.0.1:9/graphql', name: 'test', signer });
    await expect(
      source.process({
        kind: 0 as never,
        request: {
          query: '{ hello }',
          http: { method: 'POST', url: 'http://127.0.0.1:9/graphql', headers: new Headers() } as never,
        },
        context: createGatewayContext({ flagContext: { kind: 'user', key: 'anonymous', anonymous: true } }),
      } as never),
    ).rejects.toThrow(/^request to http:\/\/127\.0\.0\.1:9\/graphql failed, reason: .*ECONNREFUSED/);
  });

  it('gives up on a subgraph that accepts the request and never answers', async () => {
    const started = performance.now();
    await expect(call('/hangs', createSubgraphFetcher({ timeoutMs: 300 }))).rejects.toThrow(
      /^request to http:\/\/127\.0\.0\.1:\d+\/hangs failed, reason: Headers Timeout Error/,
    );
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('refuses an answer bigger than it reads, without reading it all', async () => {
    await expect(call('/huge', createSubgraphFetcher({ maxResponseBytes: 16 * 1024 }))).rejects.toThrow(
      /^request to http:\/\/127\.0\.0\.1:\d+\/huge failed, reason: Response content exceeded max size/,
    );
    // Under the cap it is read as before.
    expect((await call('/huge', createSubgraphFetcher({ maxResponseBytes: 1024 * 1024 }))).data).toEqual({
      hello: 'x'.repeat(64 * 1024),
    });
  });
});
