import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { HeaderMap, type ApolloServer } from '@apollo/server';
import { domainCodeOf, ErrorCode, httpStatusOf, type DomainError } from '../errors.js';
import type { GatewayContext } from '../federation/context.js';
import type { OperationLimitsChecker } from '../federation/operation-limits.js';
import type { Logger } from '../log.js';
import { REQUEST_ID_HEADER, requestIdOf, type RequestObserver } from '../observability/access-log.js';
import { routeLabel } from '../observability/labels.js';
import {
  RETRY_AFTER_SECONDS,
  TOO_MANY_CONNECTIONS,
  connectionsCheckingInterval,
  limitConnections,
  resolveHttpLimits,
  type HttpLimits,
} from './connection-limits.js';
import { handleCors } from './cors.js';
import { answerMalformedRequest } from './malformed-requests.js';
import { compilePatterns } from './route-paths.js';

/** A REST route beside /graphql (health checks, webhooks). */
export type Route = (req: IncomingMessage, res: ServerResponse, body: Buffer) => Promise<void> | void;

export interface HttpServerOptions {
  apollo: ApolloServer<GatewayContext>;
  /**
   * Refuses a GraphQL document with more tokens than the operation limits allow, before it is parsed,
   * and one validation should not be made to work through, before Apollo Server validates it.
   */
  operationLimits?: Pick<OperationLimitsChecker, 'checkTokens' | 'checkSource'>;
  /**
   * Refuses a client's GraphQL request before Apollo parses and validates it, e.g. one without
   * credentials that needs a caller; undefined lets it through.
   */
  screen?: (
    req: IncomingMessage,
    query: string,
    operationName: string | undefined,
  ) => DomainError | undefined;
  /** Builds the gateway context of a GraphQL request. */
  context(req: IncomingMessage): Promise<GatewayContext>;
  /** Exact paths (e.g. `/healthz`) to handlers; a path with `:name` segments matches as route-paths.ts says. */
  routes: ReadonlyMap<string, Route>;
  /** While true, new requests get 503 SHUTTING_DOWN. */
  draining(): boolean;
  logger: Logger;
  /** Largest request body accepted. @default 1 MiB */
  maxBodyBytes?: number;
  /** Connection caps and socket timeouts; each defaults as `HttpLimits` documents. */
  limits?: Partial<HttpLimits>;
  /** Told of every request when it ends (the access log, the HTTP metrics). */
  observers?: readonly RequestObserver[];
  /** Origins whose pages may call the gateway with credentials (CORS); none: no CORS headers. */
  corsOrigins?: readonly string[];
}

/** Answered while the gateway drains, and on the connections kept for them when it is full. */
const HEALTH_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/health']);

export function sendJson(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
}

/**
 * A REST error, in the one shape every REST route answers with: `{ code, message, ...details }`, the
 * HTTP status from the code. (GraphQL requests answer `{ errors: [{ message, extensions: { code } }] }`.)
 */
export function sendError(
  res: ServerResponse,
  code: ErrorCode,
  message: string,
  details: Record<string, unknown> = {},
) {
  sendJson(res, httpStatusOf(code), { code, message, ...details });
}

/** A GraphQL-shaped error answer for a request refused before it reached the GraphQL pipeline. */
export function sendGraphQLError(res: ServerResponse, code: ErrorCode, message: string) {
  sendJson(res, httpStatusOf(code), { errors: [{ message, extensions: { code } }] });
}

/**
 * The Coordinator's HTTP server: GraphQL at /graphql through Apollo Server (Sandbox on GET in
 * development), and plain routes. Transport only — what runs is decided elsewhere. Its connections
 * are capped and timed (`HttpLimits`) so that idle or slow clients cannot exhaust its descriptors.
 */
