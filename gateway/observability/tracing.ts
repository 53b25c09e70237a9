import { AsyncLocalStorage } from 'node:async_hooks';
import type { ApolloServerPlugin } from '@apollo/server';
import type { GraphQLDataSource } from '@apollo/gateway';
import type { Context } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { UnreachableCaseError } from '../errors.js';
import type { GatewayContext } from '../federation/context.js';
import type { ActionCallObserver } from '../flows/action-calls.js';
import type { FlowPlugin } from '../flows/hooks.js';
import type { Route } from '../http/server.js';
import type { Logger } from '../log.js';
import { useFlowTracing } from './flow-spans.js';
import { observeHttpClients } from './http-client-spans.js';
import { RequestTracing } from './request-spans.js';
import { tracedRoute } from './route-spans.js';
import type { TraceContext } from './trace-context.js';
import { TraceScope } from './trace-scope.js';

/** OTEL_TRACES_SAMPLER's values. */
export type SamplerName =
  | 'always_on'
  | 'always_off'
  | 'traceidratio'
  | 'parentbased_always_on'
  | 'parentbased_always_off'
  | 'parentbased_traceidratio';

/** Where ended spans go. */
export type TraceExporterOptions =
  /**
   * OTLP/HTTP (JSON) to `url`; the exporter reads OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT and
   * _COMPRESSION (and their _TRACES_ forms) itself.
   */
  | { kind: 'otlp'; url: string }
  /** Each span to stdout, for a look without a collector. */
  | { kind: 'console' }
  /** The caller's exporter (tests: an InMemorySpanExporter). `simple` exports each span as it ends. */
  | { kind: 'custom'; exporter: SpanExporter; processor?: 'batch' | 'simple' };

export interface TracingOptions {
  /** The spans' `service.name`. @default 'commerce-coordinator' */
  serviceName?: string;
  /** More resource attributes (OTEL_RESOURCE_ATTRIBUTES); `service.name` is `serviceName`'s. */
  resourceAttributes?: Readonly<Record<string, string>>;
  /** Which traces are recorded. @default parentbased_always_on: all, unless the caller's trace is not sampled */
  sampler?: { name: SamplerName; ratio?: number };
  exporter: TraceExporterOptions;
}

/**
 * One Coordinator's tracing: a provider of its own (never registered globally), the pieces the
 * Coordinator wires into its flow engine, Apollo Server and data sources, and the observation of its
 * Plugins' HTTP calls. Without tracing none of it exists.
 */
export interface Tracing {
  /** Spans of flows and step attempts, each active while it runs. */
  readonly flowPlugin: FlowPlugin;
  /** Spans of GraphQL operations: clients' requests and flows' Action calls. */
  readonly apolloPlugin: ApolloServerPlugin<GatewayContext>;
  /** Spans of the Action calls the flow engine hands the executor itself. */
  readonly actionCall: ActionCallObserver;
  /** `source` with a span per fetch, active while the subgraph runs. */
  dataSource(
    name: string,
    source: GraphQLDataSource<GatewayContext>,
    remote: boolean,
  ): GraphQLDataSource<GatewayContext>;
  /** `route` (a Plugin's) with a span per call, active while it runs. */
  route(path: string, route: Route): Route;
  /** The trace of the work running now, to record with flows and signals (undefined outside a span). */
  currentTraceContext(): TraceContext | undefined;
  /** Runs `work`, and what it starts, outside any span: work that outlives the span it came from. */
  untraced<T>(work: () => T): T;
  /** Stops observing HTTP calls and exports the spans still buffered, for at most until `signal` aborts. */
  shutdown(signal?: AbortSignal): Promise<void>;
}

export function startTracing(
  options: TracingOptions,
  deps: { logger: Logger; /** This process's identity: `service.instance.id`. */ instanceId: string },
): Tracing {
  const logger = deps.logger.child({ component: 'tracing' });
  const storage = new AsyncLocalStorage<Context>();
  const exporter = new ReportingExporter(exporterOf(options.exporter), storage, logger);
  const processor =
    options.exporter.kind === 'custom' && options.exporter.processor === 'simple'
      ? new SimpleSpanProcessor(exporter)
      : new BatchSpanProcessor(exporter);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      ...options.resourceAttributes,
      [ATTR_SERVICE_NAME]: options.serviceName ?? 'commerce-coordinator',
      'service.instance.id': deps.instanceId,
    }),
    sampler: samplerOf(options.sampler ?? { name: 'parentbased_always_on' }),
    spanProcessors: [processor],
  });
  const scope = new TraceScope(provider.getTracer('commerce-coordinator'), storage);
  const requests = new RequestTracing(scope);
  const stopObserving = observeHttpClients(scope, logger);
  let shutdown: Promise<void> | undefined;
  return {
    flowPlugin: useFlowTracing(scope),
    apolloPlugin: requests.plugin(),
    actionCall: (call, run) => requests.action(call, run),
    dataSource: (name, source, remote) => requests.dataSource(name, source, remote),
    route: (path, route) => tracedRoute(scope, path, route),
    currentTraceContext: () => scope.inject(),
    untraced: (work) => scope.untraced(work),
    shutdown(signal) {
      shutdown ??= (async () => {
        stopObserving();
        const flushed = provider
          .shutdown()
          .catch((err: unknown) => logger.warn({ err }, 'trace export failed at shutdown'));
        await (signal ? Promise.race([flushed, aborted(signal)]) : flushed);
      })();
      return shutdown;
    },
  };
}

function exporterOf(options: TraceExporterOptions): SpanExporter {
  switch (options.kind) {
    case 'otlp':
      return new OTLPTraceExporter({ url: options.url });
    case 'console':
      return new ConsoleSpanExporter();
    case 'custom':
      return options.exporter;
    default:
      throw new UnreachableCaseError(options);
  }
}

function samplerOf({ name, ratio = 1 }: { name: SamplerName; ratio?: number }): Sampler {
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    default:
      throw new UnreachableCaseError(name);
  }
}

const aborted = (signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });

/**
 * Exports outside any span — the exporter's own HTTP calls must not be traced, or each export would
 * make spans to export — and logs a failing collector once per outage (the SDK would drop the spans
 * silently: OpenTelemetry's diagnostic logger is global, and left alone).
 */
class ReportingExporter implements SpanExporter {
  private failing = false;

  constructor(
    private readonly exporter: SpanExporter,
    private readonly storage: AsyncLocalStorage<Context>,
    private readonly logger: Logger,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.storage.exit(() =>
      this.exporter.export(spans, (result) => {
        if (result.code !== ExportResultCode.SUCCESS && !this.failing) {
          this.failing = true;
          this.logger.warn({ err: result.error, spans: spans.length }, 'trace export failed; spans dropped');
        } else if (result.code === ExportResultCode.SUCCESS && this.failing) {
          this.failing = false;
          this.logger.info('trace export works again');
        }
        done(result);
      }),
    );
  }

  shutdown(): Promise<void> {
    return this.storage.exit(() => this.exporter.shutdown());
  }

  forceFlush(): Promise<void> {
    return this.storage.exit(() => this.exporter.forceFlush?.() ?? Promise.resolve());
  }
}
