// Read by the Prisma CLI (`scripts/generate.sh`). prisma/migrate.ts uses the same two paths without
// loading this file, so that the gateway does not load the CLI's config machinery at start-up.
import { defineConfig } from 'prisma/config';

/**
 * `generate` never connects, so it must not need DATABASE_URL. The fallback is the embedded default's
 * address (gateway/db/database.ts, without its generated password) rather than one that could reach a
 * real server by accident.
 */
const defaultDatabaseUrl = 'postgresql://postgres@127.0.0.1:5488/coordinator';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? defaultDatabaseUrl },
});
