import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { AuthOptions } from './auth/authenticator.js';
import type { BrowserLogin } from './http/browser.js';
import type { DatabaseTimeouts } from './db/database.js';
import { ConfigError } from './errors.js';
import type { SamplerName, TracingOptions } from './observability/tracing.js';
import { signingSecretProblem } from '@commerce-coordinator/plugin-sdk/call-assertion';
import { resolveHttpLimits, type HttpLimits } from './http/connection-limits.js';
import { resolveSubscriptionLimits, type SubscriptionLimits } from './subscriptions/limits.js';

/**
 * One of the Coordinator's own files, beside its code: in the repository under tsx, in dist/ once built
 * (whatever the working directory). A path set in the environment is relative to the working directory.
 */
function ownFile(name: string): string {
  return fileURLToPath(new URL(`../${name}`, import.meta.url));
}

/** A count or duration; unset leaves the default of the option it sets. */
const optionalInt = (min: number) => z.coerce.number().int().min(min).optional();
import { DEFAULT_OPERATION_LIMITS, type OperationLimits } from './federation/operation-limits.js';

const commaList = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);

/** `https://host[:port]` exactly, as a browser sends it in `Origin`. */
function isOrigin(value: string): boolean {
  try {
    return new URL(value).origin === value;
  } catch {
    return false;
  }
}

/** A limit: a whole number, 0 or more. */
function limit(fallback: number) {
  return z.coerce.number().int('must be a whole number').min(0).default(fallback);
}

/** OpenTelemetry's booleans: `true` or `false`, in any case. */
const otelBoolean = z
  .string()
  .toLowerCase()
  .pipe(z.enum(['true', 'false'], { message: 'must be true or false' }))
  .transform((value) => value === 'true');
