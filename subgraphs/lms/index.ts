import {
  definePlugin,
  DomainError,
  ErrorCode,
  requireLearnerOrStaff,
  requirePrincipal,
  type ActionContext,
  type Plugin,
} from '@commerce-coordinator/plugin-sdk';
import {
  LmsClient,
  LmsRejectedError,
  LmsUnavailableError,
  type LmsAccount,
  type EnrollmentAttribute,
  type LmsEntitlement,
  type OrderEnrollment,
} from './client.js';
import { lmsConfig, lmsEventBusConfig, type Env } from './config.js';
import { startRefundConsumer } from './event-consumer.js';
import { userRetirementRoute } from './retirement-route.js';
import { refundRoute } from './refund-route.js';
import type { FulfillOrderInput, RevokeLineItemsInput } from '../../schema/contracts/fulfillment.js';

/**
 * The LMS (Open edX) Service Plugin: fulfils orders (enrollments, entitlements), revokes returned
 * items, deactivates sanctioned learners, adds enrollments to the `Order` entity, and consumes the
 * LMS's refund requests from its event bus.
 */

interface LineFulfillment {
  lineItemId: string;
  fulfilled: boolean;
  entitlementUuid: string | null;
  error: string | null;
}

const DEFAULT_MODE = 'verified';
/** The enrollment attributes' namespace, read back by the LMS's refund flow. */
const ORDER_NAMESPACE = 'order';
/**
 * The system the order comes from, as the reference names it in `order.source_system`: the order
 * management Service (commercetools), whose order id and line item id the other attributes give.
 */
const ORDER_SOURCE_SYSTEM = 'commercetools';
const CREDIT_MODE = 'credit';

/**
 * The enrollment attributes of a course line, as the reference writes them (lms/tasks.py): the LMS
 * keeps them with the enrollment, and its refund request names the order and line by them. A credit
 * line names its credit provider too, which the LMS requires of a credit enrollment.
 */
function enrollmentAttributes(
  input: FulfillOrderInput,
  line: FulfillOrderInput['lineItems'][number],
  mode: string,
): EnrollmentAttribute[] {
  return [
    { namespace: ORDER_NAMESPACE, name: 'order_number', value: input.orderNumber },
    { namespace: ORDER_NAMESPACE, name: 'order_id', value: input.orderId },
    { namespace: ORDER_NAMESPACE, name: 'line_item_id', value: line.lineItemId },
    ...(input.datePlaced
      ? [{ namespace: ORDER_NAMESPACE, name: 'date_placed', value: input.datePlaced }]
      : []),
    { namespace: ORDER_NAMESPACE, name: 'source_system', value: ORDER_SOURCE_SYSTEM },
    ...(mode === CREDIT_MODE && line.creditProvider
      ? [{ namespace: 'credit', name: 'provider_id', value: line.creditProvider }]
      : []),
  ];
}

const toEnrollment = (e: OrderEnrollment) => ({
  username: e.user,
  courseRunKey: e.course_id,
  mode: e.mode,
  isActive: e.is_active,
  lineItemId:
    e.enrollment_attributes.find((a) => a.namespace === ORDER_NAMESPACE && a.name === 'line_item_id')
      ?.value ?? null,
  createdAt: e.created,
});

const toLearner = (a: LmsAccount) => ({
  lmsUserId: a.id,
  username: a.username,
  email: a.email ?? null,
  name: a.name ?? null,
  isActive: a.is_active,
  dateJoined: a.date_joined ?? null,
});

/** For read-only Actions: the LMS's state as public error codes. */
async function reading<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof LmsUnavailableError)
      throw new DomainError(ErrorCode.SERVICE_UNAVAILABLE, `The LMS is unavailable: ${error.message}`);
    if (error instanceof LmsRejectedError)
      throw new DomainError(ErrorCode.BAD_USER_INPUT, error.message, { lmsStatus: error.status });
    throw error;
  }
}

export interface LmsPluginOptions {
  /** Where the configuration is read (lazily) from. @default process.env */
  env?: Env;
}

