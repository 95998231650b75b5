// A TCP proxy on 127.0.0.1 in front of nats-server or redis-server, so the
// chaos run can cut the network between the clients and a server that keeps
// running: cut() resets every connection and refuses new ones (the port is
// closed) until restore(). The server itself notices nothing but its clients
// going away, which is what a partition looks like to it.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { freePort } from '../harness/index.ts';

export interface CutProxy {
  readonly port: number;
  readonly url: string;
  /** Connections carried so far (each client connection counts once). */
  readonly connections: number;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startCutProxy(options: { targetPort: number; scheme: string }): Promise<CutProxy> {
  const port = await freePort();
  const open = new Set<Socket>();
  let server: Server | undefined;
  let connections = 0;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        connections++;
        const upstream = connect({ host: '127.0.0.1', port: options.targetPort });
        open.add(client);
        open.add(upstream);
        const drop = () => {
          client.destroy();
          upstream.destroy();
          open.delete(client);
          open.delete(upstream);
        };
        client.on('error', drop);
        upstream.on('error', drop);
        client.on('close', drop);
        upstream.on('close', drop);
        client.pipe(upstream);
        upstream.pipe(client);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        s.off('error', reject);
        server = s;
        resolve();
      });
    });

  const unlisten = async () => {
    const s = server;
    server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };

  const resetAll = () => {
    for (const socket of open) socket.resetAndDestroy();
    open.clear();
  };

  await listen();
  return {
    port,
    url: `${options.scheme}://127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    async cut() {
      const closing = unlisten();
      resetAll();
      await closing;
    },
    async restore() {
      if (server) return;
      // The port was ours a moment ago; retry briefly in case the kernel still holds it.
      for (let i = 0; ; i++) {
        try {
          await listen();
          return;
        } catch (err) {
          if (i >= 50) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    async close() {
      const closing = unlisten();
      resetAll();
      await closing;
    },
  };
}
