#!/bin/sh
# Generates the Prisma client into gateway/db/generated (git-ignored) without network access.
#
# `prisma generate` needs no schema engine, but the CLI checks for a native one first and downloads it
# from binaries.prisma.sh when missing, which fails here. Pointing PRISMA_SCHEMA_ENGINE_BINARY at any
# existing file satisfies the check; the stub explains itself if anything ever runs it. @prisma/engines'
# postinstall would try the same download: it fails silently, and nothing here needs what it fetches.
# CHECKPOINT_DISABLE stops the CLI's version check against checkpoint.prisma.io.
set -eu
root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$root"
PRISMA_SCHEMA_ENGINE_BINARY="$root/scripts/schema-engine-stub.sh" \
CHECKPOINT_DISABLE=1 \
PRISMA_HIDE_UPDATE_MESSAGE=1 \
  exec npx --no-install prisma generate "$@"
