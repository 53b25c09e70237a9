import { randomUUID } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { isDatabaseUnavailable } from '../../gateway/db/availability.js';
import { openDatabase, type Database } from '../../gateway/db/database.js';
import { silentLogger } from '../../gateway/log.js';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { createTestDatabase, machinePostgresUrl, type TestDatabase } from '../support/database.js';
import { throughProxy } from '../support/tcp-proxy.js';
import { waitFor } from '../support/wait.js';

/**
 * A database that accepts connections but never answers (a hung server, a network blackhole) is an
 * outage like one that refuses them: every database call fails within the configured timeouts,
 * answered SERVICE_UNAVAILABLE, instead of waiting for as long as the socket lives. A transaction cut
 * short leaves nothing written, and its connection is never handed out again.
 */

/** Short bounds, so that the test is quick; the assertions allow several times as much. */
const CONNECT_TIMEOUT_MS = 1_000;
const QUERY_TIMEOUT_MS = 1_000;
/** What a call may take while the database hangs: loose, never a benchmark figure. */
const BOUND_MS = 10_000;

/**
 * A TCP proxy in front of the machine's PostgreSQL that can be blackholed: it keeps its connections
 * and accepts new ones, but forwards nothing either way and closes nothing, as a network that drops
 * every packet would. What it held back (bytes, ends) passes in order once it is restored, as TCP's
 * retransmissions deliver them when a partition heals.
 */
interface BlackholeProxy {
  readonly port: number;
  blackhole(): void;
  restore(): void;
  close(): Promise<void>;
}

