/**
 * A handle can vanish on the server under an open Log: a site moves to another node (its
 * handles end with `revoke` `moved`), or the handle is released. A request on it that was
 * already on its way is answered NOT_FOUND "no such handle", and the `revoke` may come
 * after that answer. The Log leases again and goes on (no entry lost or delivered twice,
 * unacked appends resent); only a NOT_FOUND of the lease itself (an unknown site) ends it.
 *
 * The tests take the handle away with a `release` of their own, sent on the SDK's socket
 * right before the request they pick, so that request is the one answered NOT_FOUND.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { assertExactlyOnce, enc, makeClient, record, server, sharedSite, waitFor, type SocketClass } from './harness.js';
import type { DgError } from '../../src/protocol/errors.js';

interface Saboteur {
  /** Releases the handle right before the next request of kind `op` (once). */
  arm(op: 'read' | 'write' | 'signal', thenRevoke?: boolean): void;
  /** How many requests were answered NOT_FOUND "no such handle". */
  notFound: number;
}

/** A socket class that can release the SDK's handle from under it, and then tell of a late `revoke` `moved`. */
function saboteur(): { s: Saboteur; socket: (Tracked: SocketClass) => SocketClass } {
  const s: Saboteur & { armed: { op: string; thenRevoke: boolean } | null } = {
    armed: null,
    notFound: 0,
    arm(op, thenRevoke = false) {
      this.armed = { op, thenRevoke };
    },
  };
  const socket = (Tracked: SocketClass): SocketClass =>
    class extends Tracked {
      /** Request id of the sabotaged request → its handle (a late revoke follows its answer). */
      private readonly revokeAfter = new Map<number, string>();
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        this.on('message', (data: WebSocket.RawData) => {
          const msg = JSON.parse(String(data)) as { re?: number; error?: { code: string; message: string } };
          if (msg.re === undefined || msg.error?.code !== 'NOT_FOUND') return;
          s.notFound++;
          const handle = this.revokeAfter.get(msg.re);
          if (handle === undefined) return;
          this.revokeAfter.delete(msg.re);
          // What a node that moved the site sends: here after the NOT_FOUND it raced with.
          setTimeout(() => this.emit('message', Buffer.from(JSON.stringify({ ev: 'revoke', handle, reason: 'moved' })), false), 5);
        });
      }
      override send(data: unknown, ...rest: unknown[]): void {
        const msg = JSON.parse(String(data)) as { op: string; id: number; handle?: string };
        const armed = s.armed;
        if (armed !== null && msg.op === armed.op && msg.handle !== undefined) {
          s.armed = null;
          (super.send as (...a: unknown[]) => void)(JSON.stringify({ op: 'release', id: 1e9, handle: msg.handle }));
          if (armed.thenRevoke) this.revokeAfter.set(msg.id, msg.handle);
        }
        (super.send as (...a: unknown[]) => void)(data, ...rest);
      }
    };
  return { s, socket };
}

test('a handle gone before the catch-up read, its revoke `moved` after the NOT_FOUND: the Log leases again and opens', async () => {
  const srv = await server();
  const writer = await makeClient(srv);
  const { s, socket } = saboteur();
  const reader = await makeClient(srv, { socket });
  after(async () => {
    await reader.client.close();
    await writer.client.close();
  });
  const site = await sharedSite(writer, [reader]);
  const wlog = writer.client.openLog(site, 'chat');
  await wlog.opened;
  await wlog.append([enc('a'), enc('b'), enc('c')]);

  s.arm('read', true);
  const log = reader.client.openLog(site, 'chat');
  const seen = record(log);
  const errors: DgError[] = [];
  log.on('error', (e) => errors.push(e));
  await log.opened;
  assert.equal(s.notFound, 1, 'the read was answered NOT_FOUND');
  assert.deepEqual(errors, []);
  assert.deepEqual(seen.text(), ['0:a', '1:b', '2:c']);
  const [i] = await log.append([enc('d')]);
  assert.equal(i, 3);
  await waitFor('d delivered', () => seen.text().length === 4);
  assert.deepEqual(seen.text(), ['0:a', '1:b', '2:c', '3:d']);
});

test('a handle gone under writes in flight, its revoke `moved` after the NOT_FOUND: every append lands once', async () => {
  const srv = await server();
  const { s, socket } = saboteur();
  const a = await makeClient(srv, { socket });
  const b = await makeClient(srv);
  after(async () => {
    await a.client.close();
    await b.client.close();
  });
  const site = await sharedSite(a, [b]);
  const log = a.client.openLog(site, 'chat');
  const seen = record(log);
  const errors: DgError[] = [];
  log.on('error', (e) => errors.push(e));
  await log.opened;
  assert.equal(log.role, 'leader');
  // Another holder keeps the log in the node's memory: the next lease gets the same handle
  // id, which the late revoke names.
  const other = b.client.openLog(site, 'chat', { lead: false });
  const seenB = record(other);
  await other.opened;

  const acked = new Map<string, number>();
  const appendAll = (from: number, n: number) =>
    Promise.all(
      Array.from({ length: n }, async (_, k) => {
        const p = `e${from + k}`;
        const [i] = await log.append([enc(p)]);
        acked.set(p, i!);
      }),
    );
  await appendAll(0, 5);
  s.arm('write', true);
  await appendAll(5, 20);
  assert.ok(s.notFound >= 1, 'a write was answered NOT_FOUND');
  assert.deepEqual(errors, []);
  assert.notEqual(log.state, 'closed');
  await appendAll(25, 5);
  await waitFor('every entry delivered', () => seen.seen.length === 30 && seenB.seen.length === 30);
  assertExactlyOnce(acked, [seen, seenB]);
});

test("a follower's handle gone under the relay of its appends: it leases again, and they land", async () => {
  const srv = await server();
  const a = await makeClient(srv);
  const { s, socket } = saboteur();
  const b = await makeClient(srv, { socket });
  after(async () => {
    await a.client.close();
    await b.client.close();
  });
  const site = await sharedSite(a, [b]);
  const lead = a.client.openLog(site, 'chat');
  const seenA = record(lead);
  await lead.opened;
  const log = b.client.openLog(site, 'chat', { lead: false, retransmitMs: 500 });
  const seenB = record(log);
  await log.opened;
  assert.equal(log.role, 'follower');
  // No WebRTC here: the follower's appends go to the leader by `signal` (the relay).
  s.arm('signal');
  const acked = new Map<string, number>();
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the appends did not land in 10 s')), 10_000).unref());
  await Promise.race([
    Promise.all(
      ['f0', 'f1', 'f2'].map(async (p) => {
        const [i] = await log.append([enc(p)]);
        acked.set(p, i!);
      }),
    ),
    timeout,
  ]);
  assert.ok(s.notFound >= 1, 'a signal was answered NOT_FOUND');
  await waitFor('every entry delivered', () => seenA.seen.length === 3 && seenB.seen.length === 3);
  assertExactlyOnce(acked, [seenA, seenB]);
});

test('NOT_FOUND of the lease itself (an unknown site) still ends the Log', async () => {
  const srv = await server();
  const a = await makeClient(srv);
  after(() => a.client.close());
  await a.client.signup('owner');
  const log = a.client.openLog('s_nosuchsite0000000000', 'chat');
  const err = await log.opened.then(
    () => null,
    (e: DgError) => e,
  );
  assert.equal(err?.code, 'NOT_FOUND', 'the log did not open: no such site');
  assert.equal(log.state, 'closed');
});
