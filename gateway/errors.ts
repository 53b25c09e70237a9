import { GraphQLError } from 'graphql';

/**
 * The public error codes of the Coordinator. Clients match on these (`extensions.code` in GraphQL,
 * `code` in REST bodies); the classes below are internal and may change.
 */
export const ErrorCode = {
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  GRAPHQL_VALIDATION_FAILED: 'GRAPHQL_VALIDATION_FAILED',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  /** The same idempotency key was sent with a different input. */
  IDEMPOTENCY_KEY_REUSED: 'IDEMPOTENCY_KEY_REUSED',
  /** A flow with this idempotency key is still running elsewhere; retry later with the same key. */
  FLOW_IN_PROGRESS: 'FLOW_IN_PROGRESS',
  /** A step failed and the filter's policy is to fail the flow. */
  STEP_FAILED: 'STEP_FAILED',
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const isErrorCode = (value: unknown): value is ErrorCode =>
  typeof value === 'string' && Object.values<string>(ErrorCode).includes(value);

/**
 * A configuration or start-up problem: the process must not start. `file` and `entry` say where, the
 * message says what and, where it can, how to fix it.
 */
export class ConfigError extends Error {
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

/**
 * A failure as recorded on a flow or step: data, not an exception, so it survives the database and
 * is rebuilt on read.
 */
export interface Failure {
  /** The public code when the failure is a domain error, otherwise the error's class name. */
  type: string;
  message: string;
  /** A domain failure is never retried. */
  nonRetryable: boolean;
  details?: Record<string, unknown>;
}

export function toFailure(error: unknown): Failure {
  const code = domainCodeOf(error);
  if (code) {
    const { code: _code, ...details } = (error as GraphQLError).extensions ?? {};
    return {
      type: code,
      message: (error as Error).message,
      nonRetryable: true,
      ...(Object.keys(details).length ? { details } : {}),
    };
  }
  if (error instanceof Error)
    return { type: error.name || 'Error', message: error.message, nonRetryable: false };
  return { type: 'Error', message: String(error), nonRetryable: false };
}

export class UnreachableCaseError extends Error {
  constructor(value: never) {
    super(`Unreachable case: ${JSON.stringify(value)}`);
  }
}
