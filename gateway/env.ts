import { z } from 'zod';
import type { AuthOptions } from './auth/authenticator.js';
import { ConfigError } from './errors.js';
import { DEFAULT_OPERATION_LIMITS, type OperationLimits } from './federation/operation-limits.js';

const commaList = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);

/** A limit: a whole number, 0 or more. */
function limit(fallback: number) {
  return z.coerce.number().int('must be a whole number').min(0).default(fallback);
}

/** Every environment variable the Coordinator reads; README.md lists the same. */
export const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  HOST: z.string().default('127.0.0.1'),
  NODE_ENV: z.string().default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** PostgreSQL; without it an embedded PostgreSQL is started under DATA_DIR. */
  DATABASE_URL: z.string().url().optional(),
  DATA_DIR: z.string().default('.data'),
  EMBEDDED_POSTGRES_PORT: z.coerce.number().int().min(1).max(65535).default(5488),
  /** Redis for signals (Streams) and subscriptions (pub/sub); without it, an in-process bus. */
  REDIS_URL: z.string().url().optional(),
  REDIS_KEY_PREFIX: z.string().default('cc:'),
  /** LaunchDarkly; without it, flags come from FLAGS_FILE, re-read on change. */
  LAUNCHDARKLY_SDK_KEY: z.string().min(1).optional(),
  FLAGS_FILE: z.string().default('flags.json'),
  ROVER_CONFIG: z.string().default('rover.yaml'),
  CONNECTIONS_FILE: z.string().default('connections.yaml'),
  SUBGRAPHS_DIR: z.string().default('subgraphs'),
  /** Subgraphs called over HTTP at their rover.yaml routing_url instead of in process: names, or `*`. */
  REMOTE_SUBGRAPHS: commaList.default([]),
  /** A running flow whose gateway has not renewed its lease for this long is recovered by another. */
  FLOW_LEASE_MS: z.coerce.number().int().min(100).default(15_000),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).default(10_000),
  /** Callers' JWTs: one key source. Without any, development uses DEVELOPMENT_JWT_SECRET. */
  JWT_JWKS_URL: z.string().url().optional(),
  JWT_PUBLIC_KEYS: z.string().min(1).optional(),
  JWT_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  JWT_ISSUER: z.string().optional(),
  JWT_AUDIENCE: z.string().optional(),
  /**
   * `stand-ins` starts a local stand-in of every Service, seeded with demo data, and points the plugins
   * at it (the embedded default); `configured` uses the plugins' own variables (STRIPE_API_BASE, …).
   * @default stand-ins, or configured when NODE_ENV=production
   */
  SERVICES: z.enum(['stand-ins', 'configured']).optional(),
  /** What one client operation may ask for (DEFAULT_OPERATION_LIMITS in gateway/federation/operation-limits.ts). */
  OPERATION_MAX_TOKENS: limit(DEFAULT_OPERATION_LIMITS.maxTokens),
  OPERATION_MAX_DEPTH: limit(DEFAULT_OPERATION_LIMITS.maxDepth),
  OPERATION_MAX_ALIASES: limit(DEFAULT_OPERATION_LIMITS.maxAliases),
  OPERATION_MAX_FLOWS: limit(DEFAULT_OPERATION_LIMITS.maxFlows),
  OPERATION_MAX_COST: limit(DEFAULT_OPERATION_LIMITS.maxCost),
  OPERATION_DEFAULT_LIST_SIZE: limit(DEFAULT_OPERATION_LIMITS.defaultListSize),
});
export type Env = z.infer<typeof envSchema>;

/** Signs the tokens of `npm run token` on the embedded default; never accepted in production. */
export const DEVELOPMENT_JWT_SECRET = 'commerce-coordinator-development-only';

/** How callers are verified: the configured key source, or the development secret outside production. */
export function authOptions(env: Env): AuthOptions {
  const common = { issuer: env.JWT_ISSUER, audience: env.JWT_AUDIENCE };
  if (env.JWT_JWKS_URL || env.JWT_PUBLIC_KEYS || env.JWT_SECRET)
    return { jwksUrl: env.JWT_JWKS_URL, publicKeys: env.JWT_PUBLIC_KEYS, secret: env.JWT_SECRET, ...common };
  if (env.NODE_ENV === 'production')
    throw new ConfigError('environment', [
      'NODE_ENV=production needs JWT_JWKS_URL, JWT_PUBLIC_KEYS or JWT_SECRET to verify callers',
    ]);
  return { secret: DEVELOPMENT_JWT_SECRET, ...common };
}

export function operationLimits(env: Env): OperationLimits {
  return {
    maxTokens: env.OPERATION_MAX_TOKENS,
    maxDepth: env.OPERATION_MAX_DEPTH,
    maxAliases: env.OPERATION_MAX_ALIASES,
    maxFlows: env.OPERATION_MAX_FLOWS,
    maxCost: env.OPERATION_MAX_COST,
    defaultListSize: env.OPERATION_DEFAULT_LIST_SIZE,
  };
}

export function readEnv(env: NodeJS.ProcessEnv = process.env): Env {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      'environment',
      parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
    );
  }
  return parsed.data;
}
