import { z } from 'zod';
import { DomainError, ErrorCode } from './errors.js';

/**
 * Who calls: a learner, a staff member, or a Service with service credentials. The gateway builds it
 * from the caller's verified JWT; Actions receive it in their context and decide what it may do.
 */
export const principalSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('learner'),
    subject: z.string(),
    lmsUserId: z.number().int(),
    username: z.string(),
    email: z.string().optional(),
  }),
  z.object({
    kind: z.literal('staff'),
    subject: z.string(),
    lmsUserId: z.number().int().optional(),
    username: z.string(),
    email: z.string().optional(),
  }),
  z.object({ kind: z.literal('service'), subject: z.string(), service: z.string() }),
]);
export type Principal = z.infer<typeof principalSchema>;

/** The caller, or UNAUTHENTICATED. */
export function requirePrincipal(principal: Principal | undefined): Principal {
  if (!principal) throw new DomainError(ErrorCode.UNAUTHENTICATED, 'This Action needs a signed-in caller');
  return principal;
}

/** Staff or a Service; learners get FORBIDDEN. */
export function requireStaff(principal: Principal | undefined): Principal {
  const caller = requirePrincipal(principal);
  if (caller.kind === 'learner')
    throw new DomainError(ErrorCode.FORBIDDEN, 'This Action is for staff and Services only');
  return caller;
}

/** The learner themself, staff, or a Service; another learner gets FORBIDDEN. */
export function requireLearnerOrStaff(principal: Principal | undefined, lmsUserId: number): Principal {
  const caller = requirePrincipal(principal);
  if (caller.kind === 'learner' && caller.lmsUserId !== lmsUserId)
    throw new DomainError(ErrorCode.FORBIDDEN, 'A learner may act only on their own orders');
  return caller;
}
