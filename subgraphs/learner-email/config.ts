import { z } from 'zod';
import { readPluginEnv, type Env } from '@commerce-coordinator/plugin-sdk';

export type { Env };

const text = z.string().trim().min(1);
const noTrailingSlash = (url: string) => url.replace(/\/+$/, '');

const brazeSchema = z.object({
  /** The Braze REST endpoint of the workspace's instance, e.g. https://rest.iad-01.braze.com. */
  BRAZE_API_URL: z.url().transform(noTrailingSlash),
  /** A REST API key with the `canvas.trigger.send` permission. */
  BRAZE_API_KEY: text,
  /** The API-triggered Canvas of the order confirmation email (the reference's BRAZE_CT_ORDER_CONFIRMATION_CANVAS_ID). */
  BRAZE_ORDER_CONFIRMATION_CANVAS_ID: text,
  /** The Canvas of the fulfillment error email (BRAZE_CT_FULFILLMENT_UNSUPPORTED_MODE_ERROR_CANVAS_ID). */
  BRAZE_FULFILLMENT_ERROR_CANVAS_ID: text,
  BRAZE_TIMEOUT_MS: z.coerce.number().int().positive().default(5_000),
  /**
   * The Coordinator as learners reach it: the confirmation's receipt link is built on it (the
   * reference's COMMERCE_COORDINATOR_URL). @default PUBLIC_URL, else http://127.0.0.1:4000
   */
  COMMERCE_COORDINATOR_URL: z.url().transform(noTrailingSlash).optional(),
  PUBLIC_URL: z.url().transform(noTrailingSlash).optional(),
  /** The learner dashboard linked from the emails (the reference's LMS_DASHBOARD_URL). */
  LMS_DASHBOARD_URL: z.url().optional(),
});

const memorySchema = z.object({
  /**
   * Where the emails sent once per order are remembered (across restarts and gateway processes):
   * a Redis. @default REDIS_URL; unset as well, this process's memory (one process, not across restarts).
   */
  NOTIFICATIONS_REDIS_URL: text.optional(),
  REDIS_URL: text.optional(),
  NOTIFICATIONS_KEY_PREFIX: text.default('cc:notifications:'),
});

export type BrazeConfig = z.infer<typeof brazeSchema>;
export type NotificationMemoryConfig = z.infer<typeof memorySchema>;

const HINTS: Record<string, string> = {
  BRAZE_API_URL: "your Braze instance's REST endpoint, e.g. https://rest.iad-01.braze.com",
  BRAZE_API_KEY: 'a Braze REST API key allowed to trigger Canvases',
  BRAZE_ORDER_CONFIRMATION_CANVAS_ID: 'the id of the order confirmation Canvas',
  BRAZE_FULFILLMENT_ERROR_CANVAS_ID: 'the id of the fulfillment error Canvas',
};

export const brazeConfig = (env: Env): BrazeConfig => readPluginEnv('learner-email', brazeSchema, env, HINTS);

export const notificationMemoryConfig = (env: Env): NotificationMemoryConfig =>
  readPluginEnv('learner-email', memorySchema, env, HINTS);

/** Where the receipt link points. */
export const coordinatorUrlOf = (config: BrazeConfig): string =>
  config.COMMERCE_COORDINATOR_URL ?? config.PUBLIC_URL ?? 'http://127.0.0.1:4000';
