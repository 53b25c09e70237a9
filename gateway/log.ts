import { pino, type DestinationStream, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

export type { Logger };

export interface LoggerOptions {
  /** @default 'info' */
  level?: string;
  /** @default 'coordinator' */
  name?: string;
  /**
   * Human-readable lines (pino-pretty, colour) instead of JSON: for a developer's terminal, never for
   * a log pipeline. @default false
   */
  pretty?: boolean;
  /**
   * Fields added to every line, read when the line is written (e.g. the active trace's `traceId` and
   * `spanId` once tracing is on). It must be cheap and must not throw.
   */
  mixin?: () => Record<string, unknown>;
  /** Where lines go. @default stdout */
  destination?: DestinationStream;
}

/** Structured logs; one logger per process, passed to every component. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.pretty
    ? pinoPretty({
        // pino-pretty colours a terminal that supports it; a given destination gets plain text.
        ...(options.destination ? { colorize: false } : {}),
        translateTime: 'SYS:HH:MM:ss.l',
        ...(options.destination ? { destination: options.destination } : {}),
      })
    : options.destination;
  const settings = {
    level: options.level ?? 'info',
    name: options.name ?? 'coordinator',
    ...(options.mixin ? { mixin: options.mixin } : {}),
  };
  return destination ? pino(settings, destination) : pino(settings);
}

/** `LOG_FORMAT`: `auto` is pretty on a terminal outside production, JSON otherwise. */
export type LogFormat = 'auto' | 'json' | 'pretty';

export function prettyLogs(format: LogFormat, production: boolean, terminal: boolean): boolean {
  if (format === 'auto') return terminal && !production;
  return format === 'pretty';
}

/** What identifies a flow run in its log lines. */
export interface FlowLogFields {
  readonly flowId: string;
  /** The filter's name, or the signal's for a receiver run. */
  readonly name: string;
  readonly receiver?: string;
}

/** The trace a flow's lines belong to (tracing on): its span's ids, as OpenTelemetry writes them. */
export interface TraceLogFields {
  readonly traceId: string;
  readonly spanId: string;
}

/**
 * The logger of one flow run's lines: every line carries `flowId` and `flow` (and `receiver`). The one
 * place a flow's log context is built, so what else a line about a flow needs (a trace id) is added here.
 */
export function flowLogger(logger: Logger, flow: FlowLogFields, trace?: TraceLogFields): Logger {
  return logger.child({
    flowId: flow.flowId,
    flow: flow.name,
    ...(flow.receiver ? { receiver: flow.receiver } : {}),
    ...(trace ? { traceId: trace.traceId, spanId: trace.spanId } : {}),
  });
}

/** A logger that writes nothing, for components under test. */
export const silentLogger: Logger = pino({ level: 'silent' });