export function createLmsPlugin(options: LmsPluginOptions = {}): Plugin {
  const env = options.env ?? process.env;
  let client: LmsClient | undefined;
  // Created at first use, so that a missing variable fails the call that needs it, not the import.
  const lms = () => (client ??= new LmsClient(lmsConfig(env)));
  // Work per key (a learner's course UUID) in turn, in this process: see fulfillOrder.
  const queues = new Map<string, Promise<unknown>>();
  const oneAtATime = async <T>(key: string, work: () => Promise<T>): Promise<T> => {
    const run = (queues.get(key) ?? Promise.resolve()).then(work);
    const tail = run.catch(() => undefined);
    queues.set(key, tail);
    try {
      return await run;
    } finally {
      if (queues.get(key) === tail) queues.delete(key);
    }
  };

  return definePlugin({
    name: 'lms',
    schemaFile: new URL('./schema.graphql', import.meta.url),
    // Steps of the fulfillment and history flows and receivers of signals.
    access: {
      // A learner reads their own account (checked); the rest are flows' steps.
      Query: { learner: ['learner', 'staff', 'service'] },
      Mutation: {
        fulfillOrder: ['staff', 'service'],
        revokeLineItems: ['staff', 'service'],
        deactivateLearner: ['staff', 'service'],
      },
    },
    resolvers: {
      Order: {
        // One LMS call for every order of the subgraph request.
        __resolveReference: async (ref: { id: string }, ctx: ActionContext) => {
          requirePrincipal(ctx.principal);
          const enrollments = await ctx
            .loader<string, OrderEnrollment[]>('lms:enrollments-by-order', async (ids) => {
              const byOrder = await reading(lms().enrollmentsByOrder(ids));
              return ids.map((id) => byOrder.get(id) ?? []);
            })
            .load(ref.id);
          return { id: ref.id, enrollments: enrollments.map(toEnrollment) };
        },
      },
      Query: {
        learner: async (
          _: unknown,
          args: { username?: string | null; lmsUserId?: number | null },
          ctx: ActionContext,
        ) => {
          const caller = requirePrincipal(ctx.principal);
          const { username, lmsUserId } = args;
          if (
            (username === null || username === undefined) &&
            (lmsUserId === null || lmsUserId === undefined)
          )
            throw new DomainError(ErrorCode.BAD_USER_INPUT, 'Give a username or an lmsUserId');
          if (lmsUserId !== null && lmsUserId !== undefined) requireLearnerOrStaff(caller, lmsUserId);
          if (caller.kind === 'learner' && username && username !== caller.username)
            throw new DomainError(ErrorCode.FORBIDDEN, 'A learner may look up only their own account');
          const account = await reading(
            lms().findAccount(
              lmsUserId !== null && lmsUserId !== undefined ? { lmsUserId } : { username: username! },
            ),
          );
          if (!account || (username && account.username !== username)) return null;
          return toLearner(account);
        },
      },
      Mutation: {
        fulfillOrder: async (_: unknown, { input }: { input: FulfillOrderInput }) => {
          const fulfillments: LineFulfillment[] = [];
          // One line at a time: an LMS outage stops the step (it is retried whole, and every write
          // below is idempotent on the learner and course run / course).
          for (const line of input.lineItems) {
            const refused = (error: string) =>
              fulfillments.push({
                lineItemId: line.lineItemId,
                fulfilled: false,
                entitlementUuid: null,
                error,
              });
            try {
              if (line.kind === 'COURSE') {
                if (!line.courseRunKey) {
                  refused('A COURSE line needs a courseRunKey');
                  continue;
                }
                const mode = line.mode ?? DEFAULT_MODE;
                await lms().enroll({
                  username: input.username,
                  courseRunKey: line.courseRunKey,
                  mode,
                  isActive: true,
                  attributes: enrollmentAttributes(input, line, mode),
                });
                fulfillments.push({
                  lineItemId: line.lineItemId,
                  fulfilled: true,
                  entitlementUuid: null,
                  error: null,
                });
              } else {
                if (!line.bundleKey) {
                  refused('A BUNDLE line needs a bundleKey (the course UUID)');
                  continue;
                }
                const bundleKey = line.bundleKey;
                // The entitlements API creates a new entitlement on every POST: look for ours first.
                // Flows of one order never run at once (the Coordinator holds the order for a flow,
                // across processes); two orders of one learner for one course may, in this process:
                // the look-up and the grant are one critical section per learner and course.
                const entitlement = await oneAtATime(`${input.username}\u0000${bundleKey}`, async () => {
                  const sameCourse = (await lms().listEntitlements(input.username)).filter(
                    (e) => e.expired_at === null && e.course_uuid === bundleKey,
                  );
                  const existing =
                    sameCourse.find((e) => e.order_number === input.orderNumber) ?? sameCourse[0];
                  return (
                    existing ??
                    lms().createEntitlement({
                      username: input.username,
                      courseUuid: bundleKey,
                      mode: line.mode ?? DEFAULT_MODE,
                      orderNumber: input.orderNumber,
                    })
                  );
                });
                fulfillments.push({
                  lineItemId: line.lineItemId,
                  fulfilled: true,
                  entitlementUuid: entitlement.uuid,
                  error: null,
                });
              }
            } catch (error) {
              if (!(error instanceof LmsRejectedError)) throw error;
              refused(error.message);
            }
          }
          return { fulfillments };
        },

        revokeLineItems: async (_: unknown, { input }: { input: RevokeLineItemsInput }) => {
          let revoked = 0;
          const failures: Array<{ lineItemId: string; error: string }> = [];
          let entitlements: LmsEntitlement[] | undefined;
          for (const item of input.returnedItems) {
            try {
              if (item.kind === 'COURSE') {
                if (!item.courseRunKey)
                  throw new LmsRejectedError('A COURSE item needs a courseRunKey', 400, null);
                const enrollment = await lms().getEnrollment(input.username, item.courseRunKey);
                if (enrollment?.is_active)
                  await lms().enroll({
                    username: input.username,
                    courseRunKey: item.courseRunKey,
                    isActive: false,
                  });
              } else {
                let uuid = item.entitlementUuid ?? undefined;
                if (!uuid && item.bundleKey) {
                  entitlements ??= await lms().listEntitlements(input.username);
                  uuid = entitlements
                    .filter((e) => e.course_uuid === item.bundleKey && e.expired_at === null)
                    .at(-1)?.uuid;
                }
                // No entitlement to expire: the learner holds no access through this item.
                if (uuid) await lms().expireEntitlement(uuid);
              }
              revoked++;
            } catch (error) {
              if (!(error instanceof LmsRejectedError)) throw error;
              failures.push({ lineItemId: item.lineItemId, error: error.message });
            }
          }
          if (failures.length)
            throw new DomainError(
              ErrorCode.CONFLICT,
              `The LMS refused to revoke ${failures.length} of ${input.returnedItems.length} returned items: ` +
                failures.map((f) => `${f.lineItemId}: ${f.error}`).join('; '),
              { failures, revoked },
            );
          return { revoked };
        },

        deactivateLearner: async (_: unknown, { input }: { input: { username: string } }) => {
          try {
            await lms().deactivateAccount(input.username);
          } catch (error) {
            if (!(error instanceof LmsRejectedError)) throw error;
            if (error.status === 404)
              throw new DomainError(ErrorCode.NOT_FOUND, `The LMS has no account ${input.username}`);
            throw new DomainError(ErrorCode.BAD_USER_INPUT, error.message, { lmsStatus: error.status });
          }
          return { deactivated: true };
        },
      },
    },

    async start(runtime) {
      const config = lmsEventBusConfig(env);
      if (!config.LMS_EVENT_BUS_REDIS_URL) {
        runtime.logger.warn(
          'LMS_EVENT_BUS_REDIS_URL is not set: refund requests from the LMS event bus are not consumed',
        );
        return;
      }
      return startRefundConsumer(runtime, {
        ...config,
        LMS_EVENT_BUS_REDIS_URL: config.LMS_EVENT_BUS_REDIS_URL,
      });
    },
    // The REST paths the LMS calls: its refund_seat override (beside its event bus) and its retirement
    // pipeline.
    routes: [refundRoute, userRetirementRoute],
    config: [() => lmsConfig(env), () => lmsEventBusConfig(env)],
    health: { service: 'lms', check: () => lms().check() },
  });
}

export default createLmsPlugin();
