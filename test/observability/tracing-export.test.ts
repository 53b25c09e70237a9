import diagnosticsChannel from 'node:diagnostics_channel';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ProxyTracerProvider, trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../../gateway/auth/tokens.js';
import { DEVELOPMENT_JWT_SECRET, readEnv, tracingOptions } from '../../gateway/env.js';
import { ConfigError } from '../../gateway/errors.js';
import { REQUEST_REFUND, fixture, startTestCoordinator } from '../support/coordinator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { gatewayEnv, killGateways, spawnGateway } from '../support/gateway-process.js';
import { startLedger, type Ledger } from '../fixtures/services/ledger.js';
import { freePort } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

/**
 * Tracing as the environment configures it: off (no provider, nothing observed) unless an OTEL_*
 * variable asks for an exporter, and then spans sent over OTLP/HTTP to a collector — here a small
 * HTTP server of the test's own that keeps what it receives.
 */

/** The HTTP client channels the tracing observes; nobody else in this process subscribes to them. */
const CHANNELS = [
  'undici:request:create',
  'undici:request:headers',
  'undici:request:trailers',
  'undici:request:error',
  'http.client.request.start',
  'http.client.response.finish',
  'http.client.request.error',
];
const observedChannels = () => CHANNELS.filter((name) => diagnosticsChannel.hasSubscribers(name));
/** The global provider is @opentelemetry/api's proxy until someone registers one: then it delegates. */
const globalProviderRegistered = () => {
  const provider = trace.getTracerProvider();
  return (
    !(provider instanceof ProxyTracerProvider) ||
    provider.getDelegate().constructor.name !== 'NoopTracerProvider'
  );
};

interface Collector {
  url: string;
  /** Every OTLP/JSON request body received at /v1/traces. */
  received: Array<{ contentType?: string; body: OtlpTraces }>;
  close(): Promise<void>;
}
interface OtlpTraces {
  resourceSpans: Array<{
    resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
    scopeSpans: Array<{
      spans: Array<{ name: string; traceId: string; spanId: string; parentSpanId?: string }>;
    }>;
  }>;
}

async function startCollector(): Promise<Collector> {
  const received: Collector['received'] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/v1/traces') {
        received.push({
          contentType: req.headers['content-type'],
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpTraces,
        });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } else res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const spansOf = (collector: Collector, serviceName: string) =>
  collector.received.flatMap(({ body }) =>
    body.resourceSpans
      .filter((r) =>
        r.resource.attributes.some((a) => a.key === 'service.name' && a.value.stringValue === serviceName),
      )
      .flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)),
  );

let collector: Collector;
let ledger: Ledger;

beforeAll(async () => {
  collector = await startCollector();
  ledger = await startLedger();
});
afterAll(async () => {
  await killGateways();
  await collector?.close();
  await ledger?.close();
});

