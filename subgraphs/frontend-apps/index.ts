import {
  definePlugin,
  DomainError,
  ErrorCode,
  httpStatusOf,
  isErrorCode,
  requirePrincipal,
  type FilterResult,
  type RouteResponse,
} from '@commerce-coordinator/plugin-sdk';
import { frontendAppsConfig } from './config.js';
import { HISTORY_CUTOFF_DAYS, mergeHistory } from './history.js';
import { orderHistoryRoute } from './history-route.js';
import { pricingRoutes } from './pricing-routes.js';

/** Transition-to-Coordinator flags, evaluated per learner (percentage rollouts target `user`). */
export const Flags = {
  history: 'transition.order-history.coordinator',
  checkout: 'transition.checkout.coordinator',
} as const;

const LEGACY_ORDER_NUMBER = /EDX-[0-9]{1,6}/;
const DAY_MS = 86_400_000;

type Input<T> = { input: T };

/** A flow's answer as an HTTP redirect: 303 to the URL it found, or the status of why it did not. */
function redirectFrom(result: FilterResult, cacheSeconds?: number): RouteResponse {
  const url = result.output?.url;
  if (result.error) {
    const { code } = result.error;
    const status = isErrorCode(code) ? httpStatusOf(code) : 400;
    return {
      status,
      body: { code: result.error.code, message: result.error.message, flowId: result.flowId },
    };
  }
  if (typeof url !== 'string')
    return {
      status: 404,
      body: { code: 'NOT_FOUND', message: 'Nothing to redirect to', flowId: result.flowId },
    };
  return {
    status: 303,
    headers: { location: url, ...(cacheSeconds ? { 'cache-control': `max-age=${cacheSeconds}` } : {}) },
  };
}

/**
 * The frontend-apps Plugin: the Actions behind the order history page, receipt links and the payment
 * page (the reference's frontend_app_ecommerce and payment redirect), and the REST routes the frontends
 * and the LMS call.
 */
export default definePlugin({
  name: 'frontend-apps',
  schemaFile: new URL('./schema.graphql', import.meta.url),
  // Steps of the history, receipt and checkout flows: learners run those flows, not these Actions.
  access: {
    Query: {
      orderHistoryRequest: ['staff', 'service'],
      mergeOrderHistory: ['staff', 'service'],
      receiptRequest: ['staff', 'service'],
      receiptFound: ['staff', 'service'],
      paymentPage: ['staff', 'service'],
    },
  },
  resolvers: {
    Query: {
      orderHistoryRequest: async (_: unknown, { input }: Input<{ username?: string | null }>, ctx) => {
        const caller = requirePrincipal(ctx.principal);
        if (caller.kind === 'service')
          throw new DomainError(ErrorCode.FORBIDDEN, 'Order history is for learners and staff');
        const asked = input.username ?? undefined;
        if (caller.kind === 'learner' && asked !== undefined && asked !== caller.username)
          throw new DomainError(ErrorCode.FORBIDDEN, 'A learner may see only their own order history');
        if (caller.kind === 'staff' && asked === undefined && caller.lmsUserId === undefined)
          throw new DomainError(ErrorCode.BAD_USER_INPUT, 'Staff must name the learner (username)');
        const self = asked === undefined || asked === caller.username;
        return {
          username: asked ?? caller.username,
          lmsUserId: self ? (caller.lmsUserId ?? null) : null,
          since: new Date(Date.now() - HISTORY_CUTOFF_DAYS * DAY_MS).toISOString(),
          coordinatorHistory: await ctx.variation(Flags.history, false),
        };
      },
      mergeOrderHistory: (
        _: unknown,
        {
          input,
        }: Input<{
          orders?: Parameters<typeof mergeHistory>[0] | null;
          legacyOrders?: Parameters<typeof mergeHistory>[1] | null;
          since: string;
        }>,
      ) => {
        const history = mergeHistory(input.orders ?? [], input.legacyOrders ?? [], new Date(input.since));
        return { history, count: history.length };
      },
      // The order number says which system holds the order, as in the reference; no flag is needed.
      receiptRequest: (_: unknown, { input }: Input<{ orderNumber: string }>, ctx) => {
        requirePrincipal(ctx.principal);
        const orderNumber = input.orderNumber.trim();
        if (!orderNumber) throw new DomainError(ErrorCode.BAD_USER_INPUT, 'orderNumber must not be empty');
        return { orderNumber, legacyOrder: LEGACY_ORDER_NUMBER.test(orderNumber) };
      },
      receiptFound: (_: unknown, { input }: Input<{ orderNumber: string; url?: string | null }>) => {
        if (!input.url)
          throw new DomainError(
            ErrorCode.NOT_FOUND,
            `Order ${input.orderNumber} has no successful payment to show a receipt for`,
          );
        return { url: input.url };
      },
      paymentPage: async (_: unknown, { input }: Input<{ query: string }>, ctx) => {
        const caller = requirePrincipal(ctx.principal);
        if (caller.kind === 'service') throw new DomainError(ErrorCode.FORBIDDEN, 'Checkout is for learners');
        const config = frontendAppsConfig();
        const coordinator = await ctx.variation(Flags.checkout, false);
        const base = new URL(coordinator ? config.COMMERCE_FRONTEND_URL : config.LEGACY_BASKET_URL);
        // Every parameter the LMS sent (skus, utm_*, dwft_*, …) reaches the checkout byte for byte.
        const query = input.query.replace(/^\?/, '');
        if (/[\s#]/.test(query))
          throw new DomainError(
            ErrorCode.BAD_USER_INPUT,
            'query must be a URL query string (no spaces or #)',
          );
        const url = query ? `${base.toString()}${base.search ? '&' : '?'}${query}` : base.toString();
        return { url, frontend: coordinator ? 'commerce-frontend' : 'legacy-ecommerce' };
      },
    },
  },
  routes: [
    orderHistoryRoute,
    {
      // The receipt link of the order history page and of emails (the reference's order_receipt view).
      method: 'GET',
      path: '/orders/unified/order_receipt/',
      async handle(request, runtime) {
        if (!request.principal)
          return { status: 401, body: { code: 'UNAUTHENTICATED', message: 'Sign in to see a receipt' } };
        const orderNumber = request.query.get('order_number');
        if (!orderNumber)
          return { status: 400, body: { code: 'BAD_USER_INPUT', message: 'order_number is required' } };
        const result = await runtime.runFilter(
          'order.receipt.requested.v1',
          { orderNumber },
          { principal: request.principal },
        );
        // Receipts do not move: let the browser keep the redirect for a month, as the reference did. The
        // gateway marks it private (plugin-routes.ts): the receipt URL is a link to the learner's payment.
        return redirectFrom(result, 2_591_000);
      },
    },
    {
      // The LMS's "Upgrade" / "Buy" button (the reference's payment_page_redirect view).
      method: 'GET',
      path: '/lms/payment_page_redirect/',
      async handle(request, runtime) {
        if (!request.principal)
          return { status: 401, body: { code: 'UNAUTHENTICATED', message: 'Sign in to check out' } };
        const query = request.rawQuery;
        const result = await runtime.runFilter(
          'checkout.payment-page.requested.v1',
          { query },
          { principal: request.principal },
        );
        return redirectFrom(result);
      },
    },
    // Discount code info, first-time discount, program price, credit checkout.
    ...pricingRoutes,
  ],
  config: [frontendAppsConfig],
});
