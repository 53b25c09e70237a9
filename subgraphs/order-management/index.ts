import { definePlugin, DomainError, ErrorCode, type ActionContext } from '@commerce-coordinator/plugin-sdk';
import {
  anonymizeCustomer,
  completeFulfillment,
  createReturn,
  failFulfillment,
  markReturnNotRefunded,
  recordRefundTransaction,
  requireOrderAccess,
  startFulfillment,
} from './actions.js';
import { orderManagementClient } from './client.js';
import { recordMobileRefund, type MobileRefundInput } from './mobile-refunds.js';
import { readOrderManagementConfig, readRetirementSalt } from './config.js';
import { orderView, pspOf, successfulPayment, type OrderView } from './model.js';
import { checkOrderKey, orderKeyProblem } from './order-keys.js';
import {
  attachMobilePayment,
  createMobileCart,
  deleteMobileCart,
  ensureMobileCustomer,
  nextOrderNumber,
  placeMobileOrder,
  replaceActiveCart,
} from './mobile.js';
import { fulfillRoute, returnedRoute, sanctionedRoute } from './routes.js';
import { settleReturn } from './returns.js';
import { refundLines } from './refund-lines.js';
import {
  creditVariant,
  discountCodeApplicability,
  firstTimeDiscountEligible,
  programPriceInfo,
} from './pricing.js';

/**
 * The order-management Plugin: wraps the order management Service (commercetools). It owns the
 * federated `Order` entity and the Actions on orders of the refund, fulfillment and retirement flows.
 */

/**
 * The request's orders by id: every load of one request is one Service call. An id no order can have
 * (over the bound) is refused on its own, never sent: it would fail the call of the whole batch.
 */
const orders = (ctx: ActionContext) =>
  ctx.loader<string, OrderView | null>('order-management:orders', async (ids) => {
    const asked = ids.filter((id) => !orderKeyProblem(id));
    const found = new Map((await orderManagementClient().getOrders(asked)).map((o) => [o.id, o]));
    return ids.map((id) => {
      const problem = orderKeyProblem(id);
      if (problem) return new DomainError(ErrorCode.BAD_USER_INPUT, problem);
      const order = found.get(id);
      if (!order) return null;
      try {
        return orderView(order);
      } catch (error) {
        return error as Error;
      }
    });
  });

/**
 * The request's payments by PSP payment id (the `OrderPayment` entity's key), each with its order's
 * view: two Service calls for all the payments of a subgraph request (the payments, then their orders).
 * The gateway reaches payments through their orders, so this serves only a plan that needs a payment's
 * fields by its key alone.
 */
const payments = (ctx: ActionContext) =>
  ctx.loader<string, OrderView | null>('order-management:payments', async (ids) => {
    const client = orderManagementClient();
    const ordersOf = async (chunk: readonly string[]) => {
      // Stripe payments are found by their PaymentIntent (interfaceId), PayPal ones by the capture (Charge).
      const found = await client.query(
        'payments',
        'interfaceId in :ids or transactions(type = "Charge" and interactionId in :ids)',
        { ids: chunk },
      );
      if (!found.length) return [];
      return client.query('orders', 'paymentInfo(payments(id in :payments))', {
        payments: found.map((p) => p.id),
      });
    };
    // 100 ids a call, as getOrders: what the Service's URL length allows.
    const chunks: Array<readonly string[]> = [];
    for (let i = 0; i < ids.length; i += 100) chunks.push(ids.slice(i, i + 100));
    const orders = (await Promise.all(chunks.map(ordersOf))).flat();
    const byPayment = new Map<string, OrderView | Error>();
    for (const order of orders) {
      try {
        const view = orderView(order);
        if (view.payment) byPayment.set(view.payment.pspPaymentId, view);
      } catch (error) {
        const psp = successfulPayment(order);
        const id = psp && pspOf(psp)?.pspPaymentId;
        if (id) byPayment.set(id, error as Error);
      }
    }
    return ids.map((id) => byPayment.get(id) ?? null);
  });

type Input<T> = { input: T };

/**
 * An Action on one order (`input.orderId`): the order id is checked against the bound before the
 * Action runs, so none of them sends the Service an id no order can have.
 */
const onOrder =
  <I extends { orderId: string }, R>(action: (input: I, ctx: ActionContext) => R) =>
  (_: unknown, { input }: Input<I>, ctx: ActionContext): R => {
    checkOrderKey(input.orderId);
    return action(input, ctx);
  };

