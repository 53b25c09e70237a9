import { DomainError, ErrorCode } from '../errors.js';

/** Node's socket errors when a server cannot be reached or went away. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
]);
/** Prisma's codes for a database it cannot reach, time out on, or lost. */
const PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024']);
/** What Prisma's driver adapter says when the connection, not the query, failed. */
const ADAPTER_KINDS = new Set([
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout',
  'TooManyConnections',
]);
/**
 * SQLSTATEs of connection exceptions (class 08), admin/crash shutdowns, a full server, and a statement
 * cancelled (57014: past `statement_timeout`, or by an operator), which is tried again later as well.
 */
const SQLSTATE = /^(08...|57P0[1-3]|53300|57014)$/;
/** pg's and pg-pool's own timeouts (no code) among them: no answer to a query, no connection in time. */
const MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Query read timeout|canceling statement due to statement timeout|Can't reach database server|Connection refused/i;

/**
 * True when `error` says the database could not be reached (down, restarting, unreachable, out of
 * connections), as opposed to a statement it refused: the first is a transient outage, answered
 * SERVICE_UNAVAILABLE; the second is a bug or bad input.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && typeof e === 'object' && depth < 4; depth++) {
    const { code, message, meta, cause } = e as {
      code?: unknown;
      message?: unknown;
      meta?: { driverAdapterError?: { cause?: { kind?: unknown; originalCode?: unknown } } };
      cause?: unknown;
    };
    if (typeof code === 'string' && (SOCKET_CODES.has(code) || PRISMA_CODES.has(code) || SQLSTATE.test(code)))
      return true;
    const { kind, originalCode } = meta?.driverAdapterError?.cause ?? {};
    if (typeof kind === 'string' && ADAPTER_KINDS.has(kind)) return true;
    // The server's SQLSTATE, as Prisma's adapter keeps it for a statement that failed.
    if (typeof originalCode === 'string' && SQLSTATE.test(originalCode)) return true;
    if (typeof message === 'string' && MESSAGES.test(message)) return true;
    e = cause;
  }
  return false;
}

/** The error callers see while the database is unavailable: the same code everywhere, HTTP 503. */
export function databaseUnavailable(cause: unknown): DomainError {
  const error = new DomainError(
    ErrorCode.SERVICE_UNAVAILABLE,
    'The Coordinator cannot reach its database right now; retry later',
  );
  // The detail stays in the log and the cause chain, never in the answer.
  (error as { cause?: unknown }).cause = cause;
  return error;
}

/** Runs a database call, turning an outage into SERVICE_UNAVAILABLE; other errors pass unchanged. */
export async function whileAvailable<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isDatabaseUnavailable(error)) throw databaseUnavailable(error);
    throw error;
  }
}