const httpUrl = z
  .string()
  .url()
  .refine((url) => /^https?:\/\//i.test(url), 'must be an http:// or https:// URL');
/** The one OTLP encoding the installed exporter sends; a collector's OTLP/HTTP receiver accepts it. */
const otlpProtocol = z.literal('http/json', {
  message:
    'must be http/json: the Coordinator exports OTLP/HTTP with JSON (grpc and http/protobuf are not installed)',
});
const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const satisfies readonly SamplerName[];
/** `key=value,key=value`, values percent-encoded, as the OpenTelemetry resource SDK reads it. */
const resourceAttributes = z.string().transform((text, ctx) => {
  const attributes: Record<string, string> = {};
  for (const entry of text.split(',').filter((e) => e.trim())) {
    const at = entry.indexOf('=');
    const key = entry.slice(0, at).trim();
    if (at < 0 || !key) {
      ctx.addIssue({ code: 'custom', message: `'${entry}' is not key=value` });
      return z.NEVER;
    }
    try {
      attributes[key] = decodeURIComponent(entry.slice(at + 1).trim());
    } catch {
      ctx.addIssue({ code: 'custom', message: `the value of '${key}' is not percent-encoded` });
      return z.NEVER;
    }
  }
  return attributes;
});

/** Every environment variable the Coordinator reads; README.md lists the same. */
export const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  HOST: z.string().default('127.0.0.1'),
  NODE_ENV: z.string().default('development'),
  /**
   * Worker processes (node:cluster) sharing PORT, each a whole Coordinator: a number, or `auto` (one
   * per core). More than 1 needs REDIS_URL: the in-process bus and feed cannot span processes.
   */
  WORKERS: z
    .preprocess(
      (value) => (value === 'auto' ? availableParallelism() : value),
      z.coerce
        .number({ message: 'must be a whole number or auto' })
        .int('must be a whole number or auto')
        .min(1, 'must be 1 or more, or auto'),
    )
    .default(1),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `auto`: pretty lines (pino-pretty) on a terminal outside production, JSON otherwise. */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  /**
   * Serve /metrics unauthenticated on this port alone (and not on PORT); unset, /metrics is on PORT
   * for staff and Services (a bearer token).
   */
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  METRICS_HOST: z.string().default('127.0.0.1'),
  /** Distinct GraphQL operation names kept as metric labels; later ones are `(other)`. */
  METRICS_MAX_OPERATION_NAMES: z.coerce.number().int().min(0).default(100),
  /** PostgreSQL; without it an embedded PostgreSQL is started under DATA_DIR. */
  DATABASE_URL: z.string().url().optional(),
  DATA_DIR: z.string().default('.data'),
  EMBEDDED_POSTGRES_PORT: z.coerce.number().int().min(1).max(65535).default(5488),
  /**
   * How long a database call may wait, so that a database that accepts connections but never answers
   * is an outage (SERVICE_UNAVAILABLE) rather than a hang: opening a connection, or waiting for a free
   * one, and one statement (`DatabaseTimeouts` documents them and their defaults, 5 s and 30 s).
   */
  DATABASE_CONNECT_TIMEOUT_MS: optionalInt(1),
  DATABASE_QUERY_TIMEOUT_MS: optionalInt(1),
  /** Redis for signals (Streams) and subscriptions (pub/sub); without it, an in-process bus. */
  REDIS_URL: z.string().url().optional(),
  REDIS_KEY_PREFIX: z.string().default('cc:'),
  /** LaunchDarkly; without it, flags come from FLAGS_FILE, re-read on change. */
  LAUNCHDARKLY_SDK_KEY: z.string().min(1).optional(),
  FLAGS_FILE: z.string().default(ownFile('flags.json')),
  ROVER_CONFIG: z.string().default(ownFile('rover.yaml')),
  /**
   * A composed supergraph file (`npm run compose`): used instead of ROVER_CONFIG, every Plugin called
   * over HTTP at its routing URL in the file, nothing composed from schema files.
   */
  SUPERGRAPH_FILE: z.string().min(1).optional(),
  CONNECTIONS_FILE: z.string().default(ownFile('connections.yaml')),
  SUBGRAPHS_DIR: z.string().default(ownFile('subgraphs')),
  /** Subgraphs called over HTTP at their rover.yaml routing_url instead of in process: names, or `*`. */
  REMOTE_SUBGRAPHS: commaList.default([]),
  /**
   * The secret the gateway signs its calls to remote subgraphs with (HS256), shared with their
   * serveSubgraph; required when REMOTE_SUBGRAPHS names one.
   */
  SUBGRAPH_SIGNING_SECRET: z
    .string()
    .superRefine((secret, ctx) => {
      const problem = signingSecretProblem(secret);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .optional(),
  /** A running flow whose gateway has not renewed its lease for this long is recovered by another. */
  FLOW_LEASE_MS: z.coerce.number().int().min(100).default(15_000),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).default(10_000),
  /** How long a flow waits for another flow of its order to end before it is refused with ORDER_BUSY. */
  ORDER_WAIT_MS: z.coerce.number().int().min(0).default(10_000),
  /** Bound of each /readyz check (database, bus): one that has not answered by then counts as not ready. */
  READINESS_TIMEOUT_MS: z.coerce.number().int().min(1).default(1_000),
  /** The Coordinator's URL as browsers reach it: the `next` of a login redirect is built on it. */
  PUBLIC_URL: httpUrl.optional(),
  /** The LMS login page an anonymous browser is sent to. @default `${LMS_URL}/login` */
  LMS_LOGIN_URL: httpUrl.optional(),
  /** Origins (`https://host[:port]`) whose pages may call the gateway with credentials; none: no CORS. */
  CORS_ORIGINS: commaList
    .refine((origins) => origins.every(isOrigin), 'each must be an origin: scheme://host[:port], no path')
    .default([]),
  /** Connection caps and socket timeouts: `HttpLimits` and `SubscriptionLimits` document the defaults. */
  HTTP_MAX_CONNECTIONS: optionalInt(1),
  HTTP_HEALTH_RESERVE: optionalInt(0),
  HTTP_HEADERS_TIMEOUT_MS: optionalInt(1),
  HTTP_REQUEST_TIMEOUT_MS: optionalInt(1),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: optionalInt(1),
  HTTP_SOCKET_TIMEOUT_MS: optionalInt(0),
  WS_MAX_CONNECTIONS: optionalInt(1),
  WS_MAX_SUBSCRIPTIONS: optionalInt(1),
  WS_MAX_SUBSCRIPTIONS_PER_CALLER: optionalInt(1),
  WS_INIT_TIMEOUT_MS: optionalInt(1),
  WS_IDLE_TIMEOUT_MS: optionalInt(0),
  /** Callers' JWTs: one key source. Without any, development uses DEVELOPMENT_JWT_SECRET. */
  JWT_JWKS_URL: z.string().url().optional(),
  JWT_PUBLIC_KEYS: z.string().min(1).optional(),
  JWT_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  JWT_ISSUER: z.string().optional(),
  JWT_AUDIENCE: z.string().optional(),
  /**
   * The OAuth clients whose client-credentials tokens act as a Service (`AuthOptions.serviceClients`):
   * required with a key source.
   * @default lms,order-management on the development key
   */
  JWT_SERVICE_CLIENTS: commaList.optional(),
  /**
   * `stand-ins` starts a local stand-in of every Service, seeded with demo data, and points the plugins
   * at it (the embedded default); `configured` uses the plugins' own variables (STRIPE_API_BASE, …).
   * Read by `npm start` (launcher/main.ts); gateway/main.ts, the production entry, refuses `stand-ins`.
   * @default stand-ins, or configured when NODE_ENV=production
   */
  SERVICES: z.enum(['stand-ins', 'configured']).optional(),
  /** What one client operation may ask for (DEFAULT_OPERATION_LIMITS in gateway/federation/operation-limits.ts). */
  OPERATION_MAX_TOKENS: limit(DEFAULT_OPERATION_LIMITS.maxTokens),
  OPERATION_MAX_DEPTH: limit(DEFAULT_OPERATION_LIMITS.maxDepth),
  OPERATION_MAX_ALIASES: limit(DEFAULT_OPERATION_LIMITS.maxAliases),
  OPERATION_MAX_REPEATED_SELECTIONS: limit(DEFAULT_OPERATION_LIMITS.maxRepeatedSelections),
  OPERATION_MAX_FLOWS: limit(DEFAULT_OPERATION_LIMITS.maxFlows),
  OPERATION_MAX_COST: limit(DEFAULT_OPERATION_LIMITS.maxCost),
  OPERATION_DEFAULT_LIST_SIZE: limit(DEFAULT_OPERATION_LIMITS.defaultListSize),
  /**
   * OpenTelemetry traces, off unless an exporter is asked for (`tracingOptions`). The SDK reads the
   * batch processor's OTEL_BSP_*, the span limits' OTEL_*_LIMIT and OTEL_EXPORTER_OTLP_HEADERS,
   * _TIMEOUT and _COMPRESSION (and their _TRACES_ forms) itself.
   */
  OTEL_SDK_DISABLED: otelBoolean.default(false),
  OTEL_TRACES_EXPORTER: z.enum(['otlp', 'console', 'none']).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl.optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl.optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: otlpProtocol.optional(),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: otlpProtocol.optional(),
  OTEL_SERVICE_NAME: z.string().min(1).default('commerce-coordinator'),
  OTEL_RESOURCE_ATTRIBUTES: resourceAttributes.default({}),
  OTEL_TRACES_SAMPLER: z.enum(SAMPLERS).default('parentbased_always_on'),
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1, 'must be a ratio from 0 to 1').optional(),
});
export type Env = z.infer<typeof envSchema>;

