/**
 * A TCP proxy in front of a service (NATS, PostgreSQL) that a test can cut and bring back:
 * `stop` closes the listener and every connection through it (new connections are then
 * refused), `restart` listens again on the same port. `stall` keeps every connection open
 * but carries nothing either way (a black hole: what is sent waits), `resume` lets it flow.
 * `mute` carries what clients send but holds every reply (requests arrive, answers do not).
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  /** `target` with its host and port replaced by the proxy's. */
  url: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
  stall(): void;
  mute(): void;
  resume(): void;
}

export async function startProxy(target: string): Promise<TcpProxy> {
  const t = new URL(target);
  const targetPort = Number(t.port || (t.protocol === 'postgres:' ? 5432 : 4222));
  const sockets = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let stalled = false;
  let muted = false;
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
      const pair: [Socket, Socket] = [client, upstream];
      pairs.add(pair);
      client.on('close', () => pairs.delete(pair));
      if (stalled) client.pause();
      if (stalled || muted) upstream.pause();
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
    stall: () => {
      stalled = true;
      for (const [a, b] of pairs) {
        a.pause();
        b.pause();
      }
    },
    mute: () => {
      muted = true;
      for (const [, upstream] of pairs) upstream.pause();
    },
    resume: () => {
      stalled = false;
      muted = false;
      for (const [a, b] of pairs) {
        a.resume();
        b.resume();
      }
    },
  };
}
