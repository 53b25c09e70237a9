/**
 * Waiting helpers for asynchronous tests: they wait for a condition or an event, never for a fixed time,
 * so a test is as fast as the code under test and fails with the reason when it does not happen.
 */

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
  readonly settled: boolean;
}

export function createDeferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  let settled = false;
  const promise = new Promise<T>((res, rej) => {
    resolve = (value) => {
      settled = true;
      res(value);
    };
    reject = (reason) => {
      settled = true;
      rej(reason);
    };
  });
  // A deferred nobody awaits must not fail the run with an unhandled rejection.
  promise.catch(() => {});
  return {
    promise,
    resolve,
    reject,
    get settled() {
      return settled;
    },
  };
}

export interface WaitForOptions {
  /** @default 5000 */
  timeoutMs?: number;
  /** @default 10 */
  intervalMs?: number;
  /** Names the condition in the timeout message. */
  what?: string;
}

/**
 * Resolves with the predicate's result once it neither throws nor returns `false`, so both a boolean
 * test and a block of `expect(...)` assertions can be the predicate. On timeout it rejects with the last
 * assertion error, which says what was still wrong.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  options: WaitForOptions = {},
): Promise<Exclude<T, false>> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const intervalMs = options.intervalMs ?? 10;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const result = await predicate();
      if (result !== false) return result as Exclude<T, false>;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const what = options.what ? `${options.what}: ` : '';
      if (lastError instanceof Error) {
        lastError.message = `${what}still failing after ${timeoutMs}ms: ${lastError.message}`;
        throw lastError;
      }
      throw new Error(`${what}condition not met after ${timeoutMs}ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
