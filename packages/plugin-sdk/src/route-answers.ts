import { ErrorCode, httpStatusOf, isErrorCode } from './errors.js';
import type { FilterResult, RouteRequest, RouteResponse } from './plugin.js';

/** A REST error in the one shape every route answers with: `{ code, message, ...details }`. */
export function routeError(
  code: ErrorCode,
  message: string,
  details: Record<string, unknown> = {},
): RouteResponse {
  return { status: httpStatusOf(code), body: { code, message, ...details } };
}

/**
 * A filter that did not complete, as the REST answer of why: the status of its error's code (a
 * refusal before it ran, bad input, a Service that failed), with the flow's id to look it up. Undefined
 * for a completed flow, whose answer is the route's own.
 */
export function unfinishedFilterAnswer(result: FilterResult): RouteResponse | undefined {
  if (result.status === 'COMPLETED') return undefined;
  const code = result.error?.code;
  return {
    status: isErrorCode(code) ? httpStatusOf(code) : 500,
    body: {
      code: code ?? ErrorCode.INTERNAL_SERVER_ERROR,
      message: result.error?.message ?? `The flow ended ${result.status}`,
      flowId: result.flowId,
    },
  };
}

/** The request's JSON body, or the 400 that says why it is not JSON. */
export function jsonBodyOf(request: RouteRequest): { json: unknown } | { refusal: RouteResponse } {
  try {
    return { json: JSON.parse(request.rawBody.toString('utf8')) };
  } catch {
    return { refusal: routeError(ErrorCode.BAD_USER_INPUT, 'The body is not JSON') };
  }
}
