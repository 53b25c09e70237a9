import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';

/** Bytes a socket may hold unwritten before a send waits for the write again (backpressure). */
export const COALESCE_HIGH_WATER_BYTES = 64 * 1024;

export interface CoalescedWrites {
  /** Whether `ws` already holds frames of this turn: one more costs no write of its own. */
  holding(ws: WebSocket): boolean;
  /** Makes `ws` write the frames sent to it in one turn of the event loop together. */
  coalesce(ws: WebSocket): void;
  /**
   * Sends a text frame on a coalesced `ws`: nothing to wait for while the socket holds less than the
   * high-water mark (or is closed), else the write to wait for.
   */
  send(ws: WebSocket, data: string): Promise<void> | undefined;
}

type Send = WebSocket['send'];
type Callback = (error?: Error) => void;

/**
 * ws writes each frame with a write (a `writev` syscall) of its own, and graphql-ws sends a
 * subscription's next event only once the previous one is written: at a hundred signals/s to a
 * thousand subscribers, the fan-out was mostly syscalls. Here the TCP socket is corked at the first
 * frame of a turn and uncorked after it (setImmediate), so the turn's frames go out in one write; and
 * while the socket holds less than `highWaterBytes` a send reports success once its frame is buffered,
 * so the subscription goes on to its next event in the same turn. Past that, a send waits for the
 * write as before, so a slow client still holds its subscriptions back instead of growing the buffer.
 */
export function createCoalescedWrites(highWaterBytes = COALESCE_HIGH_WATER_BYTES): CoalescedWrites {
  const held = new WeakSet<WebSocket>();
  return {
    holding: (ws) => held.has(ws),
    send(ws, data) {
      if (ws.readyState !== ws.OPEN) return undefined;
      if (ws.bufferedAmount < highWaterBytes) return void ws.send(data);
      return new Promise((resolve, reject) => ws.send(data, (error) => (error ? reject(error) : resolve())));
    },
    coalesce(ws) {
      // ws's TCP socket, set once the connection is established (it is, on 'connection').
      const tcp = (ws as unknown as { _socket?: Socket | null })._socket;
      if (!tcp) return;
      const send: Send = ws.send.bind(ws);
      const release = () => {
        held.delete(ws);
        if (!tcp.destroyed) tcp.uncork();
      };
      ws.send = ((data: Parameters<Send>[0], optionsOrCb?: object | Callback, maybeCb?: Callback) => {
        const cb = (typeof optionsOrCb === 'function' ? optionsOrCb : maybeCb) as Callback | undefined;
        const options = typeof optionsOrCb === 'object' ? optionsOrCb : {};
        if (tcp.destroyed || ws.readyState !== ws.OPEN) return send(data, options, cb);
        if (!held.has(ws)) {
          held.add(ws);
          tcp.cork();
          setImmediate(release);
        }
        if (!cb || ws.bufferedAmount >= highWaterBytes) return send(data, options, cb);
        let failed: Error | undefined;
        send(data, options, (error) => {
          if (error && !failed) failed = error;
        });
        // The frame is buffered: report it sent (a failed write closes the socket, which graphql-ws sees).
        queueMicrotask(() => cb(failed));
      }) as Send;
    },
  };
}
