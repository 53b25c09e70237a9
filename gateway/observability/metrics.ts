import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../log.js';

/** Seconds; from a fast in-process Action to a slow Service call with its retries. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Seconds from a signal's commit to its receiver's start: a poll, a Redis outage, a backlog. */
const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** What the outbox holds, read at scrape time. */
export interface OutboxBacklog {
  /** Signals committed and not yet published, counted up to the query's bound. */
  waiting: number;
  /** Age of the oldest of them, in seconds; 0 when none waits. */
  oldestAgeSeconds: number;
}

export interface CoordinatorMetricsOptions {
  /** Reads the outbox at scrape time (a bounded query); without it the outbox gauges are absent. */
  outboxBacklog?: () => Promise<OutboxBacklog>;
  /** A scrape waits this long for the outbox read, then answers without it. @default 1000 */
  outboxBacklogTimeoutMs?: number;
  /** prom-client's process metrics (CPU, memory, event loop, GC, handles). @default true */
  processMetrics?: boolean;
  /** Logs a scrape-time read that failed (the gauge keeps its last value). */
  logger: Logger;
}

/**
 * The Coordinator's Prometheus instruments, in a registry of its own: several Coordinators in one
 * process (the tests) never share a series, and nothing is registered on prom-client's global
 * registry. Every label value comes from a bounded set — configured names, public codes, `(other)`
 * buckets — never from a raw path, id or client string.
 */
export class CoordinatorMetrics {
  readonly registry = new Registry();

  readonly flowsStarted = this.counter(
    'coordinator_flows_started_total',
    'Flow runs started (filters, and receiver runs of signals), recoveries and redeliveries included',
    ['flow', 'receiver'],
  );
  readonly flowsFinished = this.counter(
    'coordinator_flows_finished_total',
    'Flow runs ended, by status (completed, halted, failed, compensated)',
    ['flow', 'receiver', 'status'],
  );
  readonly flowDuration = this.histogram(
    'coordinator_flow_duration_seconds',
    'Time from a flow run start to its end',
    ['flow', 'receiver', 'status'],
    DURATION_BUCKETS,
  );
  readonly stepDuration = this.histogram(
    'coordinator_step_duration_seconds',
    'Time of one attempt of a step (its Action call through the gateway), by the Implementation that ran it',
    ['flow', 'action', 'implementation', 'status'],
    DURATION_BUCKETS,
  );
  readonly stepRetries = this.counter(
    'coordinator_step_retries_total',
    'Step attempts after the first (a receiver: deliveries after the first)',
    ['flow', 'action'],
  );
  readonly compensations = this.counter(
    'coordinator_compensations_total',
    'Compensation steps run after a failed step, by status (completed or failed)',
    ['flow', 'action', 'status'],
  );
  readonly flagDecisions = this.counter(
    'coordinator_flag_decisions_total',
    'Flag evaluations, by flag, value and LaunchDarkly reason kind',
    ['flag', 'value', 'reason'],
  );
  readonly signalsPublished = this.counter(
    'coordinator_outbox_published_total',
    'Signals the outbox dispatcher handed to the bus',
    [],
  );
  readonly signalsRefused = this.counter(
    'coordinator_outbox_refused_total',
    'Signal publishes the bus refused (they stay in the outbox and are tried again)',
    [],
  );
  readonly deliveryLatency = this.histogram(
    'coordinator_signal_delivery_latency_seconds',
    "Time from a signal's commit to the outbox to its receiver's first start",
    ['signal', 'receiver'],
    LATENCY_BUCKETS,
  );
  readonly receiverFailures = this.counter(
    'coordinator_receiver_failures_total',
    'Receiver deliveries that failed (each is retried or dead-lettered)',
    ['receiver'],
  );
  readonly deadLetters = this.counter(
    'coordinator_dead_letters_total',
    'Signals dead-lettered for a receiver',
    ['receiver'],
  );
  readonly graphqlDuration = this.histogram(
    'coordinator_graphql_operation_duration_seconds',
    'Client GraphQL operations over HTTP (the flow engine’s own Action calls excluded), by operation name, type and outcome; _count counts them',
    ['operation', 'type', 'outcome'],
    DURATION_BUCKETS,
  );
  readonly graphqlErrors = this.counter(
    'coordinator_graphql_errors_total',
    'Errors of client GraphQL operations, by public code',
    ['operation', 'code'],
  );
  readonly subgraphFetchDuration = this.histogram(
    'coordinator_subgraph_fetch_duration_seconds',
    'Fetches of a query plan from one subgraph (in process or remote), by outcome',
    ['subgraph', 'outcome'],
    DURATION_BUCKETS,
  );
  readonly httpDuration = this.histogram(
    'coordinator_http_request_duration_seconds',
    'HTTP requests, by route, method and status; _count counts them',
    ['route', 'method', 'status'],
    DURATION_BUCKETS,
  );

  constructor(options: CoordinatorMetricsOptions) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const read = options.outboxBacklog;
    if (!read) return;
    const timeoutMs = options.outboxBacklogTimeoutMs ?? 1_000;
    // One read serves both gauges of a scrape; a database that does not answer cannot hang the scrape.
    let pending: Promise<OutboxBacklog | undefined> | undefined;
    const backlog = () =>
      (pending ??= withTimeout(read(), timeoutMs)
        .catch((err: unknown) => {
          options.logger.warn({ err }, 'outbox backlog not read for the metrics scrape');
          return undefined;
        })
        .finally(() => (pending = undefined)));
    new Gauge({
      name: 'coordinator_outbox_backlog',
      // Every worker reads the same outbox: their aggregate (WORKERS > 1) is the one value, not a sum.
      aggregator: 'max',
      help: 'Signals committed to the outbox and not yet published (counted up to 100,000)',
      registers: [this.registry],
      async collect() {
        const read = await backlog();
        if (read) this.set(read.waiting);
      },
    });
    new Gauge({
      name: 'coordinator_outbox_oldest_signal_age_seconds',
      aggregator: 'max',
      help: 'Age of the oldest signal waiting in the outbox; 0 when none waits',
      registers: [this.registry],
      async collect() {
        const read = await backlog();
        if (read) this.set(read.oldestAgeSeconds);
      },
    });
  }

  /** The exposition text of every metric. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private histogram<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets: number[],
  ): Histogram<L> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

/** Seconds elapsed since `started` (a `performance.now()` reading). */
export const secondsSince = (started: number) => (performance.now() - started) / 1000;
