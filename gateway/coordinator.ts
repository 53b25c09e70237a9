import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginLandingPageProductionDefault } from '@apollo/server/plugin/landingPage/default';
import type { GraphQLDataSource } from '@apollo/gateway';
import { createAuthenticator, type AuthOptions, type Authenticator } from './auth/authenticator.js';
import { requestAuthorization, subscriberAuthorization } from './auth/cookies.js';
import { filterField, type Connections } from './connections/schema.js';
import {
  ConfigError,
  DomainError,
  domainCodeOf,
  ErrorCode,
  httpStatusOf,
  UnreachableCaseError,
} from './errors.js';
import { openDatabase, type Database, type DatabaseTimeouts } from './db/database.js';
import { createMemoryEventFeed } from './events/memory-feed.js';
import { createRedisEventFeed } from './events/redis-feed.js';
import type { EventFeed } from './events/types.js';
import { createFlags, type Flags, type FlagsOptions } from './flags/flags.js';
import { createGatewayContext, type GatewayContext } from './federation/context.js';
import { InProcessDataSource, RemoteDataSource, type FlagEvaluator } from './federation/data-sources.js';
import { callerlessRefusal, callerRequiredPlugin } from './federation/caller-required.js';
import { ClientErrors } from './federation/client-errors.js';
import { formatGatewayError } from './federation/public-codes.js';
import { FederatedExecutor } from './federation/executor.js';
import { ReloadableGateway } from './federation/reloadable-gateway.js';
import { serialized, watchFiles } from './federation/reload.js';
import { OperationLimitsChecker, type OperationLimits } from './federation/operation-limits.js';
import { buildSupergraph, buildSupergraphFromFile, type BuiltSupergraph } from './federation/supergraph.js';
import { COORDINATOR_SUBGRAPH, coordinatorPlugin } from './flows/api.js';
import { useFlowEvents, useFlowLogging, useMetrics } from './flows/builtin-plugins.js';
import { createActionCaller } from './flows/action-calls.js';
import { FlowEngine } from './flows/engine.js';
import type { FlowPlugin } from './flows/hooks.js';
import { startFlowEndEvents } from './flows/end-events.js';
import { startLeaseKeeper } from './flows/leases.js';
import { startFlowResumer, type FlowResumer } from './flows/resume.js';
import { OperatorLog } from './flows/operator-log.js';
import { FlowStore } from './flows/store.js';
import type { BrowserLogin } from './http/browser.js';
import { pluginRoutes } from './http/plugin-routes.js';
import { readinessRoute } from './http/readiness.js';
import { resolveHttpLimits, type HttpLimits } from './http/connection-limits.js';
import { createHttpServer, sendJson, trackRequests, type Route } from './http/server.js';
import { explorerRoutes } from './explorer/route.js';
import { sandboxWithFallback } from './explorer/landing-page.js';
import { inspectorRoutes } from './inspector/route.js';
import type { Logger } from './log.js';
import { accessLog } from './observability/access-log.js';
import { countedFlags } from './observability/flag-metrics.js';
import { graphqlMetricsPlugin } from './observability/graphql-metrics.js';
import { httpMetrics } from './observability/http-metrics.js';
import {
  METRICS_PATH,
  metricsRoute,
  startMetricsServer,
  type MetricsServer,
} from './observability/metrics-endpoint.js';
import { CoordinatorMetrics } from './observability/metrics.js';
import { measuredReceiver } from './observability/signal-metrics.js';
import { timedDataSource } from './observability/subgraph-metrics.js';
import { traceIdsOf } from './observability/trace-context.js';
import type { Tracing, TracingOptions } from './observability/tracing.js';
import { loadPlugin } from './plugins/load.js';
import { validatePluginConfig } from './plugins/plugin-config.js';
import { createPluginRuntime, evaluatorFrom, principalFlagContext } from './plugins/runtime.js';
import {
  createCallSigner,
  signingSecretProblem,
  type CallSigner,
} from '@commerce-coordinator/plugin-sdk/call-assertion';
import type { Plugin } from '@commerce-coordinator/plugin-sdk';
import { createMemorySignalBus } from './signals/memory-bus.js';
import { readOutboxBacklog, startOutboxDispatcher, type OutboxDispatcher } from './signals/outbox.js';
import { createRedisSignalBus } from './signals/redis-bus.js';
import type { SignalBus } from './signals/types.js';
import { resolveSubscriptionLimits, type SubscriptionLimits } from './subscriptions/limits.js';
import { attachSubscriptions } from './subscriptions/server.js';

