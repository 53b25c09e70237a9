import { z } from 'zod';
import {
  definePlugin,
  domainCodeOf,
  DomainError,
  ErrorCode,
  httpStatusOf,
  isErrorCode,
  requirePrincipal,
  type ActionContext,
  type RouteResponse,
} from '@commerce-coordinator/plugin-sdk';

/**
 * The mobile-apps Plugin: the REST surface the edX mobile apps call (the reference's iap app views)
 * and the step that checks what they send. POST /iap/create-order/ turns a store purchase into an
 * order by running the mobile order flow (connections.yaml) as the signed-in learner.
 */

export const MOBILE_ORDER_FILTER = 'mobile.order.create.requested.v1';
export const PAYMENT_PROCESSORS = ['ios_iap', 'android_iap'] as const;

const DECIMAL = /^\d{1,12}(\.\d{1,5})?$/;
const LIMITS = { courseRunKey: 255, purchaseToken: 4096, username: 150 } as const;

interface MobileOrderInput {
  courseRunKey: string;
  currencyCode: string;
  price: string;
  purchaseToken: string;
  paymentProcessor: string;
  username?: string | null;
}

const badInput = (message: string) => new DomainError(ErrorCode.BAD_USER_INPUT, message);

/** The request checked and normalised; BAD_USER_INPUT naming the first problem. */
export function checkMobileOrder(input: MobileOrderInput) {
  const courseRunKey = input.courseRunKey.trim();
  if (!courseRunKey) throw badInput('courseRunKey must not be empty');
  if (courseRunKey.length > LIMITS.courseRunKey)
    throw badInput(`courseRunKey is longer than ${LIMITS.courseRunKey} characters`);
  const currencyCode = input.currencyCode.trim().toUpperCase();
  if (!/^[A-Z]{3}$/.test(currencyCode))
    throw badInput(`currencyCode '${input.currencyCode}' is not ISO 4217`);
  const price = input.price.trim();
  if (!DECIMAL.test(price) || Number(price) <= 0)
    throw badInput(`price '${input.price}' is not a positive decimal with at most 5 decimals`);
  const purchaseToken = input.purchaseToken.trim();
  if (!purchaseToken) throw badInput('purchaseToken must not be empty');
  if (purchaseToken.length > LIMITS.purchaseToken || !/^[!-~]+$/.test(purchaseToken))
    throw badInput(
      `purchaseToken is not a store token (at most ${LIMITS.purchaseToken} printable characters)`,
    );
  if (!(PAYMENT_PROCESSORS as readonly string[]).includes(input.paymentProcessor))
    throw badInput(
      `paymentProcessor '${input.paymentProcessor}' is not supported: use ${PAYMENT_PROCESSORS.join(' or ')}`,
    );
  return { courseRunKey, currencyCode, price, purchaseToken, paymentProcessor: input.paymentProcessor };
}

/** The body the apps send, as the reference's serializer reads it. */
const createOrderBody = z.object({
  course_run_key: z.string(),
  currency_code: z.string(),
  price: z.union([z.string(), z.number().finite()]),
  purchase_token: z.string(),
  payment_processor: z.string(),
});

/** The reference's error body `{ error }`, with the one shape of every route's errors beside it. */
const answer = (status: number, code: string, error: string, flowId?: string): RouteResponse => ({
  status,
  body: { error, code, message: error, ...(flowId ? { flowId } : {}) },
});

/**
 * The HTTP status of a flow's error as the apps expect them (the reference's mapping): 400 bad input
 * or an invalid purchase, 402 no receipt, 409 a purchase already used, 500 anything else.
 */
function statusOf(code: string): number {
  if (!isErrorCode(code) || code === ErrorCode.STEP_FAILED || code === ErrorCode.INTERNAL_SERVER_ERROR)
    return 500;
  const status = httpStatusOf(code);
  return status >= 500 ? 500 : status;
}

export default definePlugin({
  name: 'mobile-apps',
  schemaFile: new URL('./schema.graphql', import.meta.url),
  // A step of the mobile order flow: learners run the flow, not this Action.
  access: { Query: { mobileOrderRequest: ['staff', 'service'] } },
  resolvers: {
    Query: {
      mobileOrderRequest: (_: unknown, { input }: { input: MobileOrderInput }, ctx: ActionContext) => {
        const caller = requirePrincipal(ctx.principal);
        if (caller.kind === 'service')
          throw new DomainError(
            ErrorCode.FORBIDDEN,
            'Mobile orders are made for learners, by them or by staff',
          );
        const asked = input.username?.trim() || undefined;
        if (caller.kind === 'learner' && asked !== undefined && asked !== caller.username)
          throw new DomainError(ErrorCode.FORBIDDEN, 'A learner may buy only for themself');
        if (caller.kind === 'staff' && asked === undefined)
          throw badInput('Staff must name the learner the order is for (username)');
        if (asked && asked.length > LIMITS.username) throw badInput('username is too long');
        const checked = checkMobileOrder(input);
        return {
          ...checked,
          username: asked ?? caller.username,
          lmsUserId: caller.kind === 'learner' ? caller.lmsUserId : null,
        };
      },
    },
  },
  routes: [
    {
      // The mobile apps, after the store's purchase sheet (the reference's MobileCreateOrderView).
      method: 'POST',
      path: '/iap/create-order/',
      async handle(request, runtime) {
        if (!request.principal)
          return answer(401, ErrorCode.UNAUTHENTICATED, 'Sign in to turn a purchase into an order');
        let json: unknown;
        try {
          json = JSON.parse(request.rawBody.toString('utf8'));
        } catch {
          return answer(400, ErrorCode.BAD_USER_INPUT, 'The body is not JSON');
        }
        const parsed = createOrderBody.safeParse(json);
        if (!parsed.success)
          return answer(
            400,
            ErrorCode.BAD_USER_INPUT,
            parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; '),
          );
        const body = parsed.data;
        const input = {
          courseRunKey: body.course_run_key,
          currencyCode: body.currency_code,
          price: String(body.price),
          purchaseToken: body.purchase_token,
          paymentProcessor: body.payment_processor,
        };
        try {
          checkMobileOrder(input);
        } catch (error) {
          return answer(400, ErrorCode.BAD_USER_INPUT, (error as Error).message);
        }
        try {
          const result = await runtime.runFilter(MOBILE_ORDER_FILTER, input, {
            principal: request.principal,
          });
          if (result.error)
            return answer(
              statusOf(result.error.code),
              result.error.code,
              result.error.message,
              result.flowId,
            );
          const { orderId, orderNumber } = result.output ?? {};
          if (typeof orderId !== 'string' || typeof orderNumber !== 'string')
            return answer(
              500,
              ErrorCode.INTERNAL_SERVER_ERROR,
              'The flow ended without an order',
              result.flowId,
            );
          return { status: 201, body: { order_id: orderId, order_number: orderNumber } };
        } catch (failure) {
          // "Not now" answers (a Service unavailable): the app may send the same purchase again.
          const code = domainCodeOf(failure);
          if (!code) throw failure;
          return answer(statusOf(code), code, (failure as Error).message);
        }
      },
    },
  ],
});