export function createHttpServer(options: HttpServerOptions): Server {
  const maxBodyBytes = options.maxBodyBytes ?? 1 << 20;
  const limits = resolveHttpLimits(options.limits);
  const served = new Set([...options.routes.keys(), '/graphql', '/']);
  // A route with parameters never takes what the server serves itself (/graphql, the landing page).
  const patterns = compilePatterns(options.routes, served);
  const observers = options.observers ?? [];
  const corsOrigins = new Set(options.corsOrigins ?? []);
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: connectionsCheckingInterval(limits),
    },
    async (req, res) => {
      const requestId = requestIdOf(req.headers[REQUEST_ID_HEADER]);
      res.setHeader(REQUEST_ID_HEADER, requestId);
      if (observers.length) observeEnd(req, res, requestId, served, observers, options.logger, patterns);
      try {
        const url = requestUrl(req);
        // Node's parser takes any request target without spaces ("//[/", "http://%zz/"): not a routing failure.
        if (!url) return sendError(res, ErrorCode.BAD_REQUEST, 'The request target is not a valid URL');
        if (handleCors(req, res, corsOrigins)) return;
        const health = HEALTH_PATHS.has(url.pathname);
        if (budget.reserved(req.socket)) {
          // One answer per reserve connection, so its place is free again for the next probe.
          res.setHeader('connection', 'close');
          if (!health) {
            res.setHeader('retry-after', String(RETRY_AFTER_SECONDS));
            return refuse(res, url.pathname, ErrorCode.SERVICE_UNAVAILABLE, TOO_MANY_CONNECTIONS);
          }
        }
        if (options.draining() && !health) {
          res.setHeader('connection', 'close');
          return sendGraphQLError(res, ErrorCode.SHUTTING_DOWN, 'The gateway is shutting down');
        }
        const body = await readBody(req, maxBodyBytes);
        if (body === undefined) {
          return sendGraphQLError(
            res,
            ErrorCode.PAYLOAD_TOO_LARGE,
            `Request body over ${maxBodyBytes} bytes`,
          );
        }
        const route = options.routes.get(url.pathname) ?? patterns.find(url.pathname)?.value;
        if (route) return await route(req, res, body);
        if (url.pathname === '/graphql' || url.pathname === '/')
          return await graphql(options, req, res, url, body);
        sendError(res, ErrorCode.NOT_FOUND, `No route ${req.method} ${url.pathname}`);
      } catch (error) {
        const path = routedPath(req);
        options.logger.error({ err: error, requestId, path }, 'request failed');
        if (!res.headersSent) refuse(res, path, ErrorCode.INTERNAL_SERVER_ERROR, 'Internal server error');
        else res.end();
      }
    },
  );
  server.timeout = limits.socketTimeoutMs;
  server.on('clientError', (error: Error & { code?: string }, socket) =>
    answerMalformedRequest(error, socket, options.logger),
  );
  const budget = limitConnections(server, limits);
  return server;
}

/** Calls `observers` once the response is sent, or abandoned by the client (status 499). */
function observeEnd(
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
  served: ReadonlySet<string>,
  observers: readonly RequestObserver[],
  logger: Logger,
  patterns?: ReturnType<typeof compilePatterns>,
) {
  const started = performance.now();
  res.once('close', () => {
    const path = routedPath(req);
    const end = {
      requestId,
      method: req.method ?? 'GET',
      route: routeLabel(path, served, (p) => patterns?.find(p)?.pattern),
      path: path.slice(0, 256),
      status: res.writableFinished ? res.statusCode : 499,
      durationMs: performance.now() - started,
    };
    for (const observe of observers) {
      try {
        observe(end);
      } catch (err) {
        logger.error({ err, requestId }, 'request observer failed');
      }
    }
  });
}

/** The request's target as a URL; undefined when it is not one. */
function requestUrl(req: IncomingMessage): URL | undefined {
  try {
    return new URL(req.url ?? '/', 'http://localhost');
  } catch {
    return undefined;
  }
}

/** The path a request is routed by, without its query string. */
function routedPath(req: IncomingMessage): string {
  return requestUrl(req)?.pathname ?? (req.url ?? '/').split('?')[0]!;
}

