import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy in front of a real server (the machine's PostgreSQL), so a test can take that server
 * away from one Coordinator — every connection cut and new ones refused — without stopping the server
 * the other tests use, and give it back.
 */
export interface TcpProxy {
  readonly port: number;
  /** Closes every proxied connection and refuses new ones (as a stopped server would). */
  cut(): Promise<void>;
  /** Accepts connections again. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const handle = (client: Socket) => joinSockets(client, connect(target), sockets);
  let server: Server = createServer(handle);
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
    });
  const port = await listen(0);
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });
  return {
    port,
    cut: stop,
    async restore() {
      if (server.listening) return;
      server = createServer(handle);
      await listen(port);
    },
    close: stop,
  };
}

/**
 * Pipes `client` and `upstream` into each other, tracked in `sockets` while open; when either side
 * ends or fails, both are closed (as a server's death closes its clients' connections).
 */
export function joinSockets(client: Socket, upstream: Socket, sockets: Set<Socket>): void {
  sockets.add(client).add(upstream);
  const drop = () => {
    client.destroy();
    upstream.destroy();
    sockets.delete(client);
    sockets.delete(upstream);
  };
  client.on('error', drop).on('close', drop);
  upstream.on('error', drop).on('close', drop);
  client.pipe(upstream).pipe(client);
}

/** The URL of `databaseUrl` reached through a proxy on `port`. */
export function throughProxy(databaseUrl: string, port: number): string {
  const url = new URL(databaseUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return url.href;
}
