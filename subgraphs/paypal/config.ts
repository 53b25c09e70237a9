import { z } from 'zod';
import { readPluginEnv, type Env } from '@commerce-coordinator/plugin-sdk';

/**
 * The paypal Plugin's configuration, read from the environment when first needed, not at import: the
 * Coordinator starts without PayPal configured, and only what needs a missing variable fails, naming it.
 */

/** PayPal's two API hosts; any other base URL is a stand-in (`services/paypal`) or a test double. */
export const PAYPAL_LIVE = 'https://api-m.paypal.com';
export const PAYPAL_SANDBOX = 'https://api-m.sandbox.paypal.com';

const apiBase = z.object({
  /** Where the PayPal REST API is. Defaults to the sandbox, as the SDK does. */
  PAYPAL_API_BASE: z.url({ protocol: /^https?$/ }).default(PAYPAL_SANDBOX),
});

const api = apiBase.extend({
  PAYPAL_CLIENT_ID: z.string().min(1),
  PAYPAL_CLIENT_SECRET: z.string().min(1),
});

const webhook = z.object({
  /** The id PayPal gave the webhook that calls `/paypal/webhook/`: signatures are computed with it. */
  PAYPAL_WEBHOOK_ID: z.string().min(1),
});

const webhookLimits = z.object({
  /**
   * Calls to PayPal's verify-webhook-signature in flight at once: every webhook call that passes the
   * local checks costs one, so a flood of forged ones is bounded here; beyond it the call is 429.
   */
  PAYPAL_WEBHOOK_MAX_VERIFICATIONS: z.coerce.number().int().min(1).max(100).default(4),
});

const receipt = z.object({
  /** The buyer-facing activity page of a payment is this followed by the capture id. */
  PAYPAL_ACTIVITY_URL_BASE: z
    .url({ protocol: /^https?$/ })
    .default('https://www.paypal.com/activity/payment/'),
});

const HINTS: Record<string, string> = {
  PAYPAL_API_BASE: `the PayPal REST API base URL: ${PAYPAL_LIVE} (live) or ${PAYPAL_SANDBOX} (sandbox)`,
  PAYPAL_CLIENT_ID: "the PayPal REST app's client id",
  PAYPAL_CLIENT_SECRET: "the PayPal REST app's client secret",
  PAYPAL_WEBHOOK_ID:
    'the id of the PayPal webhook that calls /paypal/webhook/ (developer dashboard → app → webhooks)',
  PAYPAL_WEBHOOK_MAX_VERIFICATIONS:
    'how many verify-webhook-signature calls may be in flight at once, an integer from 1 to 100 (default 4)',
  PAYPAL_ACTIVITY_URL_BASE:
    'the URL the capture id is appended to, e.g. https://www.paypal.com/activity/payment/',
};

const read = <T extends z.ZodType>(schema: T, env: Env) => readPluginEnv('paypal', schema, env, HINTS);

export interface PayPalApiConfig {
  apiBase: URL;
  clientId: string;
  clientSecret: string;
}

export function payPalApiConfig(env: Env = process.env): PayPalApiConfig {
  const values = read(api, env);
  return {
    apiBase: new URL(values.PAYPAL_API_BASE),
    clientId: values.PAYPAL_CLIENT_ID,
    clientSecret: values.PAYPAL_CLIENT_SECRET,
  };
}

/** The API base alone: where the stand-in serves its webhook certificate too. */
export function payPalApiBase(env: Env = process.env): URL {
  return new URL(read(apiBase, env).PAYPAL_API_BASE);
}

export function payPalWebhookLimits(env: Env = process.env): { maxVerifications: number } {
  return { maxVerifications: read(webhookLimits, env).PAYPAL_WEBHOOK_MAX_VERIFICATIONS };
}

export function payPalWebhookId(env: Env = process.env): string {
  return read(webhook, env).PAYPAL_WEBHOOK_ID;
}

export function payPalActivityUrlBase(env: Env = process.env): string {
  return read(receipt, env).PAYPAL_ACTIVITY_URL_BASE;
}
