import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeEach, describe, expect, test } from 'vitest';
import { applyMigrations, createMigration, migrationsDir, schemaPath } from '../../prisma/migrate.js';
import {
  createTestDatabase,
  machinePostgresUrl,
  requirePostgres,
  type TestDatabase,
} from '../support/database.js';

const migrationNames = async (dir = migrationsDir) =>
  (await readdir(dir, { withFileTypes: true }))
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();

const modelNames = async () =>
  [...(await readFile(schemaPath, 'utf8')).matchAll(/^model (\w+)/gm)].map((m) => m[1]);

async function query<R extends pg.QueryResultRow>(
  url: string,
  sql: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

const tablesOf = async (url: string) =>
  (
    await query<{ table_name: string }>(
      url,
      "select table_name from information_schema.tables where table_schema = 'public' order by 1",
    )
  ).map((row) => row.table_name);

const recordedMigrations = (url: string) =>
  query<{ migration_name: string; checksum: string; finished_at: Date | null; rolled_back_at: Date | null }>(
    url,
    'select migration_name, checksum, finished_at, rolled_back_at from _prisma_migrations order by migration_name',
  );

describe('applyMigrations', { timeout: 30_000 }, () => {
  let db: TestDatabase;
  beforeEach(async ({ task }) => {
    db = await createTestDatabase(task.name, { migrate: false });
    return () => db.drop();
  });

  test('creates every table of schema.prisma and records every migration as finished', async () => {
    const names = await migrationNames();
    expect(names.length).toBeGreaterThan(0);

    expect(await applyMigrations(db.url)).toEqual(names);

    expect(await tablesOf(db.url)).toEqual([...(await modelNames()), '_prisma_migrations'].sort());
    const recorded = await recordedMigrations(db.url);
    expect(recorded.map((row) => row.migration_name)).toEqual(names);
    for (const row of recorded) {
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.rolled_back_at).toBeNull();
    }
  });

  test('a second run applies nothing and changes nothing', async () => {
    await applyMigrations(db.url);
    const before = await recordedMigrations(db.url);

    expect(await applyMigrations(db.url)).toEqual([]);

    expect(await recordedMigrations(db.url)).toEqual(before);
  });

  test('two concurrent runs apply each migration exactly once', async () => {
    const names = await migrationNames();

    const results = await Promise.all([applyMigrations(db.url), applyMigrations(db.url)]);

    // Which run wins the lock is not determined; that one applies everything, the other nothing.
    expect(results.map((applied) => applied.length).sort()).toEqual([0, names.length]);
    expect((await recordedMigrations(db.url)).map((row) => row.migration_name)).toEqual(names);
  });

  describe('with migrations of its own', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'cc-migrations-'));
      return () => rm(dir, { recursive: true, force: true });
    });
    const addMigration = async (name: string, sql: string) => {
      await mkdir(join(dir, name));
      await writeFile(join(dir, name, 'migration.sql'), sql);
    };

    test('runs each script whole: semicolons in literals and function bodies, all or nothing', async () => {
      await addMigration(
        '20000101000000_whole',
        "create table note (body text not null default 'a;b');\n" +
          'create function answer() returns int language plpgsql as $$ begin return 42; end; $$;\n',
      );
      await addMigration(
        '20000102000000_broken',
        'create table half_done (id int primary key);\nselect * from no_such_table;\n',
      );

      const failure = applyMigrations(db.url, undefined, { migrationsDir: dir });
      // The engine's wording for PostgreSQL's 42P01, followed by the failing migration's name.
      await expect(failure).rejects.toThrow('No such table: no_such_table');
      await expect(failure).rejects.toThrow('with migration_name="20000102000000_broken"');

      expect(await query(db.url, 'select answer() as answer')).toEqual([{ answer: 42 }]);
      expect(await query(db.url, 'insert into note default values returning body')).toEqual([
        { body: 'a;b' },
      ]);
      expect(await tablesOf(db.url)).toEqual(['_prisma_migrations', 'note']);
      const recorded = await recordedMigrations(db.url);
      expect(recorded.map((row) => [row.migration_name, row.finished_at === null])).toEqual([
        ['20000101000000_whole', false],
        ['20000102000000_broken', true],
      ]);
    });
  });

  test('names the server when PostgreSQL is unreachable', async () => {
    await expect(applyMigrations('postgresql://postgres:secret@127.0.0.1:1/none')).rejects.toThrow(
      'cannot connect to PostgreSQL at postgresql://postgres:***@127.0.0.1:1/none: connect ECONNREFUSED 127.0.0.1:1',
    );
  });
});

describe('createMigration', { timeout: 30_000 }, () => {
  let dir: string;
  const shadowDatabases = async () =>
    query<{ datname: string }>(
      machinePostgresUrl(),
      "select datname from pg_database where datname like 'prisma_migrate_shadow_db_%'",
    );
  let shadowsBefore: { datname: string }[] | undefined;

  beforeEach(async () => {
    // In each test, not in beforeAll, so that without PostgreSQL every test fails rather than is skipped.
    await requirePostgres();
    shadowsBefore ??= await shadowDatabases();
    // A copy, so that a test never writes into the real migrations folder.
    dir = await mkdtemp(join(tmpdir(), 'cc-migrations-'));
    await cp(migrationsDir, dir, { recursive: true });
    return () => rm(dir, { recursive: true, force: true });
  });
  afterAll(async () => {
    // The scratch databases the engine replays the migrations into are dropped again.
    if (shadowsBefore) expect(await shadowDatabases()).toEqual(shadowsBefore);
  });

  test('finds nothing to create: the committed migrations produce exactly schema.prisma', async () => {
    const before = await migrationNames(dir);

    expect(
      await createMigration('check', machinePostgresUrl(), undefined, { migrationsDir: dir }),
    ).toBeUndefined();

    expect(await migrationNames(dir)).toEqual(before);
  });

  test('writes the migration for a schema change, which then applies', async () => {
    const schemaFile = join(dir, 'schema.prisma');
    await writeFile(
      schemaFile,
      `${await readFile(schemaPath, 'utf8')}\nmodel Probe {\n  id    Int    @id\n  label String\n}\n`,
    );

    const created = await createMigration('add_probe', machinePostgresUrl(), undefined, {
      migrationsDir: dir,
      schemaPath: schemaFile,
    });

    expect(created?.name).toMatch(/^\d{14}_add_probe$/);
    expect(created?.path).toBe(join(dir, created?.name ?? '', 'migration.sql'));
    const sql = await readFile(created?.path ?? '', 'utf8');
    expect(sql).toContain('CREATE TABLE "Probe"');
    expect(sql).not.toContain('"FlowRun"');
    expect(await readFile(join(dir, 'migration_lock.toml'), 'utf8')).toContain('provider = "postgresql"');

    const db = await createTestDatabase('create migration', { migrate: false });
    try {
      await applyMigrations(db.url, undefined, { migrationsDir: dir });
      expect(await tablesOf(db.url)).toContain('Probe');
    } finally {
      await db.drop();
    }
  });

  test('rejects a name that would not make a plain folder name', async () => {
    await expect(
      createMigration('Add Probe', machinePostgresUrl(), undefined, { migrationsDir: dir }),
    ).rejects.toThrow(
      'migration name "Add Probe": use lower-case letters, digits and underscores, e.g. add_refunds',
    );
  });
});
