/**
 * The log store conformance suite: every LogStore implementation runs it (see
 * src/tail/log-store.ts for the guarantees it checks).
 *
 * `open()` must open ANOTHER instance over the SAME data each time it is called (the same
 * SQLite file, the same PostgreSQL schema): the suite reopens to check durability and races
 * two instances against each other. Every test works on logs of its own fresh site.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { DgError } from '../../src/protocol/errors.js';
import { decodePacked, isPackOf } from '../../src/tail/entry-pack.js';
import { EPOCH_LIFT, WID_MEMORY, epochTimeFloor, type AppendRequest, type AppendResult, type LogStore } from '../../src/tail/log-store.js';

let siteCounter = 0;
/** A site id no other test (or earlier run on the same data) uses. */
export function freshSite(): string {
  return `s${randomBytes(6).toString('hex')}${siteCounter++}`;
}

/** A well-formed device id (43 base64url chars) derived from a small number. */
export function deviceId(n: number): string {
  return `dev${String(n).padStart(40, '0')}`;
}

const enc = (s: string) => Buffer.from(s, 'utf8');
const strs = (bufs: Buffer[]) => bufs.map((b) => b.toString('utf8'));

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof DgError, `expected DgError ${code}, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  });
}

export function runLogStoreConformance(name: string, open: () => Promise<LogStore>, opts: { skip?: string | false } = {}): void {
  describe(`log store conformance: ${name}`, { skip: opts.skip ?? false }, () => {
    let store: LogStore;
    const opened: LogStore[] = [];
    const openTracked = async () => {
      const s = await open();
      opened.push(s);
      return s;
    };
    const D1 = deviceId(1);
    const D2 = deviceId(2);
    const req = (site: string, at: number, entries: string[], more: Partial<AppendRequest> = {}): AppendRequest => ({
      site,
      log: 'main',
      at,
      epoch: 0,
      device: D1,
      entries: entries.map(enc),
      ...more,
    });
    const append = async (r: AppendRequest): Promise<AppendResult> => {
      const [res] = await store.appendBatch([r]);
      assert.ok(res);
      return res;
    };
    const readAll = async (s: LogStore, site: string, log = 'main') => {
      const r = await s.read(site, log, 0, 100_000, 64 * 1024 * 1024);
      return { entries: strs(r.entries), length: r.length };
    };

    before(async () => {
      store = await openTracked();
    });
    after(async () => {
      for (const s of opened) await s.close();
    });

    it('is healthy while open, with no damage reported', () => {
      assert.equal(store.healthy(), true);
      assert.equal(store.damage(), null);
    });

    it('starts every log empty at epoch 0', async () => {
      const site = freshSite();
      assert.deepEqual(await store.state(site, 'main'), { length: 0, epoch: 0 });
      assert.deepEqual(await store.read(site, 'main', 0, 10, 1000), { entries: [], length: 0 });
      await rejectsWith(store.read(site, 'main', 1, 10, 1000), 'BAD_REQUEST');
      assert.deepEqual(await store.appendBatch([]), []);
    });

    it('appends at the length and reads back in order', async () => {
      const site = freshSite();
      assert.deepEqual(await append(req(site, 0, ['a', 'b', 'c'])), { status: 'ok', at: 0, length: 3 });
      assert.deepEqual(await append(req(site, 3, ['d', 'e'])), { status: 'ok', at: 3, length: 5 });
      assert.deepEqual(await store.state(site, 'main'), { length: 5, epoch: 0 });
      assert.deepEqual(await readAll(store, site), { entries: ['a', 'b', 'c', 'd', 'e'], length: 5 });
      assert.deepEqual(await readAll(store, site, 'other'), { entries: [], length: 0 }, 'logs are independent');
      assert.deepEqual(await append(req(site, 5, [])), { status: 'ok', at: 5, length: 5 }, 'an empty write is a no-op');
    });

    it('nacks a write whose at is not the length, writing nothing', async () => {
      const site = freshSite();
      await append(req(site, 0, ['a', 'b']));
      assert.deepEqual(await append(req(site, 5, ['x'])), { status: 'nack', length: 2, epoch: 0 });
      assert.deepEqual(await append(req(site, 1, ['x'])), { status: 'nack', length: 2, epoch: 0 });
      assert.deepEqual(await append(req(site, 1, ['x'], { site: freshSite() })), { status: 'nack', length: 0, epoch: 0 });
      assert.deepEqual(await readAll(store, site), { entries: ['a', 'b'], length: 2 });
    });

    it('fences writes whose epoch is not the stored one after bumpEpoch', async () => {
      const site = freshSite();
      await append(req(site, 0, ['a']));
      assert.equal(await store.bumpEpoch(site, 'main'), 1);
      assert.deepEqual(await append(req(site, 1, ['x'])), { status: 'fenced', length: 1, epoch: 1 });
      assert.deepEqual(await append(req(site, 1, ['x'], { epoch: 7 })), { status: 'fenced', length: 1, epoch: 1 });
      assert.deepEqual(await append(req(site, 5, ['x'])), { status: 'fenced', length: 1, epoch: 1 }, 'fenced is decided before nack');
      assert.deepEqual(await append(req(site, 1, ['b'], { epoch: 1 })), { status: 'ok', at: 1, length: 2 });
      assert.deepEqual(await readAll(store, site), { entries: ['a', 'b'], length: 2 });
      const fresh = freshSite();
      assert.equal(await store.bumpEpoch(fresh, 'main'), 1, 'bumping an unknown log starts it at epoch 1');
      assert.deepEqual(await store.state(fresh, 'main'), { length: 0, epoch: 1 });
    });

    it('keeps epochs monotonic and persisted across close and reopen', async () => {
      const site = freshSite();
      const s1 = await openTracked();
      assert.deepEqual([await s1.bumpEpoch(site, 'main'), await s1.bumpEpoch(site, 'main'), await s1.bumpEpoch(site, 'main')], [1, 2, 3]);
      await s1.close();
      const s2 = await openTracked();
      assert.deepEqual(await s2.state(site, 'main'), { length: 0, epoch: 3 });
      assert.equal(await s2.bumpEpoch(site, 'main'), 4);
      assert.deepEqual(await store.state(site, 'main'), { length: 0, epoch: 4 }, 'another instance sees it');
    });

    it('records the device and user that took an epoch until it ends or the next bump, across reopen', async () => {
      const site = freshSite();
      assert.equal(await store.bumpEpoch(site, 'main', { device: 'dev-a', user: 'user-a' }), 1);
      assert.deepEqual(await store.state(site, 'main'), { length: 0, epoch: 1, leader: { device: 'dev-a', user: 'user-a' } });
      assert.equal(await store.endEpoch(site, 'main', 0), 1, 'ending an older epoch changes nothing');
      assert.deepEqual((await store.state(site, 'main')).leader, { device: 'dev-a', user: 'user-a' }, 'and leaves the leader');
      assert.equal(await store.bumpEpoch(site, 'main', { device: 'dev-b', user: 'user-b' }), 2);
      const s2 = await openTracked();
      assert.deepEqual(await s2.state(site, 'main'), { length: 0, epoch: 2, leader: { device: 'dev-b', user: 'user-b' } }, 'another instance sees it');
      assert.equal(await s2.endEpoch(site, 'main', 2), 3, 'the end of a leadership is a new epoch');
      assert.deepEqual(await store.state(site, 'main'), { length: 0, epoch: 3 }, 'with no leader');
      assert.equal(await store.endEpoch(site, 'main', 2), 3, 'ending it again changes nothing');
      assert.equal(await store.bumpEpoch(site, 'main', { device: 'dev-c' }), 4);
      assert.deepEqual((await store.state(site, 'main')).leader, { device: 'dev-c' }, 'a leader without a user is kept as such');
      assert.equal(await store.bumpEpoch(site, 'main', { device: 'dev-d', user: 'user-d' }), 5);
      assert.equal(await store.bumpEpoch(site, 'main'), 6);
      assert.deepEqual(await store.state(site, 'main'), { length: 0, epoch: 6 }, 'a bump without a leader records none, nor the last one\'s user');
      const unknown = freshSite();
      assert.equal(await store.endEpoch(unknown, 'main', 1), 0, 'an unknown log: nothing to end');
      assert.deepEqual(await store.state(unknown, 'main'), { length: 0, epoch: 0 });
      await rejectsWith(store.bumpEpoch(site, 'main', { device: '' }), 'BAD_REQUEST');
      await rejectsWith(store.bumpEpoch(site, 'main', { device: 'dev-e', user: '' }), 'BAD_REQUEST');
      await rejectsWith(store.endEpoch(site, 'main', -1), 'BAD_REQUEST');
    });

    it('fences the writes of an epoch that ended, and keeps what it committed', async () => {
      const site = freshSite();
      const epoch = await store.bumpEpoch(site, 'main', { device: 'dev-a' });
      assert.deepEqual(await append(req(site, 0, ['a'], { epoch })), { status: 'ok', at: 0, length: 1 });
      const next = await store.endEpoch(site, 'main', epoch);
      assert.equal(next, epoch + 1);
      assert.deepEqual(await append(req(site, 1, ['b'], { epoch })), { status: 'fenced', length: 1, epoch: next });
      assert.deepEqual(await store.state(site, 'main'), { length: 1, epoch: next });
    });

    it('answers a resent write id with dup and its original position', async () => {
      const site = freshSite();
      assert.deepEqual(await append(req(site, 0, ['a', 'b'], { wid: 'w1' })), { status: 'ok', at: 0, length: 2 });
      await append(req(site, 2, ['c'], { wid: 'w2' }));
      assert.deepEqual(await append(req(site, 0, ['a', 'b'], { wid: 'w1' })), { status: 'dup', at: 0, length: 2 });
      assert.deepEqual(await append(req(site, 3, ['zz'], { wid: 'w1' })), { status: 'dup', at: 0, length: 2 }, 'dup whatever at says');
      await store.bumpEpoch(site, 'main');
      assert.deepEqual(await append(req(site, 2, ['c'], { wid: 'w2' })), { status: 'dup', at: 2, length: 3 }, 'dup is decided before fenced');
      // The same wid from another device, or on another log, is a different write.
      assert.deepEqual(await append(req(site, 3, ['d'], { wid: 'w1', device: D2, epoch: 1 })), { status: 'ok', at: 3, length: 4 });
      assert.deepEqual(await append(req(site, 0, ['o'], { wid: 'w1', log: 'other' })), { status: 'ok', at: 0, length: 1 });
      // A write that was not committed leaves no write id behind.
      assert.deepEqual(await append(req(site, 9, ['n'], { wid: 'w9', epoch: 1 })), { status: 'nack', length: 4, epoch: 1 });
      assert.deepEqual(await append(req(site, 4, ['e'], { wid: 'w9', epoch: 1 })), { status: 'ok', at: 4, length: 5 });
      assert.deepEqual(await readAll(store, site), { entries: ['a', 'b', 'c', 'd', 'e'], length: 5 });
    });

    it(`remembers at least the last ${WID_MEMORY} write ids per device`, async () => {
      const site = freshSite();
      const total = WID_MEMORY + 40;
      // Device 2 writes a few first; device 1's many writes must not evict them.
      const d2 = await store.appendBatch([0, 1, 2].map((i) => req(site, i, [`b${i}`], { device: D2, wid: `v${i}` })));
      assert.ok(d2.every((r) => r.status === 'ok'));
      for (let i = 0; i < total; i += 10) {
        const batch = Array.from({ length: Math.min(10, total - i) }, (_, k) => req(site, 3 + i + k, [`a${i + k}`], { wid: `w${i + k}` }));
        const res = await store.appendBatch(batch);
        assert.ok(res.every((r) => r.status === 'ok'), JSON.stringify(res));
      }
      const resend = Array.from({ length: WID_MEMORY }, (_, k) => total - WID_MEMORY + k);
      const res = await store.appendBatch(resend.map((i) => req(site, 0, ['x'], { wid: `w${i}` })));
      assert.deepEqual(
        res,
        resend.map((i) => ({ status: 'dup', at: 3 + i, length: 4 + i })),
      );
      const res2 = await store.appendBatch([0, 1, 2].map((i) => req(site, 0, ['x'], { device: D2, wid: `v${i}` })));
      assert.deepEqual(res2, [0, 1, 2].map((i) => ({ status: 'dup', at: i, length: i + 1 })));
      assert.equal((await store.state(site, 'main')).length, 3 + total);
    });

    it(`lists a device's last write ids on a log with their positions, at least ${WID_MEMORY}, oldest first`, async () => {
      const site = freshSite();
      assert.deepEqual(await store.recentWids(site, 'main', D1), [], 'a log never written');
      const total = WID_MEMORY + 10;
      for (let i = 0; i < total; i += 10) {
        const res = await store.appendBatch(Array.from({ length: Math.min(10, total - i) }, (_, k) => req(site, i + k, [`a${i + k}`], { wid: `w${i + k}` })));
        assert.ok(res.every((r) => r.status === 'ok'), JSON.stringify(res));
      }
      await append(req(site, total, ['b'], { device: D2, wid: 'v0' }));
      await append(req(site, total + 1, ['c']));
      const mine = await store.recentWids(site, 'main', D1);
      assert.ok(mine.length >= WID_MEMORY, `${mine.length} remembered`);
      const last = mine.slice(-WID_MEMORY);
      assert.deepEqual(last, Array.from({ length: WID_MEMORY }, (_, k) => total - WID_MEMORY + k).map((i) => ({ wid: `w${i}`, at: i, length: i + 1 })));
      assert.deepEqual(await store.recentWids(site, 'main', D2), [{ wid: 'v0', at: total, length: total + 1 }]);
      assert.deepEqual(await store.recentWids(site, 'other', D1), []);
    });

    it('decides a mixed batch in array order', async () => {
      const site = freshSite();
      const other = freshSite();
      await store.bumpEpoch(site, 'main');
      const e = { epoch: 1 };
      const res = await store.appendBatch([
        req(site, 0, ['a', 'b'], { ...e, wid: 'a' }), // ok 0..2
        req(site, 0, ['x'], e), // nack: the first one moved the length
        req(site, 2, ['c'], e), // ok 2..3, valid only after the first
        req(site, 3, ['x'], { epoch: 0 }), // fenced
        req(site, 99, ['x'], { epoch: 0, wid: 'a' }), // dup of the first
        req(site, 3, ['d'], { ...e, wid: 'b' }), // ok 3..4
        req(site, 4, ['x'], { ...e, wid: 'b' }), // dup of the one just before, same batch
        req(site, 10, ['x'], e), // nack
        req(other, 0, ['o'], { wid: 'a' }), // ok on another site: wids are per log
        req(site, 4, ['e'], e), // ok 4..5
      ]);
      assert.deepEqual(res, [
        { status: 'ok', at: 0, length: 2 },
        { status: 'nack', length: 2, epoch: 1 },
        { status: 'ok', at: 2, length: 3 },
        { status: 'fenced', length: 3, epoch: 1 },
        { status: 'dup', at: 0, length: 2 },
        { status: 'ok', at: 3, length: 4 },
        { status: 'dup', at: 3, length: 4 },
        { status: 'nack', length: 4, epoch: 1 },
        { status: 'ok', at: 0, length: 1 },
        { status: 'ok', at: 4, length: 5 },
      ]);
      assert.deepEqual(await readAll(store, site), { entries: ['a', 'b', 'c', 'd', 'e'], length: 5 });
      assert.deepEqual(await readAll(store, other), { entries: ['o'], length: 1 });
    });

    it('limits reads by count and bytes, always giving at least one entry', async () => {
      const site = freshSite();
      const ten = Array.from({ length: 10 }, (_, i) => `entry-${i}-xx`); // 10 bytes each
      await append(req(site, 0, ten));
      const read = async (from: number, limit: number, maxBytes: number) => {
        const r = await store.read(site, 'main', from, limit, maxBytes);
        assert.equal(r.length, 10);
        return strs(r.entries);
      };
      assert.deepEqual(await read(0, 3, 1 << 20), ten.slice(0, 3));
      assert.deepEqual(await read(0, 100, 25), ten.slice(0, 2));
      assert.deepEqual(await read(0, 100, 30), ten.slice(0, 3), 'maxBytes is inclusive');
      assert.deepEqual(await read(4, 100, 1), ten.slice(4, 5), 'one entry even over maxBytes');
      assert.deepEqual(await read(7, 100, 1 << 20), ten.slice(7));
      assert.deepEqual(await read(10, 100, 1 << 20), [], 'from == length');
      await rejectsWith(store.read(site, 'main', 11, 100, 1 << 20), 'BAD_REQUEST');
      const big = freshSite();
      await append(req(big, 0, ['y'.repeat(5000), 'z']));
      const r = await store.read(big, 'main', 0, 10, 100);
      assert.deepEqual(strs(r.entries), ['y'.repeat(5000)]);
    });

    it('round-trips binary entries byte for byte', async () => {
      const site = freshSite();
      const all = Buffer.alloc(256);
      for (let i = 0; i < 256; i++) all[i] = i;
      const backing = randomBytes(1000);
      const entries = [
        Buffer.alloc(0),
        Buffer.from([0]),
        Buffer.from([0, 0, 0]),
        all,
        randomBytes(64 * 1024),
        backing.subarray(100, 150), // a view into a larger buffer: only its own bytes count
        Buffer.alloc(0),
        Buffer.from([0xff, 0x00, 0xfe]),
      ];
      const [res] = await store.appendBatch([{ site, log: 'bin', at: 0, epoch: 0, device: D1, entries }]);
      assert.deepEqual(res, { status: 'ok', at: 0, length: entries.length });
      const back = await store.read(site, 'bin', 0, 100, 1 << 20);
      assert.equal(back.entries.length, entries.length);
      back.entries.forEach((b, i) => {
        assert.ok(Buffer.isBuffer(b), 'entries come back as Buffers');
        assert.ok(b.equals(entries[i] as Buffer), `entry ${i} differs`);
      });
    });

    it('stores the entries a packed form carries, and only those', async () => {
      const site = freshSite();
      const b64 = ['', 'AA', 'AAEC', Buffer.from('hello world').toString('base64url'), randomBytes(300).toString('base64url')];
      const views: Buffer[] = [];
      const packed = decodePacked(b64, views);
      assert.ok(Buffer.isBuffer(packed));
      assert.ok(isPackOf(packed, views));
      assert.deepEqual(await append({ ...req(site, 0, []), entries: views, packed }), { status: 'ok', at: 0, length: 5 });
      // A packed form that does not match the entries (another buffer, a different order,
      // one entry fewer) must never be what is stored: the entries are.
      const other = Buffer.from(packed);
      const wrong: [Buffer[], Buffer][] = [
        [[enc('x'), enc('y')], other],
        [[...views].reverse(), packed],
        [views.slice(1), packed],
      ];
      let at = 5;
      for (const [entries, p] of wrong) {
        assert.equal(isPackOf(p, entries), false);
        assert.deepEqual(await append({ ...req(site, at, []), entries, packed: p }), { status: 'ok', at, length: at + entries.length });
        at += entries.length;
      }
      const back = await store.read(site, 'main', 0, 100, 1 << 20);
      const expected = [...views, enc('x'), enc('y'), ...[...views].reverse(), ...views.slice(1)];
      assert.deepEqual(back.entries.map((b) => b.toString('hex')), expected.map((b) => b.toString('hex')));
      assert.equal(back.entries[3]?.toString('utf8'), 'hello world');
    });

    it('keeps committed entries across close and reopen', async () => {
      const site = freshSite();
      const s1 = await openTracked();
      await s1.appendBatch([req(site, 0, ['a', 'b'], { wid: 'w' }), req(site, 2, ['c'])]);
      await s1.close();
      const s2 = await openTracked();
      assert.deepEqual(await readAll(s2, site), { entries: ['a', 'b', 'c'], length: 3 });
      const [dup] = await s2.appendBatch([req(site, 0, ['a', 'b'], { wid: 'w' })]);
      assert.deepEqual(dup, { status: 'dup', at: 0, length: 2 }, 'write ids are durable too');
    });

    it('lets exactly one of two instances win a race at the same at', async () => {
      const a = await openTracked();
      const b = await openTracked();
      for (let round = 0; round < 10; round++) {
        const site = freshSite();
        const epoch = await a.bumpEpoch(site, 'main');
        const [ra, rb] = await Promise.all([
          a.appendBatch([req(site, 0, ['from-a', 'a2'], { epoch })]),
          b.appendBatch([req(site, 0, ['from-b'], { epoch })]),
        ]);
        const results = [ra?.[0], rb?.[0]];
        const wins = results.filter((r) => r?.status === 'ok');
        assert.equal(wins.length, 1, JSON.stringify(results));
        const winnerA = ra?.[0]?.status === 'ok';
        const loser = winnerA ? rb?.[0] : ra?.[0];
        assert.deepEqual(loser, { status: 'nack', length: winnerA ? 2 : 1, epoch });
        assert.deepEqual((await readAll(store, site)).entries, winnerA ? ['from-a', 'a2'] : ['from-b']);
      }
      // A zombie: b keeps writing with the epoch it had after a took the log over.
      const site = freshSite();
      const old = await b.bumpEpoch(site, 'main');
      assert.deepEqual(await b.appendBatch([req(site, 0, ['b'], { epoch: old })]), [{ status: 'ok', at: 0, length: 1 }]);
      const now = await a.bumpEpoch(site, 'main');
      assert.equal(now, old + 1);
      assert.deepEqual(await b.appendBatch([req(site, 1, ['zombie'], { epoch: old })]), [{ status: 'fenced', length: 1, epoch: now }]);
      assert.deepEqual((await readAll(store, site)).entries, ['b']);
    });

    it('sees the write ids another instance committed in between', async () => {
      const a = await openTracked();
      const b = await openTracked();
      const site = freshSite();
      assert.deepEqual(await a.appendBatch([req(site, 0, ['a'], { wid: 'x1' })]), [{ status: 'ok', at: 0, length: 1 }]);
      assert.deepEqual(await b.appendBatch([req(site, 1, ['b'], { wid: 'x2' })]), [{ status: 'ok', at: 1, length: 2 }]);
      // a learned nothing of x2 by itself: the store must still answer dup from the stored ids.
      assert.deepEqual(await a.appendBatch([req(site, 2, ['b'], { wid: 'x2' })]), [{ status: 'dup', at: 1, length: 2 }]);
      assert.deepEqual(await a.appendBatch([req(site, 2, ['c'], { wid: 'x3' })]), [{ status: 'ok', at: 2, length: 3 }]);
      assert.deepEqual(await b.appendBatch([req(site, 0, ['c'], { wid: 'x3' }), req(site, 3, ['d'], { wid: 'x4' })]), [
        { status: 'dup', at: 2, length: 3 },
        { status: 'ok', at: 3, length: 4 },
      ]);
      for (const s of [a, b]) assert.deepEqual(await readAll(s, site), { entries: ['a', 'b', 'c', 'd'], length: 4 });
    });

    it('reads from any position inside multi-entry writes', async () => {
      const site = freshSite();
      const sizes = [3, 1, 0, 7, 2];
      let at = 0;
      const all: string[] = [];
      for (const n of sizes) {
        const entries = Array.from({ length: n }, (_, k) => `e${at + k}`);
        assert.deepEqual(await append(req(site, at, entries)), { status: 'ok', at, length: at + n });
        all.push(...entries);
        at += n;
      }
      for (let from = 0; from <= at; from++) {
        const r = await store.read(site, 'main', from, 3, 1 << 20);
        assert.deepEqual({ entries: strs(r.entries), length: r.length }, { entries: all.slice(from, from + 3), length: at }, `from ${from}`);
      }
      const capped = await store.read(site, 'main', 2, 100, 6); // entries of 2 bytes each ("e2", ...) up to 6 bytes
      assert.deepEqual(strs(capped.entries), ['e2', 'e3', 'e4']);
    });

    it('refuses invalid arguments with BAD_REQUEST and writes nothing', async () => {
      const site = freshSite();
      await rejectsWith(store.read(site, 'main', -1, 10, 100), 'BAD_REQUEST');
      await rejectsWith(store.read(site, 'main', 0.5, 10, 100), 'BAD_REQUEST');
      await rejectsWith(store.read(site, 'main', 0, 0, 100), 'BAD_REQUEST');
      await rejectsWith(store.read(site, 'main', 0, 10, 0), 'BAD_REQUEST');
      await rejectsWith(store.read('bad site!', 'main', 0, 10, 100), 'BAD_REQUEST');
      await rejectsWith(store.read(site, '', 0, 10, 100), 'BAD_REQUEST');
      await rejectsWith(store.state(site, 'x'.repeat(129)), 'BAD_REQUEST');
      await rejectsWith(store.bumpEpoch('', 'main'), 'BAD_REQUEST');
      const bad: Partial<AppendRequest>[] = [
        { at: -1 },
        { at: 1.5 },
        { epoch: -1 },
        { at: Number.MAX_SAFE_INTEGER },
        { device: '' },
        { wid: '' },
        { wid: 'w'.repeat(129) },
        { site: 'no/slash' },
        { entries: ['text'] as unknown as Buffer[] },
        { entries: 'abc' as unknown as Buffer[] },
      ];
      for (const b of bad) {
        // The valid first request must not be stored either: the batch is refused whole.
        await rejectsWith(store.appendBatch([req(site, 0, ['ok']), { ...req(site, 1, ['x']), ...b }]), 'BAD_REQUEST');
      }
      assert.deepEqual(await store.state(site, 'main'), { length: 0, epoch: 0 });
    });

    it('rejects every call with UNAVAILABLE once closed', async () => {
      const s = await openTracked();
      const site = freshSite();
      await s.close();
      await s.close(); // idempotent
      assert.equal(s.healthy(), false);
      await rejectsWith(s.state(site, 'main'), 'UNAVAILABLE');
      await rejectsWith(s.bumpEpoch(site, 'main'), 'UNAVAILABLE');
      await rejectsWith(s.appendBatch([req(site, 0, ['a'])]), 'UNAVAILABLE');
      await rejectsWith(s.read(site, 'main', 0, 1, 1), 'UNAVAILABLE');
      await rejectsWith(s.liftEpochs(), 'UNAVAILABLE');
    });

    // Last: it raises the epochs of every log in the store, those of the tests above too.
    it('lifts every epoch past all it handed out, for a restored copy', async () => {
      const a = freshSite();
      const b = freshSite();
      await append(req(a, 0, ['a']));
      assert.equal(await store.bumpEpoch(a, 'main'), 1);
      assert.equal(await store.bumpEpoch(a, 'main'), 2);
      assert.deepEqual(await append(req(a, 1, ['b'], { epoch: 2 })), { status: 'ok', at: 1, length: 2 });
      await append(req(b, 0, ['x']));

      // At a time whose floor is below the lift (a clock far behind): by EPOCH_LIFT.
      const logs = await store.liftEpochs(1000);
      assert.ok(logs >= 2, `${logs} logs lifted`);
      assert.deepEqual(await store.state(a, 'main'), { length: 2, epoch: 2 + EPOCH_LIFT });
      assert.deepEqual(await store.state(b, 'main'), { length: 1, epoch: EPOCH_LIFT });
      // The leader of before is fenced; the entries stay; the next bump goes on upward.
      assert.deepEqual(await append(req(a, 2, ['c'], { epoch: 2 })), { status: 'fenced', length: 2, epoch: 2 + EPOCH_LIFT });
      assert.equal(await store.bumpEpoch(a, 'main'), 3 + EPOCH_LIFT);
      assert.deepEqual(await append(req(a, 2, ['c'], { epoch: 3 + EPOCH_LIFT })), { status: 'ok', at: 2, length: 3 });
      assert.deepEqual(await readAll(store, a), { entries: ['a', 'b', 'c'], length: 3 });
      // Durable, and seen by another instance.
      const other = await openTracked();
      assert.deepEqual(await other.state(b, 'main'), { length: 1, epoch: EPOCH_LIFT });
      // A log the copy did not hold (made after it was taken) starts above every epoch it
      // may have had before: its first epoch is past the lift too.
      const fresh = freshSite();
      assert.deepEqual(await store.state(fresh, 'main'), { length: 0, epoch: 0 });
      const first = await store.bumpEpoch(fresh, 'main');
      assert.ok(first > EPOCH_LIFT, `first epoch ${first}`);
      assert.equal(await store.bumpEpoch(fresh, 'main'), first + 1);
      // So does a log first stored by a write at epoch 0, when it is first leased.
      const written = freshSite();
      await append(req(written, 0, ['w']));
      assert.ok((await store.bumpEpoch(written, 'main')) > EPOCH_LIFT);

      // At a real time, epochs go up to its floor: a copy restored again later passes what
      // an earlier restore of it handed out, since logs change leader far slower than that.
      const now = Date.now();
      await store.liftEpochs(now);
      const floor = epochTimeFloor(now);
      assert.ok(Number.isSafeInteger(floor) && floor > 3 + 2 * EPOCH_LIFT);
      assert.deepEqual(await store.state(a, 'main'), { length: 3, epoch: floor });
      assert.deepEqual(await store.state(b, 'main'), { length: 1, epoch: floor });
      const later = freshSite();
      assert.equal(await store.bumpEpoch(later, 'main'), floor + 1);
      // The next lift, a moment later, still adds at least EPOCH_LIFT.
      await store.liftEpochs(now + 1);
      assert.deepEqual(await store.state(b, 'main'), { length: 1, epoch: floor + EPOCH_LIFT });
    });
  });
}
