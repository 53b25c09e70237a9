import {
  definePlugin,
  DomainError,
  ErrorCode,
  type ActionContext,
  type Plugin,
} from '@commerce-coordinator/plugin-sdk';
import { BrazeClient, BrazeRejectedError } from './client.js';
import {
  brazeConfig,
  coordinatorUrlOf,
  notificationMemoryConfig,
  type BrazeConfig,
  type Env,
} from './config.js';
import { processMemory, redisMemory, type OnceMemory } from './once.js';

/**
 * The learner email Service Plugin: wraps Braze (API-triggered Canvases). Sends the order
 * confirmation and the fulfillment error email, as receivers of the fulfillment's signals, so that
 * an email Service that is down delays an email and never fails (or rolls back) a fulfillment.
 */

type Kind = 'COURSE' | 'BUNDLE';
type LineState = 'INITIAL' | 'PENDING' | 'PROCESSING' | 'SUCCESS' | 'FAILURE';

interface EmailedOrder {
  id: string;
  orderNumber: string;
  lmsUserId: number;
  username: string;
  email: string;
  createdAt: string;
  totalCents: number;
  currency: string;
  mobileOrder: boolean;
  lineItems: Array<{
    id: string;
    kind: Kind;
    courseRunKey?: string | null;
    bundleKey?: string | null;
    title: string;
    priceCents: number;
    currency: string;
    state: LineState;
  }>;
  payment?: { psp: 'STRIPE' | 'PAYPAL'; pspPaymentId: string; amountCents: number } | null;
}

interface LineOutcome {
  lineItemId: string;
  fulfilled: boolean;
  error?: string | null;
}

