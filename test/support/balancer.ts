import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { joinSockets } from './tcp-proxy.js';

/**
 * A round-robin TCP load balancer in front of several gateway processes, as a layer-4 balancer runs
 * them: each new connection (an HTTP keep-alive connection or a WebSocket) goes to the next backend; a
 * backend that refuses the connection is skipped for the next one, so a dead process stops getting
 * traffic without a health check; the connections of a process that dies are cut with it.
 */
export interface Balancer {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** Connections each backend accepted, by its index. */
  readonly accepted: readonly number[];
  close(): Promise<void>;
}

export async function startBalancer(
  backends: ReadonlyArray<{ host: string; port: number }>,
): Promise<Balancer> {
  const sockets = new Set<Socket>();
  const accepted = backends.map(() => 0);
  let next = 0;

  /** Connects to the next backend that accepts, trying each once; undefined when none does. */
  const connectNext = async (): Promise<Socket | undefined> => {
    for (let tried = 0; tried < backends.length; tried++) {
      const index = next++ % backends.length;
      const upstream = await new Promise<Socket | undefined>((resolve) => {
        const socket = connect(backends[index]!);
        socket.once('connect', () => resolve(socket));
        socket.once('error', () => resolve(undefined));
      });
      if (upstream) {
        accepted[index]!++;
        return upstream;
      }
    }
    return undefined;
  };

  const server = createServer((client) => {
    // Held until a backend accepts: nothing the client sends is lost meanwhile.
    client.pause();
    sockets.add(client);
    client.on('error', () => client.destroy()).on('close', () => sockets.delete(client));
    void connectNext().then((upstream) => {
      if (!upstream || client.destroyed) {
        client.destroy();
        upstream?.destroy();
        return;
      }
      joinSockets(client, upstream, sockets);
      client.resume();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        sockets.clear();
        server.close(() => resolve());
      }),
  };
}
