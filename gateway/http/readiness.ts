/** One readiness check: resolves whether its component can serve now. It may throw or never settle. */
export type ReadinessCheck = () => Promise<boolean>;

/**
 * Runs every check at once, each bounded by `timeoutMs`: a check that throws, or has not answered in
 * time (a hung server keeps its connection open and answers nothing), counts as not ready. Resolves
 * within the bound whatever the checks do, so a readiness probe never hangs with a component.
 */
export async function runReadinessChecks<Name extends string>(
  checks: Readonly<Record<Name, ReadinessCheck>>,
  timeoutMs: number,
): Promise<Record<Name, boolean>> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    const names = Object.keys(checks) as Name[];
    const results = await Promise.all(
      names.map((name) =>
        Promise.race([
          Promise.resolve()
            .then(checks[name])
            .then((ready) => ready === true)
            .catch(() => false),
          expired,
        ]),
      ),
    );
    return Object.fromEntries(names.map((name, i) => [name, results[i]])) as Record<Name, boolean>;
  } finally {
    clearTimeout(timer);
  }
}
