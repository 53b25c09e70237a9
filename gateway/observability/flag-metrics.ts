import type { Flags } from '../flags/flags.js';
import type { CoordinatorMetrics } from './metrics.js';

/** Counts every decision of `flags` (the executor's, the Plugins', their routes'), by flag, value and reason. */
export function countedFlags(flags: Flags, metrics: CoordinatorMetrics): Flags {
  return {
    async evaluate(flag, context, fallback) {
      const decision = await flags.evaluate(flag, context, fallback);
      metrics.flagDecisions.inc({
        flag: decision.flag,
        value: String(decision.value),
        // `ERROR:<kind>` keeps LaunchDarkly's error kind (a fixed set), e.g. ERROR:FLAG_NOT_FOUND.
        reason: decision.reason,
      });
      return decision;
    },
    onChange: (listener) => flags.onChange(listener),
    ready: () => flags.ready(),
    close: () => flags.close(),
  };
}
