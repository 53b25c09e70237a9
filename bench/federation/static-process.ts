/**
 * A target faster than any gateway: answers every request with the expected response's bytes. Driving
 * it shows how many requests/s the load generator itself can make and check (its headroom).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { referenceResponse } from './reference.js';

const body = JSON.stringify(referenceResponse());
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}/graphql`, pid: process.pid })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
