import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { createCoalescedWrites } from '../../gateway/subscriptions/coalesced-writes.js';

/** A real server/client websocket pair on loopback; `server` is the server's end. */
async function pair(): Promise<{ server: WebSocket; client: WebSocket; received: string[]; close(): void }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => wss.once('listening', r));
  const accepted = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  const received: string[] = [];
  client.on('message', (data: Buffer) => received.push(data.toString()));
  await new Promise((r) => client.once('open', r));
  const server = await accepted;
  return {
    server,
    client,
    received,
    close: () => {
      client.terminate();
      wss.close();
    },
  };
}

/** Counts the writes (write/writev calls) the server's TCP socket makes. */
function countWrites(ws: WebSocket): () => number {
  const tcp = (ws as unknown as { _socket: Record<string, (...args: unknown[]) => void> })._socket;
  let writes = 0;
  for (const method of ['_write', '_writev'] as const) {
    const original = tcp[method]!;
    tcp[method] = (...args: unknown[]) => {
      writes++;
      original.apply(tcp, args);
    };
  }
  return () => writes;
}

const turn = () => new Promise((r) => setImmediate(r));
let close: (() => void) | undefined;
afterEach(() => close?.());

describe('coalesced websocket writes', () => {
  it('writes the frames one socket is sent in a turn together, in order; without it, one write each', async () => {
    const coalesced = await pair();
    const plain = await pair();
    close = () => (coalesced.close(), plain.close());
    createCoalescedWrites().coalesce(coalesced.server);
    const writes = { coalesced: countWrites(coalesced.server), plain: countWrites(plain.server) };
    const frames = Array.from({ length: 50 }, (_, i) => `frame ${i}`);
    for (const frame of frames) {
      coalesced.server.send(frame, () => {});
      plain.server.send(frame, () => {});
    }
    await turn();
    while (coalesced.received.length < 50 || plain.received.length < 50) await turn();
    expect(coalesced.received).toEqual(frames);
    expect(plain.received).toEqual(frames);
    expect(writes.coalesced()).toBe(1);
    expect(writes.plain()).toBeGreaterThanOrEqual(25);
  });

  it('reports a send done once buffered while under the high-water mark, after the write past it', async () => {
    const under = await pair();
    const over = await pair();
    close = () => (under.close(), over.close());
    createCoalescedWrites().coalesce(under.server);
    createCoalescedWrites(0).coalesce(over.server);
    const events: string[] = [];
    under.server.send('a', () => events.push('under: sent'));
    over.server.send('a', () => events.push('over: sent'));
    // Still in the turn of the sends: the corked write has not even started.
    queueMicrotask(() => queueMicrotask(() => events.push('same turn')));
    await new Promise((r) => setTimeout(r, 50));
    expect(events).toEqual(['under: sent', 'same turn', 'over: sent']);
  });

  it('tells whether a socket holds frames of this turn', async () => {
    const p = await pair();
    close = p.close;
    const writes = createCoalescedWrites();
    writes.coalesce(p.server);
    expect(writes.holding(p.server)).toBe(false);
    p.server.send('a');
    expect(writes.holding(p.server)).toBe(true);
    await turn();
    await turn();
    expect(writes.holding(p.server)).toBe(false);
  });
});