export interface CoordinatorOptions {
  /**
   * How callers' JWTs are verified. Without it no caller is authenticated: Actions that need one answer
   * UNAUTHENTICATED, and flow records and subscriptions are open (the core's tests run so).
   */
  auth?: AuthOptions;
  /** rover.yaml: the subgraphs. */
  roverConfig: string;
  /**
   * A composed supergraph file, instead of `roverConfig`: every Plugin subgraph is remote, called at
   * the routing URL the file gives it (the Coordinator's own subgraph still runs in process).
   */
  supergraphFile?: string;
  /**
   * Reloads the configuration (rover.yaml and its schema files, or the supergraph file, and the
   * connections file) when one changes, after this quiet time; `false` reloads only on `reload()`
   * (SIGHUP). @default { debounceMs: 200 }
   */
  watchConfig?: { debounceMs?: number } | false;
  /** The connections config: filters and signals. */
  connectionsFile: string;
  /**
   * In-process plugins are loaded from `<subgraphsDir>/<name>/index.ts`, or from the installed package
   * a rover.yaml entry names (`package:`).
   */
  subgraphsDir: string;
  /** Subgraphs called over HTTP at their routing_url; `['*']` for all. @default [] */
  remoteSubgraphs?: readonly string[];
  /**
   * Signs every call to a remote subgraph (who calls, which flow step, to whom, which body); the
   * subgraphs' serveSubgraph verifies it. At least 32 bytes; required when a subgraph is remote.
   */
  subgraphSigningSecret?: string;
  /** The database (DATABASE_URL, else an embedded one under dataDir), and how long its calls may wait. */
  database: ({ url: string } | { url?: undefined; dataDir: string; port?: number }) & DatabaseTimeouts;
  /** Without it, signals and subscription events stay in this process. */
  redis?: { url: string; keyPrefix: string };
  flags: Omit<FlagsOptions, 'logger'>;
  /** @default 4000; 0 picks a free port */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  logger: Logger;
  /**
   * Masks every error without a public code (logging it once), turns field suggestions off and serves
   * the production landing page instead of Sandbox, and refuses to start while a Plugin's settings are
   * missing or invalid (its declared `config` readers). @default false
   */
  production?: boolean;
  /** What one client operation may ask for; a limit not given is DEFAULT_OPERATION_LIMITS' value. */
  operationLimits?: Partial<OperationLimits>;
  /** @default 15 s */
  leaseMs?: number;
  /** How often FAILED flows due for a retry of their unknown outcome are looked for. @default 30 s */
  resumeSweepMs?: number;
  /** How long a flow waits for another flow of its order to end before ORDER_BUSY. @default 10 s */
  orderWaitMs?: number;
  /** Upper bound of a graceful stop. @default 10 s */
  shutdownTimeoutMs?: number;
  /** Observers of flows, after the built-in ones. */
  flowPlugins?: readonly FlowPlugin[];
  /** Outbox poll interval. @default 500 ms */
  outboxPollMs?: number;
  /**
   * Bound of each /readyz check (database, bus), run concurrently: one that has not answered by then
   * counts as not ready, so the probe answers 503 in about this time even when a server hangs.
   * @default 1000 ms
   */
  readinessTimeoutMs?: number;
  /** Where an anonymous browser on a Plugin's page route is sent to sign in; without it, 401. */
  browserLogin?: BrowserLogin;
  /** Origins whose pages may call the gateway with credentials (CORS). @default none: no CORS headers */
  corsOrigins?: readonly string[];
  /** Caps and timeouts of the HTTP server's connections (websockets included); see `HttpLimits`. */
  httpLimits?: Partial<HttpLimits>;
  /** Caps and timeouts of graphql-ws connections; see `SubscriptionLimits`. */
  subscriptionLimits?: Partial<SubscriptionLimits>;
  /** Prometheus metrics: where /metrics is served, and what they keep. */
  metrics?: MetricsOptions;
  /**
   * OpenTelemetry traces of requests, flows, steps, Action calls, subgraph fetches, Service calls and
   * signals, on a provider of this Coordinator's own. Without it (the default) nothing is traced: no
   * provider, no observed HTTP call, no trace context recorded.
   */
  tracing?: TracingOptions;
  /**
   * Serves the flow inspector at /inspector (a page for staff: the records it shows come from the
   * staff-only GraphQL fields, so serving it to anyone reveals nothing). @default true
   */
  inspector?: boolean;
}