/** The reference's cache lifetime of `send_order_confirmation_email/<order_id>`. */
const CONFIRMATION_ONCE_MS = 24 * 60 * 60 * 1000;
/** Long enough that a later retry of a failed fulfillment does not email again. */
const ERROR_EMAIL_ONCE_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * The enrollment errors a learner is told about (the reference's CourseEnrollTaskAfterReturn): the
 * course mode is no longer on sale, or the LMS did not answer. Other refusals are ours to fix.
 */
const ENROLLMENT_ERRORS_TOLD = [
  /course mode is expired or otherwise unavailable for course run/i,
  /timed out/i,
  /service unavailable|answered 503\b/i,
];

export const enrollmentErrorIsTold = (error: string) => ENROLLMENT_ERRORS_TOLD.some((p) => p.test(error));

const money = (cents: number, currency: string) => {
  try {
    return new Intl.NumberFormat('en-US', { style: 'currency', currency }).format(cents / 100);
  } catch {
    return `${(cents / 100).toFixed(2)} ${currency}`;
  }
};

/**
 * The receipt link is for orders the Coordinator can show a PSP receipt of: not a mobile purchase
 * (the store keeps it), not one that cost nothing and was paid by neither Stripe nor PayPal.
 */
export const hidesReceipt = (order: EmailedOrder) =>
  order.mobileOrder || (!order.payment && order.totalCents === 0);

function confirmationProperties(order: EmailedOrder, config: BrazeConfig) {
  const subtotalCents = order.lineItems.reduce((sum, line) => sum + line.priceCents, 0);
  const placed = new Date(order.createdAt);
  const hide = hidesReceipt(order);
  return {
    order_id: order.id,
    order_number: order.orderNumber,
    lms_user_id: order.lmsUserId,
    username: order.username,
    purchase_date: placed.toLocaleDateString('en-US', { dateStyle: 'long', timeZone: 'UTC' }),
    purchase_time: placed.toLocaleTimeString('en-US', { timeStyle: 'short', timeZone: 'UTC' }) + ' UTC',
    order_subtotal: money(subtotalCents, order.currency),
    order_total: money(order.totalCents, order.currency),
    order_discount: money(Math.max(0, subtotalCents - order.totalCents), order.currency),
    currency: order.currency,
    order_items: order.lineItems.map((line) => ({
      title: line.title,
      price: money(line.priceCents, line.currency),
      course_run_key: line.courseRunKey ?? null,
      bundle_key: line.bundleKey ?? null,
    })),
    ...(config.LMS_DASHBOARD_URL ? { dashboard_url: config.LMS_DASHBOARD_URL } : {}),
    hide_receipt_cta: hide,
    view_receipt_cta_url: hide
      ? null
      : `${coordinatorUrlOf(config)}/orders/unified/order_receipt/?order_number=${encodeURIComponent(order.orderNumber)}`,
  };
}

export interface LearnerEmailPluginOptions {
  env?: Env;
}

export function createLearnerEmailPlugin(options: LearnerEmailPluginOptions = {}): Plugin {
  const env = options.env ?? process.env;
  let client: BrazeClient | undefined;
  let memory: OnceMemory | undefined;
  const config = () => brazeConfig(env);
  const braze = () => (client ??= new BrazeClient(config()));
  const once = () => {
    if (memory) return memory;
    const m = notificationMemoryConfig(env);
    const url = m.NOTIFICATIONS_REDIS_URL ?? m.REDIS_URL;
    return (memory = url ? redisMemory(url, m.NOTIFICATIONS_KEY_PREFIX) : processMemory());
  };

  /**
   * Sends at most once per `key` for `ttlMs`: the claim is taken before the send, and given back when
   * the send failed, so the receiver's retry (or another fulfillment's) sends it. Two deliveries at
   * once: one claims and sends, the other answers "already sent".
   */
  const sendOnce = async (
    key: string,
    ttlMs: number,
    ctx: ActionContext,
    send: () => Promise<string>,
  ): Promise<{ sent: boolean; reason: string | null; dispatchId: string | null }> => {
    const holder = ctx.idempotencyKey ?? `${ctx.flowId ?? 'direct'}:${Date.now()}`;
    if (!(await once().claim(key, holder, ttlMs))) {
      return { sent: false, reason: 'already sent', dispatchId: null };
    }
    try {
      return { sent: true, reason: null, dispatchId: await send() };
    } catch (error) {
      await once()
        .release(key, holder)
        .catch(() => undefined);
      if (error instanceof BrazeRejectedError)
        throw new DomainError(ErrorCode.BAD_REQUEST, error.message, { brazeStatus: error.status });
      throw error;
    }
  };

  return definePlugin({
    name: 'learner-email',
    schemaFile: new URL('./schema.graphql', import.meta.url),
    // Receivers of the fulfillment's signals (and staff, to send one again by hand).
    access: {
      Mutation: {
        sendOrderConfirmation: ['staff', 'service'],
        sendFulfillmentErrorEmail: ['staff', 'service'],
      },
    },
    resolvers: {
      Mutation: {
        sendOrderConfirmation: async (
          _: unknown,
          {
            input,
          }: { input: { orderId: string; order: EmailedOrder; lineItemStates: Array<{ state: LineState }> } },
          ctx: ActionContext,
        ) => {
          const { order } = input;
          if (order.id !== input.orderId)
            throw new DomainError(ErrorCode.BAD_USER_INPUT, 'order.id is not the orderId');
          if (!input.lineItemStates.some((line) => line.state === 'SUCCESS'))
            return { sent: false, reason: 'no line of the order was fulfilled', dispatchId: null };
          const settings = config();
          return sendOnce(`order-confirmation:${order.id}`, CONFIRMATION_ONCE_MS, ctx, () =>
            braze().triggerCanvas({
              canvasId: settings.BRAZE_ORDER_CONFIRMATION_CANVAS_ID,
              externalUserId: String(order.lmsUserId),
              properties: confirmationProperties(order, settings),
            }),
          );
        },

        sendFulfillmentErrorEmail: async (
          _: unknown,
          {
            input,
          }: {
            input: {
              orderId: string;
              order?: EmailedOrder | null;
              fulfillments?: LineOutcome[] | null;
              failure?: { type: string; message: string } | null;
            };
          },
          ctx: ActionContext,
        ) => {
          const { order } = input;
          if (!order)
            return { sent: false, reason: 'the order was not read before the failure', dispatchId: null };
          if (order.id !== input.orderId)
            throw new DomainError(ErrorCode.BAD_USER_INPUT, 'order.id is not the orderId');
          // The lines that failed, each with its error: refused by the LMS, or all those the failed
          // fulfillment was working on (every line not yet SUCCESS) with the error that failed it.
          const failed: Array<{ line: EmailedOrder['lineItems'][number]; error: string }> = [];
          const byId = new Map(order.lineItems.map((line) => [line.id, line]));
          for (const outcome of input.fulfillments ?? []) {
            const line = byId.get(outcome.lineItemId);
            if (line && !outcome.fulfilled) failed.push({ line, error: outcome.error ?? '' });
          }
          if (input.failure)
            for (const line of order.lineItems)
              if (line.state !== 'SUCCESS') failed.push({ line, error: input.failure.message });
          const told = failed.filter(
            ({ line, error }) => line.kind === 'BUNDLE' || enrollmentErrorIsTold(error),
          );
          if (!told.length)
            return { sent: false, reason: 'no failure the learner is told about', dispatchId: null };
          const settings = config();
          return sendOnce(`fulfillment-error:${order.id}`, ERROR_EMAIL_ONCE_MS, ctx, () =>
            braze().triggerCanvas({
              canvasId: settings.BRAZE_FULFILLMENT_ERROR_CANVAS_ID,
              externalUserId: String(order.lmsUserId),
              properties: {
                order_id: order.id,
                order_number: order.orderNumber,
                username: order.username,
                failed_items: told.map(({ line }) => ({
                  title: line.title,
                  kind: line.kind === 'COURSE' ? 'course' : 'program',
                  course_run_key: line.courseRunKey ?? null,
                  bundle_key: line.bundleKey ?? null,
                })),
                ...(settings.LMS_DASHBOARD_URL ? { dashboard_url: settings.LMS_DASHBOARD_URL } : {}),
              },
            }),
          );
        },
      },
    },
    async start() {
      return async () => {
        await memory?.close();
        memory = undefined;
      };
    },
    config: [() => brazeConfig(env), () => notificationMemoryConfig(env)],
  });
}

export default createLearnerEmailPlugin();