/** Signs the tokens of `npm run token` on the embedded default; never accepted in production. */
export const DEVELOPMENT_JWT_SECRET = 'commerce-coordinator-development-only';

/** The Services of the embedded default, which `npm run token -- service <id>` speaks for. */
export const DEVELOPMENT_SERVICE_CLIENTS: readonly string[] = ['lms', 'order-management'];

/** How callers are verified: the configured key source, or the development secret outside production. */
export function authOptions(env: Env): AuthOptions {
  const common = { issuer: env.JWT_ISSUER, audience: env.JWT_AUDIENCE };
  if (env.JWT_JWKS_URL || env.JWT_PUBLIC_KEYS || env.JWT_SECRET) {
    if (!env.JWT_SERVICE_CLIENTS?.length)
      throw new ConfigError('environment', [
        'JWT_SERVICE_CLIENTS: list the OAuth client ids (or their application users) of the Services that ' +
          'call the Coordinator, comma-separated (e.g. lms,order-management); any other client-credentials ' +
          'token is read as the user it was issued for',
      ]);
    return {
      jwksUrl: env.JWT_JWKS_URL,
      publicKeys: env.JWT_PUBLIC_KEYS,
      secret: env.JWT_SECRET,
      serviceClients: env.JWT_SERVICE_CLIENTS,
      ...common,
    };
  }
  if (env.NODE_ENV === 'production')
    throw new ConfigError('environment', [
      'NODE_ENV=production needs JWT_JWKS_URL, JWT_PUBLIC_KEYS or JWT_SECRET to verify callers',
    ]);
  return {
    secret: DEVELOPMENT_JWT_SECRET,
    serviceClients: env.JWT_SERVICE_CLIENTS ?? DEVELOPMENT_SERVICE_CLIENTS,
    ...common,
  };
}

