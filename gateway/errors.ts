import { GraphQLError } from 'graphql';
import { domainCodeOf, type ErrorCode } from '@commerce-coordinator/plugin-sdk/errors';

// The public codes and the errors Plugins throw are the Plugin SDK's: the contract both sides share.
export {
  ConfigError,
  DomainError,
  domainCodeOf,
  ErrorCode,
  httpStatusOf,
  isErrorCode,
  isTransient,
  UnreachableCaseError,
} from '@commerce-coordinator/plugin-sdk/errors';

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

/** `error` with a public code, as Apollo Server gives its parse and validation errors over HTTP. */
export function withErrorCode(error: GraphQLError, code: ErrorCode): GraphQLError {
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: { ...error.extensions, code },
  });
}

/** A caller's value as a message quotes it: at most 100 characters of it. */
export const clipped = (value: string): string => (value.length > 100 ? `${value.slice(0, 100)}…` : value);
