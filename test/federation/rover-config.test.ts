import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../gateway/errors.js';
import { loadRoverConfig, type LoadRoverConfigOptions } from '../../gateway/federation/rover-config.js';

const ordersSdl = 'type Query { order(id: ID!): String }\n';

describe('loadRoverConfig', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cc-rover-'));
    file = join(dir, 'rover.yaml');
    await mkdir(join(dir, 'subgraphs', 'orders'), { recursive: true });
    await writeFile(join(dir, 'subgraphs', 'orders', 'schema.graphql'), ordersSdl);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const problemsOf = async (yaml: string, options?: LoadRoverConfigOptions): Promise<readonly string[]> => {
    await writeFile(file, yaml);
    try {
      loadRoverConfig(file, options);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).file).toBe(file);
      expect((error as ConfigError).message.startsWith(`${file}:\n`)).toBe(true);
      return (error as ConfigError).problems;
    }
    throw new Error('expected a ConfigError');
  };

  it('reads subgraphs, resolving schema files relative to the config file', async () => {
    await writeFile(
      file,
      [
        'federation_version: =2.14.4',
        'subgraphs:',
        '  orders:',
        '    routing_url: http://localhost:4001/graphql',
        '    schema:',
        '      file: ./subgraphs/orders/schema.graphql',
      ].join('\n'),
    );
    expect(loadRoverConfig(file)).toEqual({
      file,
      federationVersion: '=2.14.4',
      subgraphs: [
        {
          name: 'orders',
          routingUrl: 'http://localhost:4001/graphql',
          schemaFile: join(dir, 'subgraphs', 'orders', 'schema.graphql'),
          typeDefs: ordersSdl,
        },
      ],
    });
  });

  it('expands ${env.NAME} and ${env.NAME:-default} in values as Rover does', async () => {
    await writeFile(
      file,
      [
        'federation_version: 2',
        'subgraphs:',
        '  orders:',
        '    routing_url: http://${env.ORDERS_HOST}:${env.ORDERS_PORT:-4001}/graphql?a=$$b',
        '    schema:',
        '      file: ${env.SCHEMA_DIR}/orders/schema.graphql',
      ].join('\n'),
    );
    const config = loadRoverConfig(file, {
      env: { ORDERS_HOST: 'orders.internal', SCHEMA_DIR: 'subgraphs' },
    });
    expect(config.federationVersion).toBe('2');
    expect(config.subgraphs[0]).toMatchObject({
      routingUrl: 'http://orders.internal:4001/graphql?a=$b',
      schemaFile: join(dir, 'subgraphs', 'orders', 'schema.graphql'),
    });
  });

  it('refuses an unset variable without default, and references Rover would refuse', async () => {
    const problems = await problemsOf(
      [
        'federation_version: =2.14.4',
        'subgraphs:',
        '  orders:',
        '    routing_url: http://${env.ORDERS_HOST}/$PORT/${file.x}',
        '    schema: { file: ./subgraphs/orders/schema.graphql }',
      ].join('\n'),
      { env: {} },
    );
    expect(problems).toEqual([
      'subgraphs.orders.routing_url: "${env.ORDERS_HOST}" is not set; set the ORDERS_HOST environment variable or give a default: "${env.ORDERS_HOST:-value}"',
      'subgraphs.orders.routing_url: "$PORT" is not a supported expansion; use "${env.PORT}" (write "$$" for a literal "$")',
      'subgraphs.orders.routing_url: "${file.x}" is not a supported expansion; use "${env.NAME}" or "${env.NAME:-default}" (write "$$" for a literal "$")',
    ]);
  });

  it('reads the package a subgraph is side-loaded from, and refuses a name npm would not accept', async () => {
    const entry = (pkg: string) =>
      [
        'federation_version: =2.14.4',
        'subgraphs:',
        '  orders:',
        '    routing_url: http://127.0.0.1:4101/',
        `    package: '${pkg}'`,
        '    schema: { file: ./subgraphs/orders/schema.graphql }',
      ].join('\n');
    await writeFile(file, entry('@acme/commerce-plugin-orders'));
    expect(loadRoverConfig(file).subgraphs[0]).toMatchObject({
      name: 'orders',
      package: '@acme/commerce-plugin-orders',
    });
    expect(await problemsOf(entry('../orders'))).toEqual([
      'subgraphs.orders.package: is not an npm package name',
    ]);
  });

  it('refuses malformed YAML', async () => {
    const problems = await problemsOf('federation_version: =2.14.4\nsubgraphs:\n  orders: [\n');
    expect(problems[0]).toMatch(/^is not valid YAML: /);
  });

  it('refuses a subgraph listed twice', async () => {
    const problems = await problemsOf(
      'federation_version: =2.14.4\nsubgraphs:\n  orders: {}\n  orders: {}\n',
    );
    expect(problems[0]).toMatch(/^is not valid YAML: Map keys must be unique/);
  });

  it('refuses unknown keys, naming where they are', async () => {
    const problems = await problemsOf(
      [
        'federation_version: =2.14.4',
        'graph_ref: x@current',
        'subgraphs:',
        '  orders:',
        '    routing_uri: http://localhost:4001',
        '    schema: { file: ./subgraphs/orders/schema.graphql, fil: x }',
      ].join('\n'),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        'the top level: unknown key "graph_ref"',
        'subgraphs.orders: unknown key "routing_uri"',
        'subgraphs.orders.routing_url: Invalid input: expected string, received undefined',
        'subgraphs.orders.schema: unknown key "fil"',
      ]),
    );
    expect(problems).toHaveLength(4);
  });

  it('refuses Rover schema sources that need a network, saying what to use instead', async () => {
    const problems = await problemsOf(
      [
        'federation_version: =2.14.4',
        'subgraphs:',
        '  orders:',
        '    routing_url: http://localhost:4001',
        '    schema: { subgraph_url: http://localhost:4001 }',
      ].join('\n'),
    );
    expect(problems).toEqual([
      'subgraphs.orders.schema.subgraph_url: Rover\'s introspecting a running subgraph is not supported; the gateway composes from schema files at start-up, so give "schema: { file: <path> }"',
      'subgraphs.orders.schema.file: Invalid input: expected string, received undefined',
    ]);
  });

  it('refuses Federation 1, an unpinned version format and a routing URL that is not a URL', async () => {
    const problems = await problemsOf(
      [
        'federation_version: 1',
        'subgraphs:',
        '  orders:',
        '    routing_url: not a url',
        '    schema: { file: ./subgraphs/orders/schema.graphql }',
      ].join('\n'),
    );
    expect(problems).toEqual([
      'federation_version: must be "2" or an exact Federation 2 version such as "=2.14.4" (Federation 1 is not supported)',
      'subgraphs.orders.routing_url: is not a URL',
    ]);
  });

  it('refuses a missing schema file and a schema that does not parse, naming each subgraph', async () => {
    await writeFile(join(dir, 'broken.graphql'), 'type Query {\n  order: \n}\n');
    const problems = await problemsOf(
      [
        'federation_version: =2.14.4',
        'subgraphs:',
        '  orders:',
        '    routing_url: http://localhost:4001',
        '    schema: { file: ./subgraphs/orders/missing.graphql }',
        '  payments:',
        '    routing_url: http://localhost:4002',
        '    schema: { file: broken.graphql }',
      ].join('\n'),
    );
    expect(problems).toEqual([
      `subgraphs.orders.schema.file: "./subgraphs/orders/missing.graphql" does not exist (looked for ${join(dir, 'subgraphs/orders/missing.graphql')}); paths are relative to ${file}`,
      `subgraphs.payments.schema.file: ${join(dir, 'broken.graphql')}:3:1: the schema does not parse: Syntax Error: Expected Name, found "}".`,
    ]);
  });

  it('refuses a config with no subgraphs, and a missing config file', async () => {
    expect(await problemsOf('federation_version: =2.14.4\nsubgraphs: {}\n')).toEqual([
      'subgraphs: lists no subgraph',
    ]);
    expect(() => loadRoverConfig(join(dir, 'nope.yaml'))).toThrow(ConfigError);
  });
});
