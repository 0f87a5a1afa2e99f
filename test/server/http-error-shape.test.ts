/**
 * Requests that fail before any route sees them still get the error shape
 * `{error:{code, message}}` with the status of their code: a URL whose escapes do not decode,
 * a path parameter over the router's length limit, bytes that are not HTTP, a wrong
 * content-length, headers over Node's size limit, and upgrades refused before they became a
 * WebSocket. The server goes on serving afterwards.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { startServer } from '../helpers/server.js';
import { metric } from '../helpers/metrics.js';

/** Writes `data` on a raw connection and resolves with everything the server sent before closing. */
function raw(url: string, data: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock: Socket = connect(Number(port), hostname, () => sock.write(data));
    let text = '';
    sock.on('data', (d) => (text += d.toString('utf8')));
    sock.on('error', reject);
    sock.on('close', () => resolve(text));
  });
}

function parse(text: string): { status: number; headers: string; body: unknown } {
  const end = text.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no HTTP response in ${JSON.stringify(text.slice(0, 200))}`);
  const head = text.slice(0, end);
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]);
  return { status, headers: head.toLowerCase(), body: JSON.parse(text.slice(end + 4)) };
}

describe('the error shape outside the routes', async () => {
  const srv = await startServer();

  it('a URL escape that does not decode is BAD_REQUEST naming the url', async () => {
    for (const path of ['/auth/v1/%ff', '/auth/v1/envelopes/%ff', '/auth/v1/sites/%E0%A4%A']) {
      const res = await fetch(`${srv.url}${path}`, { method: path.includes('envelopes') ? 'DELETE' : 'GET' });
      assert.equal(res.status, 400, path);
      assert.deepEqual(await res.json(), { error: { code: 'BAD_REQUEST', message: 'url: not a valid URL' } }, path);
    }
  });

  it('a path segment over 100 characters is BAD_REQUEST, not 414 or NOT_FOUND, on every path', async () => {
    const long = 'x'.repeat(150);
    for (const [method, path] of [
      ['GET', `/auth/v1/sites/${'x'.repeat(101)}`],
      ['DELETE', `/auth/v1/envelopes/${'y'.repeat(500)}`],
      ['GET', `/notify/v1/${long}`],
      ['GET', `/auth/v1/${long}`],
      ['GET', `/${long}`],
      ['POST', `/health/${long}?q=1`],
    ] as const) {
      const res = await fetch(`${srv.url}${path}`, { method });
      assert.equal(res.status, 400, path);
      assert.deepEqual(await res.json(), { error: { code: 'BAD_REQUEST', message: 'url: a path segment is over 100 characters' } }, path);
    }
    // 100 characters is a segment like any other; NOT_FOUND repeats at most 200 of the path.
    const res = await fetch(`${srv.url}/${'z'.repeat(100)}/${'z'.repeat(100)}/${'z'.repeat(100)}`);
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'NOT_FOUND');
    assert.ok(body.error.message.length < 230, body.error.message);
  });

  it('bytes that are not HTTP, and a wrong content-length, get BAD_REQUEST and a closed connection', async () => {
    for (const data of ['GARBAGE\r\n\r\n', 'POST /auth/v1/challenge HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n{}', 'GET / HTTP/9.9\r\n\r\n']) {
      const r = parse(await raw(srv.url, data));
      assert.equal(r.status, 400, JSON.stringify(data));
      assert.deepEqual(r.body, { error: { code: 'BAD_REQUEST', message: 'malformed HTTP request' } });
      assert.match(r.headers, /content-type: application\/json/);
      assert.match(r.headers, /connection: close/);
    }
  });

  it('headers over the size limit are TOO_LARGE', async () => {
    const r = parse(await raw(srv.url, `GET /health HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`));
    assert.equal(r.status, 413);
    assert.deepEqual(r.body, { error: { code: 'TOO_LARGE', message: 'headers over the size limit' } });
  });

  const upgrade = (path: string, extra: string): string =>
    `GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n${extra}\r\n`;
  const key = 'sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

  it('an upgrade refused before it became a WebSocket gets the error shape', async () => {
    const cases: [string, number, unknown, RegExp?][] = [
      [upgrade('/nowhere', `${key}sec-websocket-version: 13\r\nsec-websocket-protocol: datagrove.v1\r\n`), 404,
        { error: { code: 'NOT_FOUND', message: 'no route GET /nowhere' } }],
      [upgrade('/tail', `${key}sec-websocket-version: 13\r\n`), 400,
        { error: { code: 'BAD_REQUEST', message: 'sec-websocket-protocol: must offer datagrove.v1' } }],
      [upgrade('/tail', 'sec-websocket-key: short\r\nsec-websocket-version: 13\r\nsec-websocket-protocol: datagrove.v1\r\n'), 400,
        { error: { code: 'BAD_REQUEST', message: 'Missing or invalid Sec-WebSocket-Key header' } }],
      [upgrade('/tail', `${key}sec-websocket-version: 99\r\nsec-websocket-protocol: datagrove.v1\r\n`), 400,
        { error: { code: 'BAD_REQUEST', message: 'Missing or invalid Sec-WebSocket-Version header' } }, /sec-websocket-version: 13/],
    ];
    for (const [data, status, body, header] of cases) {
      const r = parse(await raw(srv.url, data));
      assert.equal(r.status, status, data);
      assert.deepEqual(r.body, body);
      assert.match(r.headers, /content-type: application\/json/);
      if (header !== undefined) assert.match(r.headers, header);
    }
  });

  it('counts them by code and keeps serving', async () => {
    assert.ok((await metric(srv.url, 'datagrove_errors_total', 'code="TOO_LARGE"')) >= 1, 'TOO_LARGE counted');
    assert.ok((await metric(srv.url, 'datagrove_errors_total', 'code="BAD_REQUEST"')) >= 8, 'BAD_REQUEST counted');
    const res = await fetch(`${srv.url}/health`);
    assert.deepEqual(await res.json(), { ok: true });
  });
});
