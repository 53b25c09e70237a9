/**
 * The flow benchmark's Service stand-in: answers every POST after a fixed latency (argv[2] ms) with a
 * new id. Prints `{"url": ..., "pid": ...}` once listening.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const latencyMs = Number(process.argv[2] ?? 5);
let seq = 0;
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () =>
    setTimeout(
      () =>
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: `op-${++seq}` })),
      latencyMs,
    ),
  );
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}`, pid: process.pid })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
