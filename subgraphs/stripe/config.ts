import { z } from 'zod';
import { readPluginEnv, type Env } from '@commerce-coordinator/plugin-sdk';

/**
 * The stripe Plugin's configuration, read from the environment when first needed, not at import: the
 * Coordinator starts without Stripe configured, and only what needs a missing variable fails, naming it.
 */

const api = z.object({
  /** Where the Stripe API is: Stripe itself, or the stand-in (`services/stripe`). */
  STRIPE_API_BASE: z.url({ protocol: /^https?$/ }).default('https://api.stripe.com'),
  /** The account's secret key (`sk_live_…`, `sk_test_…`, or a restricted `rk_…`). */
  STRIPE_SECRET_KEY: z.string().min(1),
});

const webhook = z.object({
  /** The signing secret of the webhook endpoint `/stripe/webhook/` (`whsec_…`). */
  STRIPE_WEBHOOK_SECRET: z.string().min(1),
});

const source = z.object({
  /**
   * The `source_system` the checkout writes in the metadata of the Coordinator's PaymentIntents: a
   * refund of a payment tagged with another system is not the Coordinator's to record.
   */
  STRIPE_SOURCE_SYSTEM: z.string().min(1).max(500).default('commercetools'),
});

const HINTS: Record<string, string> = {
  STRIPE_API_BASE: 'the Stripe API base URL, e.g. https://api.stripe.com',
  STRIPE_SECRET_KEY: "the Stripe account's secret key (sk_live_… / sk_test_…)",
  STRIPE_WEBHOOK_SECRET:
    'the signing secret (whsec_…) of the /stripe/webhook/ endpoint, from the Stripe dashboard',
};

const read = <T extends z.ZodType>(schema: T, env: Env) => readPluginEnv('stripe', schema, env, HINTS);

export interface StripeApiConfig {
  apiBase: URL;
  secretKey: string;
}

export function stripeApiConfig(env: Env = process.env): StripeApiConfig {
  const values = read(api, env);
  return { apiBase: new URL(values.STRIPE_API_BASE), secretKey: values.STRIPE_SECRET_KEY };
}

export function stripeWebhookSecret(env: Env = process.env): string {
  return read(webhook, env).STRIPE_WEBHOOK_SECRET;
}

export function stripeSourceSystem(env: Env = process.env): string {
  return read(source, env).STRIPE_SOURCE_SYSTEM;
}
