import type { Failure } from '../errors.js';
import type { FlagDecision } from '../federation/context.js';
import type { Logger } from '../log.js';
import type { FlowKind, FlowStatus, StepStatus } from './status.js';

export interface FlowWillStartPayload {
  readonly flowId: string;
  readonly kind: FlowKind;
  /** The filter's name, or the signal's for a receiver run. */
  readonly name: string;
  readonly receiver?: string;
  readonly input: Readonly<Record<string, unknown>>;
  /** 1 on the first run; more when recovery or a redelivery runs it again. */
  readonly attempt: number;
}

export interface FlowDidEndPayload extends FlowWillStartPayload {
  readonly status: FlowStatus;
  readonly output?: unknown;
  readonly failure?: Failure;
}

export interface StepWillRunPayload {
  readonly flowId: string;
  readonly name: string;
  readonly stepIndex: number;
  readonly action: string;
  readonly attempt: number;
  readonly input: Readonly<Record<string, unknown>>;
}

export interface StepDidEndPayload extends StepWillRunPayload {
  readonly status: StepStatus;
  readonly output?: unknown;
  readonly failure?: Failure;
  readonly implementation?: string;
  readonly decisions: readonly FlagDecision[];
  readonly durationMs: number;
}

/**
 * Observes flows. A start hook may return its end hook, so both share a closure; end hooks run in
 * reverse order of registration. Hooks run after the record is written and cannot change the flow;
 * a hook that throws is logged and ignored.
 */
export interface FlowPlugin {
  readonly name: string;
  flowWillStart?(payload: FlowWillStartPayload): void | ((end: FlowDidEndPayload) => void);
  stepWillRun?(payload: StepWillRunPayload): void | ((end: StepDidEndPayload) => void);
}

/**
 * Calls every plugin's start hook and returns one function calling their end hooks in reverse. A hook
 * that throws is logged with the flow's id and the plugin's name.
 */
export function invokeStartHooks<S extends { readonly flowId: string }, E>(
  plugins: readonly FlowPlugin[],
  pick: (plugin: FlowPlugin) => ((payload: S) => void | ((end: E) => void)) | undefined,
  payload: S,
  logger: Logger,
): (end: E) => void {
  const ends: Array<{ plugin: string; hook: (end: E) => void }> = [];
  for (const plugin of plugins) {
    const hook = pick(plugin);
    if (!hook) continue;
    try {
      const end = hook.call(plugin, payload);
      if (end) ends.push({ plugin: plugin.name, hook: end });
    } catch (error) {
      logger.error(
        { err: error, flowId: payload.flowId, plugin: plugin.name },
        'flow plugin start hook failed',
      );
    }
  }
  return (end) => {
    for (const { plugin, hook } of ends.reverse()) {
      try {
        hook(end);
      } catch (error) {
        logger.error({ err: error, flowId: payload.flowId, plugin }, 'flow plugin end hook failed');
      }
    }
  };
}
