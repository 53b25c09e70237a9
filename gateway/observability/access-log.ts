import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.js';

/** The header a request id is taken from and returned in. */
export const REQUEST_ID_HEADER = 'x-request-id';
/** Longest request id accepted from a client; a longer one is replaced. */
export const MAX_REQUEST_ID_LENGTH = 128;
/** What a load balancer's or client's id is made of (UUIDs, hex, base64): nothing a log line must escape. */
const REQUEST_ID = new RegExp(`^[A-Za-z0-9._:+/=-]{1,${MAX_REQUEST_ID_LENGTH}}$`);

/**
 * The request's id: the client's `x-request-id` when it is one value of at most 128 characters of
 * letters, digits and `._:+/=-`, so a load balancer's id follows the request through; otherwise a new
 * UUID (a missing, repeated, oversized or odd id is never echoed into logs or headers).
 */
export function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
}

/** One answered (or abandoned) HTTP request, as observers see it when it ends. */
export interface RequestEnd {
  readonly requestId: string;
  readonly method: string;
  /** The route's path as served (`/graphql`, `/stripe/webhook/`, …) or `(unmatched)`: bounded. */
  readonly route: string;
  /** The path asked for, without its query string (which may carry personal data), at most 256 characters. */
  readonly path: string;
  /** The status sent; 499 when the client went away before the answer was complete. */
  readonly status: number;
  readonly durationMs: number;
}

/** Observes every request when it ends; must not throw (a throw is logged and ignored). */
export type RequestObserver = (end: RequestEnd) => void;

/** One log line per HTTP request: method, route, path, status, duration and request id. */
export function accessLog(logger: Logger): RequestObserver {
  return (end) => {
    const line = {
      requestId: end.requestId,
      method: end.method,
      route: end.route,
      path: end.path,
      status: end.status,
      durationMs: Math.round(end.durationMs * 10) / 10,
    };
    if (end.status >= 500) logger.warn(line, 'request');
    else logger.info(line, 'request');
  };
}