export interface MetricsOptions {
  /**
   * Serves /metrics unauthenticated on this port, alone (0 picks a free one), and not on the gateway's
   * port. Without it, /metrics is on the gateway's port for staff and Services (a bearer token).
   */
  port?: number;
  /** Interface of the metrics port. @default '127.0.0.1' */
  host?: string;
  /** Distinct GraphQL operation names kept as label values; later ones are `(other)`. @default 100 */
  maxOperationNames?: number;
  /** prom-client's process metrics (CPU, memory, event loop, GC). @default true */
  processMetrics?: boolean;
}

/** The lifecycle of a Coordinator, as a union on `phase`. */
export type CoordinatorState =
  | { phase: 'initialized' }
  | { phase: 'starting' }
  | { phase: 'failed to start'; error: Error }
  | { phase: 'started'; url: string }
  | { phase: 'draining' }
  | { phase: 'stopping' }
  | { phase: 'stopped' };

/** What `reload()` did: the configuration now running, and why the candidate was refused if it was. */
export type ReloadOutcome =
  { reloaded: true; hash: string } | { reloaded: false; hash: string; error: Error };

interface Running {
  /** The configuration new requests and flows run on (replaced whole by a reload). */
  built: BuiltSupergraph;
  loadedAt: Date;
  reload(): Promise<ReloadOutcome>;
  watcher?: { close(): void };
  flags: Flags;
  database: Database;
  bus: SignalBus;
  feed: EventFeed;
  store: FlowStore;
  engine: FlowEngine;
  /** The executor GraphQL operations and flows' Action calls run on. */
  gateway: ReloadableGateway;
  apollo: ApolloServer<GatewayContext>;
  dispatcher: OutboxDispatcher;
  leases: { stop(): void; sweep(): Promise<void> };
  resumer: FlowResumer;
  server: Server;
  requests: ReturnType<typeof trackRequests>;
  subscriptions: { close(): Promise<void> };
  metrics: CoordinatorMetrics;
  /** Where Prometheus scrapes: the metrics port's /metrics, or the gateway's. */
  metricsUrl: string;
  metricsServer?: MetricsServer;
  /** Stops the Plugins' background work. */
  pluginWork: Array<() => Promise<void>>;
  /** Present when tracing is on. */
  tracing?: Tracing;
  url: string;
}

/**
 * The Coordinator process: composes the supergraph, validates the connections, opens the database,
 * bus and flags, and serves GraphQL, subscriptions and operations endpoints. The core only wires
 * components; each lives in its own module.
 */
export class Coordinator {
  state: CoordinatorState = { phase: 'initialized' };
  private running?: Running;
  private stopping?: Promise<void>;
  private readonly owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

  constructor(private readonly options: CoordinatorOptions) {}

  get url(): string {
    if (this.state.phase !== 'started')
      throw new Error(`The Coordinator is ${this.state.phase}, not started`);
    return this.state.url;
  }

  /** The running components, for tests and the CLI. */
  get components(): Running {
    if (!this.running) throw new Error('The Coordinator is not running');
    return this.running;
  }

  async start(): Promise<string> {
    if (this.state.phase !== 'initialized')
      throw new Error(`Cannot start a Coordinator that is ${this.state.phase}`);
    this.state = { phase: 'starting' };
    const opened: Array<() => Promise<void>> = [];
    try {
      this.running = await this.open(opened);
      this.state = { phase: 'started', url: this.running.url };
      this.options.logger.info({ url: this.running.url, owner: this.owner }, 'coordinator started');
      return this.running.url;
    } catch (error) {
      this.state = { phase: 'failed to start', error: error as Error };
      for (const close of opened.reverse()) await close().catch(() => {});
      throw error;
    }
  }

