import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOutboxBacklog } from '../../gateway/signals/outbox.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

describe('the outbox backlog read at scrape time', () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  beforeAll(async () => {
    database = await createTestDatabase('observability-outbox-backlog');
    pool = new pg.Pool({ connectionString: database.url });
  });
  afterAll(async () => {
    await pool?.end();
    await database?.drop();
  });

  /** A signal committed `ageSeconds` before `now`, as the store writes it (UTC), published or not. */
  const commit = (now: number, ageSeconds: number, published: boolean) =>
    pool.query(
      `INSERT INTO "OutboxSignal" ("id", "name", "payload", "source", "createdAt", "publishedAt")
       VALUES ($1, 'order.refunded.v1', '{}', 'plugin:test', $2::timestamptz AT TIME ZONE 'UTC', $3)`,
      [
        randomUUID(),
        new Date(now - ageSeconds * 1000).toISOString(),
        published ? new Date().toISOString() : null,
      ],
    );

  it('is empty with no signal waiting', async () => {
    expect(await readOutboxBacklog(pool)).toEqual({ waiting: 0, oldestAgeSeconds: 0 });
  });

  it('counts the signals not yet published and ages the oldest of them', async () => {
    const now = Date.now();
    await commit(now, 3_600, true); // published: not waiting, however old
    await commit(now, 90, false);
    await commit(now, 30, false);
    await commit(now, 5, false);
    expect(await readOutboxBacklog(pool, () => now)).toEqual({ waiting: 3, oldestAgeSeconds: 90 });
  });
});
