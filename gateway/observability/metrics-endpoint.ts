import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode, domainCodeOf } from '../errors.js';
import { sendError, type Route } from '../http/server.js';
import type { Logger } from '../log.js';
import type { Principal } from '@commerce-coordinator/plugin-sdk';
import type { CoordinatorMetrics } from './metrics.js';

export const METRICS_PATH = '/metrics';

/** Answers a scrape: GET or HEAD only. */
async function serveScrape(req: IncomingMessage, res: ServerResponse, metrics: CoordinatorMetrics) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return sendError(res, ErrorCode.METHOD_NOT_ALLOWED, `${req.method} ${METRICS_PATH} is not served`);
  }
  const text = await metrics.scrape();
  res.writeHead(200, { 'content-type': metrics.contentType });
  res.end(req.method === 'HEAD' ? undefined : text);
}

/**
 * /metrics on the gateway's own port: for staff and Services only, by bearer token, once callers are
 * verified (`guarded`); a Coordinator without verification keys serves its records openly, and this too.
 */
export function metricsRoute(
  metrics: CoordinatorMetrics,
  access: {
    guarded: boolean;
    authenticate(authorization: string | undefined): Promise<Principal | undefined>;
  },
): Route {
  return async (req, res) => {
    if (access.guarded) {
      let principal: Principal | undefined;
      try {
        principal = await access.authenticate(req.headers.authorization);
      } catch (error) {
        const code = domainCodeOf(error) ?? ErrorCode.UNAUTHENTICATED;
        res.setHeader('www-authenticate', 'Bearer');
        return sendError(res, code, (error as Error).message);
      }
      if (!principal) {
        res.setHeader('www-authenticate', 'Bearer');
        return sendError(
          res,
          ErrorCode.UNAUTHENTICATED,
          'The metrics need a bearer token of staff or a Service',
        );
      }
      if (principal.kind === 'learner')
        return sendError(
          res,
          ErrorCode.FORBIDDEN,
          'The metrics are for staff and Services only, not learners',
        );
    }
    return serveScrape(req, res, metrics);
  };
}

export interface MetricsServer {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * /metrics alone, unauthenticated, on a port of its own (METRICS_PORT): for a network only Prometheus
 * reaches. Every other path is 404 NOT_FOUND.
 */
export async function startMetricsServer(options: {
  metrics: CoordinatorMetrics;
  port: number;
  host: string;
  logger: Logger;
}): Promise<MetricsServer> {
  const server: Server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const answer =
      path === METRICS_PATH
        ? serveScrape(req, res, options.metrics)
        : Promise.resolve(sendError(res, ErrorCode.NOT_FOUND, `No route ${req.method} ${path}`));
    answer.catch((err: unknown) => {
      options.logger.error({ err }, 'metrics scrape failed');
      if (!res.headersSent) sendError(res, ErrorCode.INTERNAL_SERVER_ERROR, 'Internal server error');
      else res.end();
    });
  });
  // Scrapes are short; an idle scraper connection must not hold the stop.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(new Error(`Cannot listen on ${options.host}:${options.port} for metrics: ${error.message}`)),
    );
    server.listen(options.port, options.host, resolve);
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}${METRICS_PATH}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
