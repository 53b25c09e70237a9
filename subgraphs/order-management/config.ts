import { z } from 'zod';
import { readPluginEnv, type Env } from '@commerce-coordinator/plugin-sdk';

/**
 * The order-management Plugin's configuration, from environment variables. Read at first use (not at
 * import), so a Coordinator without this Plugin's Service configured still starts; a missing variable
 * fails the first Action with a message naming it.
 */
const serviceSchema = z.object({
  /** The API base URL, e.g. https://api.us-central1.gcp.commercetools.com */
  ORDER_MANAGEMENT_URL: z.string().url(),
  /** The auth API base URL, e.g. https://auth.us-central1.gcp.commercetools.com @default ORDER_MANAGEMENT_URL */
  ORDER_MANAGEMENT_AUTH_URL: z.string().url().optional(),
  ORDER_MANAGEMENT_PROJECT_KEY: z.string().min(1),
  ORDER_MANAGEMENT_CLIENT_ID: z.string().min(1),
  ORDER_MANAGEMENT_CLIENT_SECRET: z.string().min(1),
  /** Space-separated scopes; @default `manage_project:<project key>` */
  ORDER_MANAGEMENT_SCOPE: z.string().min(1).optional(),
});

export interface OrderManagementConfig {
  apiUrl: string;
  authUrl: string;
  projectKey: string;
  clientId: string;
  clientSecret: string;
  scope: string;
}

export function readOrderManagementConfig(env: Env = process.env): OrderManagementConfig {
  const e = readPluginEnv('order-management', serviceSchema, env);
  return {
    apiUrl: e.ORDER_MANAGEMENT_URL.replace(/\/+$/, ''),
    authUrl: (e.ORDER_MANAGEMENT_AUTH_URL ?? e.ORDER_MANAGEMENT_URL).replace(/\/+$/, ''),
    projectKey: e.ORDER_MANAGEMENT_PROJECT_KEY,
    clientId: e.ORDER_MANAGEMENT_CLIENT_ID,
    clientSecret: e.ORDER_MANAGEMENT_CLIENT_SECRET,
    scope: e.ORDER_MANAGEMENT_SCOPE ?? `manage_project:${e.ORDER_MANAGEMENT_PROJECT_KEY}`,
  };
}

/** The salt of retired learners' hashes; only anonymizeCustomer needs it. */
export function readRetirementSalt(env: Env = process.env): string {
  return readPluginEnv('order-management', z.object({ RETIREMENT_SALT: z.string().min(8) }), env)
    .RETIREMENT_SALT;
}
