/**
 * A follower learns of an entry over 64 KiB from a `tail` event that carries only the log's
 * length, and reads it. When that read fails (its reply is lost and it times out), nothing
 * else announces the entry on a quiet log: the follower must read again by itself, not wait
 * for the next write.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { DatagroveClient, type WebSocketConstructor } from '../../src/client/index.js';
import { makeClient, record, server, sharedSite, waitFor, type TestClient } from './harness.js';

/** A socket class whose replies to the next `drop.reads` reads are lost on the way back. */
function lossyReads(drop: { reads: number }): WebSocketConstructor {
  const lost = new Set<number>();
  const inherited = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage')!;
  class Lossy extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      Object.defineProperty(this, 'onmessage', {
        get: () => inherited.get!.call(this) as unknown,
        set: (fn: ((ev: WebSocket.MessageEvent) => void) | null) => {
          inherited.set!.call(this, fn === null ? null : (ev: WebSocket.MessageEvent) => {
            const msg = JSON.parse(String(ev.data)) as { re?: unknown };
            if (typeof msg.re === 'number' && lost.delete(msg.re)) return;
            fn(ev);
          });
        },
      });
    }
    override send(data: string): void {
      const msg = JSON.parse(data) as { op?: string; id?: number };
      if (msg.op === 'read' && drop.reads > 0 && typeof msg.id === 'number') {
        drop.reads--;
        lost.add(msg.id);
      }
      super.send(data);
    }
  }
  return Lossy as unknown as WebSocketConstructor;
}

test('a follower whose read after a length-only tail event fails reads again, with no further event', async () => {
  const srv = await server();
  const a = await makeClient(srv);
  const drop = { reads: 0 };
  const client = await DatagroveClient.create({
    url: srv.url,
    WebSocket: lossyReads(drop),
    RTCPeerConnection: null,
    shardUrl: () => srv.wsUrl,
    requestTimeoutMs: 1000,
  });
  const b: TestClient = { client, sockets: new Set(), cut: () => undefined };
  const site = await sharedSite(a, [b]);
  const la = a.client.openLog(site, 'quiet');
  await la.opened;
  const lb = client.openLog(site, 'quiet');
  const rb = record(lb);
  await lb.opened;
  assert.equal(lb.role, 'follower');

  drop.reads = 1;
  const big = new Uint8Array(100_000).fill(7);
  assert.deepEqual(await la.append([big]), [0]);
  // The read's reply is lost (1 s timeout); the log stays quiet afterwards.
  await waitFor('the follower to deliver the entry', () => rb.seen.length === 1, 10_000);
  assert.equal(drop.reads, 0, 'the first read was lost');
  assert.deepEqual(rb.seen[0]!.payload, big);
  assert.equal(lb.position, 1);
  await a.client.close();
  await client.close();
});
