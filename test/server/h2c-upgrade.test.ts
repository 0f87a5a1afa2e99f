/**
 * Requests that offer to upgrade to HTTP/2 over cleartext (`Upgrade: h2c`, sent by
 * `curl --http2` and Java's HttpClient on http:// URLs) are answered in HTTP/1.1 like any
 * other request, bodies included, and their connection is closed after the answer.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { newDeviceKeys } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';

const H2C = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n';

/** Sends `request` on a fresh connection (optionally in two parts) and resolves with all the server sends before it closes. */
function exchange(url: string, parts: string[], gapMs = 0): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect({ port: Number(port), host: hostname }, async () => {
      for (const [i, p] of parts.entries()) {
        if (i > 0 && gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
        sock.write(p);
      }
    });
    let text = '';
    sock.on('data', (d: Buffer) => (text += d.toString('utf8')));
    sock.on('close', () => resolve(text));
    sock.on('error', reject);
  });
}

describe('HTTP: requests with Upgrade: h2c', async () => {
  const srv = await startServer();
  after(() => srv.stop());

  it('answers a GET in HTTP/1.1 and closes the connection', async () => {
    const text = await exchange(srv.url, [`GET /health HTTP/1.1\r\nHost: x\r\n${H2C}\r\n`]);
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /\r\nconnection: close\r\n/i);
    assert.match(text, /"ok":true/);
  });

  it('takes a POST body given by content-length, also when it comes after the headers', async () => {
    const body = JSON.stringify({ device: newDeviceKeys().device });
    const head = `POST /auth/v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${H2C}\r\n`;
    const together = await exchange(srv.url, [head + body]);
    assert.match(together, /^HTTP\/1\.1 200 /, together);
    assert.match(together, /"nonce":/);
    const body2 = JSON.stringify({ device: newDeviceKeys().device });
    const split = await exchange(srv.url, [head.replace(String(Buffer.byteLength(body)), String(Buffer.byteLength(body2))) + body2.slice(0, 10), body2.slice(10)], 100);
    assert.match(split, /^HTTP\/1\.1 200 /, split);
  });

  it('refuses a chunked body and an oversized one with the error shape', async () => {
    const chunked = await exchange(srv.url, [`POST /auth/v1/challenge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n${H2C}\r\n0\r\n\r\n`]);
    assert.match(chunked, /^HTTP\/1\.1 400 /);
    assert.match(chunked, /"code":"BAD_REQUEST"/);
    const big = await exchange(srv.url, [`POST /auth/v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n${H2C}\r\n`]);
    assert.match(big, /^HTTP\/1\.1 413 /);
  });

  it('still upgrades a WebSocket on /tail', async () => {
    const key = Buffer.from('0123456789abcdef').toString('base64');
    const text = await new Promise<string>((resolve, reject) => {
      const { hostname, port } = new URL(srv.url);
      const sock = connect({ port: Number(port), host: hostname }, () =>
        sock.write(`GET /tail HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Protocol: datagrove.v1\r\n\r\n`),
      );
      sock.once('data', (d: Buffer) => {
        resolve(d.toString('utf8'));
        sock.destroy();
      });
      sock.on('error', reject);
    });
    assert.match(text, /^HTTP\/1\.1 101 /);
  });
});
