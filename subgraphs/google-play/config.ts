import { z } from 'zod';
import { readPluginEnv, type Env } from '@commerce-coordinator/plugin-sdk';

/**
 * The google-play Plugin's configuration, read from the environment when first needed: the Coordinator
 * starts without Google Play configured, and only what needs a missing variable fails, naming it.
 */

const text = z.string().trim().min(1);
const positiveInt = z.coerce.number().int().positive();
const flag = z.enum(['true', 'false']).transform((v) => v === 'true');

/** A service account key file's JSON (Google Cloud console, IAM, Service accounts, Keys). */
const ServiceAccountKey = z.object({
  client_email: z.email(),
  private_key: z.string().includes('PRIVATE KEY'),
  private_key_id: z.string().optional(),
  /** Where the key's JWT grant is sent; Google's key files name https://oauth2.googleapis.com/token. */
  token_uri: z.url({ protocol: /^https?$/ }).optional(),
});

const serviceAccountKey = text.transform((value, ctx) => {
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'not JSON: the contents of a service account key file' });
    return z.NEVER;
  }
  const key = ServiceAccountKey.safeParse(json);
  if (!key.success) {
    ctx.addIssue({
      code: 'custom',
      message: `not a service account key (${key.error.issues.map((i) => i.path.join('.')).join(', ')})`,
    });
    return z.NEVER;
  }
  return key.data;
});

const api = z.object({
  /** The Android Publisher API root: Google's, or the stand-in (`services/google-play`). */
  GOOGLE_PLAY_API_BASE: z.url({ protocol: /^https?$/ }).default('https://androidpublisher.googleapis.com/'),
  /** The Android app's package name: purchases are looked up in it. */
  GOOGLE_PLAY_PACKAGE_NAME: text,
  /** The service account with access to the app in the Play Console (its key file's JSON). */
  GOOGLE_PLAY_SERVICE_ACCOUNT_KEY: serviceAccountKey,
  /** Accept license-testing purchases (purchaseType 0), which cost nothing: only outside production. */
  GOOGLE_PLAY_ACCEPT_TEST_PURCHASES: flag.default(false),
  /** Per call to Google. */
  GOOGLE_PLAY_TIMEOUT_MS: positiveInt.default(10_000),
  /** Between the attempts at a call Google fails (3 attempts). */
  GOOGLE_PLAY_RETRY_WAIT_MS: z.coerce.number().int().min(0).default(1_000),
});

const push = z.object({
  /** The audience the push subscription puts in its OIDC tokens (its "audience" setting). */
  GOOGLE_PUBSUB_AUDIENCE: text,
  /** Google's signing certificates for OIDC tokens (PEM by key id). */
  GOOGLE_PUBSUB_CERTS_URL: z
    .url({ protocol: /^https?$/ })
    .default('https://www.googleapis.com/oauth2/v1/certs'),
  /**
   * The push subscription's service account: the only `email` accepted in a push's token. Required:
   * any Google Cloud project can create a push subscription to our endpoint with our audience, and its
   * tokens are as Google-signed as ours; only the service account tells them apart.
   */
  GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL: z.email(),
  /**
   * The push subscription refunds come through (projects/…/subscriptions/…); others are not ours.
   * Required: without it every subscription would count as the refund one.
   */
  GOOGLE_PLAY_REFUND_SUBSCRIPTION: text.regex(/^projects\/[^/\s]+\/subscriptions\/[^/\s]+$/, {
    message: 'not a subscription name (projects/<project>/subscriptions/<subscription>)',
  }),
});

const HINTS: Record<string, string> = {
  GOOGLE_PLAY_API_BASE: 'the Android Publisher API root, e.g. https://androidpublisher.googleapis.com/',
  GOOGLE_PLAY_PACKAGE_NAME: "the Android app's package name, e.g. org.edx.mobile",
  GOOGLE_PLAY_SERVICE_ACCOUNT_KEY:
    'the JSON key of a service account with access to the app in the Play Console',
  GOOGLE_PUBSUB_AUDIENCE: "the audience of the push subscription's authentication (its OIDC token's aud)",
  GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL:
    "the email of the push subscription's service account (its authentication's service account), the only one whose pushes are trusted",
  GOOGLE_PLAY_REFUND_SUBSCRIPTION:
    'the full name of the push subscription Google Play refunds come through, projects/<project>/subscriptions/<subscription>',
};

const read = <T extends z.ZodType>(schema: T, env: Env) => readPluginEnv('google-play', schema, env, HINTS);

export interface GooglePlayApiConfig {
  apiBase: URL;
  packageName: string;
  serviceAccount: z.infer<typeof ServiceAccountKey>;
  acceptTestPurchases: boolean;
  timeoutMs: number;
  retryWaitMs: number;
}

export function googlePlayApiConfig(env: Env = process.env): GooglePlayApiConfig {
  const v = read(api, env);
  return {
    apiBase: new URL(v.GOOGLE_PLAY_API_BASE),
    packageName: v.GOOGLE_PLAY_PACKAGE_NAME,
    serviceAccount: v.GOOGLE_PLAY_SERVICE_ACCOUNT_KEY,
    acceptTestPurchases: v.GOOGLE_PLAY_ACCEPT_TEST_PURCHASES,
    timeoutMs: v.GOOGLE_PLAY_TIMEOUT_MS,
    retryWaitMs: v.GOOGLE_PLAY_RETRY_WAIT_MS,
  };
}

export interface GooglePlayPushConfig {
  audience: string;
  certsUrl: URL;
  serviceAccountEmail: string;
  subscription: string;
}

export function googlePlayPushConfig(env: Env = process.env): GooglePlayPushConfig {
  const v = read(push, env);
  return {
    audience: v.GOOGLE_PUBSUB_AUDIENCE,
    certsUrl: new URL(v.GOOGLE_PUBSUB_CERTS_URL),
    serviceAccountEmail: v.GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL,
    subscription: v.GOOGLE_PLAY_REFUND_SUBSCRIPTION,
  };
}
