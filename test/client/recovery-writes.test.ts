/**
 * A leader that leases again writes nothing until it has read the log to its end under the
 * new lease. Between the new lease and the end of its catch-up, a follower that has not yet
 * heard of the new epoch still sends its entries in the old one; a leader that wrote them
 * then would write them through the new lease while counting them in the old epoch, and
 * forget them when it takes up the new one (the follower, not finding them, sends them again).
 *
 * Real server and clients; the test watches the leader's socket for writes sent while its
 * log is not ready.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Log } from '../../src/client/index.js';
import { assertExactlyOnce, enc, filterMessages, makeClient, record, server, sharedSite, stall, waitFor, type Stallable, type TestClient } from './harness.js';
import type { TestServer } from '../helpers/server.js';

interface Link extends Stallable {
  /** Writes sent, with the state of the watched log at that moment. */
  writes: { at: number; state: string }[];
  watched: Log | null;
}

/** A client whose sockets the test can cut and stall, and whose writes it watches. */
async function watchedClient(srv: TestServer, link: Link, onSend: (op: string) => void = () => undefined): Promise<TestClient> {
  return makeClient(srv, {
    socket: (Tracked) =>
      class LinkSocket extends Tracked {
        constructor(url: string, protocols?: string | string[]) {
          super(url, protocols);
          // The SDK sets `onmessage`: what it is given sees the frames, held while the link stalls.
          filterMessages(this, (ev, deliver) => (link.held === null ? deliver(ev) : link.held.push(() => deliver(ev))));
        }
        override send(data: unknown, ...rest: unknown[]): void {
          const msg = JSON.parse(String(data)) as { op: string; at?: number };
          if (msg.op === 'write') link.writes.push({ at: msg.at ?? -1, state: link.watched?.state ?? 'none' });
          onSend(msg.op);
          (super.send as (...a: unknown[]) => void)(data, ...rest);
        }
      },
  });
}

test("a leader leasing again writes nothing before its catch-up, though a follower still sends in the old epoch; every append once", async () => {
  const srv = await server({ leaseGraceMs: 3000 });
  const linkA: Link = { writes: [], watched: null, held: null };
  const linkC: Link = { writes: [], watched: null, held: null };
  let leasingAgain: (() => void) | null = null;
  // Once the leader leases again, its link and the follower's stall: the server takes the
  // lease (and tells the follower of the new epoch) at once, but the leader hears of it only
  // with what the follower sent meanwhile, in the old epoch, which it hears of later still.
  const a = await watchedClient(srv, linkA, (op) => {
    if (op !== 'lease' || leasingAgain === null) return;
    stall(linkA, 300);
    stall(linkC, 600);
    leasingAgain();
    leasingAgain = null;
  });
  const c = await watchedClient(srv, linkC);
  const site = await sharedSite(a, [c]);
  const la = a.client.openLog(site, 'doc');
  const ra = record(la);
  linkA.watched = la;
  await la.opened;
  const lc = c.client.openLog(site, 'doc', { retransmitMs: 100 });
  const rc = record(lc);
  await lc.opened;
  assert.equal(la.role, 'leader');
  assert.equal(lc.role, 'follower');

  const acked = new Map<string, number>();
  const append = async (log: Log, text: string) => {
    const [i] = await log.append([enc(text)]);
    acked.set(text, i!);
  };
  await append(la, 'a0');
  await append(lc, 'c0');
  const epoch = la.epoch;

  // Nothing of the leader's is in flight when its socket drops. It appends while away; the
  // follower appends on every 2 ms from when the leader leases again, in the old epoch
  // until it hears of the new one.
  const appends: Promise<void>[] = [];
  leasingAgain = () => {
    void (async () => {
      for (let k = 1; k <= 60; k++) {
        appends.push(append(lc, `c${k}`));
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
  };
  a.cut();
  appends.push(append(la, 'a1'), append(la, 'a2'));
  await waitFor('the follower to append', () => appends.length === 62, 30_000);
  await waitFor('every append to settle', () => acked.size === 64, 30_000).catch((err: unknown) => {
    const missing = ['a1', 'a2', ...Array.from({ length: 60 }, (_, k) => `c${k + 1}`)].filter((t) => !acked.has(t));
    throw new Error(`${String(err)}; not settled: ${missing.join(' ')}; the log holds ${ra.seen.map((e) => new TextDecoder().decode(e.payload) + (e.error ? '!' + e.error.code : '')).join(' ')}`);
  });
  await Promise.all(appends);
  assert.ok(la.epoch > epoch, 'the leader took the log again in a new epoch');
  assert.equal(la.role, 'leader');

  await append(la, 'a3');
  await append(lc, 'c-last');
  await waitFor('both caught up', () => ra.seen.length === acked.size && rc.seen.length === acked.size);
  assertExactlyOnce(acked, [ra, rc]);
  assert.deepEqual(
    linkA.writes.filter((w) => w.state !== 'ready'),
    [],
    'the leader sent no write while its log was not ready',
  );
  await Promise.all([a.client.close(), c.client.close()]);
});
