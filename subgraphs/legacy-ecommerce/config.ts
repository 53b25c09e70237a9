import { z } from 'zod';
import { readPluginEnv, type Env } from '@commerce-coordinator/plugin-sdk';

export type { Env };

const text = z.string().trim().min(1);
const url = z.url().transform((value) => value.replace(/\/+$/, ''));

const schema = z.object({
  /** The legacy ecommerce service root (CC's ECOMMERCE_URL), e.g. https://ecommerce.example.com. */
  LEGACY_ECOMMERCE_URL: url,
  /**
   * Prefix of a legacy order's receipt page, the order number is appended (CC's
   * ECOMMERCE_RECEIPT_URL_BASE). @default `${LEGACY_ECOMMERCE_URL}/checkout/receipt/?order_number=`
   */
  LEGACY_ECOMMERCE_RECEIPT_URL_BASE: z.url().optional(),
  /** The OAuth2 provider that issues the JWTs ecommerce accepts: the LMS root. */
  LEGACY_ECOMMERCE_OAUTH_URL: url,
  LEGACY_ECOMMERCE_CLIENT_ID: text,
  LEGACY_ECOMMERCE_CLIENT_SECRET: text,
  /** Per call. */
  LEGACY_ECOMMERCE_TIMEOUT_MS: z.coerce.number().int().positive().default(7_000),
  /** Orders per page asked of /api/v2/orders/ (ecommerce allows up to 100). */
  LEGACY_ECOMMERCE_PAGE_SIZE: z.coerce.number().int().min(1).max(100).default(100),
  /** Pages read at most for one learner, a guard against a runaway history. */
  LEGACY_ECOMMERCE_MAX_PAGES: z.coerce.number().int().positive().default(20),
});

export type LegacyEcommerceConfig = z.infer<typeof schema> & { LEGACY_ECOMMERCE_RECEIPT_URL_BASE: string };

const HINTS: Record<string, string> = {
  LEGACY_ECOMMERCE_URL: 'the legacy ecommerce service root URL, e.g. https://ecommerce.example.com',
  LEGACY_ECOMMERCE_OAUTH_URL: 'the root URL of the LMS that issues the JWTs ecommerce accepts',
  LEGACY_ECOMMERCE_CLIENT_ID: "the OAuth2 client id of the Coordinator's service user on the LMS",
  LEGACY_ECOMMERCE_CLIENT_SECRET: 'the OAuth2 client secret that goes with LEGACY_ECOMMERCE_CLIENT_ID',
};

/** The plugin's settings; throws a ConfigError naming each missing or invalid variable. */
export function legacyEcommerceConfig(env: Env): LegacyEcommerceConfig {
  const values = readPluginEnv('legacy-ecommerce', schema, env, HINTS);
  return {
    ...values,
    LEGACY_ECOMMERCE_RECEIPT_URL_BASE:
      values.LEGACY_ECOMMERCE_RECEIPT_URL_BASE ??
      `${values.LEGACY_ECOMMERCE_URL}/checkout/receipt/?order_number=`,
  };
}
