import { z } from 'zod';
import { ConfigError } from '../../gateway/errors.js';

const schema = z.object({
  /** The new commerce checkout (the commercetools frontend's role). */
  COMMERCE_FRONTEND_URL: z.string().url(),
  /** The legacy ecommerce basket: `<legacy>/basket/add/`. */
  LEGACY_BASKET_URL: z.string().url(),
});
export type FrontendAppsConfig = z.infer<typeof schema>;

let config: FrontendAppsConfig | undefined;

/** Read at first use, so the gateway starts (and the other plugins work) without it. */
export function frontendAppsConfig(env: NodeJS.ProcessEnv = process.env): FrontendAppsConfig {
  if (config) return config;
  const parsed = schema.safeParse(env);
  if (!parsed.success)
    throw new ConfigError(
      'environment (frontend-apps plugin)',
      parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
    );
  return (config = parsed.data);
}
