import { randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { openDatabase, type Database } from '../../gateway/db/database.js';
import { silentLogger, type Logger } from '../../gateway/log.js';
import { createTestDatabase } from '../support/database.js';

/** A logger that keeps its entries, to see what a start did. */
function recordingLogger(): { logger: Logger; messages: string[] } {
  const messages: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      messages.push((JSON.parse(chunk.toString()) as { msg: string }).msg);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), messages };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        address && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Resolves when nothing accepts connections on `port` any more (a stopped server leaves no listener). */
async function expectNothingListening(port: number): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  client.on('error', () => undefined);
  await expect(client.connect()).rejects.toThrow(`connect ECONNREFUSED 127.0.0.1:${port}`);
}

const aFlowRun = (id: string) => ({
  id,
  kind: 'filter',
  name: 'order.refund.requested.v1',
  status: 'completed',
  inputHash: 'sha256:test',
  input: { orderId: 'order-1' },
});

describe('openDatabase with a URL', { timeout: 30_000 }, () => {
  test('applies the migrations, answers ready() and stores a flow run', async () => {
    const db = await createTestDatabase('open with url', { migrate: false });
    let database: Database | undefined;
    try {
      database = await openDatabase({ url: db.url, dataDir: '/nonexistent', logger: silentLogger });

      expect(database.embedded).toBe(false);
      expect(database.url).toBe(db.url);
      expect(await database.ready()).toBe(true);
      const id = randomUUID();
      await database.prisma.flowRun.create({ data: aFlowRun(id) });
      expect(await database.prisma.flowRun.findUnique({ where: { id }, select: { status: true } })).toEqual({
        status: 'completed',
      });
    } finally {
      await database?.close();
      await db.drop();
    }
  });

  test('says DATABASE_URL is not a URL, without echoing it', async () => {
    const failure = openDatabase({ url: 'postgres@db:5432', dataDir: '/nonexistent', logger: silentLogger });
    await expect(failure).rejects.toThrow(
      'DATABASE_URL is not a URL; expected postgresql://user:password@host:5432/database',
    );
  });

  test('says DATABASE_URL must be PostgreSQL', async () => {
    await expect(
      openDatabase({
        url: 'mysql://root:secret@127.0.0.1/db',
        dataDir: '/nonexistent',
        logger: silentLogger,
      }),
    ).rejects.toThrow(
      'DATABASE_URL (mysql://root:***@127.0.0.1/db) must start with postgresql:// (got mysql://)',
    );
  });

  test('names DATABASE_URL, without its password, when the server is unreachable', async () => {
    await expect(
      openDatabase({
        url: 'postgresql://app:secret@127.0.0.1:1/none',
        dataDir: '/nonexistent',
        logger: silentLogger,
      }),
    ).rejects.toThrow(
      'DATABASE_URL (postgresql://app:***@127.0.0.1:1/none): cannot connect to PostgreSQL at ' +
        'postgresql://app:***@127.0.0.1:1/none: connect ECONNREFUSED 127.0.0.1:1',
    );
  });
});

describe('openDatabase without a URL (embedded PostgreSQL)', { timeout: 120_000 }, () => {
  let parent: string;
  const opened: Database[] = [];

  beforeAll(async () => {
    parent = await mkdtemp(join(tmpdir(), 'cc-embedded-'));
    // Run as root, PostgreSQL runs as the `postgres` user, which must be able to reach the directory.
    await chmod(parent, 0o755);
  });
  afterEach(async () => {
    // A failed test must not leave a server running.
    await Promise.all(opened.splice(0).map((database) => database.close()));
  });
  afterAll(async () => {
    await rm(parent, { recursive: true, force: true });
  });

  test('starts in an empty directory, keeps its data across close and reopen, and really stops', async () => {
    const dataDir = join(parent, 'cluster');
    const port = await freePort();
    const first = recordingLogger();

    const coldStart = Date.now();
    const database = await openDatabase({ dataDir, port, logger: first.logger });
    const coldMs = Date.now() - coldStart;
    opened.push(database);

    expect(database.embedded).toBe(true);
    expect(database.url).toMatch(
      new RegExp(`^postgresql://postgres:[^@]+@127\\.0\\.0\\.1:${port}/coordinator$`),
    );
    expect(await database.ready()).toBe(true);
    expect(first.messages).toContain('initialising the embedded PostgreSQL data directory');
    expect(first.messages).toContain('applied database migrations');
    const id = randomUUID();
    await database.prisma.flowRun.create({ data: aFlowRun(id) });

    await database.close();
    await expectNothingListening(port);

    const second = recordingLogger();
    const warmStart = Date.now();
    const reopened = await openDatabase({ dataDir, port, logger: second.logger });
    const warmMs = Date.now() - warmStart;
    opened.push(reopened);

    expect(second.messages).not.toContain('initialising the embedded PostgreSQL data directory');
    expect(second.messages).not.toContain('applied database migrations');
    expect(await reopened.prisma.flowRun.findUnique({ where: { id }, select: { name: true } })).toEqual({
      name: 'order.refund.requested.v1',
    });

    await reopened.close();
    await expectNothingListening(port);
    // Measured, not asserted: start-up time depends on the machine.
    console.info(
      `embedded PostgreSQL: first start (initdb + start + migrate) ${coldMs} ms, restart ${warmMs} ms`,
    );
  });

  test('refuses a port already in use, naming the data directory and the port', async () => {
    const dataDir = join(parent, 'port-taken');
    const port = await freePort();
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    try {
      await expect(openDatabase({ dataDir, port, logger: silentLogger })).rejects.toThrow(
        `embedded PostgreSQL (data directory ${dataDir}, port ${port}): port ${port} on 127.0.0.1 is already in use`,
      );
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  test('refuses a non-empty directory that holds no PostgreSQL cluster', async () => {
    const dataDir = join(parent, 'not-a-cluster');
    await mkdir(dataDir);
    await writeFile(join(dataDir, 'notes.txt'), 'mine');
    const port = await freePort();

    await expect(openDatabase({ dataDir, port, logger: silentLogger })).rejects.toThrow(
      `embedded PostgreSQL (data directory ${dataDir}, port ${port}): it exists, is not empty and is not a ` +
        'PostgreSQL data directory; empty it or choose another. Set DATABASE_URL to use another PostgreSQL instead.',
    );
  });
});
