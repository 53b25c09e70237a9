import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { integrations } from '@launchdarkly/node-server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinator, type CoordinatorOptions } from '../../gateway/coordinator.js';
import { ConfigError } from '../../gateway/errors.js';
import { isSupergraphStale } from '../../gateway/federation/compose.js';
import { buildSupergraph } from '../../gateway/federation/supergraph.js';
import { silentLogger } from '../../gateway/log.js';
import { fixture } from '../support/coordinator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { freePort, startPrivateRedis, type PrivateRedis } from '../support/redis.js';
import { databaseSessions, isMigrated, redisConnections, tryConnect } from '../support/resources.js';
import { waitFor } from '../support/wait.js';

process.env.APOLLO_TELEMETRY_DISABLED ??= '1';

const root = fileURLToPath(new URL('../../', import.meta.url));
const broken = (path: string) => fixture(`broken/${path}`);
const roverConfig = fixture('rover.yaml');

/** The ConfigError `run` throws or rejects with; anything else fails the test. */
async function configErrorOf(run: () => unknown): Promise<ConfigError> {
  try {
    await run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, but nothing was thrown');
}

const FILTER = 'filters.order.refund.requested.v1';

describe('the connections config is validated against the supergraph', () => {
  it('accepts the fixture connections, so each refusal below comes from its one mistake', () => {
    const built = buildSupergraph({ roverConfig, connections: fixture('connections.yaml') });
    expect([...built.compiled.filters.keys()]).toEqual([
      'order.refund.requested.v1',
      'caller.echo.v1',
      'orders.lookup.v1',
    ]);
    expect([...built.compiled.signals.keys()]).toEqual(['order.refunded.v1', 'payment.refunded.v1']);
  });

  const cases: Array<{ mistake: string; file: string; problems: string[] }> = [
    {
      mistake: 'a step whose Action returns a list, without `as`',
      file: 'list-without-as.yaml',
      problems: [
        "filters.orders.lookup.v1.steps[0] (orders): Action 'orders' returns [Order!]!, whose fields cannot be merged into the flow; name the result with `as: <field>`",
      ],
    },
    {
      mistake: 'a filter exposed as both a mutation and a query',
      file: 'mutation-and-query.yaml',
      problems: ['filters.caller.echo.v1: a filter is exposed as exactly one of `mutation` or `query`'],
    },
    {
      mistake: "a step condition on a value the field's enum lacks, and on a field nobody provides",
      file: 'bad-when.yaml',
      problems: [
        "filters.caller.echo.v1.steps[0] (whoCalls).when: 'DESKTOP' is not a value of Channel (channel, from flow input EchoInput)",
        "filters.caller.echo.v1.steps[0] (whoCalls).when: 'chanel' is provided by neither the flow input nor an earlier step",
        "filters.caller.echo.v1.steps[0] (whoCalls).when: 'channel.name' is provided by neither the flow input nor an earlier step",
      ],
    },
    {
      mistake: 'an unknown Action (a typo in a step)',
      file: 'unknown-action.yaml',
      problems: [
        `${FILTER}.steps[1] (refundPaymnet): unknown Action 'refundPaymnet': no Mutation or Query field of that name in the supergraph`,
      ],
    },
    {
      mistake: 'a required step input that neither the flow input nor an earlier step provides',
      file: 'missing-input.yaml',
      problems: [
        `${FILTER}.steps[1] (refundPayment): required input 'refundAmount' (Int!) of Action 'refundPayment' is provided by neither the flow input (RefundRequestInput) nor an earlier step`,
      ],
    },
    {
      mistake: 'an Int provided where an ID list is expected',
      file: 'incompatible-type.yaml',
      problems: [
        "filters.order.lookup.requested.v1.steps[0] (orders): input 'ids' of Action 'orders' expects [ID!]! but 'amount' is Int! (from flow input RefundRequestInput)",
      ],
    },
    {
      mistake: 'the same filter name twice in the YAML',
      file: 'duplicate-filter-key.yaml',
      problems: [`${FILTER}: defined twice (lines 4 and 9) (duplicate name); rename or merge one of them`],
    },
    {
      mistake: 'two filters exposed as the same mutation',
      file: 'duplicate-mutation.yaml',
      problems: [
        "filters.order.refund.requested.v2: mutation 'requestRefund' is already used by filter 'order.refund.requested.v1' (duplicate name)",
      ],
    },
    {
      mistake: "a filter mutation that clashes with a plugin's Mutation field",
      file: 'mutation-clashes-with-plugin.yaml',
      problems: [
        `${FILTER}: mutation 'refundPayment' is already a Mutation field of a plugin (duplicate name)`,
        // Its result type would be named after it, as the plugin's is.
        `${FILTER}.result: the result type 'RefundPaymentResult' is already a type of the supergraph (duplicate name)`,
      ],
    },
    {
      mistake: 'two receivers with the same name',
      file: 'duplicate-receiver.yaml',
      problems: [
        "signals.payment.refunded.v1.receivers[0] (revoke-enrollment): receiver name 'revoke-enrollment' is already used by signal 'order.refunded.v1' (duplicate name)",
      ],
    },
    {
      mistake: 'a signal with no receivers',
      file: 'signal-without-receivers.yaml',
      problems: ['signals.order.refunded.v1.receivers: a signal needs at least one receiver'],
    },
    {
      mistake: 'a receiver with no Action',
      file: 'receiver-without-action.yaml',
      problems: ['signals.order.refunded.v1.receivers[0].action: is required (string)'],
    },
    {
      mistake: 'an unknown signal in emits',
      file: 'unknown-signal.yaml',
      problems: [`${FILTER}.emits[0]: unknown signal 'order.refund.v1' (declare it under signals)`],
    },
    {
      mistake: 'an input mapping that names no input of the Action',
      file: 'unknown-mapping-input.yaml',
      problems: [
        `${FILTER}.steps[0] (refundPayment): input mapping names 'amount', which is not an input of Action 'refundPayment'`,
      ],
    },
    {
      mistake: 'malformed YAML',
      file: 'malformed.yaml',
      problems: [
        'is not valid YAML: Flow map in block collection must be sufficiently indented and end with a } at line 10, column 1',
      ],
    },
    {
      mistake: 'an unknown key',
      file: 'unknown-key.yaml',
      problems: [`${FILTER}.steps: is required (array)`, `${FILTER}: unknown key 'step'`],
    },
    {
      mistake: 'a typed result of unknown or mismatched types, or of data nobody provides',
      file: 'bad-result.yaml',
      problems: [
        "filters.caller.echo.v1.result.kind: unknown type 'CallerKnd' (not in the supergraph)",
        "filters.caller.echo.v1.result.callerName: write 'String', not 'String!': a halted or failed flow has not provided it",
        "filters.caller.echo.v1.result.note: 'caller.note' is provided by neither the flow input nor a step",
        "filters.caller.echo.v1.result.audited: declared Int but 'audited' is Boolean (from step 0 (whoCalls))",
        "filters.caller.echo.v1.result.channel: '[Channel' is not a GraphQL type such as 'String' or '[OrderHistoryEntry!]'",
        "filters.caller.echo.v1.result.flow: 'flow' is the flow record beside the result; name the field otherwise",
      ],
    },
    {
      mistake: 'a wrong version',
      file: 'wrong-version.yaml',
      problems: ['version: must be 1'],
    },
  ];

  it.each(cases)(
    'refuses $mistake, naming the file, the entry and the problem',
    async ({ file, problems }) => {
      const connections = broken(`connections/${file}`);
      const error = await configErrorOf(() => buildSupergraph({ roverConfig, connections }));
      expect(error.file).toBe(connections);
      expect(error.problems).toEqual(problems);
      expect(error.message).toBe(`${connections}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    },
  );
});

describe('rover.yaml and composition', () => {
  it("refuses a typed result of a Plugin's value type that the Plugin does not share", async () => {
    const error = await configErrorOf(() =>
      buildSupergraph({ roverConfig, connections: broken('connections/unshared-result.yaml') }),
    );
    expect(error.file).toBe(roverConfig);
    expect(error.problems.join('\n')).toMatch(/INVALID_FIELD_SHARING.*"Caller\.callerKind".*shareable/s);
  });

  it('reports a composition error with its text, the subgraphs and their schema files', async () => {
    const rover = broken('conflicting-types/rover.yaml');
    const error = await configErrorOf(() =>
      buildSupergraph({ roverConfig: rover, connections: fixture('connections.yaml') }),
    );
    expect(error.file).toBe(rover);
    expect(error.problems).toEqual([
      '[FIELD_TYPE_MISMATCH] Type of field "RefundPaymentResult.refundedAmount" is incompatible across subgraphs: ' +
        'it has type "Int!" in subgraph "payments" but type "String!" in subgraph "refunds"' +
        ` — in subgraph "payments" (${fixture('subgraphs/payments/schema.graphql')}:15:3),` +
        ` subgraph "refunds" (${broken('conflicting-types/refunds.graphql')}:5:3)`,
    ]);
  });

  // `npm run compose` writes these files; `npm run compose:check` fails in CI when they are stale.
  const targets = [
    {
      roverConfig: 'rover.yaml',
      connections: 'connections.yaml',
      supergraph: 'schema/supergraph.graphql',
      coordinator: 'schema/coordinator.graphql',
    },
    {
      roverConfig: 'test/fixtures/rover.yaml',
      connections: 'test/fixtures/connections.yaml',
      supergraph: 'test/fixtures/supergraph.graphql',
      coordinator: 'test/fixtures/coordinator.graphql',
    },
  ];

  it.each(targets)(
    'the checked-in $supergraph and $coordinator are what composition gives now (else run `npm run compose`)',
    (target) => {
      const built = buildSupergraph({
        roverConfig: join(root, target.roverConfig),
        connections: join(root, target.connections),
      });
      expect(readFileSync(join(root, target.supergraph), 'utf8')).toBe(`${built.supergraphSdl}\n`);
      expect(readFileSync(join(root, target.coordinator), 'utf8')).toBe(
        `# Generated by \`npm run compose\` from ${target.connections}; do not edit.\n${built.coordinatorSdl}`,
      );
    },
  );

  it('sees the checked-in supergraph as stale once a subgraph schema changes without recomposing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cc-stale-'));
    try {
      cpSync(fixture(''), dir, { recursive: true });
      const copy = { roverConfig: join(dir, 'rover.yaml'), connections: join(dir, 'connections.yaml') };
      expect(isSupergraphStale(fixture('supergraph.graphql'), buildSupergraph(copy).supergraphSdl)).toBe(
        false,
      );
      const schema = join(dir, 'subgraphs/orders/schema.graphql');
      writeFileSync(
        schema,
        readFileSync(schema, 'utf8').replace('number: String!', 'number: String!\n  placedAt: String'),
      );
      const changed = buildSupergraph(copy).supergraphSdl;
      expect(changed).toContain('placedAt: String');
      expect(isSupergraphStale(fixture('supergraph.graphql'), changed)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Coordinator.start() refuses a bad configuration and leaves nothing open', () => {
  let database: TestDatabase;
  let redis: PrivateRedis;
  let port: number;
  const coordinator = (overrides: Partial<CoordinatorOptions>) =>
    new Coordinator({
      roverConfig,
      connectionsFile: fixture('connections.yaml'),
      subgraphsDir: fixture('subgraphs'),
      database: { url: database.url },
      redis: { url: redis.url, keyPrefix: 'config-test:' },
      flags: { testData: new integrations.TestData() },
      port,
      logger: silentLogger,
      ...overrides,
    });

  /** Nothing listens on the port, no session is open on the database and no connection on Redis. */
  const expectNothingOpen = async () => {
    expect(await tryConnect(port)).toBe('ECONNREFUSED');
    // Closed sessions leave PostgreSQL's and Redis's lists shortly after the client closed them.
    await waitFor(async () => expect(await databaseSessions(database.name)).toBe(0), {
      what: 'database sessions',
    });
    await waitFor(async () => expect((await redisConnections(redis.url)).open).toBe(0), {
      what: 'Redis connections',
    });
  };

  beforeAll(async () => {
    // Not migrated: a start that got as far as the database leaves the migrations table behind. The
    // tests below share the database and Redis and run in order: the first ones must open neither.
    [database, redis, port] = await Promise.all([
      createTestDatabase('config-start', { migrate: false }),
      startPrivateRedis(),
      freePort(),
    ]);
  });
  afterAll(async () => {
    await Promise.all([database?.drop(), redis?.dispose()]);
  });

  it('rejects a connections config with an unknown Action with a ConfigError before opening anything', async () => {
    const connections = broken('connections/unknown-action.yaml');
    const gateway = coordinator({ connectionsFile: connections });
    const error = await configErrorOf(() => gateway.start());
    expect(error.file).toBe(connections);
    expect(error.problems).toEqual([
      `${FILTER}.steps[1] (refundPaymnet): unknown Action 'refundPaymnet': no Mutation or Query field of that name in the supergraph`,
    ]);
    expect(gateway.state).toEqual({ phase: 'failed to start', error });
    await expectNothingOpen();
    expect(await isMigrated(database.url)).toBe(false);
    expect((await redisConnections(redis.url)).accepted).toBe(1); // the probe of expectNothingOpen only
  });

  it('rejects a malformed rover.yaml with a message naming the file', async () => {
    const rover = broken('malformed-rover.yaml');
    const error = await configErrorOf(() => coordinator({ roverConfig: rover }).start());
    expect(error.file).toBe(rover);
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(/^is not valid YAML: Missing closing "quote at line 6, column 1/);
    expect(error.message.startsWith(`${rover}:\n  - is not valid YAML`)).toBe(true);
    await expectNothingOpen();
  });

  it('rejects a malformed flags file with a message naming the file', async () => {
    const flagsFile = broken('malformed-flags.json');
    const error = await configErrorOf(() => coordinator({ flags: { flagsFile } }).start());
    expect(error.file).toBe(flagsFile);
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(/^is not valid JSON: /);
    await expectNothingOpen();
  });

  it('refuses a missing plugin before it opens the database, the bus or the flags', async () => {
    const rover = broken('missing-plugin/rover.yaml');
    const error = await configErrorOf(() => coordinator({ roverConfig: rover }).start());
    expect(error.file).toBe(rover);
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(
      new RegExp(
        `^subgraphs\\.refunds: no in-process plugin at ${fixture('subgraphs/refunds/index.ts').replaceAll('/', '\\/')} `,
      ),
    );
    expect(error.problems[0]).toMatch(/or list 'refunds' in REMOTE_SUBGRAPHS to call its routing_url$/);
    // Plugins are loaded (and, in production, their settings checked) before anything is opened.
    expect(await isMigrated(database.url)).toBe(false);
    await expectNothingOpen();
  });

  it('fails to listen on a port in use, naming the address, and closes everything else', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const gateway = coordinator({});
      await expect(gateway.start()).rejects.toThrow(
        `Cannot listen on 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port}`,
      );
      expect(gateway.state.phase).toBe('failed to start');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
    await expectNothingOpen();
  });
});