  private async open(opened: Array<() => Promise<void>>): Promise<Running> {
    const { options } = this;
    const logger = options.logger;
    const built = this.build();
    const signer = this.remoteSigner(built);
    const plugins = await this.loadPlugins(built);
    // In production a Plugin's missing setting stops the start, before anything is opened.
    if (options.production) validatePluginConfig(plugins, process.env);
    const tracing = await this.startTracing();
    // Shut down last: spans of the work that drains before it are still exported.
    if (tracing) opened.push(() => tracing.shutdown());

    const metrics = new CoordinatorMetrics({
      // Scraped only once the gateway listens, when the database is open.
      outboxBacklog: () => readOutboxBacklog(database.pool),
      processMetrics: options.metrics?.processMetrics,
      logger,
    });
    const flags = countedFlags(await createFlags({ ...options.flags, logger } as FlagsOptions), metrics);
    opened.push(() => flags.close());
    const { connectTimeoutMs, queryTimeoutMs } = options.database;
    const database = await openDatabase(
      options.database.url !== undefined
        ? { url: options.database.url, dataDir: '', logger, connectTimeoutMs, queryTimeoutMs }
        : {
            dataDir: options.database.dataDir,
            port: options.database.port,
            logger,
            connectTimeoutMs,
            queryTimeoutMs,
          },
    );
    opened.push(() => database.close());
    const bus: SignalBus = options.redis
      ? createRedisSignalBus({
          url: options.redis.url,
          keyPrefix: options.redis.keyPrefix,
          consumerName: this.owner,
          // A receiver run is a flow too: a crashed gateway's deliveries are taken over on the same lease.
          leaseMs: options.leaseMs ?? 15_000,
          logger,
          onDeadLetter: ({ receiver }) => metrics.deadLetters.inc({ receiver }),
        })
      : createMemorySignalBus({
          logger,
          onDeadLetter: ({ receiver }) => metrics.deadLetters.inc({ receiver }),
        });
    opened.push(() => bus.close());
    const feed: EventFeed = options.redis
      ? createRedisEventFeed({ url: options.redis.url, keyPrefix: options.redis.keyPrefix, logger })
      : createMemoryEventFeed({ logger });
    opened.push(() => feed.close());
    // A flow's signals go out as soon as they are committed, not at the dispatcher's next poll.
    // The dispatch a flow's commit wakes outlives the flow: not part of its trace.
    const wake = tracing ? () => tracing.untraced(() => dispatcher.wake()) : () => dispatcher.wake();
    // Ends left unpublished by a process that died are published by another, a lease later.
    const flowEnds = startFlowEndEvents({ pool: database.pool, feed, logger, leaseMs: options.leaseMs });
    opened.push(() => flowEnds.stop());
    const store = new FlowStore(database.prisma, database.pool, {
      signalsCommitted: wake,
      traceContext: tracing?.currentTraceContext,
    });

    // Actions run on the gateway's executor, created below: the engine and the gateway refer to each
    // other (the Coordinator subgraph's mutations run flows whose steps run through the gateway).
    const production = options.production ?? false;
    const callAction = createActionCaller({
      executor: () => gateway.executor,
      formatError: formatGatewayError,
      includeStacktrace: !production,
      logger,
      observe: tracing?.actionCall,
    });
    const engine = new FlowEngine({
      store,
      connections: built.compiled,
      callAction,
      plugins: [
        ...(tracing ? [tracing.flowPlugin] : []),
        useFlowEvents(feed, logger, flowEnds),
        useFlowLogging(logger, {
          ...(tracing ? { trace: () => traceIdsOf(tracing.currentTraceContext()) } : {}),
        }),
        useMetrics(metrics, (filter, stepIndex) => {
          const steps = built.compiled.filters.get(filter)?.steps.length;
          return steps !== undefined && stepIndex >= steps;
        }),
        ...(options.flowPlugins ?? []),
      ],
      logger,
      owner: this.owner,
      flagContext: ({ orderId, principal }) => principalFlagContext(principal, orderId),
      authorizeCallers: options.auth !== undefined,
      orderWaitMs: options.orderWaitMs,
      leaseMs: options.leaseMs,
    });

    // The Coordinator subgraph and the executor are made again, whole, for each reloaded configuration.
    const log = new OperatorLog(database.prisma);
    const evaluate = evaluatorFrom(flags);
    const executorOf = (candidate: BuiltSupergraph, candidateSigner: CallSigner | undefined) => {
      const coordinator = coordinatorPlugin(candidate.coordinatorSdl, candidate.connections, {
        engine,
        store,
        log,
        bus,
        feed,
        logger,
        guarded: options.auth !== undefined,
      });
      const dataSources = Object.fromEntries(
        Object.entries(
          this.dataSources(candidate, coordinator, plugins, evaluate, candidateSigner, tracing),
        ).map(([name, source]) => [name, timedDataSource(name, source, metrics)]),
      );
      return {
        coordinator,
        executor: new FederatedExecutor({ supergraphSdl: candidate.supergraphSdl, dataSources, flags }),
      };
    };
    const { coordinator, executor } = executorOf(built, signer);
    const gateway = new ReloadableGateway(executor);
    const flowFields = filterFields(built.connections);
    const limits = new OperationLimitsChecker(options.operationLimits, flowFields);
    const clientErrors = new ClientErrors({ production, logger });
    const apollo = new ApolloServer<GatewayContext>({
      gateway,
      logger,
      // The Coordinator owns shutdown (drain, then stop): Apollo's own SIGTERM handler would stop the
      // server at once, failing the steps of the flows still draining.
      stopOnTerminationSignals: false,
      introspection: !production,
      includeStacktraceInErrorResponses: !production,
      hideSchemaDetailsFromClientErrors: clientErrors.hideSchemaDetails,
      plugins: [
        ...(tracing ? [tracing.apolloPlugin] : []),
        production
          ? ApolloServerPluginLandingPageProductionDefault({ footer: false })
          : sandboxWithFallback(),
        ...(options.auth ? [callerRequiredPlugin()] : []),
        limits.plugin(),
        clientErrors.plugin(),
        graphqlMetricsPlugin(metrics, { maxOperationNames: options.metrics?.maxOperationNames }),
      ],
      // Masking is the client-errors plugin's (the engine's own Action calls keep their errors whole);
      // here every error gets a code, Apollo's own ones as the public codes say them.
      formatError: formatGatewayError,
    });
    await apollo.start();
    opened.push(() => apollo.stop());

    const dispatcher = startOutboxDispatcher({
      pool: database.pool,
      bus,
      feed,
      logger,
      pollIntervalMs: options.outboxPollMs,
      observer: {
        published: (count) => metrics.signalsPublished.inc(count),
        refused: (count) => metrics.signalsRefused.inc(count),
      },
    });
    opened.push(() => dispatcher.stop());
    for (const signal of built.compiled.signals.values()) {
      for (const receiver of signal.receivers) {
        const registration = { receiver: receiver.name, signal: signal.name, retry: receiver.retry };
        bus.consume(
          registration,
          // A reloaded configuration's definition of the receiver, once there is one.
          measuredReceiver(metrics, registration, (delivery) =>
            engine.runReceiver(
              this.running?.built.compiled.signals
                .get(signal.name)
                ?.receivers.find((r) => r.name === receiver.name) ?? receiver,
              delivery,
            ),
          ),
        );
      }
    }
    const leases = startLeaseKeeper({ store, engine, owner: this.owner, leaseMs: options.leaseMs, logger });
    opened.push(async () => leases.stop());
    // Filters with `retryUnknownOutcome`: their flows that may have acted are retried on its schedule.
    const resumer = startFlowResumer({
      store,
      engine,
      log,
      connections: () => this.running?.built.compiled ?? built.compiled,
      sweepMs: options.resumeSweepMs,
      logger,
    });
    opened.push(async () => resumer.stop());

    const readiness = readinessRoute({
      checks: {
        database: () => database.ready(),
        bus: () => bus.ready(),
        flags: async () => flags.ready(),
        supergraph: async () => this.state.phase === 'started',
      },
      services: plugins.flatMap((plugin) => (plugin.health ? [plugin.health] : [])),
      timeoutMs: options.readinessTimeoutMs ?? 1_000,
      info: () =>
        this.running && {
          config: { hash: this.running.built.hash, loadedAt: this.running.loadedAt.toISOString() },
        },
    });
    const routes = new Map<string, Route>([
      ['/healthz', (_req, res) => sendJson(res, 200, { status: 'ok' })],
      ['/readyz', readiness],
      // The path the reference system's load balancers and monitors probe: 503 when the database is down.
      ['/health', readiness],
    ]);
    if (options.inspector ?? true) for (const [path, route] of inspectorRoutes()) routes.set(path, route);
    // The explorer introspects the schema, which production does not offer.
    if (!options.production) for (const [path, route] of explorerRoutes()) routes.set(path, route);
    const authenticator = options.auth ? createAuthenticator(options.auth) : openAuthenticator;
    const metricsPort = options.metrics?.port;
    if (metricsPort === undefined)
      routes.set(
        METRICS_PATH,
        metricsRoute(metrics, {
          guarded: options.auth !== undefined,
          authenticate: (header) => authenticator.authenticate(header),
        }),
      );
    const signals = new Set(built.compiled.signals.keys());
    const runtimes = new Map(
      plugins.map((plugin) => [
        plugin,
        createPluginRuntime(plugin, { engine, store, flags, signals, logger }),
      ]),
    );
    for (const [path, route] of pluginRoutes(plugins, {
      runtime: (plugin) => runtimes.get(plugin)!,
      authenticate: (header) => authenticator.authenticate(header),
      file: built.rover.file,
      login: options.browserLogin,
      reserved: [...routes.keys(), '/graphql', '/'],
    }))
      routes.set(path, tracing ? tracing.route(path, route) : route);
    /** The gateway context of a caller, its credentials (`Authorization`'s value) read and verified. */
    const contextOf = async (credentials: () => string | undefined) => {
      let verified;
      try {
        verified = await authenticator.verify(credentials());
      } catch (error) {
        // Apollo answers an error thrown here with this HTTP status. Keys that cannot be fetched are
        // an outage (SERVICE_UNAVAILABLE): the caller's token may be good, so it is not told to sign in.
        const code = domainCodeOf(error) ?? ErrorCode.UNAUTHENTICATED;
        throw new DomainError(code, (error as Error).message, { http: { status: httpStatusOf(code) } });
      }
      const principal = verified?.principal;
      return createGatewayContext({
        flagContext: principalFlagContext(principal),
        principal,
        ...(verified?.expiresAt !== undefined ? { credentialsExpireAt: verified.expiresAt } : {}),
      });
    };
    /** Whether a request sends credentials: ones that cannot be read (half a cookie pair) are the context's to refuse. */
    const sendsCredentials = (req: IncomingMessage) => {
      try {
        return requestAuthorization(req.headers) !== undefined;
      } catch {
        return true;
      }
    };
    // The edX JWT cookies count when no Authorization header is sent (see requestAuthorization).
    const context = (req?: IncomingMessage) => contextOf(() => req && requestAuthorization(req.headers));
    const httpLimits = resolveHttpLimits(options.httpLimits);
    const server = createHttpServer({
      apollo,
      operationLimits: limits,
      context,
      // Without credentials only introspection runs: refused before Apollo validates the document.
      ...(options.auth
        ? {
            screen: (req: IncomingMessage, query: string, operationName: string | undefined) =>
              sendsCredentials(req) ? undefined : callerlessRefusal(query, operationName),
          }
        : {}),
      routes,
      draining: () => this.state.phase === 'draining' || this.state.phase === 'stopping',
      logger,
      limits: httpLimits,
      observers: [accessLog(logger), httpMetrics(metrics)],
      corsOrigins: options.corsOrigins,
    });
    const requests = trackRequests(server);
    const subscriptions = attachSubscriptions({
      server,
      path: '/graphql',
      schema: coordinator.schema,
      graphSchema: () => gateway.executor.schema,
      apollo,
      operationLimits: limits,
      clientErrors,
      context: (params, request) => contextOf(() => subscriberAuthorization(params, request.headers)),
      // Flow events and signals carry learners' data: staff and Services only, once callers are verified.
      ...(options.auth
        ? {
            maySubscribe: ({ principal }: GatewayContext) =>
              principal !== undefined && principal.kind !== 'learner',
          }
        : {}),
      logger,
      limits: resolveSubscriptionLimits(options.subscriptionLimits ?? {}, httpLimits),
    });
    opened.push(() => subscriptions.close());
    await new Promise<void>((resolveListen, reject) => {
      server.once('error', (error) =>
        reject(
          new Error(
            `Cannot listen on ${options.host ?? '127.0.0.1'}:${options.port ?? 4000}: ${error.message}`,
          ),
        ),
      );
      server.listen(options.port ?? 4000, options.host ?? '127.0.0.1', resolveListen);
    });
    let metricsServer: MetricsServer | undefined;
    if (metricsPort !== undefined) {
      metricsServer = await startMetricsServer({
        metrics,
        port: metricsPort,
        host: options.metrics?.host ?? '127.0.0.1',
        logger,
      });
      opened.push(() => metricsServer!.close());
    }
    // Background work starts last: it may run flows at once, which need everything above.
    const pluginWork: Array<() => Promise<void>> = [];
    for (const plugin of plugins) {
      const stop = await plugin.start?.(runtimes.get(plugin)!);
      if (stop) {
        pluginWork.push(stop);
        opened.push(stop);
      }
    }
    const loadedPlugins = new Set(plugins.map((p) => p.name));
    const reload = serialized(async (): Promise<ReloadOutcome> => {
      const running = this.running!;
      try {
        const candidate = this.build();
        const added = candidate.rover.subgraphs.filter(
          (s) => s.name !== COORDINATOR_SUBGRAPH && !this.isRemote(s.name) && !loadedPlugins.has(s.name),
        );
        if (added.length)
          throw new ConfigError(candidate.rover.file, [
            `subgraphs: ${added.map((s) => s.name).join(', ')} would run in process: a new in-process Plugin needs a restart`,
          ]);
        const next = executorOf(candidate, this.remoteSigner(candidate));
        // Everything that can fail is done: from here the swap is synchronous, so no request or flow
        // starts between its parts.
        engine.useConnections(candidate.compiled);
        flowFields.clear();
        for (const field of filterFields(candidate.connections)) flowFields.add(field);
        gateway.swap(next.executor);
        running.built = candidate;
        running.loadedAt = new Date();
        logger.info({ configHash: candidate.hash }, 'configuration reloaded');
        return { reloaded: true, hash: candidate.hash };
      } catch (error) {
        const file = error instanceof ConfigError ? error.file : undefined;
        logger.error(
          { file, configHash: running.built.hash },
          `configuration not reloaded, the running one is kept: ${(error as Error).message}`,
        );
        return { reloaded: false, hash: running.built.hash, error: error as Error };
      }
    });
    const watcher =
      options.watchConfig === false
        ? undefined
        : watchFiles(
            this.configFiles(built),
            () => void (this.state.phase === 'started' && reload()),
            options.watchConfig,
          );
    if (watcher) opened.push(async () => watcher.close());
    logger.info({ configHash: built.hash }, 'configuration loaded');
    const { address, port } = server.address() as AddressInfo;
    const host = address.includes(':') ? `[${address}]` : address;
    const url = `http://${host}:${port}`;
    return {
      built,
      loadedAt: new Date(),
      reload,
      watcher,
      flags,
      database,
      bus,
      feed,
      store,
      engine,
      gateway,
      apollo,
      dispatcher,
      leases,
      resumer,
      server,
      requests,
      subscriptions,
      metrics,
      metricsUrl: metricsServer?.url ?? `${url}${METRICS_PATH}`,
      metricsServer,
      pluginWork,
      tracing,
      url,
    };
  }