async function startBlackholeProxy(target: { host: string; port: number }): Promise<BlackholeProxy> {
  let holding = false;
  let held: Array<() => void> = [];
  const sockets = new Set<Socket>();
  const whenOpen = (action: () => void) => (holding ? held.push(action) : action());
  const server = createServer((client) => {
    const upstream = connect(target);
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(from);
      from.on('data', (chunk) => whenOpen(() => to.write(chunk)));
      from.on('close', () => {
        sockets.delete(from);
        whenOpen(() => to.end());
      });
      // A write to a side that already went away; its close is handled above.
      from.on('error', () => undefined);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    blackhole: () => void (holding = true),
    restore() {
      holding = false;
      const actions = held;
      held = [];
      for (const action of actions) action();
    },
    close: () =>
      new Promise<void>((resolve) => {
        holding = false;
        held = [];
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Settles `call` and says how long it took; a call that hangs fails the test on its timeout. */
async function timed(call: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  try {
    await call();
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
  throw new Error('expected the call to fail while the database hangs, and it answered');
}

function expectOutage({ error, ms }: { error: unknown; ms: number }): void {
  expect(isDatabaseUnavailable(error), String(error)).toBe(true);
  expect(ms).toBeLessThan(BOUND_MS);
}

const machine = new URL(machinePostgresUrl());
const target = { host: machine.hostname, port: Number(machine.port || 5432) };

/** Asks the server directly (not through the proxy) about the test database's sessions and rows. */
async function onTheServer<T>(database: TestDatabase, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: database.url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

const openTransactions = (database: TestDatabase) =>
  onTheServer(database, async (client) => {
    const { rows } = await client.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid() and state like 'idle in transaction%'`,
    );
    return rows[0]!.n;
  });

const flowRunExists = (database: TestDatabase, id: string) =>
  onTheServer(database, async (client) => {
    const { rowCount } = await client.query('select 1 from "FlowRun" where "id" = $1', [id]);
    return rowCount === 1;
  });

const aFlowRun = (id: string) => ({
  id,
  kind: 'filter',
  name: 'order.refund.requested.v1',
  status: 'completed',
  inputHash: 'sha256:test',
  input: { orderId: `order-${id}` },
});

describe('a database that accepts connections and never answers', { timeout: 30_000 }, () => {
  let db: TestDatabase;
  let proxy: BlackholeProxy;
  let database: Database;
  beforeAll(async () => {
    db = await createTestDatabase('hung database');
    proxy = await startBlackholeProxy(target);
    database = await openDatabase({
      url: throughProxy(db.url, proxy.port),
      dataDir: '',
      logger: silentLogger,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      queryTimeoutMs: QUERY_TIMEOUT_MS,
    });
  });
  afterEach(() => proxy.restore());
  afterAll(async () => {
    proxy?.restore();
    await database?.close();
    await proxy?.close();
    await db?.drop();
  });

  test('fails every call within the timeouts, as an outage, on open connections and new ones', async () => {
    // Connections open before it hangs (the pool opens one per concurrent call), idle in the pool.
    await Promise.all(Array.from({ length: 3 }, () => database.pool.query('select pg_sleep(0.05)')));
    expect(database.pool.idleCount).toBeGreaterThan(0);
    proxy.blackhole();

    // On an open connection: the statement is sent and never answered.
    expectOutage(await timed(() => database.pool.query('select 1')));
    expectOutage(await timed(() => database.prisma.flowRun.count()));
    // More calls at once than the pool holds: new connections, and callers waiting for one.
    const many = await Promise.all(
      Array.from({ length: 15 }, (_, i) =>
        timed(() =>
          i % 2
            ? database.pool.query('select 1')
            : database.prisma.flowRun.findFirst({ select: { id: true } }),
        ),
      ),
    );
    many.forEach(expectOutage);
    expect(await database.ready()).toBe(false);

    proxy.restore();
    await waitFor(async () => (await database.pool.query('select 1')).rowCount === 1, {
      timeoutMs: 15_000,
      what: 'the database to answer again',
    });
    expect(await database.prisma.flowRun.count()).toBeGreaterThanOrEqual(0);
  });

  test('rolls back a transaction the timeout cut short, and never hands its connection out again', async () => {
    // As the outbox and the flow-end sweep write: BEGIN, statements, COMMIT, release without an error.
    const viaPool = randomUUID();
    const poolTransaction = timed(async () => {
      const tx = await database.pool.connect();
      try {
        await tx.query('BEGIN');
        await tx.query(
          `insert into "FlowRun" ("id", "kind", "name", "status", "inputHash", "input")
           values ($1, 'filter', 'order.refund.requested.v1', 'completed', 'h', '{}')`,
          [viaPool],
        );
        proxy.blackhole();
        await tx.query('select 1');
        await tx.query('COMMIT');
      } catch (error) {
        await tx.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        tx.release();
      }
    });
    expectOutage(await poolTransaction);
    proxy.restore();

    // As Prisma's adapter ends an interactive transaction: ROLLBACK, then release without an error.
    const viaPrisma = randomUUID();
    const prismaTransaction = timed(() =>
      database.prisma.$transaction(
        async (tx) => {
          await tx.flowRun.create({ data: aFlowRun(viaPrisma) });
          proxy.blackhole();
          await tx.flowRun.count();
        },
        { timeout: 20_000 },
      ),
    );
    expectOutage(await prismaTransaction);
    proxy.restore();

    // No connection the pool hands out is inside a transaction: had a timed-out one gone back to the
    // pool, its transaction would still be open (its ROLLBACK never sent) and the next caller's
    // statements would run, and commit, in it. Asked at once, so that every connection the pool holds
    // is handed out, and now: the pool closes a connection idle for 10 s, which would hide a stale one.
    const states = await Promise.all(
      Array.from({ length: 10 }, () =>
        database.pool.query<{ inTransaction: boolean }>(
          'select now() <> statement_timestamp() as "inTransaction" from pg_sleep(0.05)',
        ),
      ),
    );
    expect(states.map((s) => s.rows[0]!.inTransaction)).not.toContain(true);
    // The server ended the sessions of the closed connections, rolling back what they had written.
    await waitFor(async () => (await openTransactions(db)) === 0, {
      timeoutMs: 5_000,
      what: 'the sessions of the cut-short transactions to end',
    });
    expect(await flowRunExists(db, viaPool)).toBe(false);
    expect(await flowRunExists(db, viaPrisma)).toBe(false);
  });

  test('stops a statement the server is slow to answer, leaving the connection usable', async () => {
    const slow = await timed(() => database.pool.query(`select pg_sleep(${(QUERY_TIMEOUT_MS * 5) / 1_000})`));
    expectOutage(slow);
    expect((await database.pool.query('select 1')).rowCount).toBe(1);
  });
});

describe('a whole Coordinator on a database that never answers', { timeout: 30_000 }, () => {
  let db: TestDatabase;
  let proxy: BlackholeProxy;
  let t: TestCoordinator;
  beforeAll(async () => {
    db = await createTestDatabase('hung database coordinator');
    proxy = await startBlackholeProxy(target);
    t = await startTestCoordinator('hung-database', {
      database: db,
      redis: false,
      overrides: {
        database: {
          url: throughProxy(db.url, proxy.port),
          connectTimeoutMs: CONNECT_TIMEOUT_MS,
          queryTimeoutMs: QUERY_TIMEOUT_MS,
        },
      },
    });
  });
  afterAll(async () => {
    proxy?.restore();
    await t?.stop();
    await proxy?.close();
    await db?.drop();
  });

  const codeOf = (result: { errors?: Array<{ extensions?: Record<string, unknown> }> }) =>
    result.errors?.[0]?.extensions?.code;

  test('answers SERVICE_UNAVAILABLE in bounded time, and works again once it answers', async () => {
    expect(codeOf(await t.graphql('{ flows(limit: 5) { id } }'))).toBeUndefined();
    proxy.blackhole();

    const asks = {
      flows: () => t.graphql('{ flows(limit: 5) { id } }'),
      flow: () => t.graphql(`{ flow(id: "${randomUUID()}") { id } }`),
      refund: () =>
        t.graphql(REQUEST_REFUND, {
          input: { orderId: `hung-${randomUUID()}`, amount: 10, learnerId: 'l-1' },
          key: randomUUID(),
        }),
    };
    // At once, and more than the pool holds, with the Coordinator's own loops (outbox, leases) waiting too.
    const answers = await Promise.all(
      [...Array.from({ length: 4 }, () => Object.values(asks))].flat().map(async (ask) => {
        const started = Date.now();
        return { answer: await ask(), ms: Date.now() - started };
      }),
    );
    for (const { answer, ms } of answers) {
      expect(codeOf(answer), JSON.stringify(answer).slice(0, 300)).toBe('SERVICE_UNAVAILABLE');
      // What the caller is told names no driver, host or timeout (stacktraces, outside production, are
      // the gateway's own frames: its timers' names would match).
      const told = JSON.stringify(answer, (key, value: unknown) =>
        key === 'stacktrace' ? undefined : value,
      );
      expect(told).not.toMatch(/timeout|127\.0\.0\.1|Prisma/i);
      expect(ms).toBeLessThan(BOUND_MS);
    }
    const ready = await fetch(`${t.url}/readyz`);
    expect(ready.status).toBe(503);

    proxy.restore();
    await waitFor(async () => codeOf(await t.graphql('{ flows(limit: 5) { id } }')) === undefined, {
      timeoutMs: 15_000,
      what: 'the database to answer again',
    });
  });
});

describe('isDatabaseUnavailable on the errors of a database that does not answer', () => {
  const sqlError = (code: string, message: string) =>
    Object.assign(new Error(message), { code, severity: 'ERROR' });

  test.each([
    ['pg: no answer to a query in time', new Error('Query read timeout')],
    ['pg-pool: no free connection in time', new Error('timeout exceeded when trying to connect')],
    [
      'pg-pool: a new connection not established in time',
      new Error('Connection terminated due to connection timeout', {
        cause: new Error('Connection terminated unexpectedly'),
      }),
    ],
    ['the server: statement_timeout', sqlError('57014', 'canceling statement due to statement timeout')],
    [
      'Prisma: statement_timeout',
      Object.assign(new Error('Invalid `prisma.flowRun.update()` invocation'), {
        code: 'P2039',
        meta: {
          modelName: 'FlowRun',
          driverAdapterError: {
            name: 'DriverAdapterError',
            cause: { originalCode: '57014', kind: 'postgres', code: '57014', severity: 'ERROR' },
          },
        },
      }),
    ],
  ])('%s', (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  test('not a statement the database refused', () => {
    expect(isDatabaseUnavailable(sqlError('23505', 'duplicate key value violates unique constraint'))).toBe(
      false,
    );
    expect(isDatabaseUnavailable(sqlError('42601', 'syntax error at or near "selec"'))).toBe(false);
  });
});