/** A refusal in the shape of what was asked: a GraphQL error for /graphql, a REST error elsewhere. */
function refuse(res: ServerResponse, path: string, code: ErrorCode, message: string) {
  if (path === '/graphql' || path === '/') sendGraphQLError(res, code, message);
  else sendError(res, code, message);
}

async function graphql(
  options: HttpServerOptions,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  raw: Buffer,
) {
  const headers = new HeaderMap();
  for (const [key, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
  }
  let body: unknown = raw.length ? raw.toString('utf8') : undefined;
  if (raw.length && (headers.get('content-type') ?? '').includes('application/json')) {
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return sendGraphQLError(res, ErrorCode.BAD_REQUEST, 'The request body is not valid JSON');
    }
  }
  const refusal = refusedBeforeApollo(options, req, url, body);
  if (refusal) {
    // Its status is the code's (`http`, for Apollo Server's hooks, is not the client's to read).
    const { http: _http, ...extensions } = refusal.extensions;
    const code = domainCodeOf(refusal) ?? ErrorCode.BAD_REQUEST;
    return sendJson(res, httpStatusOf(code), { errors: [{ message: refusal.message, extensions }] });
  }
  const response = await options.apollo.executeHTTPGraphQLRequest({
    httpGraphQLRequest: { method: req.method ?? 'GET', headers, search: url.search, body },
    context: () => options.context(req),
  });
  // Answered already: the gateway stopped before this request's answer was ready (refuseUnanswered).
  if (res.headersSent) return;
  for (const [key, value] of response.headers) res.setHeader(key, value);
  res.statusCode = response.status ?? 200;
  if (response.body.kind === 'complete') return res.end(response.body.string);
  for await (const chunk of response.body.asyncIterator) res.write(chunk);
  res.end();
}

/**
 * Why a GraphQL request is refused before Apollo Server parses and validates it, if it is: too many
 * tokens (counted without parsing), the screen's refusal (no caller), or an operation validation
 * should not be made to work through.
 */
function refusedBeforeApollo(
  options: HttpServerOptions,
  req: IncomingMessage,
  url: URL,
  body: unknown,
): DomainError | undefined {
  const read = (field: 'query' | 'operationName') => {
    const value =
      req.method === 'GET'
        ? (url.searchParams.get(field) ?? undefined)
        : (body as Record<string, unknown> | null | undefined)?.[field];
    return typeof value === 'string' ? value : undefined;
  };
  const query = read('query');
  if (query === undefined) return undefined;
  const operationName = read('operationName');
  return (
    options.operationLimits?.checkTokens(query) ??
    options.screen?.(req, query, operationName) ??
    options.operationLimits?.checkSource(query, operationName)
  );
}

/**
 * Counts the requests `server` is answering, so a graceful stop can let them finish (a request may be
 * waiting on a flow it did not start, e.g. a duplicate of an idempotency key) before it closes the
 * connections under them.
 */
export function trackRequests(server: Server): {
  inFlight(): number;
  settled(signal: AbortSignal): Promise<void>;
  /**
   * Answers every request still unanswered with 503 SHUTTING_DOWN (and closes its connection after it),
   * so that closing the connections resets none; what its handler writes afterwards is dropped.
   */
  refuseUnanswered(): void;
} {
  const open = new Set<ServerResponse>();
  const waiters = new Set<() => void>();
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    open.add(res);
    res.once('close', () => {
      open.delete(res);
      if (open.size === 0) for (const wake of waiters) wake();
    });
  });
  return {
    inFlight: () => open.size,
    settled: (signal) =>
      new Promise<void>((resolve) => {
        if (open.size === 0 || signal.aborted) return resolve();
        const done = () => {
          waiters.delete(done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        waiters.add(done);
        signal.addEventListener('abort', done, { once: true });
      }),
    refuseUnanswered() {
      for (const res of open) {
        if (res.headersSent) continue;
        res.setHeader('connection', 'close');
        sendGraphQLError(res, ErrorCode.SHUTTING_DOWN, 'The gateway is shutting down: try again');
      }
    },
  };
}

/** The whole body, or undefined when it is larger than `limit`. */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
