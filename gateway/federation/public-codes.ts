import type { GraphQLError, GraphQLFormattedError } from 'graphql';
import { domainCodeOf, ErrorCode, isErrorCode } from '../errors.js';

/** Apollo Server's codes that the public codes name otherwise. */
const APOLLO_CODES: Readonly<Record<string, ErrorCode>> = {
  // No operation to run in the document (an unknown operationName, several operations and none named).
  OPERATION_RESOLUTION_FAILURE: ErrorCode.BAD_REQUEST,
};

/** Every error gets a code, Apollo's own ones as the public codes say them. */
export function formatGatewayError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
  return { ...formatted, extensions: { ...formatted.extensions, code: publicCodeOf(formatted, error) } };
}

/**
 * Whether a client reads `error` with a public code other than INTERNAL_SERVER_ERROR: a mistake of its
 * own, answered as such (what Apollo Server refuses keeps its own code until formatted, the public one
 * on its original error).
 */
export function answeredWithCode(error: GraphQLError | Error): boolean {
  const { extensions, originalError } = error as Partial<GraphQLError>;
  if (domainCodeOf(originalError)) return true;
  return publicCodeOf({ message: error.message, extensions }, error) !== ErrorCode.INTERNAL_SERVER_ERROR;
}

/**
 * Every error a client reads carries one of the public codes: a library's own code is mapped to one, an
 * error Apollo Server refuses a request with but gives no code (a persisted query's hash that does not
 * match its query) is BAD_REQUEST, and anything else — @apollo/gateway's DOWNSTREAM_SERVICE_ERROR for a
 * Plugin's error without a code, or no code at all — is INTERNAL_SERVER_ERROR.
 */
function publicCodeOf(formatted: GraphQLFormattedError, error: unknown): ErrorCode {
  const code = formatted.extensions?.code;
  // Apollo Server fills in INTERNAL_SERVER_ERROR for an error without a code: the original says.
  const original = (error as { extensions?: { code?: unknown; http?: { status?: number } } } | undefined)
    ?.extensions;
  const status = original?.http?.status;
  if (original?.code === undefined && status !== undefined && status >= 400 && status < 500)
    return ErrorCode.BAD_REQUEST;
  if (isErrorCode(code)) return code;
  if (typeof code === 'string' && APOLLO_CODES[code]) return APOLLO_CODES[code];
  return ErrorCode.INTERNAL_SERVER_ERROR;
}
