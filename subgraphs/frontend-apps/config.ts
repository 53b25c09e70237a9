import { z } from 'zod';
import { readPluginEnv, type Env } from '@commerce-coordinator/plugin-sdk';

const schema = z.object({
  /** The new commerce checkout (the commercetools frontend's role). */
  COMMERCE_FRONTEND_URL: z.string().url(),
  /** The legacy ecommerce basket: `<legacy>/basket/add/`. */
  LEGACY_BASKET_URL: z.string().url(),
});
export type FrontendAppsConfig = z.infer<typeof schema>;

let config: FrontendAppsConfig | undefined;

/** Read at first use, so the gateway starts (and the other plugins work) without it. */
export function frontendAppsConfig(env: Env = process.env): FrontendAppsConfig {
  if (config) return config;
  return (config = readPluginEnv('frontend-apps', schema, env));
}
