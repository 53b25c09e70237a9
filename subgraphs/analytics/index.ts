import { createHash } from 'node:crypto';
import { definePlugin, DomainError, ErrorCode, type Plugin } from '@commerce-coordinator/plugin-sdk';
import { SegmentClient } from './client.js';
import { segmentConfig, type Env } from './config.js';

/**
 * The analytics Service Plugin: wraps Segment. Reports Output Events of the Purchase Flows — `Order
 * Refunded` for every refund, the Coordinator's own (order.refunded.v1) and those made in a PSP's
 * dashboard (payment.refunded.v1).
 */

interface TrackOrderRefundedInput {
  pspRefundId?: string | null;
  refundAmountCents?: number | null;
  currency?: string | null;
  psp?: 'STRIPE' | 'PAYPAL' | null;
  pspPaymentId?: string | null;
  orderId?: string | null;
  orderNumber?: string | null;
  lmsUserId?: number | null;
  returnedItems?: Array<{
    lineItemId: string;
    kind: 'COURSE' | 'BUNDLE';
    courseRunKey?: string | null;
    bundleKey?: string | null;
  }> | null;
}

/** The reference's tracking plan id of `Order Refunded`. */
const TRACK_PLAN_ID = 19;

/** Deterministic per refund, so every delivery of the same refund is one event at Segment. */
export const refundMessageId = (pspRefundId: string) =>
  `order-refunded-${createHash('sha256').update(pspRefundId).digest('hex').slice(0, 32)}`;

/** ISO 4217 minor units: most currencies 2, a few 0 or 3. */
const minorUnits = (currency: string) =>
  new Intl.NumberFormat('en-US', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ??
  2;

export interface AnalyticsPluginOptions {
  env?: Env;
}

export function createAnalyticsPlugin(options: AnalyticsPluginOptions = {}): Plugin {
  const env = options.env ?? process.env;
  let client: SegmentClient | undefined;
  const segment = () => (client ??= new SegmentClient(segmentConfig(env)));

  return definePlugin({
    name: 'analytics',
    schemaFile: new URL('./schema.graphql', import.meta.url),
    access: { Mutation: { trackOrderRefunded: ['staff', 'service'] } },
    resolvers: {
      Mutation: {
        trackOrderRefunded: async (_: unknown, { input }: { input: TrackOrderRefundedInput }) => {
          if (!input.pspRefundId) return { tracked: false, reason: 'no PSP refund', messageId: null };
          const { refundAmountCents, currency } = input;
          if (refundAmountCents === null || refundAmountCents === undefined || refundAmountCents < 0)
            throw new DomainError(
              ErrorCode.BAD_USER_INPUT,
              'refundAmountCents must be a non-negative amount',
            );
          if (!currency || !/^[A-Za-z]{3}$/.test(currency))
            throw new DomainError(ErrorCode.BAD_USER_INPUT, 'currency must be an ISO 4217 code');
          const code = currency.toUpperCase();
          const messageId = refundMessageId(input.pspRefundId);
          const total = refundAmountCents / 10 ** minorUnits(code);
          await segment().track({
            event: 'Order Refunded',
            messageId,
            ...(input.lmsUserId !== null && input.lmsUserId !== undefined
              ? { userId: String(input.lmsUserId) }
              : { anonymousId: input.pspPaymentId ?? input.pspRefundId }),
            properties: {
              track_plan_id: TRACK_PLAN_ID,
              trigger_source: 'server-side',
              order_id: input.orderNumber ?? null,
              checkout_id: input.orderId ?? null,
              refund_id: input.pspRefundId,
              payment_processor: input.psp?.toLowerCase() ?? null,
              total,
              currency: code,
              products: (input.returnedItems ?? []).map((item) => ({
                product_id: item.courseRunKey ?? item.bundleKey ?? item.lineItemId,
                sku: item.courseRunKey ?? item.bundleKey ?? null,
                category: item.kind === 'COURSE' ? 'course' : 'program',
                quantity: 1,
                lob: 'edx',
              })),
            },
          });
          return { tracked: true, reason: null, messageId };
        },
      },
    },
    async start() {
      return async () => {
        await client?.close().catch(() => undefined);
        client = undefined;
      };
    },
    config: [() => segmentConfig(env)],
  });
}

export default createAnalyticsPlugin();
