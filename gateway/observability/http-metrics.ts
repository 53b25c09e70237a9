import type { RequestObserver } from './access-log.js';
import { methodLabel } from './labels.js';
import type { CoordinatorMetrics } from './metrics.js';

/** HTTP requests by route, method and status, with their duration. */
export function httpMetrics(metrics: CoordinatorMetrics): RequestObserver {
  return (end) =>
    metrics.httpDuration.observe(
      { route: end.route, method: methodLabel(end.method), status: String(end.status) },
      end.durationMs / 1000,
    );
}