export default definePlugin({
  name: 'order-management',
  schemaFile: new URL('./schema.graphql', import.meta.url),
  access: {
    // A learner reads their own orders (checked per order); the mutations are steps of flows.
    Query: {
      order: ['learner', 'staff', 'service'],
      orderByNumber: ['learner', 'staff', 'service'],
      ordersForLearner: ['learner', 'staff', 'service'],
      refundLines: ['staff', 'service'],
      // Steps of the pricing flows (connections.yaml says who runs those).
      discountCodeApplicability: ['staff', 'service'],
      firstTimeDiscountEligible: ['staff', 'service'],
      programPriceInfo: ['staff', 'service'],
      creditVariant: ['staff', 'service'],
    },
    Mutation: {
      createReturn: ['staff', 'service'],
      markReturnNotRefunded: ['staff', 'service'],
      settleReturn: ['staff', 'service'],
      recordRefundTransaction: ['staff', 'service'],
      startFulfillment: ['staff', 'service'],
      failFulfillment: ['staff', 'service'],
      completeFulfillment: ['staff', 'service'],
      anonymizeCustomer: ['staff', 'service'],
      recordMobileRefund: ['staff', 'service'],
      // Steps of the mobile order flow (learners run the flow, not these).
      ensureMobileCustomer: ['staff', 'service'],
      replaceActiveCart: ['staff', 'service'],
      nextOrderNumber: ['staff', 'service'],
      createMobileCart: ['staff', 'service'],
      deleteMobileCart: ['staff', 'service'],
      attachMobilePayment: ['staff', 'service'],
      placeMobileOrder: ['staff', 'service'],
    },
  },
  resolvers: {
    Query: {
      order: async (_: unknown, { id }: { id: string }, ctx) => {
        checkOrderKey(id);
        const order = await orders(ctx).load(id);
        if (order) requireOrderAccess(ctx, order.lmsUserId);
        return order;
      },
      orderByNumber: async (_: unknown, { orderNumber }: { orderNumber: string }, ctx) => {
        checkOrderKey(orderNumber, 'order number');
        const found = await orderManagementClient().get(
          'orders',
          `order-number=${encodeURIComponent(orderNumber)}`,
        );
        if (!found) throw new DomainError(ErrorCode.NOT_FOUND, `No order ${orderNumber}`);
        const view = orderView(found);
        requireOrderAccess(ctx, view.lmsUserId);
        orders(ctx).prime(view.id, view);
        return view;
      },
      ordersForLearner: async (_: unknown, args: { lmsUserId: number; since?: string | null }, ctx) => {
        requireOrderAccess(ctx, args.lmsUserId);
        if (args.since && Number.isNaN(Date.parse(args.since)))
          throw new DomainError(ErrorCode.BAD_USER_INPUT, `since '${args.since}' is not an ISO 8601 date`);
        const where =
          'custom(fields(lmsUserId = :lmsUserId))' + (args.since ? ' and createdAt > :since' : '');
        const found = await orderManagementClient().query(
          'orders',
          where,
          { lmsUserId: args.lmsUserId, ...(args.since ? { since: new Date(args.since).toISOString() } : {}) },
          { sort: 'createdAt desc' },
        );
        const views = found.map(orderView);
        // Other subgraphs' fields on these orders resolve without reading them again.
        for (const view of views) orders(ctx).prime(view.id, view);
        return views;
      },
      refundLines: (_: unknown, { input }: Input<Parameters<typeof refundLines>[0]>, ctx) => {
        checkOrderKey(input.orderId);
        checkOrderKey(input.orderNumber, 'order number');
        return refundLines(input, ctx);
      },
      discountCodeApplicability: (_: unknown, { input }: Input<unknown>, ctx) =>
        discountCodeApplicability(input, ctx),
      firstTimeDiscountEligible: (_: unknown, { input }: Input<unknown>) => firstTimeDiscountEligible(input),
      programPriceInfo: (_: unknown, { input }: Input<unknown>) => programPriceInfo(input),
      creditVariant: (_: unknown, { input }: Input<unknown>) => creditVariant(input),
    },
    Order: {
      __resolveReference: async (ref: { id: string }, ctx: ActionContext) => {
        const order = await orders(ctx).load(ref.id);
        if (order) requireOrderAccess(ctx, order.lmsUserId);
        return order;
      },
    },
    OrderPayment: {
      // Not a way the gateway takes (a payment is reached through its order), but an honest one: by the
      // payment's id, with the same check as its order's.
      __resolveReference: async (ref: { pspPaymentId: string }, ctx: ActionContext) => {
        const order = await payments(ctx).load(ref.pspPaymentId);
        if (!order) return null;
        requireOrderAccess(ctx, order.lmsUserId);
        return order.payment;
      },
    },
    Mutation: {
      createReturn: onOrder(createReturn),
      settleReturn: onOrder(settleReturn),
      markReturnNotRefunded: onOrder(markReturnNotRefunded),
      recordRefundTransaction: (
        _: unknown,
        { input }: Input<Parameters<typeof recordRefundTransaction>[0]>,
        ctx,
      ) => recordRefundTransaction(input, ctx),
      startFulfillment: onOrder(startFulfillment),
      failFulfillment: onOrder(failFulfillment),
      completeFulfillment: onOrder(completeFulfillment),
      anonymizeCustomer: (_: unknown, { input }: Input<Parameters<typeof anonymizeCustomer>[0]>, ctx) =>
        anonymizeCustomer(input, ctx),
      recordMobileRefund: (_: unknown, { input }: Input<MobileRefundInput>, ctx) =>
        recordMobileRefund(input, ctx),
      ensureMobileCustomer: (_: unknown, { input }: Input<Parameters<typeof ensureMobileCustomer>[0]>, ctx) =>
        ensureMobileCustomer(input, ctx),
      replaceActiveCart: (_: unknown, { input }: Input<Parameters<typeof replaceActiveCart>[0]>) =>
        replaceActiveCart(input),
      nextOrderNumber: (_: unknown, _args: unknown, ctx: ActionContext) => nextOrderNumber({}, ctx),
      createMobileCart: (_: unknown, { input }: Input<Parameters<typeof createMobileCart>[0]>, ctx) => {
        checkOrderKey(input.orderNumber, 'order number');
        return createMobileCart(input, ctx);
      },
      deleteMobileCart: (_: unknown, { input }: Input<Parameters<typeof deleteMobileCart>[0]>) =>
        deleteMobileCart(input),
      attachMobilePayment: (_: unknown, { input }: Input<Parameters<typeof attachMobilePayment>[0]>, ctx) =>
        attachMobilePayment(input, ctx),
      placeMobileOrder: (_: unknown, { input }: Input<Parameters<typeof placeMobileOrder>[0]>, ctx) =>
        placeMobileOrder(input, ctx),
    },
  },
  routes: [fulfillRoute, sanctionedRoute, returnedRoute],
  config: [readOrderManagementConfig, readRetirementSalt],
  health: { service: 'order-management', check: () => orderManagementClient().check() },
});
