/**
 * The flows benchmark's Coordinator in a process of its own, on COORDINATOR_WORKERS (default 1)
 * node:cluster workers sharing one port, as WORKERS runs the Coordinator:
 * `node --import tsx bench/flows/coordinator-process.ts` with BENCH_SERVICE_URL set. The primary
 * makes the database and the Redis namespace the workers share, prints one JSON line
 * `{"url", "pid", "databaseUrl", "redisUrl"}` once every worker listens, and on SIGTERM stops the
 * workers (each drains) and drops both.
 */
import cluster from 'node:cluster';
import { createTestDatabase } from '../../test/support/database.js';
import { deleteNamespace, machineRedisUrl, requireRedis, testNamespace } from '../../test/support/redis.js';
import { fixtureCoordinator } from '../lib/fixture-coordinator.js';

process.env.APOLLO_TELEMETRY_DISABLED ??= '1';

if (cluster.isWorker) {
  const coordinator = fixtureCoordinator(process.env.BENCH_DATABASE_URL!, {
    url: process.env.BENCH_REDIS_URL!,
    keyPrefix: process.env.BENCH_KEY_PREFIX!,
  });
  process.on('SIGTERM', () => void coordinator.stop().finally(() => process.exit(0)));
  process.send!({ url: await coordinator.start() });
} else {
  const redisUrl = await requireRedis(machineRedisUrl());
  const keyPrefix = `${testNamespace('bench-flows')}:`;
  const database = await createTestDatabase('bench');
  const count = Number(process.env.COORDINATOR_WORKERS ?? 1);
  const env = { BENCH_DATABASE_URL: database.url, BENCH_REDIS_URL: redisUrl, BENCH_KEY_PREFIX: keyPrefix };
  const workers = Array.from({ length: count }, () => cluster.fork(env));
  const urls = await Promise.all(
    workers.map(
      (worker) =>
        new Promise<string>((resolve, reject) => {
          worker.once('message', (message: { url: string }) => resolve(message.url));
          worker.once('exit', (code) => reject(new Error(`a worker exited (${code}) before it listened`)));
        }),
    ),
  );
  if (new Set(urls).size !== 1) throw new Error(`the workers listen apart: ${urls.join(', ')}`);
  process.on('SIGTERM', () => {
    void (async () => {
      await Promise.all(
        workers.map(
          (worker) =>
            new Promise<void>((exited) => {
              if (worker.isDead()) return exited();
              worker.once('exit', () => exited());
              worker.process.kill('SIGTERM');
            }),
        ),
      );
      await database.drop();
      await deleteNamespace(redisUrl, keyPrefix);
      process.exit(0);
    })();
  });
  process.stdout.write(
    `${JSON.stringify({ url: urls[0], pid: process.pid, databaseUrl: database.url, redisUrl })}\n`,
  );
}
