import { CliError } from './errors.js';

/** Where the CLI reads and acts: a running Coordinator over GraphQL, or its database directly. */
export interface Source {
  readonly kind: 'graphql' | 'database';
  /** Says which it is, for the note every command prints. */
  readonly description: string;
  /** Runs a GraphQL operation of the Coordinator subgraph; a GraphQL error is a CliError with its code. */
  request<T>(document: string, variables?: Record<string, unknown>): Promise<T>;
  close(): Promise<void>;
}

export interface Connection {
  /** The Coordinator's base URL (or its /graphql endpoint). */
  url: string;
  token?: string;
  /** Read the database directly, without asking the Coordinator. */
  database: boolean;
}

/** `--url`, `--token`, `--database`, then CC_URL, CC_TOKEN, DATABASE_URL. */
export const DEFAULT_URL = 'http://127.0.0.1:4000';

interface GraphQLAnswer<T> {
  data?: T | null;
  errors?: Array<{ message: string; extensions?: { code?: string } & Record<string, unknown> }>;
}

/**
 * The source of a command. Writes need a running Coordinator; reads use it when it answers, and the
 * database at DATABASE_URL when it does not (or with `--database`), saying so.
 */
export async function openSource(connection: Connection, access: 'read' | 'write'): Promise<Source> {
  const databaseUrl = process.env.DATABASE_URL || undefined;
  if (connection.database) {
    if (access === 'write')
      throw new CliError('--database reads only: retries, cancels and replays need a running Coordinator');
    if (!databaseUrl)
      throw new CliError('--database needs DATABASE_URL: the PostgreSQL the Coordinator uses');
    return openDatabaseSource(databaseUrl, 'asked for with --database');
  }
  const graphql = graphqlSource(connection);
  const problem = await unreachable(graphql.endpoint);
  if (!problem) return graphql;
  if (access === 'read' && databaseUrl)
    return openDatabaseSource(
      databaseUrl,
      `the Coordinator at ${graphql.endpoint} did not answer: ${problem}`,
    );
  throw new CliError(
    `Cannot reach the Coordinator at ${graphql.endpoint} (${problem}); start it, pass --url or set CC_URL` +
      (access === 'read' ? ', or set DATABASE_URL to read its database directly' : ''),
  );
}

function graphqlSource(connection: Connection): Source & { endpoint: string } {
  const base = connection.url.replace(/\/+$/, '');
  const endpoint = base.endsWith('/graphql') ? base : `${base}/graphql`;
  return {
    kind: 'graphql',
    endpoint,
    description: `via GraphQL at ${endpoint}`,
    async request<T>(document: string, variables?: Record<string, unknown>) {
      let res: Response;
      try {
        res = await fetch(endpoint, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(connection.token ? { authorization: `Bearer ${connection.token}` } : {}),
          },
          body: JSON.stringify({ query: document, variables }),
        });
      } catch (error) {
        throw new CliError(`The Coordinator at ${endpoint} did not answer: ${causeOf(error)}`);
      }
      const text = await res.text();
      let answer: GraphQLAnswer<T>;
      try {
        answer = JSON.parse(text) as GraphQLAnswer<T>;
      } catch {
        throw new CliError(
          `The Coordinator at ${endpoint} answered ${res.status} with no GraphQL: ${text.slice(0, 200)}`,
        );
      }
      return dataOf(answer, connection.token === undefined);
    },
    close: async () => {},
  };
}

/** Why the Coordinator cannot be asked, or undefined when /healthz answers. */
async function unreachable(endpoint: string): Promise<string | undefined> {
  try {
    const res = await fetch(new URL('/healthz', endpoint), { signal: AbortSignal.timeout(3_000) });
    await res.body?.cancel();
    return res.ok ? undefined : `/healthz answered ${res.status}`;
  } catch (error) {
    return causeOf(error);
  }
}

function causeOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

/** The data of an answer; its first error as a CliError naming its code. */
export function dataOf<T>(answer: GraphQLAnswer<T>, anonymous = false): T {
  const [error] = answer.errors ?? [];
  if (error) {
    const code = error.extensions?.code ?? 'ERROR';
    const hint =
      code === 'UNAUTHENTICATED' && anonymous
        ? ' (pass --token or set CC_TOKEN: a staff or Service token, e.g. `npm run -s token -- staff <you>`)'
        : '';
    throw new CliError(`${code}: ${error.message}${hint}`, { code });
  }
  if (!answer.data) throw new CliError('The Coordinator answered no data');
  return answer.data;
}

/**
 * The Coordinator subgraph's own schema and resolvers, run in this process on the database (and the
 * signal bus at REDIS_URL, for dead letters): the same queries, answered from the same record.
 */
async function openDatabaseSource(url: string, why: string): Promise<Source> {
  const [
    { graphql },
    { readEnv },
    { buildSupergraph },
    api,
    store,
    log,
    prisma,
    adapter,
    pgModule,
    sdk,
    logs,
  ] = await Promise.all([
    import('graphql'),
    import('../gateway/env.js'),
    import('../gateway/federation/supergraph.js'),
    import('../gateway/flows/api.js'),
    import('../gateway/flows/store.js'),
    import('../gateway/flows/operator-log.js'),
    import('../gateway/db/generated/client.js'),
    import('@prisma/adapter-pg'),
    import('pg'),
    import('@commerce-coordinator/plugin-sdk'),
    import('../gateway/log.js'),
  ]);
  const { redactUrl } = await import('../prisma/migrate.js');
  const env = readEnv();
  const built = buildSupergraph({ roverConfig: env.ROVER_CONFIG, connections: env.CONNECTIONS_FILE });
  const pool = new pgModule.default.Pool({ connectionString: url });
  pool.on('error', () => undefined);
  const client = new prisma.PrismaClient({ adapter: new adapter.PrismaPg(pool) });
  const bus = env.REDIS_URL
    ? (await import('../gateway/signals/redis-bus.js')).createRedisSignalBus({
        url: env.REDIS_URL,
        keyPrefix: env.REDIS_KEY_PREFIX,
        consumerName: `cli-${process.pid}`,
        logger: logs.silentLogger,
      })
    : undefined;
  const coordinator = api.coordinatorPlugin(built.coordinatorSdl, built.connections, {
    store: new store.FlowStore(client, pool),
    log: new log.OperatorLog(client),
    bus,
    logger: logs.silentLogger,
    guarded: false,
  });
  return {
    kind: 'database',
    description: `via the database at ${redactUrl(url)}${bus ? ' and the signal bus at REDIS_URL' : ''} (${why})`,
    async request<T>(document: string, variables?: Record<string, unknown>) {
      const answer = await graphql({
        schema: coordinator.schema,
        source: document,
        variableValues: variables,
        contextValue: sdk.createActionContext({ principal: undefined }, []),
      });
      return dataOf<T>(answer as GraphQLAnswer<T>);
    },
    async close() {
      await bus?.close();
      await client.$disconnect();
      await pool.end().catch(() => undefined);
    },
  };
}
