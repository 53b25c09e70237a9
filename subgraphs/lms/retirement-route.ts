import { z } from 'zod';
import {
  ErrorCode,
  jsonBodyOf,
  routeError,
  unfinishedFilterAnswer,
  type Route,
} from '@commerce-coordinator/plugin-sdk';

const retirementSchema = z.object({ edx_lms_user_id: z.number().int().positive() }).strict();

/**
 * The LMS's retirement pipeline step as it calls the reference system (POST /lms/user_retirement/
 * `{ edx_lms_user_id }`): the user retirement flow, answered 204 whether a customer was found or not.
 */
export const userRetirementRoute: Route = {
  method: 'POST',
  path: '/lms/user_retirement/',
  async handle(request, runtime) {
    if (!request.principal)
      return routeError(
        ErrorCode.UNAUTHENTICATED,
        'This endpoint needs the bearer JWT of a Service or staff',
      );
    const body = jsonBodyOf(request);
    if ('refusal' in body) return body.refusal;
    const parsed = retirementSchema.safeParse(body.json);
    if (!parsed.success)
      return routeError(
        ErrorCode.BAD_USER_INPUT,
        'Invalid input provided: edx_lms_user_id must be a positive integer',
      );
    const result = await runtime.runFilter(
      'user.retirement.requested.v1',
      { lmsUserId: parsed.data.edx_lms_user_id },
      { principal: request.principal },
    );
    return unfinishedFilterAnswer(result) ?? { status: 204 };
  },
};
