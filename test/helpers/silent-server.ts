/**
 * A TCP server that accepts connections and never answers: a database that stopped
 * responding without closing its port. Stores must fail against it within their timeouts.
 */
import { createServer, type Socket } from 'node:net';

export interface SilentServer {
  url: string;
  /** Connections it accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

export async function silentPostgres(): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  let count = 0;
  const server = createServer((s) => {
    count++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/test`,
    accepted: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
