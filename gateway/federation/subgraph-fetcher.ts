import { STATUS_CODES } from 'node:http';
import type { RemoteGraphQLDataSource } from '@apollo/gateway';
import { Agent, request, type Dispatcher } from 'undici';

type Fetcher = RemoteGraphQLDataSource['fetcher'];
type FetcherResponse = Awaited<ReturnType<Fetcher>>;
type FetcherHeaders = FetcherResponse['headers'];

/** Response headers as the gateway reads them (`get`, iteration), over undici's plain object. */
class SubgraphHeaders implements FetcherHeaders {
  private readonly map = new Map<string, string>();

  constructor(raw: Record<string, string | string[] | undefined>) {
    for (const [name, value] of Object.entries(raw))
      if (value !== undefined) this.map.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  append(name: string, value: string) {
    const key = name.toLowerCase();
    const current = this.map.get(key);
    this.map.set(key, current === undefined ? value : `${current}, ${value}`);
  }
  delete(name: string) {
    this.map.delete(name.toLowerCase());
  }
  get(name: string) {
    return this.map.get(name.toLowerCase()) ?? null;
  }
  has(name: string) {
    return this.map.has(name.toLowerCase());
  }
  set(name: string, value: string) {
    this.map.set(name.toLowerCase(), value);
  }
  entries() {
    return this.map.entries();
  }
  keys() {
    return this.map.keys();
  }
  values() {
    return this.map.values();
  }
  [Symbol.iterator]() {
    return this.map.entries();
  }
}

/** A subgraph's whole response, read once: the gateway parses every body it gets anyway. */
class SubgraphResponse implements FetcherResponse {
  bodyUsed = false;
  readonly redirected = false;

  constructor(
    readonly url: string,
    readonly status: number,
    readonly headers: SubgraphHeaders,
    private readonly body: string,
  ) {}
  get ok() {
    return this.status >= 200 && this.status < 300;
  }
  get statusText() {
    return STATUS_CODES[this.status] ?? '';
  }
  async text() {
    this.bodyUsed = true;
    return this.body;
  }
  async json() {
    this.bodyUsed = true;
    return JSON.parse(this.body) as unknown;
  }
  async arrayBuffer() {
    this.bodyUsed = true;
    const bytes = Buffer.from(this.body);
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }
  clone() {
    return new SubgraphResponse(this.url, this.status, this.headers, this.body);
  }
}

/** What a subgraph fetch may take, and how big an answer may be. */
export interface SubgraphFetchLimits {
  /** Keep-alive connections per subgraph. @default 64 */
  connectionsPerOrigin?: number;
  /**
   * How long a subgraph may take to connect, to answer with its headers, and between two parts of its
   * body (undici's own defaults are 300 s each): a subgraph that hangs fails the fetch, which the
   * step's retries and the caller's error then handle. @default 30 s (connect: 10 s)
   */
  timeoutMs?: number;
  /** The largest answer read: a bigger one fails the fetch rather than the gateway's memory. @default 32 MiB */
  maxResponseBytes?: number;
}

/**
 * Subgraph fetches over undici's `request` on a keep-alive pool. Node's global fetch (the same undici
 * behind WHATWG Request/Response, web streams and an AbortSignal per call) took two fifths of the
 * gateway's CPU under the federation benchmark; a subgraph fetch needs none of that machinery.
 */
export function createSubgraphFetcher(options: SubgraphFetchLimits = {}): Fetcher {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const dispatcher = new Agent({
    connections: options.connectionsPerOrigin ?? 64,
    keepAliveTimeout: 30_000,
    connectTimeout: Math.min(timeoutMs, 10_000),
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    maxResponseSize: options.maxResponseBytes ?? 32 * 1024 * 1024,
  });
  return async (url, init = {}) => {
    let response: Dispatcher.ResponseData;
    let body: string;
    try {
      response = await request(url, {
        method: (init.method ?? 'POST') as 'POST',
        headers: init.headers,
        body: init.body,
        signal: init.signal,
        dispatcher,
      });
      body = await response.body.text();
    } catch (error) {
      throw transportError(url, error, init.signal);
    }
    return new SubgraphResponse(url, response.statusCode, new SubgraphHeaders(response.headers), body);
  };
}

/**
 * undici's errors name the socket address at most ("connect ECONNREFUSED 127.0.0.1:4001"): an
 * operator reading a step's failure needs the subgraph's URL, as @apollo/gateway's fetcher gives it.
 * The code (ECONNREFUSED, UND_ERR_…) stays on the error; an abort stays the caller's own reason.
 */
function transportError(url: string, error: unknown, signal: AbortSignal | null | undefined): unknown {
  if (signal?.aborted || !(error instanceof Error)) return error;
  const cause = error as Error & { code?: string };
  const wrapped = new Error(`request to ${url} failed, reason: ${cause.message}`, { cause });
  if (cause.code) Object.assign(wrapped, { code: cause.code });
  return wrapped;
}
