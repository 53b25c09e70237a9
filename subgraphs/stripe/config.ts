import { z } from 'zod';
import { ConfigError } from '../../gateway/errors.js';

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

const HINTS: Record<string, string> = {
  STRIPE_API_BASE: 'the Stripe API base URL, e.g. https://api.stripe.com',
  STRIPE_SECRET_KEY: "the Stripe account's secret key (sk_live_… / sk_test_…)",
  STRIPE_WEBHOOK_SECRET:
    'the signing secret (whsec_…) of the /stripe/webhook/ endpoint, from the Stripe dashboard',
};

function read<T extends z.ZodType>(schema: T, env: NodeJS.ProcessEnv): z.infer<T> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    'environment (stripe plugin)',
    parsed.error.issues.map((issue) => {
      const name = String(issue.path[0]);
      return env[name] === undefined || env[name] === ''
        ? `${name} is not set: set it to ${HINTS[name]}`
        : `${name} is invalid (${issue.message}): set it to ${HINTS[name]}`;
    }),
  );
}

export interface StripeApiConfig {
  apiBase: URL;
  secretKey: string;
}

export function stripeApiConfig(env: NodeJS.ProcessEnv = process.env): StripeApiConfig {
  const values = read(api, env);
  return { apiBase: new URL(values.STRIPE_API_BASE), secretKey: values.STRIPE_SECRET_KEY };
}

export function stripeWebhookSecret(env: NodeJS.ProcessEnv = process.env): string {
  return read(webhook, env).STRIPE_WEBHOOK_SECRET;
}
