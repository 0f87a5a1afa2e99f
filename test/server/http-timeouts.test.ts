/**
 * Slow HTTP clients: a request whose headers or body take too long is answered
 * 400 BAD_REQUEST in the error shape and its connection closed, so slow clients cannot hold connections for minutes; a WebSocket,
 * once upgraded, is not cut by these limits.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { startServer } from '../helpers/server.js';
import { TailClient } from '../helpers/tail-client.js';
import { signupDevice } from '../helpers/auth-client.js';

/** Opens a raw connection, writes `data`, and resolves with what the server sent and when it closed (ms). */
function slowRequest(url: string, data: string): Promise<{ text: string; ms: number }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const sock: Socket = connect(Number(port), hostname, () => sock.write(data));
    let text = '';
    sock.on('data', (d) => (text += d.toString('utf8')));
    sock.on('error', reject);
    sock.on('close', () => resolve({ text, ms: performance.now() - t0 }));
  });
}

describe('HTTP time limits', async () => {
  const srv = await startServer({ httpTimeouts: { headersMs: 300, requestMs: 800, checkMs: 100 } });

  it('answers BAD_REQUEST and closes a connection whose headers do not end in time', async () => {
    const r = await slowRequest(srv.url, 'GET /health HTTP/1.1\r\nhost: x\r\n');
    assert.match(r.text, /^HTTP\/1\.1 400 /);
    assert.match(r.text, /\r\n\r\n\{"error":\{"code":"BAD_REQUEST","message":"request not complete in time"\}\}$/);
    assert.ok(r.ms < 3000, `closed after ${Math.round(r.ms)} ms`);
  });

  it('answers BAD_REQUEST and closes a connection whose body does not end in time', async () => {
    const r = await slowRequest(srv.url, 'POST /auth/v1/challenge HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"dev');
    assert.match(r.text, /^HTTP\/1\.1 400 /);
    assert.match(r.text, /"code":"BAD_REQUEST"/);
    assert.ok(r.ms < 4000, `closed after ${Math.round(r.ms)} ms`);
  });

  it('shuts down in bounded time even while a request is half sent', async () => {
    const own = await startServer({ httpTimeouts: { headersMs: 60_000, requestMs: 60_000, drainMs: 300 } });
    const pending = slowRequest(own.url, 'POST /auth/v1/challenge HTTP/1.1\r\nhost: x\r\ncontent-ty');
    const upgrade = slowRequest(own.url, 'GET /tail HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n');
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    await own.stop();
    const ms = performance.now() - t0;
    assert.ok(ms < 3000, `closed in ${Math.round(ms)} ms`);
    await Promise.all([pending, upgrade]);
  });

  it('serves requests that come in time, and keeps a WebSocket open past the limits', async () => {
    assert.equal((await fetch(`${srv.url}/health`)).status, 200);
    const dev = await signupDevice(srv.url, { name: 'slow' });
    const c = await TailClient.connect(srv.wsUrl, dev.access);
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(await c.call('ping'), { re: 2 });
    c.close();
  });
});
