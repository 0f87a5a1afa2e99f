/**
 * The edges of the one HTTP port that a client library would hide: connections the server
 * must not keep for a client that stops cooperating. Each test watches the server's own
 * count of open connections, since a half-closed or stalled socket looks alive to nobody
 * but the server.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { SDK_BUNDLE } from '../../src/server/demo/routes.js';
import { startServer, type TestServer } from '../helpers/server.js';

/** The connections the server holds open now (its own count: sockets not yet destroyed). */
function connections(srv: TestServer): Promise<number> {
  return new Promise((resolve, reject) => srv.server.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

/** Resolves with the server's connection count once it is `want`, or the last count seen after `ms`. */
async function settleAt(srv: TestServer, want: number, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  let n = await connections(srv);
  while (n !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    n = await connections(srv);
  }
  return n;
}

/** A raw connection that keeps its own side open after the server's FIN, as a hostile client does. */
function halfOpen(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect({ port: Number(port), host: hostname, allowHalfOpen: true }, () => resolve(sock));
    sock.on('error', reject);
  });
}

/** Everything the server sends on `sock` until it ends its side. */
function untilEnd(sock: Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    sock.on('data', (d: Buffer) => (text += d.toString('utf8')));
    sock.once('end', () => resolve(text));
  });
}

describe('HTTP edges', () => {
  it('closes a connection whose client stops reading its answers, once nothing moved for the idle limit', { skip: existsSync(SDK_BUNDLE) || process.env.CI === 'true' ? false : 'needs the SDK bundle (npm run build:client) for answers larger than the socket buffers' }, async () => {
    const srv = await startServer({ httpTimeouts: { idleMs: 800 } });
    const sock = await halfOpen(srv.url);
    sock.on('error', () => {});
    try {
      // A kept-alive connection first answers normally...
      const first = new Promise<string>((resolve) => {
        let text = '';
        const onData = (d: Buffer): void => {
          text += d.toString('utf8');
          if (text.endsWith('{"ok":true}')) {
            sock.off('data', onData);
            resolve(text);
          }
        };
        sock.on('data', onData);
      });
      sock.write('GET /health HTTP/1.1\r\nhost: x\r\n\r\n');
      assert.match(await first, /^HTTP\/1\.1 200 /);
      // ...then asks for answers far larger than the kernel's buffers and never reads them.
      sock.pause();
      sock.write('GET /demo/datagrove-client.js HTTP/1.1\r\nhost: x\r\n\r\n'.repeat(16));
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await connections(srv), 1, 'the answers are being sent');
      assert.equal(await settleAt(srv, 0, 4000), 0, 'the stalled connection is closed (and its unsent answers dropped)');
      const res = await fetch(`${srv.url}/health`);
      assert.deepEqual(await res.json(), { ok: true });
    } finally {
      sock.destroy();
    }
  });

  it('closes the connection of a refused upgrade even when the client keeps its side open', async () => {
    const srv = await startServer({ maxPendingPerAddress: 1 });
    const upgrade = (path: string, extra: string): string =>
      `GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n${extra}\r\n`;
    const key = 'sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
    /** Sends `data` on a connection kept half open; the server's count must come back to `open`. */
    const refused = async (data: string, status: number, open: number): Promise<void> => {
      const sock = await halfOpen(srv.url);
      try {
        const answer = untilEnd(sock);
        sock.write(data);
        assert.match(await answer, new RegExp(`^HTTP/1\\.1 ${status} [^]*\\r\\n\\r\\n\\{"error":\\{"code":"`), data);
        assert.equal(await settleAt(srv, open, 2000), open, `the refused connection is closed, not left half open: ${JSON.stringify(data)}`);
      } finally {
        sock.destroy();
      }
    };
    await refused(upgrade('/nowhere', `${key}sec-websocket-protocol: datagrove.v1\r\n`), 404, 0);
    await refused(upgrade('/tail', key), 400, 0);
    await refused(upgrade('/tail', 'sec-websocket-key: short\r\nsec-websocket-protocol: datagrove.v1\r\n'), 400, 0);
    // One session waiting for `connect` fills this address's share; the next is refused 503.
    const pending = new WebSocket(srv.wsUrl, 'datagrove.v1');
    await new Promise((resolve, reject) => {
      pending.once('open', resolve);
      pending.once('error', reject);
    });
    try {
      assert.equal(await settleAt(srv, 1, 2000), 1);
      await refused(upgrade('/tail', `${key}sec-websocket-protocol: datagrove.v1\r\n`), 503, 1);
    } finally {
      pending.close();
    }
  });
});