  /**
   * Re-reads, re-composes and re-validates the configuration; only a valid one replaces the running
   * one (requests and flows under way finish on theirs). A refused one is logged, one line. SIGHUP.
   */
  reload(): Promise<ReloadOutcome> {
    if (!this.running || this.state.phase !== 'started')
      return Promise.reject(new Error(`Cannot reload a Coordinator that is ${this.state.phase}`));
    return this.running.reload();
  }

  private build(): BuiltSupergraph {
    const { supergraphFile, roverConfig, connectionsFile } = this.options;
    return supergraphFile
      ? buildSupergraphFromFile({ supergraphFile, connections: connectionsFile })
      : buildSupergraph({ roverConfig, connections: connectionsFile });
  }

  /** The files a configuration is read from: what the watch reloads on. */
  private configFiles(built: BuiltSupergraph): string[] {
    const { supergraphFile, roverConfig, connectionsFile } = this.options;
    if (supergraphFile) return [supergraphFile, connectionsFile];
    const schemas = built.rover.subgraphs
      .filter((s) => s.name !== COORDINATOR_SUBGRAPH)
      .map((s) => s.schemaFile);
    return [roverConfig, connectionsFile, ...schemas];
  }

  /** Tracing, when configured: its modules (the OpenTelemetry SDK) are not even loaded otherwise. */
  private async startTracing(): Promise<Tracing | undefined> {
    const { tracing: options, logger } = this.options;
    if (!options) return undefined;
    const { startTracing } = await import('./observability/tracing.js');
    const tracing = startTracing(options, { logger, instanceId: this.owner });
    const { exporter } = options;
    logger.info(
      {
        serviceName: options.serviceName,
        exporter: exporter.kind,
        ...(exporter.kind === 'otlp' ? { url: exporter.url } : {}),
        sampler: options.sampler,
      },
      'tracing on',
    );
    return tracing;
  }