/** The variable of each connection limit. */
const HTTP_LIMIT_VARIABLES = {
  maxConnections: 'HTTP_MAX_CONNECTIONS',
  healthReserve: 'HTTP_HEALTH_RESERVE',
  headersTimeoutMs: 'HTTP_HEADERS_TIMEOUT_MS',
  requestTimeoutMs: 'HTTP_REQUEST_TIMEOUT_MS',
  keepAliveTimeoutMs: 'HTTP_KEEP_ALIVE_TIMEOUT_MS',
  socketTimeoutMs: 'HTTP_SOCKET_TIMEOUT_MS',
} as const satisfies Record<keyof HttpLimits, keyof Env>;
const SUBSCRIPTION_LIMIT_VARIABLES = {
  maxConnections: 'WS_MAX_CONNECTIONS',
  maxSubscriptionsPerConnection: 'WS_MAX_SUBSCRIPTIONS',
  maxSubscriptionsPerCaller: 'WS_MAX_SUBSCRIPTIONS_PER_CALLER',
  connectionInitWaitTimeoutMs: 'WS_INIT_TIMEOUT_MS',
  idleTimeoutMs: 'WS_IDLE_TIMEOUT_MS',
} as const satisfies Partial<Record<keyof SubscriptionLimits, keyof Env>>;

/**
 * The connection caps and timeouts the environment sets (unset ones keep their defaults), checked
 * together now so that a bad combination names its variables.
 */
export function connectionLimits(env: Env): {
  httpLimits: Partial<HttpLimits>;
  subscriptionLimits: Partial<SubscriptionLimits>;
} {
  const from = <K extends string>(variables: Record<K, keyof Env>) =>
    Object.fromEntries(
      Object.entries(variables).map(([field, name]) => [field, env[name as keyof Env]]),
    ) as Partial<Record<K, number>>;
  const limits = {
    httpLimits: from(HTTP_LIMIT_VARIABLES),
    subscriptionLimits: from(SUBSCRIPTION_LIMIT_VARIABLES),
  };
  const http = named(HTTP_LIMIT_VARIABLES, () => resolveHttpLimits(limits.httpLimits));
  named(SUBSCRIPTION_LIMIT_VARIABLES, () => resolveSubscriptionLimits(limits.subscriptionLimits, http));
  return limits;
}

/** Runs `resolve`; a ConfigError it throws is restated with the variables' names for the fields'. */
function named<T>(variables: Record<string, string>, resolve: () => T): T {
  try {
    return resolve();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(
      'environment',
      error.problems.map((problem) =>
        problem.replace(/^(\w+):/, (_all, field: string) => `${variables[field] ?? field}:`),
      ),
    );
  }
}

