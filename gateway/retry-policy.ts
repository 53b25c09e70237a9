import { z } from 'zod';

/** A duration: milliseconds, or a string such as `'250ms'`, `'30s'`, `'5m'`. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h'}`;

const durationPattern = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const unitMs = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

export function toMs(duration: Duration): number {
  if (typeof duration === 'number') return duration;
  const match = durationPattern.exec(duration);
  if (!match) throw new TypeError(`Invalid duration '${duration}': use milliseconds or e.g. '250ms', '30s'`);
  return Number(match[1]) * unitMs[match[2] as keyof typeof unitMs];
}

export const durationSchema = z.union([
  z.number().nonnegative(),
  z.string().regex(durationPattern, "a duration such as '250ms', '30s' or '5m'"),
]) as z.ZodType<Duration>;

/**
 * How a step, a receiver or a Service call is retried. One type for all of them.
 */
export interface RetryPolicy {
  /** @default '200ms' */
  initialInterval?: Duration;
  /** @default 2 */
  backoffCoefficient?: number;
  /** @default 100 × initialInterval */
  maximumInterval?: Duration;
  /** Attempts in all, the first included. @default 5 */
  maximumAttempts?: number;
  /** Failure types (error codes or class names) that are never retried. Domain errors never are. */
  nonRetryableErrorTypes?: string[];
}

export const retryPolicySchema = z
  .object({
    initialInterval: durationSchema.optional(),
    backoffCoefficient: z.number().min(1).optional(),
    maximumInterval: durationSchema.optional(),
    maximumAttempts: z.number().int().min(1).optional(),
    nonRetryableErrorTypes: z.array(z.string()).optional(),
  })
  .strict();

export interface CompiledRetryPolicy {
  initialIntervalMs: number;
  backoffCoefficient: number;
  maximumIntervalMs: number;
  maximumAttempts: number;
  nonRetryableErrorTypes: ReadonlySet<string>;
}

export function compileRetryPolicy(policy: RetryPolicy = {}): CompiledRetryPolicy {
  const initialIntervalMs = toMs(policy.initialInterval ?? '200ms');
  if (initialIntervalMs <= 0) throw new RangeError('RetryPolicy.initialInterval must be greater than 0');
  const maximumIntervalMs = toMs(policy.maximumInterval ?? initialIntervalMs * 100);
  if (maximumIntervalMs < initialIntervalMs) {
    throw new RangeError('RetryPolicy.maximumInterval cannot be less than its initialInterval');
  }
  const backoffCoefficient = policy.backoffCoefficient ?? 2;
  if (backoffCoefficient < 1) throw new RangeError('RetryPolicy.backoffCoefficient must be at least 1');
  const maximumAttempts = policy.maximumAttempts ?? 5;
  if (!Number.isInteger(maximumAttempts) || maximumAttempts < 1) {
    throw new RangeError('RetryPolicy.maximumAttempts must be a whole number of at least 1');
  }
  return {
    initialIntervalMs,
    backoffCoefficient,
    maximumIntervalMs,
    maximumAttempts,
    nonRetryableErrorTypes: new Set(policy.nonRetryableErrorTypes ?? []),
  };
}

/**
 * The wait before attempt `attempt + 1`, after `attempt` failed: exponential with full jitter in the
 * upper half, so that retries of many failures at once spread out.
 */
export function retryDelayMs(
  policy: CompiledRetryPolicy,
  attempt: number,
  random: () => number = Math.random,
) {
  const base = Math.min(
    policy.maximumIntervalMs,
    policy.initialIntervalMs * policy.backoffCoefficient ** Math.max(0, attempt - 1),
  );
  return Math.round(base / 2 + (random() * base) / 2);
}

export function shouldRetry(
  policy: CompiledRetryPolicy,
  attempt: number,
  failure: { type: string; nonRetryable: boolean },
) {
  return (
    attempt < policy.maximumAttempts &&
    !failure.nonRetryable &&
    !policy.nonRetryableErrorTypes.has(failure.type)
  );
}
