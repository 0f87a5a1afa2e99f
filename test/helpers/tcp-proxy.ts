/**
 * A TCP proxy in front of a service (NATS, PostgreSQL) that a test can cut and bring back:
 * `stop` closes the listener and every connection through it (new connections are then
 * refused), `restart` listens again on the same port.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  /** `target` with its host and port replaced by the proxy's. */
  url: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

export async function startProxy(target: string): Promise<TcpProxy> {
  const t = new URL(target);
  const targetPort = Number(t.port || (t.protocol === 'postgres:' ? 5432 : 4222));
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = async () => {
    const srv = createServer((client) => {
      const upstream = tcpConnect({ host: t.hostname, port: targetPort });
      for (const sock of [client, upstream]) {
        sockets.add(sock);
        sock.on('error', () => {});
        sock.on('close', () => {
          sockets.delete(sock);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => resolve());
    });
    const addr = srv.address();
    if (addr === null || typeof addr === 'string') throw new Error('proxy has no port');
    port = addr.port;
    server = srv;
  };
  await listen();
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.toString().replace(/\/$/, ''),
    stop: async () => {
      const srv = server;
      server = undefined;
      for (const s of sockets) s.destroy();
      if (srv !== undefined) await new Promise<void>((r) => srv.close(() => r()));
    },
    restart: listen,
  };
}