describe('tracing configured by OTEL_* variables', () => {
  const optionsOf = (vars: Record<string, string>) => tracingOptions(readEnv(vars));

  it('is off when no variable asks for an exporter, when the SDK is disabled, or the exporter is none', () => {
    expect(optionsOf({})).toBeUndefined();
    expect(optionsOf({ OTEL_SERVICE_NAME: 'named-only', OTEL_TRACES_SAMPLER: 'always_on' })).toBeUndefined();
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };
    expect(optionsOf({ ...endpoint, OTEL_SDK_DISABLED: 'true' })).toBeUndefined();
    expect(optionsOf({ ...endpoint, OTEL_SDK_DISABLED: 'TRUE' })).toBeUndefined();
    expect(optionsOf({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' })).toBeUndefined();
  });

  it('sends OTLP/HTTP to the endpoint the variables name, with the service name, resource and sampler', () => {
    expect(optionsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })).toEqual({
      serviceName: 'commerce-coordinator',
      resourceAttributes: {},
      sampler: { name: 'parentbased_always_on' },
      exporter: { kind: 'otlp', url: 'http://collector:4318/v1/traces' },
    });
    expect(
      optionsOf({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        // The signal's own endpoint is used as it is.
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example.com/otlp',
        OTEL_SERVICE_NAME: 'coordinator-eu',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=staging,team=commerce%20ops',
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.25',
        OTEL_SDK_DISABLED: 'false',
      }),
    ).toEqual({
      serviceName: 'coordinator-eu',
      resourceAttributes: { 'deployment.environment': 'staging', team: 'commerce ops' },
      sampler: { name: 'parentbased_traceidratio', ratio: 0.25 },
      exporter: { kind: 'otlp', url: 'https://traces.example.com/otlp' },
    });
    expect(optionsOf({ OTEL_TRACES_EXPORTER: 'console' })?.exporter).toEqual({ kind: 'console' });
    // OTLP without an endpoint: the standard default, a collector on this host.
    expect(optionsOf({ OTEL_TRACES_EXPORTER: 'otlp' })?.exporter).toEqual({
      kind: 'otlp',
      url: 'http://localhost:4318/v1/traces',
    });
  });

  it.each([
    [{ OTEL_TRACES_SAMPLER: 'sometimes' }, 'OTEL_TRACES_SAMPLER'],
    [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }, 'OTEL_TRACES_SAMPLER_ARG'],
    [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: 'half' }, 'OTEL_TRACES_SAMPLER_ARG'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, 'OTEL_EXPORTER_OTLP_ENDPOINT'],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_PROTOCOL'],
    [{ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'],
    [{ OTEL_TRACES_EXPORTER: 'zipkin' }, 'OTEL_TRACES_EXPORTER'],
    [{ OTEL_SDK_DISABLED: 'yes' }, 'OTEL_SDK_DISABLED'],
    [{ OTEL_RESOURCE_ATTRIBUTES: 'team' }, 'OTEL_RESOURCE_ATTRIBUTES'],
  ])('refuses %o, naming %s', (vars, variable) => {
    let refusal: unknown;
    try {
      tracingOptions(readEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', ...vars }));
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(ConfigError);
    expect(refusal).toMatchObject({
      file: 'environment',
      problems: [expect.stringMatching(`^${variable}: `)],
    });
  });
});

describe('a Coordinator', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('tracing-export');
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('without tracing registers no provider and observes no HTTP call', async () => {
    const t = await startTestCoordinator('tracing-off', { redis: false, ledger, database });
    try {
      const { data } = await t.graphql(REQUEST_REFUND, { input: { orderId: 'off-1', amount: 5 } });
      expect(data).toMatchObject({ requestRefund: { flow: { status: 'COMPLETED' } } });
      expect(t.coordinator.components.tracing).toBeUndefined();
      expect(globalProviderRegistered()).toBe(false);
      expect(observedChannels()).toEqual([]);
      // Nothing to continue: no trace context is recorded with the flow or its signal.
      const { prisma } = t.coordinator.components.database;
      const flow = await prisma.flowRun.findFirstOrThrow({ where: { orderId: 'off-1' } });
      expect(flow.traceContext).toBeNull();
      expect(
        (await prisma.outboxSignal.findFirstOrThrow({ where: { flowId: flow.id } })).traceContext,
      ).toBeNull();
    } finally {
      await t.stop();
    }
  });

  it('with OTLP/HTTP tracing sends its spans to the collector, on a provider of its own', async () => {
    const options = tracingOptions(
      readEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_SERVICE_NAME: 'cc-otlp-in-process' }),
    )!;
    const t = await startTestCoordinator('tracing-otlp', {
      redis: false,
      ledger,
      database,
      overrides: { tracing: options },
    });
    let stopped = false;
    try {
      const { data } = await t.graphql<{ requestRefund: { flow: { id: string } } }>(REQUEST_REFUND, {
        input: { orderId: 'otlp-1', amount: 5 },
      });
      expect(t.coordinator.components.tracing).toBeDefined();
      expect(globalProviderRegistered()).toBe(false);
      expect(observedChannels().length).toBeGreaterThan(0);
      // The receiver's run is the last span: once the revocation is done, stopping flushes every span.
      await waitFor(() => ledger.operations().some((op) => op.kind === 'revoke' && op.orderId === 'otlp-1'));
      await t.stop();
      stopped = true;
      expect(observedChannels()).toEqual([]);

      expect(collector.received.every((r) => r.contentType === 'application/json')).toBe(true);
      const spans = spansOf(collector, 'cc-otlp-in-process');
      const names = spans.map((s) => s.name);
      for (const name of [
        'mutation Refund',
        'subgraph coordinator',
        'flow order.refund.requested.v1',
        'step createReturn',
        'action createReturn',
        'subgraph orders',
        'POST',
        'receiver revoke-enrollment',
      ])
        expect(names).toContain(name);
      const flow = spans.find((s) => s.name === 'flow order.refund.requested.v1')!;
      const request = spans.find((s) => s.name === 'mutation Refund')!;
      expect(flow.traceId).toBe(request.traceId);
      expect(flow.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(data!.requestRefund.flow.id).toBeDefined();
    } finally {
      if (!stopped) await t.stop();
    }
  });

  it('started by `npm start` with OTEL_EXPORTER_OTLP_ENDPOINT exports while it runs', async () => {
    const port = await freePort();
    const gateway = spawnGateway({
      port,
      env: gatewayEnv({
        ROVER_CONFIG: fixture('rover.yaml'),
        CONNECTIONS_FILE: fixture('connections.yaml'),
        SUBGRAPHS_DIR: fixture('subgraphs'),
        DATABASE_URL: database.url,
        FLAGS_FILE: fixture('../../flags.json'),
        PORT: String(port),
        LEDGER_URL: ledger.url,
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        OTEL_SERVICE_NAME: 'cc-otlp-process',
        // Batches go out every 100 ms instead of every 5 s.
        OTEL_BSP_SCHEDULE_DELAY: '100',
      }),
    });
    await gateway.ready();
    const staff = await signToken(DEVELOPMENT_JWT_SECRET, { kind: 'staff', username: 'staff' });
    const res = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${staff}` },
      body: JSON.stringify({ query: REQUEST_REFUND, variables: { input: { orderId: 'otlp-2', amount: 5 } } }),
    });
    expect(await res.json()).toMatchObject({ data: { requestRefund: { flow: { status: 'COMPLETED' } } } });
    await waitFor(
      () =>
        expect(spansOf(collector, 'cc-otlp-process').map((s) => s.name)).toContain(
          'flow order.refund.requested.v1',
        ),
      { timeoutMs: 10_000 },
    );
  });
});
