import type { Failure } from '../errors.js';
import type { FlagDecision } from '../federation/context.js';
import type { Logger } from '../log.js';
import type { TraceContext } from '../observability/trace-context.js';
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
  /**
   * The trace recorded with the run (tracing on): for a filter, the one it was started in, which a
   * recovered run continues; for a receiver run, the trace of what emitted its signal.
   */
  readonly traceContext?: TraceContext;
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
  /**
   * What the step's Service calls carry, the same on every attempt: `<flowId>:<stepIndex>`, or a key of
   * its own when an operator's retry runs a compensated step again.
   */
  readonly idempotencyKey: string;
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
 * Runs a phase of a flow inside what a plugin provides — a trace span made active with
 * AsyncLocalStorage, so that the Action calls, subgraph fetches and Service calls within find it.
 * `run` runs the phase; it resolves to how the phase ended (the payload its end hooks get) and rejects
 * when the phase was interrupted (the database failed, another process took the flow over), which the
 * wrapper passes on. Whatever a wrapper does, the phase runs once and its own outcome stands: a wrapper
 * that throws, or never calls `run`, is logged.
 */
export type Instrument<Start, End> = (start: Start, run: () => Promise<End>) => Promise<unknown>;

/** Wrappers of a flow's phases; the first plugin's is outermost. */
export interface FlowInstrumentation {
  /** Around a run of a flow: its steps, its compensations and the write of its end; after flowWillStart. */
  flow?: Instrument<FlowWillStartPayload, FlowDidEndPayload>;
  /** Around one attempt of a step: its Action call, once its start is recorded; after stepWillRun. */
  step?: Instrument<StepWillRunPayload, StepDidEndPayload>;
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
  instrumentation?: FlowInstrumentation;
}

/** A phase run without wrappers, or through its plugins' wrappers nested in one. */
export type Instrumented<Start, End> = (start: Start, run: () => Promise<End>) => Promise<End>;

/**
 * The plugins' wrappers of one phase nested into one, built once; undefined when no plugin wraps it,
 * so an unwrapped phase costs nothing.
 */
export function chainInstruments<Start, End>(
  plugins: readonly FlowPlugin[],
  pick: (instrumentation: FlowInstrumentation) => Instrument<Start, End> | undefined,
  logger: Logger,
): Instrumented<Start, End> | undefined {
  const wrappers = plugins.flatMap((plugin) => {
    const wrapper = plugin.instrumentation && pick(plugin.instrumentation);
    return wrapper ? [guarded(plugin.name, wrapper, logger)] : [];
  });
  if (!wrappers.length) return undefined;
  return wrappers.reduceRight((inner, outer) => (start, run) => outer(start, () => inner(start, run)));
}

function guarded<Start, End>(
  plugin: string,
  wrapper: Instrument<Start, End>,
  logger: Logger,
): Instrumented<Start, End> {
  return async (start, run) => {
    let ran: Promise<End> | undefined;
    const once = () => (ran ??= run());
    try {
      await wrapper(start, once);
      if (!ran) logger.error({ plugin }, 'flow plugin instrumentation did not run its phase');
    } catch (error) {
      // The phase's own failure, passed on as it should be, is the engine's to handle below.
      const passedOn =
        ran !== undefined &&
        (await ran.then(
          () => false,
          (own: unknown) => own === error,
        ));
      if (!passedOn) logger.error({ err: error, plugin }, 'flow plugin instrumentation failed');
    }
    return once();
  };
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
