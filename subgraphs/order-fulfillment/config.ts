import { z } from 'zod';
import { readPluginEnv, type Env } from '@commerce-coordinator/plugin-sdk';

/**
 * The order-fulfillment Plugin's configuration, read when first needed: the Coordinator starts without
 * the Order Fulfillment service configured, and only what needs a missing variable fails, naming it.
 */

const api = z.object({
  /** The service's root (the reference's ORDER_FULFILLMENT_URL_ROOT). */
  ORDER_FULFILLMENT_URL: z.url({ protocol: /^https?$/ }).transform((url) => url.replace(/\/+$/, '')),
  /** Sent as `X-Edx-Api-Key`, the reference client's credential. */
  ORDER_FULFILLMENT_API_KEY: z.string().trim().min(1),
  /** Per call; the reference's client timeout is 10 s. */
  ORDER_FULFILLMENT_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
});

const webhook = z.object({
  /** The shared secret the service signs `/order-fulfillment/fulfillment-response-webhook` with. */
  ORDER_FULFILLMENT_WEBHOOK_SECRET: z.string().min(16, 'at least 16 characters'),
});

const HINTS: Record<string, string> = {
  ORDER_FULFILLMENT_URL: 'the Order Fulfillment service root URL, e.g. https://fulfillment.example.com',
  ORDER_FULFILLMENT_API_KEY: 'the API key the Order Fulfillment service accepts in X-Edx-Api-Key',
  ORDER_FULFILLMENT_WEBHOOK_SECRET:
    'the shared secret the Order Fulfillment service signs its completion webhooks with (HMAC-SHA256)',
};

export type OrderFulfillmentApiConfig = z.infer<typeof api>;

export const orderFulfillmentApiConfig = (env: Env = process.env): OrderFulfillmentApiConfig =>
  readPluginEnv('order-fulfillment', api, env, HINTS);

export const orderFulfillmentWebhookSecret = (env: Env = process.env): string =>
  readPluginEnv('order-fulfillment', webhook, env, HINTS).ORDER_FULFILLMENT_WEBHOOK_SECRET;
