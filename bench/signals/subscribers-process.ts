/**
 * N graphql-ws subscribers of one signal, each on its own WebSocket, in a process of their own:
 * `subscribers-process.ts <gateway http url> <signal name> <N>`. Prints `{"pid": ...}` once every
 * subscription is connected; on `{"type":"report","commits":{orderId: ms}}` over IPC answers with the
 * delivery latencies (arrival − commit, wall clock of this machine) and counts.
 */
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

const [url, name, n] = process.argv.slice(2);
const count = Number(n);
const now = () => performance.timeOrigin + performance.now();
/** Arrival times per order id, one per subscriber that received it. */
const arrivals = new Map<string, number[]>();
let connected = 0;
let errors = 0;
let firstError: string | undefined;
const clients: Client[] = [];
function subscribe() {
  const client = createClient({
    url: `${url!.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    on: { connected: () => connected++ },
  });
  clients.push(client);
  client.subscribe<{ signals: { payload: { orderId: string } } }>(
    { query: `subscription { signals(name: "${name}") { payload } }` },
    {
      next: (result) => {
        const at = now();
        const orderId = result.data?.signals.payload.orderId;
        if (!orderId) {
          errors++;
          firstError ??= JSON.stringify(result.errors ?? result);
          return;
        }
        let list = arrivals.get(orderId);
        if (!list) arrivals.set(orderId, (list = []));
        list.push(at);
      },
      error: (error) => {
        errors++;
        firstError ??= error instanceof Error ? error.message : JSON.stringify(error);
      },
      complete: () => {},
    },
  );
}
// One subscriber first, alone: the gateway's Redis event feed opens its SUBSCRIBE connection on the
// first subscription, and concurrent first subscriptions can race it ("Connection in subscriber mode,
// only subscriber commands may be used" — see the benchmark notes).
subscribe();
while (connected < 1) await new Promise((r) => setTimeout(r, 20));
await new Promise((r) => setTimeout(r, 300));
for (let i = 1; i < count; i++) subscribe();
while (connected < count) await new Promise((r) => setTimeout(r, 20));
// The subscribe messages follow the connection ack: give the server a moment to register them.
await new Promise((r) => setTimeout(r, 500));
process.stdout.write(`${JSON.stringify({ pid: process.pid })}\n`);

process.on('message', (message: { type: string; commits: Record<string, number> }) => {
  if (message.type !== 'report') return;
  const latencies: number[] = [];
  let missing = 0;
  for (const [orderId, committed] of Object.entries(message.commits)) {
    const list = arrivals.get(orderId) ?? [];
    missing += count - list.length;
    for (const at of list) latencies.push(at - committed);
  }
  latencies.sort((a, b) => a - b);
  const pick = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)];
  process.send!({
    deliveries: latencies.length,
    missing,
    errors,
    firstError,
    p50Ms: pick(50),
    p95Ms: pick(95),
    p99Ms: pick(99),
    maxMs: latencies.at(-1),
  });
  for (const client of clients) void client.dispose();
});
