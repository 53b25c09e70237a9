#!/bin/sh
# Not a schema engine. The Prisma CLI insists on finding a native schema-engine binary before
# `prisma generate`, and downloads one from binaries.prisma.sh (outside the npm registry, unreachable
# here) when PRISMA_SCHEMA_ENGINE_BINARY does not name an existing file. `generate` never runs it, so
# scripts/generate.sh points the variable at this file. Migrations go through the WebAssembly engine
# instead: `npx tsx prisma/migrate.ts deploy|create <name>`.
echo "scripts/schema-engine-stub.sh: this is a stub, not Prisma's schema engine." >&2
echo "Use 'npx tsx prisma/migrate.ts deploy' or 'npx tsx prisma/migrate.ts create <name>' for migrations." >&2
exit 1