  private isRemote(name: string): boolean {
    if (this.options.supergraphFile) return true;
    const remote = this.options.remoteSubgraphs ?? [];
    return remote.includes('*') || remote.includes(name);
  }

  /** The signer of remote subgraphs' calls; refuses to start without a usable secret when there are any. */
  private remoteSigner(built: BuiltSupergraph): CallSigner | undefined {
    const remote = built.rover.subgraphs
      .map((s) => s.name)
      .filter((name) => name !== COORDINATOR_SUBGRAPH && this.isRemote(name));
    if (!remote.length) return undefined;
    const secret = this.options.subgraphSigningSecret;
    const problem = signingSecretProblem(secret);
    if (problem)
      throw new ConfigError('environment', [
        `SUBGRAPH_SIGNING_SECRET: ${problem}: ${this.options.supergraphFile ? 'SUPERGRAPH_FILE routes to' : 'REMOTE_SUBGRAPHS names'} ${remote.join(', ')}, called over HTTP, and each verifies the gateway's calls with this secret`,
      ]);
    return createCallSigner(secret!);
  }

  /** The Plugins that run in this process (the Coordinator subgraph aside). */
  private async loadPlugins(built: BuiltSupergraph): Promise<Plugin[]> {
    const plugins: Plugin[] = [];
    for (const subgraph of built.rover.subgraphs) {
      if (subgraph.name === COORDINATOR_SUBGRAPH || this.isRemote(subgraph.name)) continue;
      plugins.push(
        await loadPlugin(subgraph, { subgraphsDir: this.options.subgraphsDir, roverFile: built.rover.file }),
      );
    }
    return plugins;
  }