/**
 * Where an anonymous browser is sent to sign in: LMS_LOGIN_URL, else the login page of the LMS the
 * Plugins use (LMS_URL); `next` is built on PUBLIC_URL, else on the address the gateway listens on.
 */
export function browserLogin(env: Env, lmsUrl = process.env.LMS_URL): BrowserLogin | undefined {
  const loginUrl = env.LMS_LOGIN_URL ?? (lmsUrl ? `${lmsUrl.replace(/\/+$/, '')}/login` : undefined);
  if (!loginUrl) return undefined;
  return { loginUrl, publicUrl: env.PUBLIC_URL ?? `http://${env.HOST}:${env.PORT}` };
}

/** The database's timeouts the environment sets; unset ones keep `openDatabase`'s defaults. */
export function databaseTimeouts(env: Env): DatabaseTimeouts {
  return { connectTimeoutMs: env.DATABASE_CONNECT_TIMEOUT_MS, queryTimeoutMs: env.DATABASE_QUERY_TIMEOUT_MS };
}

export function operationLimits(env: Env): OperationLimits {
  return {
    maxTokens: env.OPERATION_MAX_TOKENS,
    maxDepth: env.OPERATION_MAX_DEPTH,
    maxAliases: env.OPERATION_MAX_ALIASES,
    maxRepeatedSelections: env.OPERATION_MAX_REPEATED_SELECTIONS,
    maxFlows: env.OPERATION_MAX_FLOWS,
    maxCost: env.OPERATION_MAX_COST,
    defaultListSize: env.OPERATION_DEFAULT_LIST_SIZE,
  };
}

/**
 * The traces the environment asks for, or undefined (tracing off: no provider, nothing observed).
 * On when OTEL_TRACES_EXPORTER names an exporter or an OTLP endpoint is set, unless OTEL_SDK_DISABLED
 * is true or the exporter is `none`: OTEL_SERVICE_NAME or a sampler alone exports nothing.
 */
export function tracingOptions(env: Env): TracingOptions | undefined {
  const asked =
    env.OTEL_TRACES_EXPORTER ??
    (env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? 'otlp' : 'none');
  if (env.OTEL_SDK_DISABLED || asked === 'none') return undefined;
  const ratio = env.OTEL_TRACES_SAMPLER.endsWith('traceidratio')
    ? (env.OTEL_TRACES_SAMPLER_ARG ?? 1)
    : undefined;
  return {
    serviceName: env.OTEL_SERVICE_NAME,
    resourceAttributes: env.OTEL_RESOURCE_ATTRIBUTES,
    sampler: { name: env.OTEL_TRACES_SAMPLER, ...(ratio !== undefined ? { ratio } : {}) },
    exporter: asked === 'console' ? { kind: 'console' } : { kind: 'otlp', url: otlpTracesUrl(env) },
  };
}

/** The signal's own endpoint as it is; else the base endpoint's `/v1/traces` (OTLP/HTTP's rule). */
function otlpTracesUrl(env: Env): string {
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://localhost:4318';
  return `${base.replace(/\/+$/, '')}/v1/traces`;
}

export function readEnv(env: NodeJS.ProcessEnv = process.env): Env {
  // `FOO=` is unset, as shells and compose files write it: not the number 0 or an empty secret.
  const set = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = envSchema
    .refine((e) => !e.SUBGRAPH_SIGNING_SECRET || e.SUBGRAPH_SIGNING_SECRET !== e.JWT_SECRET, {
      path: ['SUBGRAPH_SIGNING_SECRET'],
      message:
        "must differ from JWT_SECRET: a subgraph must not take a caller's token for the gateway's call",
    })
    .refine((e) => e.WORKERS === 1 || e.REDIS_URL !== undefined, {
      path: ['WORKERS'],
      message:
        'more than 1 needs REDIS_URL: the in-process signal bus and event feed cannot span worker processes',
    })
    .safeParse(set);
  if (!parsed.success) {
    throw new ConfigError(
      'environment',
      parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
    );
  }
  return parsed.data;
}
