import { ConfigError } from '../errors.js';
import type { ServiceHealth } from '@commerce-coordinator/plugin-sdk';
import { sendJson, type Route } from './server.js';

/** One readiness check: resolves whether its component can serve now. It may throw or never settle. */
export type ReadinessCheck = () => Promise<boolean>;

/** What one bounded check found. */
type Outcome = { ok: true } | { ok: false; reason: string };

/** A Service as /readyz reports it. */
export type ServiceStatus = { status: 'ok' } | { status: 'degraded'; reason: string };

/**
 * Runs `check` bounded by `timeoutMs`: one that throws, or has not answered in time (a hung server
 * keeps its connection open and answers nothing), fails with the reason. Settles within the bound.
 */
async function bounded(check: () => Promise<unknown>, timeoutMs: number): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, reason: `no answer within ${timeoutMs} ms` }), timeoutMs);
  });
  try {
    return await Promise.race([
      Promise.resolve()
        .then(check)
        .then((): Outcome => ({ ok: true }))
        .catch((error: unknown): Outcome => ({ ok: false, reason: reasonOf(error) })),
      expired,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const reasonOf = (error: unknown): string =>
  error instanceof ConfigError
    ? `not configured: ${error.problems.join('; ')}`
    : error instanceof Error
      ? error.message
      : String(error);

/**
 * Runs every check at once, each bounded by `timeoutMs` (see `bounded`); one that does not resolve
 * `true` counts as not ready. Resolves within the bound whatever the checks do, so a readiness probe
 * never hangs with a component.
 */
export async function runReadinessChecks<Name extends string>(
  checks: Readonly<Record<Name, ReadinessCheck>>,
  timeoutMs: number,
): Promise<Record<Name, boolean>> {
  const names = Object.keys(checks) as Name[];
  const results = await Promise.all(
    names.map((name) =>
      bounded(async () => {
        if ((await checks[name]()) !== true) throw new Error('not ready');
      }, timeoutMs),
    ),
  );
  return Object.fromEntries(names.map((name, i) => [name, results[i]!.ok])) as Record<Name, boolean>;
}

/** Each Service's health check at once, each bounded by `timeoutMs`, by Service name. */
export async function checkServices(
  services: readonly ServiceHealth[],
  timeoutMs: number,
): Promise<Record<string, ServiceStatus>> {
  const outcomes = await Promise.all(services.map((s) => bounded(() => s.check(), timeoutMs)));
  return Object.fromEntries(
    services.map((s, i) => {
      const outcome = outcomes[i]!;
      return [s.service, outcome.ok ? { status: 'ok' } : { status: 'degraded', reason: outcome.reason }];
    }),
  );
}

/**
 * /readyz: 503 `not ready` when a component of the Coordinator itself cannot serve (the database,
 * the bus, the flags before their first load, the supergraph); else 200, `ready`, or `degraded` when
 * a Service does not answer. A Service's outage is every instance's: taking them all out of the load
 * balancer would refuse what still works (flows of other Services, the record), so it is reported,
 * not acted on.
 */
export function readinessRoute(options: {
  checks: Readonly<Record<string, ReadinessCheck>>;
  services: readonly ServiceHealth[];
  timeoutMs: number;
  /** What else the probe shows (the loaded configuration's hash). */
  info?: () => Record<string, unknown> | undefined;
}): Route {
  return async (_req, res) => {
    const [checks, services] = await Promise.all([
      runReadinessChecks(options.checks, options.timeoutMs),
      checkServices(options.services, options.timeoutMs),
    ]);
    const ready = Object.values(checks).every(Boolean);
    const degraded = Object.values(services).some((s) => s.status !== 'ok');
    sendJson(res, ready ? 200 : 503, {
      status: !ready ? 'not ready' : degraded ? 'degraded' : 'ready',
      checks,
      services,
      ...options.info?.(),
    });
  };
}
