/**
 * The Coordinator's gateway on node:cluster workers sharing one port, as WORKERS runs the Coordinator:
 * `node --import tsx bench/federation/workers-process.ts <subgraphs base>` forks COORDINATOR_WORKERS
 * (default 2) workers of `gateway-process.ts coordinator`, each with the same supergraph and subgraphs.
 * This primary loads none of the gateway's code, so the process tree's memory is the workers'. Prints
 * `{"url": ..., "pid": ...}` with its own pid (the bench counts the processes under it).
 */
import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';

const [base] = process.argv.slice(2);
if (!base) throw new Error('usage: workers-process.ts <subgraphs base url>');
const count = Number(process.env.COORDINATOR_WORKERS ?? 2);
cluster.setupPrimary({
  exec: fileURLToPath(new URL('./gateway-process.ts', import.meta.url)),
  args: ['coordinator', base],
});
// A port-0 listen in workers is one port for all of them: node:cluster's rule.
const urls = await Promise.all(
  Array.from(
    { length: count },
    () =>
      new Promise<string>((resolve, reject) => {
        const worker = cluster.fork();
        worker.once('message', (message: { url: string }) => resolve(message.url));
        worker.once('exit', (code) => reject(new Error(`a worker exited (${code}) before it listened`)));
      }),
  ),
);
if (new Set(urls).size !== 1) throw new Error(`the workers listen apart: ${urls.join(', ')}`);
process.on('SIGTERM', () => {
  for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGKILL');
  process.exit(0);
});
process.stdout.write(`${JSON.stringify({ url: urls[0], pid: process.pid })}\n`);
