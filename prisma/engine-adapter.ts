// The PostgreSQL connections the schema engine runs on: @prisma/adapter-pg with three corrections that
// make it behave like Prisma's native engine for migrations.
import { randomUUID } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import {
  DriverAdapterError,
  type SqlDriverAdapter,
  type SqlMigrationAwareDriverAdapterFactory,
} from '@prisma/driver-adapter-utils';
import pg from 'pg';

/** PostgreSQL's one-byte `"char"` type (pg_catalog's kind and flag columns). */
const charTypeOid = 18;
const textTypeOid = 25;

/**
 * The engine describes a database (to diff migrations against schema.prisma) by reading pg_catalog,
 * whose kind and flag columns have the internal `"char"` type. adapter-pg has no mapping for it and
 * fails with "Column type 'char' could not be deserialized" — the failure behind `schemaPush` and
 * introspection not working. node-postgres already reads the values as one-character strings, so
 * reporting those columns as text is all it takes.
 */
class CharAsTextClient extends pg.Client {
  // The overloads of `query` cannot be restated in an override; every call funnels through here.
  override query(...args: unknown[]): never {
    const last = args.length - 1;
    const callback = args[last];
    if (typeof callback === 'function') {
      args[last] = (error: unknown, result: unknown) => callback(error, error ? result : retypeChar(result));
    }
    const returned = (pg.Client.prototype.query as (...a: unknown[]) => unknown).apply(this, args);
    return (returned instanceof Promise ? returned.then(retypeChar) : returned) as never;
  }
}

function retypeChar<T>(result: T): T {
  for (const one of Array.isArray(result) ? result : [result]) {
    for (const field of (one as Partial<pg.QueryResult> | undefined)?.fields ?? []) {
      if (field.dataTypeID === charTypeOid) field.dataTypeID = textTypeOid;
    }
  }
  return result;
}

/** The schema engine's adapter factory, and how to close every connection it opened. */
export interface EngineConnections {
  factory: SqlMigrationAwareDriverAdapterFactory;
  /** Ends the pools and drops the scratch databases; the engine itself disposes of nothing. */
  close(): Promise<void>;
}

/**
 * Connections to the database at `url` for the schema engine. A shadow (scratch) database, when the
 * engine asks for one, is created beside it on the same server and dropped by `close()`.
 */
export function engineConnections(url: string): EngineConnections {
  const cleanups: (() => Promise<void>)[] = [];
  const connect = async (databaseUrl: string): Promise<SqlDriverAdapter> => {
    const pool = new pg.Pool({ connectionString: databaseUrl, Client: CharAsTextClient });
    // An idle connection dropped by the server must not crash the process through an unhandled event.
    pool.on('error', () => undefined);
    cleanups.push(() => pool.end());
    return withWholeScripts(await new PrismaPg(pool).connect(), pool);
  };
  const factory: SqlMigrationAwareDriverAdapterFactory = {
    provider: 'postgres',
    adapterName: '@prisma/adapter-pg',
    connect: () => connect(url),
    // PrismaPg's own version spreads its config and overrides `database`, but node-postgres lets
    // `connectionString` win over `database`: the "shadow" would be the main database, and the engine
    // resets its shadow database.
    async connectToShadowDb() {
      const name = `prisma_migrate_shadow_db_${randomUUID().replaceAll('-', '')}`;
      await runOn(url, `create database "${name}"`);
      cleanups.push(() => runOn(url, `drop database if exists "${name}" with (force)`));
      const shadowUrl = new URL(url);
      shadowUrl.pathname = `/${name}`;
      return connect(shadowUrl.href);
    },
  };
  return {
    factory,
    async close() {
      // Newest first: pools end before the scratch databases they use are dropped.
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    },
  };
}

/**
 * adapter-pg's `executeScript` splits a script on every ";" (string literals and function bodies
 * included) and runs the pieces one by one, outside any transaction. The engine applies each migration
 * through it, so send the script whole instead, as the native engine does: one simple-protocol query,
 * which PostgreSQL runs as one implicit transaction, so a failing migration leaves nothing half done.
 */
function withWholeScripts(adapter: SqlDriverAdapter, pool: pg.Pool): SqlDriverAdapter {
  return {
    provider: adapter.provider,
    adapterName: adapter.adapterName,
    queryRaw: (query) => adapter.queryRaw(query),
    executeRaw: (query) => adapter.executeRaw(query),
    startTransaction: (isolationLevel) => adapter.startTransaction(isolationLevel),
    getConnectionInfo: () => adapter.getConnectionInfo?.() ?? { supportsRelationJoins: true },
    dispose: () => adapter.dispose(),
    async executeScript(script) {
      try {
        await pool.query(script);
      } catch (error) {
        throw asDriverAdapterError(error);
      }
    },
  };
}

/** A PostgreSQL error in the shape the engine reports with its code and message, as adapter-pg does. */
function asDriverAdapterError(error: unknown): unknown {
  if (!(error instanceof pg.DatabaseError)) return error;
  return new DriverAdapterError({
    kind: 'postgres',
    code: error.code ?? 'N/A',
    severity: error.severity ?? 'N/A',
    message: error.message,
    detail: error.detail,
    column: error.column,
    hint: error.hint,
  });
}

async function runOn(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}
