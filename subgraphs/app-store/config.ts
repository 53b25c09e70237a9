import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { readPluginEnv, type Env } from '@commerce-coordinator/plugin-sdk';

/**
 * The app-store Plugin's configuration, read from the environment when first needed: the Coordinator
 * starts without the App Store configured, and only what needs a missing variable fails, naming it.
 */

const text = z.string().trim().min(1);
const positiveInt = z.coerce.number().int().positive();
const flag = z.enum(['true', 'false']).transform((v) => v === 'true');

/** A PEM from an environment variable, where newlines are often written `\n`. */
const pemText = text.transform((value) => value.replace(/\\n/g, '\n'));

/** Certificates as PEM blocks or base64 DER, separated by commas or newlines; each must parse. */
const certificates = text.transform((value, ctx) => {
  const blocks = value.includes('-----BEGIN')
    ? (value.replace(/\\n/g, '\n').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ??
      [])
    : value.split(/[\s,]+/).filter(Boolean);
  const ders: Buffer[] = [];
  for (const block of blocks) {
    try {
      ders.push(new X509Certificate(block.startsWith('-----') ? block : Buffer.from(block, 'base64')).raw);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'not an X.509 certificate (PEM or base64 DER)' });
      return z.NEVER;
    }
  }
  if (!ders.length) ctx.addIssue({ code: 'custom', message: 'no certificate' });
  return ders;
});

const api = z.object({
  /**
   * The App Store Server API: https://api.storekit.itunes.apple.com (production),
   * https://api.storekit-sandbox.itunes.apple.com (sandbox), or the stand-in (`services/app-store`).
   */
  APP_STORE_API_BASE: z.url({ protocol: /^https?$/ }).default('https://api.storekit.itunes.apple.com'),
  /** Which App Store's transactions are accepted (a transaction says where it was made). */
  APP_STORE_ENVIRONMENT: z.enum(['Production', 'Sandbox']).default('Production'),
  /** The In-App Purchase key from App Store Connect (a .p8 file's PKCS #8 PEM), its id, and the issuer id. */
  APP_STORE_PRIVATE_KEY: pemText,
  APP_STORE_KEY_ID: text,
  APP_STORE_ISSUER_ID: text,
  /** The app's bundle id: transactions of another app are refused. */
  APP_STORE_BUNDLE_ID: text,
  /** Per call to the App Store. */
  APP_STORE_TIMEOUT_MS: positiveInt.default(10_000),
  /** Between the attempts at a call the App Store fails (3 attempts). */
  APP_STORE_RETRY_WAIT_MS: z.coerce.number().int().min(0).default(1_000),
});

const verification = z
  .object({
    /** The roots the App Store's JWS chains must end at: Apple Root CA - G3 (apple.com/certificateauthority). */
    APP_STORE_ROOT_CERTIFICATES: certificates,
    APP_STORE_ENVIRONMENT: z.enum(['Production', 'Sandbox']).default('Production'),
    APP_STORE_BUNDLE_ID: text,
    /** The app's Apple ID, required in production (notifications of another app are refused). */
    APP_STORE_APP_APPLE_ID: z.coerce.number().int().positive().optional(),
    /**
     * Check the chain's revocation (OCSP) and expiry now, rather than at the payload's signing date.
     * Keep on against Apple; the stand-in has no OCSP responder.
     */
    APP_STORE_ONLINE_CHECKS: flag.default(true),
  })
  .refine((v) => v.APP_STORE_ENVIRONMENT !== 'Production' || v.APP_STORE_APP_APPLE_ID !== undefined, {
    message: 'APP_STORE_APP_APPLE_ID is required when APP_STORE_ENVIRONMENT is Production',
    path: ['APP_STORE_APP_APPLE_ID'],
  });

const HINTS: Record<string, string> = {
  APP_STORE_API_BASE: 'the App Store Server API base URL, e.g. https://api.storekit.itunes.apple.com',
  APP_STORE_PRIVATE_KEY:
    'the In-App Purchase key (.p8 contents) from App Store Connect, Users and Access > Integrations',
  APP_STORE_KEY_ID: "that key's id",
  APP_STORE_ISSUER_ID: 'the issuer id shown above the keys in App Store Connect',
  APP_STORE_BUNDLE_ID: "the iOS app's bundle id, e.g. org.edx.mobile",
  APP_STORE_ROOT_CERTIFICATES:
    'Apple Root CA - G3 (AppleRootCA-G3.cer from apple.com/certificateauthority), PEM or base64 DER',
  APP_STORE_APP_APPLE_ID: "the app's Apple ID (App Store Connect, App Information)",
};

const read = <T extends z.ZodType>(schema: T, env: Env) => readPluginEnv('app-store', schema, env, HINTS);

export interface AppStoreApiConfig {
  apiBase: URL;
  environment: 'Production' | 'Sandbox';
  privateKey: string;
  keyId: string;
  issuerId: string;
  bundleId: string;
  timeoutMs: number;
  retryWaitMs: number;
}

export function appStoreApiConfig(env: Env = process.env): AppStoreApiConfig {
  const v = read(api, env);
  return {
    apiBase: new URL(v.APP_STORE_API_BASE),
    environment: v.APP_STORE_ENVIRONMENT,
    privateKey: v.APP_STORE_PRIVATE_KEY,
    keyId: v.APP_STORE_KEY_ID,
    issuerId: v.APP_STORE_ISSUER_ID,
    bundleId: v.APP_STORE_BUNDLE_ID,
    timeoutMs: v.APP_STORE_TIMEOUT_MS,
    retryWaitMs: v.APP_STORE_RETRY_WAIT_MS,
  };
}

export interface AppStoreVerificationConfig {
  rootCertificates: Buffer[];
  environment: 'Production' | 'Sandbox';
  bundleId: string;
  appAppleId?: number;
  onlineChecks: boolean;
}

export function appStoreVerificationConfig(env: Env = process.env): AppStoreVerificationConfig {
  const v = read(verification, env);
  return {
    rootCertificates: v.APP_STORE_ROOT_CERTIFICATES,
    environment: v.APP_STORE_ENVIRONMENT,
    bundleId: v.APP_STORE_BUNDLE_ID,
    appAppleId: v.APP_STORE_APP_APPLE_ID,
    onlineChecks: v.APP_STORE_ONLINE_CHECKS,
  };
}