  private dataSources(
    built: BuiltSupergraph,
    coordinator: Plugin,
    plugins: readonly Plugin[],
    evaluate: FlagEvaluator,
    signer: CallSigner | undefined,
    tracing: Tracing | undefined,
  ): Record<string, GraphQLDataSource<GatewayContext>> {
    const sources: Record<string, GraphQLDataSource<GatewayContext>> = {
      [coordinator.name]: new InProcessDataSource(coordinator),
    };
    for (const plugin of plugins) sources[plugin.name] = new InProcessDataSource(plugin, evaluate);
    // A subgraph not loaded in process is remote, so remoteSigner returned a signer.
    const remote = new Set<string>();
    for (const subgraph of built.rover.subgraphs)
      if (!sources[subgraph.name]) {
        remote.add(subgraph.name);
        sources[subgraph.name] = new RemoteDataSource({
          url: subgraph.routingUrl,
          name: subgraph.name,
          signer: signer!,
        });
      }
    if (!tracing) return sources;
    return Object.fromEntries(
      Object.entries(sources).map(([name, source]) => [
        name,
        tracing.dataSource(name, source, remote.has(name)),
      ]),
    );
  }

  /**
   * Drains, then stops: refuses new requests, lets the requests being answered and the running flows
   * finish (bounded by the shutdown timeout; an unfinished flow keeps its record and is recovered by
   * the next gateway), publishes the outbox, then closes connections.
   */
  stop(): Promise<void> {
    switch (this.state.phase) {
      case 'initialized':
      case 'failed to start':
      case 'stopped':
        this.state = { phase: 'stopped' };
        return Promise.resolve();
      case 'starting':
        return Promise.reject(
          new Error('Cannot stop a Coordinator that is starting; wait for start() to settle'),
        );
      case 'draining':
      case 'stopping':
        // A second SIGTERM, or a teardown racing one: wait for the stop under way.
        return this.stopping!;
      case 'started':
        return (this.stopping = this.drainAndStop());
      default:
        throw new UnreachableCaseError(this.state);
    }
  }

