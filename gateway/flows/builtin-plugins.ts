import type { EventFeed } from '../events/types.js';
import { flowLogger, type Logger, type TraceLogFields } from '../log.js';
import { secondsSince, type CoordinatorMetrics } from '../observability/metrics.js';
import { flowFinishedData, type FlowEndEvents } from './end-events.js';
import type { FlowPlugin } from './hooks.js';
import { FlowKind } from './status.js';

/**
 * Publishes flow and step events to the event feed, for GraphQL subscribers and the flow inspector.
 * Each flow's end is told to `ends` once published, which sees to it that a flow's end is published
 * even when this process dies first.
 */
export function useFlowEvents(
  feed: EventFeed,
  logger: Logger,
  ends?: Pick<FlowEndEvents, 'published'>,
): FlowPlugin {
  // Best-effort by design: the durable record is the database, not the feed. (The feed keeps events
  // through a Redis outage; what it rejects, Redis refused.)
  const publish = (type: string, data: Record<string, unknown>) => feed.publish('flows', type, data);
  const notPublished = (type: string) => (err: unknown) =>
    logger.warn({ err, type }, 'flow event not published');
  return {
    name: 'flow-events',
    flowWillStart(start) {
      publish('FLOW_STARTED', {
        flowId: start.flowId,
        name: start.name,
        kind: start.kind,
        status: 'RUNNING',
      }).catch(notPublished('FLOW_STARTED'));
      return (end) =>
        void publish('FLOW_FINISHED', flowFinishedData(end)).then(
          () => ends?.published(end.flowId),
          notPublished('FLOW_FINISHED'),
        );
    },
    stepWillRun(step) {
      const base = {
        flowId: step.flowId,
        name: step.name,
        stepIndex: step.stepIndex,
        action: step.action,
        attempt: step.attempt,
      };
      publish('STEP_STARTED', { ...base, status: 'RUNNING' }).catch(notPublished('STEP_STARTED'));
      return (end) =>
        void publish('STEP_FINISHED', {
          ...base,
          status: end.status.toUpperCase(),
          implementation: end.implementation ?? null,
          durationMs: end.durationMs,
          ...(end.failure ? { error: end.failure } : {}),
        }).catch(notPublished('STEP_FINISHED'));
    },
  };
}

/**
 * One structured log line per flow end and per step end, each from the flow's own logger
 * (`flowLogger`): every line about a flow carries its id.
 */
export function useFlowLogging(
  logger: Logger,
  options: {
    /** The trace of the work running now (tracing on): the flow's, as its start hook runs in its span. */
    trace?: () => TraceLogFields | undefined;
  } = {},
): FlowPlugin {
  // Per flow run in this process, from its start to its end.
  const loggers = new Map<string, Logger>();
  return {
    name: 'flow-logging',
    flowWillStart(start) {
      const log = flowLogger(logger, start, options.trace?.());
      loggers.set(start.flowId, log);
      return (end) => {
        loggers.delete(end.flowId);
        log.info({ status: end.status, attempt: start.attempt, failure: end.failure }, 'flow finished');
      };
    },
    stepWillRun(step) {
      return (end) =>
        (loggers.get(end.flowId) ?? flowLogger(logger, end)).debug(
          {
            step: end.stepIndex,
            action: end.action,
            status: end.status,
            implementation: end.implementation,
            decisions: end.decisions,
            durationMs: Math.round(end.durationMs),
            failure: end.failure,
            ...(step.attempt > 1 ? { attempt: step.attempt } : {}),
          },
          'step finished',
        );
    },
  };
}

/**
 * Flow and step metrics: runs started and finished by filter (or signal and receiver) and status, their
 * durations, each step attempt's duration by Action and Implementation, retries, and compensations.
 * `isCompensation` tells a filter's compensation steps (recorded after its own steps) from its steps.
 */
export function useMetrics(
  metrics: CoordinatorMetrics,
  isCompensation: (filter: string, stepIndex: number) => boolean,
): FlowPlugin {
  // The kind of each flow run in this process, from its start to its end.
  const kinds = new Map<string, FlowKind>();
  return {
    name: 'metrics',
    flowWillStart(start) {
      const labels = { flow: start.name, receiver: start.receiver ?? '' };
      const started = performance.now();
      kinds.set(start.flowId, start.kind);
      metrics.flowsStarted.inc(labels);
      return (end) => {
        kinds.delete(end.flowId);
        metrics.flowsFinished.inc({ ...labels, status: end.status });
        metrics.flowDuration.observe({ ...labels, status: end.status }, secondsSince(started));
      };
    },
    stepWillRun(step) {
      const compensation =
        kinds.get(step.flowId) === FlowKind.FILTER && isCompensation(step.name, step.stepIndex);
      if (step.attempt > 1) metrics.stepRetries.inc({ flow: step.name, action: step.action });
      return (end) => {
        metrics.stepDuration.observe(
          {
            flow: end.name,
            action: end.action,
            implementation: end.implementation ?? '',
            status: end.status,
          },
          end.durationMs / 1000,
        );
        if (compensation)
          metrics.compensations.inc({ flow: end.name, action: end.action, status: end.status });
      };
    },
  };
}
