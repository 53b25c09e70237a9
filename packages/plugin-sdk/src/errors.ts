import { GraphQLError } from 'graphql';

// What a Plugin and the gateway share about errors: the public codes, the HTTP status of each, and the
// two errors a Plugin throws (DomainError to a caller, ConfigError at start-up).

/**
 * The public error codes of the Coordinator. Clients match on these (`extensions.code` in GraphQL,
 * `code` in REST bodies); the classes below are internal and may change.
 */
export const ErrorCode = {
  /** The HTTP request is not a GraphQL request or REST call we can read (body, operation, method). */
  BAD_REQUEST: 'BAD_REQUEST',
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  GRAPHQL_PARSE_FAILED: 'GRAPHQL_PARSE_FAILED',
  GRAPHQL_VALIDATION_FAILED: 'GRAPHQL_VALIDATION_FAILED',
  /**
   * An automatic persisted query's hash the gateway does not know: send the query with it (Apollo's APQ
   * protocol, which clients match on this code).
   */
  PERSISTED_QUERY_NOT_FOUND: 'PERSISTED_QUERY_NOT_FOUND',
  /** The operation exceeds a configured limit (depth, aliases, tokens, cost, flows). */
  OPERATION_LIMIT_EXCEEDED: 'OPERATION_LIMIT_EXCEEDED',
  /** The request body is larger than the gateway accepts. */
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  /** The path exists but not for this HTTP method. */
  METHOD_NOT_ALLOWED: 'METHOD_NOT_ALLOWED',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  /** A webhook whose signature is missing, does not match, or is outside its time window. */
  INVALID_SIGNATURE: 'INVALID_SIGNATURE',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  /** The same idempotency key was sent with a different input. */
  IDEMPOTENCY_KEY_REUSED: 'IDEMPOTENCY_KEY_REUSED',
  /** A flow with this idempotency key is still running elsewhere; retry later with the same key. */
  FLOW_IN_PROGRESS: 'FLOW_IN_PROGRESS',
  /** Another flow is changing the same order and did not finish within the wait; retry later. */
  ORDER_BUSY: 'ORDER_BUSY',
  /** A step failed and the filter's policy is to fail the flow. */
  STEP_FAILED: 'STEP_FAILED',
  /**
   * Beside the data of a flow that continues past errors (`onError: continue`): a step failed and was
   * skipped, so the answer lacks its part (`flowId`, `stepIndex`, `action`); retry later for all of it.
   */
  PARTIAL_RESULT: 'PARTIAL_RESULT',
  /** An operator cancelled the flow while it ran (`cancelledBy`, `reason`); what it had done was undone. */
  FLOW_CANCELLED: 'FLOW_CANCELLED',
  /** Too many requests of this kind at once; retry after the time the response says. */
  TOO_MANY_REQUESTS: 'TOO_MANY_REQUESTS',
  /** A dependency (the database, a Service) cannot be reached now; retry later. */
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
  /**
   * The store (App Store, Google Play) holds no completed purchase for what was asked: none made, not
   * finished, cancelled or refunded. Nothing to sell against it until the buyer pays.
   */
  PAYMENT_REQUIRED: 'PAYMENT_REQUIRED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const isErrorCode = (value: unknown): value is ErrorCode =>
  typeof value === 'string' && Object.values<string>(ErrorCode).includes(value);

/**
 * Codes that say "not now" rather than "no": the same request may succeed later (a Service retries a
 * webhook or an event answered with one of these; nothing was done).
 */
export function isTransient(code: ErrorCode | undefined): boolean {
  return (
    code === ErrorCode.ORDER_BUSY ||
    code === ErrorCode.FLOW_IN_PROGRESS ||
    code === ErrorCode.TOO_MANY_REQUESTS ||
    code === ErrorCode.SERVICE_UNAVAILABLE ||
    code === ErrorCode.SHUTTING_DOWN
  );
}

/** The HTTP status of a REST answer (or a GraphQL request refused as a whole) with this code. */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case ErrorCode.BAD_REQUEST:
    case ErrorCode.BAD_USER_INPUT:
    case ErrorCode.GRAPHQL_PARSE_FAILED:
    case ErrorCode.GRAPHQL_VALIDATION_FAILED:
    case ErrorCode.OPERATION_LIMIT_EXCEEDED:
    case ErrorCode.IDEMPOTENCY_KEY_REUSED:
    case ErrorCode.STEP_FAILED:
      return 400;
    case ErrorCode.UNAUTHENTICATED:
      return 401;
    case ErrorCode.PAYMENT_REQUIRED:
      return 402;
    case ErrorCode.INVALID_SIGNATURE:
    case ErrorCode.FORBIDDEN:
      return 403;
    case ErrorCode.NOT_FOUND:
    case ErrorCode.PERSISTED_QUERY_NOT_FOUND:
      return 404;
    case ErrorCode.METHOD_NOT_ALLOWED:
      return 405;
    case ErrorCode.CONFLICT:
    case ErrorCode.FLOW_CANCELLED:
    case ErrorCode.FLOW_IN_PROGRESS:
    case ErrorCode.ORDER_BUSY:
      return 409;
    case ErrorCode.PAYLOAD_TOO_LARGE:
      return 413;
    case ErrorCode.TOO_MANY_REQUESTS:
      return 429;
    case ErrorCode.SERVICE_UNAVAILABLE:
    case ErrorCode.PARTIAL_RESULT:
    case ErrorCode.SHUTTING_DOWN:
      return 503;
    case ErrorCode.INTERNAL_SERVER_ERROR:
      return 500;
    default:
      throw new UnreachableCaseError(code);
  }
}

// `instanceof` by a registered symbol rather than by class identity: a side-loaded Plugin brings its own
// copy of this package, and the gateway must still recognise the errors it throws (and vice versa).
const CONFIG_ERROR = Symbol.for('@commerce-coordinator/plugin-sdk.ConfigError');
const DOMAIN_ERROR = Symbol.for('@commerce-coordinator/plugin-sdk.DomainError');
const isBranded = (value: unknown, brand: symbol): boolean =>
  typeof value === 'object' && value !== null && brand in value;

/**
 * A configuration or start-up problem: the process must not start. `file` and `entry` say where, the
 * message says what and, where it can, how to fix it.
 */
export class ConfigError extends Error {
  static override [Symbol.hasInstance](value: unknown): boolean {
    return isBranded(value, CONFIG_ERROR);
  }
  readonly [CONFIG_ERROR] = true;
  override readonly name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(`${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** A domain error raised on purpose: it always reaches the caller with its code. */
export class DomainError extends GraphQLError {
  static override [Symbol.hasInstance](value: unknown): boolean {
    return isBranded(value, DOMAIN_ERROR);
  }
  readonly [DOMAIN_ERROR] = true;
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message, { extensions: { code, ...details } });
  }
}

/** True for GraphQL errors that carry one of our public codes, by name so it works across package copies. */
export function domainCodeOf(error: unknown): ErrorCode | undefined {
  if (!error || typeof error !== 'object') return undefined;
  const code = (error as { extensions?: { code?: unknown } }).extensions?.code;
  return isErrorCode(code) && code !== ErrorCode.INTERNAL_SERVER_ERROR ? code : undefined;
}

export class UnreachableCaseError extends Error {
  constructor(value: never) {
    super(`Unreachable case: ${JSON.stringify(value)}`);
  }
}
