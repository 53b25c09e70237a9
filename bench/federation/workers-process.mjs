/**
 * The Coordinator's gateway on node:cluster workers sharing one port, as WORKERS runs the Coordinator:
 * `node bench/federation/workers-process.mjs <subgraphs base>` forks COORDINATOR_WORKERS (default 2)
 * workers of `gateway-process.ts coordinator` (under tsx, with this process's Node flags), each with the
 * same supergraph and subgraphs. This primary is plain JavaScript and loads none of the gateway's code,
 * as the compiled Coordinator's primary: the process tree's memory is the workers'. Prints
 * `{"url": ..., "pid": ...}` with its own pid (the bench counts the processes under it).
 */
import cluster from 'node:cluster';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';

const [base] = process.argv.slice(2);
if (!base) throw new Error('usage: workers-process.mjs <subgraphs base url>');
const count = Number(process.env.COORDINATOR_WORKERS ?? 2);
cluster.setupPrimary({
  exec: fileURLToPath(new URL('./gateway-process.ts', import.meta.url)),
  args: ['coordinator', base],
  execArgv: [...process.execArgv, '--import', 'tsx'],
});
// A port-0 listen in workers is one port for all of them: node:cluster's rule.
const urls = await Promise.all(
  Array.from(
    { length: count },
    () =>
      new Promise((resolve, reject) => {
        const worker = cluster.fork();
        worker.once('message', (message) => resolve(message.url));
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