  private async drainAndStop(): Promise<void> {
    const r = this.running!;
    const deadline = AbortSignal.timeout(this.options.shutdownTimeoutMs ?? 10_000);
    this.state = { phase: 'draining' };
    r.watcher?.close();
    const closed = new Promise<void>((resolveClose) => r.server.close(() => resolveClose()));
    await r.subscriptions.close();
    // Plugins stop taking events in before the flows they started are drained.
    for (const stop of r.pluginWork)
      await stop().catch((err) => this.options.logger.error({ err }, 'plugin stop failed'));
    r.leases.stop();
    r.resumer.stop();
    // Requests already being answered finish first: one may be about to start a flow, or be waiting on
    // a flow it did not start (a duplicate idempotency key); closing its connection would cut it off.
    await r.requests.settled(deadline);
    await r.engine.drain(deadline);
    await r.dispatcher.flush().catch(() => {});
    this.state = { phase: 'stopping' };
    await r.dispatcher.stop();
    await r.bus.close(deadline);
    // A request whose flow outlived the deadline gets an answer, not a reset connection.
    r.requests.refuseUnanswered();
    r.server.closeAllConnections();
    await closed;
    await r.apollo.stop();
    // Last: Prometheus can scrape a draining gateway.
    await r.metricsServer?.close();
    await r.feed.close();
    await r.flags.close();
    await r.database.close();
    await r.tracing?.shutdown(deadline);
    this.state = { phase: 'stopped' };
    this.running = undefined;
    this.options.logger.info('coordinator stopped');
  }
}

/** The root fields that run a filter, as `<root type>.<field>`: each runs a recorded flow. */
function filterFields(connections: Connections): Set<string> {
  return new Set(
    Object.values(connections.filters).map((filter) => {
      const { operation, name } = filterField(filter);
      return `${operation}.${name}`;
    }),
  );
}

/** Without verification keys: requests are anonymous, and a token cannot be checked so is refused. */
const refuseTokens = async (authorization: string | undefined): Promise<undefined> => {
  if (authorization)
    throw new DomainError(ErrorCode.UNAUTHENTICATED, 'This Coordinator has no keys to verify tokens with');
  return undefined;
};
const openAuthenticator: Authenticator = { authenticate: refuseTokens, verify: refuseTokens };
