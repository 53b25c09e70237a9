import { hostname } from 'node:os';
import { z } from 'zod';
import { readPluginEnv, type Env } from '@commerce-coordinator/plugin-sdk';

export type { Env };

const text = z.string().trim().min(1);
const positiveInt = z.coerce.number().int().positive();

const lmsSchema = z.object({
  /** The LMS root, e.g. https://courses.example.com (edx-platform's LMS_ROOT_URL). */
  LMS_URL: z.url().transform((url) => url.replace(/\/+$/, '')),
  /** OAuth2 client of the Coordinator's service user (a staff user) on the LMS. */
  LMS_CLIENT_ID: text,
  LMS_CLIENT_SECRET: text,
  /** Per call; CC's FULFILLMENT_TIMEOUT. */
  LMS_TIMEOUT_MS: positiveInt.default(7_000),
});

const eventBusSchema = z.object({
  /** The LMS's event bus (edx-event-bus-redis's EVENT_BUS_REDIS_CONNECTION_URL); unset: no consumer. */
  LMS_EVENT_BUS_REDIS_URL: z.string().trim().min(1).optional(),
  /** The stream refund requests arrive on: the topic, with EVENT_BUS_TOPIC_PREFIX + '-' if the LMS sets one. */
  LMS_EVENT_BUS_STREAM: text.default('commerce-order-lifecycle'),
  /** The consumer group: one per consuming service. */
  LMS_EVENT_BUS_GROUP: text.default('commerce-coordinator'),
  /**
   * Unique per process and stable across its restarts, so its pending entries come back to it; a
   * Coordinator worker's (WORKERS > 1) has `:worker-<index>` appended.
   */
  LMS_EVENT_BUS_CONSUMER: text.default(hostname()),
  /** Entries pending this long at another (dead) consumer are claimed (XAUTOCLAIM). */
  LMS_EVENT_BUS_CLAIM_IDLE_MS: positiveInt.default(60_000),
  /** How long one XREADGROUP waits for new entries; also how often stale entries are looked for. */
  LMS_EVENT_BUS_BLOCK_MS: positiveInt.default(5_000),
  /**
   * Where a consumer group created by this plugin starts: `$` (events from now on) or `0` (everything
   * the stream retains). An existing group keeps its position.
   */
  LMS_EVENT_BUS_START_ID: z.enum(['$', '0']).default('$'),
});

export type LmsConfig = z.infer<typeof lmsSchema>;
export type LmsEventBusConfig = z.infer<typeof eventBusSchema>;

const HINTS: Record<string, string> = {
  LMS_URL: 'the LMS root URL, e.g. https://courses.example.com',
  LMS_CLIENT_ID: "the OAuth2 client id of the Coordinator's service user on the LMS",
  LMS_CLIENT_SECRET: 'the OAuth2 client secret that goes with LMS_CLIENT_ID',
};

/** The LMS API settings; throws a ConfigError naming each missing or invalid variable. */
export const lmsConfig = (env: Env): LmsConfig => readPluginEnv('lms', lmsSchema, env, HINTS);

/** The event-bus consumer settings. */
export function lmsEventBusConfig(env: Env): LmsEventBusConfig {
  const config = readPluginEnv('lms', eventBusSchema, env, HINTS);
  // The Coordinator's workers (WORKERS > 1) share the host: each is a consumer of its own, named by its
  // index so that a replaced worker gets its pending entries back.
  const worker = env.WORKER_INDEX;
  return worker === undefined
    ? config
    : { ...config, LMS_EVENT_BUS_CONSUMER: `${config.LMS_EVENT_BUS_CONSUMER}:worker-${worker}` };
}
