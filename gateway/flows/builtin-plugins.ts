import type { EventFeed } from '../events/types.js';
import type { Logger } from '../log.js';
import type { FlowPlugin } from './hooks.js';

/** Publishes flow and step events to the event feed, for GraphQL subscribers and the flow inspector. */
export function useFlowEvents(feed: EventFeed, logger: Logger): FlowPlugin {
  const publish = (type: string, data: Record<string, unknown>) =>
    // Best-effort by design: the durable record is the database, not the feed. (The feed keeps events
    // through a Redis outage; what it rejects, Redis refused.)
    feed.publish('flows', type, data).catch((err) => logger.warn({ err, type }, 'flow event not published'));
  return {
    name: 'flow-events',
    flowWillStart(start) {
      void publish('FLOW_STARTED', {
        flowId: start.flowId,
        name: start.name,
        kind: start.kind,
        status: 'RUNNING',
      });
      return (end) =>
        void publish('FLOW_FINISHED', {
          flowId: end.flowId,
          name: end.name,
          kind: end.kind,
          status: end.status.toUpperCase(),
          ...(end.failure ? { error: end.failure } : {}),
        });
    },
    stepWillRun(step) {
      const base = {
        flowId: step.flowId,
        name: step.name,
        stepIndex: step.stepIndex,
        action: step.action,
        attempt: step.attempt,
      };
      void publish('STEP_STARTED', { ...base, status: 'RUNNING' });
      return (end) =>
        void publish('STEP_FINISHED', {
          ...base,
          status: end.status.toUpperCase(),
          implementation: end.implementation ?? null,
          durationMs: end.durationMs,
          ...(end.failure ? { error: end.failure } : {}),
        });
    },
  };
}

/** One structured log line per flow and per step end. */
export function useFlowLogging(logger: Logger): FlowPlugin {
  return {
    name: 'flow-logging',
    flowWillStart(start) {
      return (end) =>
        logger.info(
          {
            flowId: end.flowId,
            flow: end.name,
            receiver: end.receiver,
            status: end.status,
            attempt: start.attempt,
            failure: end.failure,
          },
          'flow finished',
        );
    },
    stepWillRun() {
      return (end) =>
        logger.debug(
          {
            flowId: end.flowId,
            step: end.stepIndex,
            action: end.action,
            status: end.status,
            implementation: end.implementation,
            decisions: end.decisions,
            durationMs: Math.round(end.durationMs),
            failure: end.failure,
          },
          'step finished',
        );
    },
  };
}
