/**
 * How a session sends, over a real WebSocket connection: ReplyCork (the replies sent during
 * one run leave together, in order; sends outside a run are not held) and prebuilt frames
 * (`textFrame`, written to the socket as they are: every length encoding arrives intact).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { DEFAULT_TAIL_LIMITS } from '../../src/tail/limits.js';
import { ReplyCork, Session } from '../../src/tail/session.js';
import { textFrame } from '../../src/tail/ws-frame.js';

interface Pair {
  session: Session;
  socket: Duplex;
  client: WebSocket;
  received: string[];
}

describe('tail session sends', () => {
  let http: Server;
  let wss: WebSocketServer;
  let port = 0;
  const cork = new ReplyCork();
  const accepted: { ws: WebSocket; socket: Duplex }[] = [];

  before(async () => {
    wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
    http = createServer();
    http.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => accepted.push({ ws, socket })));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const addr = http.address();
    port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  });
  after(async () => {
    for (const a of accepted) a.ws.terminate();
    wss.close();
    await new Promise((r) => http.close(r));
  });

  async function pair(withSocket = true): Promise<Pair> {
    const before = accepted.length;
    const client = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
    const received: string[] = [];
    client.on('message', (d: Buffer) => received.push(d.toString('utf8')));
    await new Promise((resolve, reject) => {
      client.once('open', resolve);
      client.once('error', reject);
    });
    while (accepted.length === before) await new Promise((r) => setImmediate(r));
    const a = accepted[accepted.length - 1];
    if (a === undefined) throw new Error('no server side');
    const hooks = { onClosing: () => undefined, onError: () => undefined };
    return { session: new Session(a.ws, DEFAULT_TAIL_LIMITS, hooks, withSocket ? a.socket : null, cork), socket: a.socket, client, received };
  }

  async function until(ok: () => boolean): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!ok()) {
      if (Date.now() > deadline) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  it('holds the replies of a run in the socket until the run ends, then sends them in order', async () => {
    const a = await pair();
    const b = await pair();
    cork.during(() => {
      a.session.send('{"re":1}');
      b.session.send('{"re":7}');
      a.session.send('{"re":2}');
      cork.during(() => a.session.send('{"re":3}')); // a nested run belongs to the outer one
      assert.equal(a.socket.writableCorked, 1, 'corked once, whatever the number of replies');
      assert.equal(b.socket.writableCorked, 1);
      assert.ok(a.socket.writableLength > 0, 'the frames wait in the socket');
    });
    assert.equal(a.socket.writableCorked, 0);
    assert.equal(b.socket.writableCorked, 0);
    await until(() => a.received.length === 3 && b.received.length === 1);
    assert.deepEqual(a.received, ['{"re":1}', '{"re":2}', '{"re":3}']);
    assert.deepEqual(b.received, ['{"re":7}']);
    a.client.close();
    b.client.close();
  });

  it('sends at once outside a run, and uncorks even when the run throws', async () => {
    const a = await pair();
    a.session.send('{"re":1}');
    assert.equal(a.socket.writableCorked, 0);
    assert.throws(() =>
      cork.during(() => {
        a.session.send('{"re":2}');
        throw new Error('boom');
      }),
    );
    assert.equal(a.socket.writableCorked, 0);
    await until(() => a.received.length === 2);
    assert.deepEqual(a.received, ['{"re":1}', '{"re":2}']);
    a.client.close();
  });

  it('writes prebuilt frames of every length encoding whole, between the frames ws sends itself', async () => {
    const a = await pair();
    // 7-bit, 16-bit and 64-bit lengths, and the edges between them.
    const sizes = [14, 125, 126, 127, 200, 65_535, 65_536, 70_000, 300_000];
    const texts = sizes.map((n, i) => `{"n":${i},"x":"${'x'.repeat(n - 14)}"}`);
    assert.deepEqual(texts.map((t) => t.length), sizes);
    assert.deepEqual(texts.map((t) => textFrame(t).frame.length - t.length), [2, 2, 4, 4, 4, 4, 10, 10, 10], 'header sizes');
    for (const [i, t] of texts.entries()) {
      a.session.sendFrame(textFrame(t));
      a.session.send(`{"re":${i}}`); // a frame framed by ws in between
    }
    await until(() => a.received.length === texts.length * 2);
    assert.deepEqual(
      a.received,
      texts.flatMap((t, i) => [t, `{"re":${i}}`]),
    );
    assert.equal(textFrame('é').payload.toString('utf8'), 'é', 'UTF-8 text keeps its bytes');
    a.client.close();
  });

  it('sends a prebuilt frame through ws when it has no socket of its own, and nothing once closing', async () => {
    const a = await pair(false);
    a.session.sendFrame(textFrame('{"via":"ws"}'));
    await until(() => a.received.length === 1);
    assert.deepEqual(a.received, ['{"via":"ws"}']);
    const b = await pair();
    b.session.close(4000, 'bye');
    b.session.sendFrame(textFrame('{"late":true}'));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(b.received, [], 'nothing after the close');
    a.client.close();
  });
});
