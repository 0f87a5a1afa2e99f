/**
 * GroupCommitter over a real SQLite log store. A failing commit is produced inside the
 * store's own transaction by a trigger that aborts on a poisoned entry.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { DgError } from '../../src/protocol/errors.js';
import { GroupCommitter } from '../../src/tail/group-commit.js';
import type { AppendRequest, LogStore } from '../../src/tail/log-store.js';
import { openSqliteLogStore } from '../../src/tail/sqlite-log-store.js';
import { openPgLogStore } from '../../src/tail/pg-log-store.js';
import { deviceId, freshSite } from '../conformance/log-store.js';
import { tempDir } from '../helpers/server.js';
import { PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';

const POISON = Buffer.from('poison');
const D = deviceId(7);

function req(site: string, at: number, data: Buffer | string = `e${at}`, more: Partial<AppendRequest> = {}): AppendRequest {
  return { site, log: 'main', at, epoch: 0, device: D, entries: [typeof data === 'string' ? Buffer.from(data) : data], ...more };
}

/** One turn of the event loop: what a setImmediate scheduled before it has run. */
const tick = () => new Promise((r) => setImmediate(r));

async function settleAll<T>(ps: Promise<T>[]): Promise<PromiseSettledResult<T>[]> {
  return Promise.all(ps.map((p) => p.then((value) => ({ status: 'fulfilled' as const, value }), (reason: unknown) => ({ status: 'rejected' as const, reason }))));
}

describe('GroupCommitter', () => {
  let path: string;
  let store: LogStore;

  before(() => {
    path = join(tempDir('dg-group-'), 'tail.db');
    store = openSqliteLogStore(path);
    // A second connection adds a trigger that makes any batch holding the poisoned entry
    // fail inside the store's transaction.
    const db = new Database(path);
    // (A write's entries are stored packed in one chunk row, so the trigger looks inside it.)
    db.exec(`CREATE TRIGGER poison BEFORE INSERT ON chunks WHEN instr(NEW.data, x'${POISON.toString('hex')}') > 0
             BEGIN SELECT RAISE(ABORT, 'poisoned entry'); END`);
    db.close();
  });
  after(async () => {
    await store.close();
  });

  it('commits the submits of one tick as one batch, answering each in order', async () => {
    const gc = new GroupCommitter(store);
    const site = freshSite();
    const order: number[] = [];
    const ps = Array.from({ length: 100 }, (_, i) =>
      gc.submit(req(site, i)).then((r) => {
        order.push(i);
        return r;
      }),
    );
    assert.deepEqual(gc.stats.pending, 100, 'nothing commits synchronously');
    const results = await Promise.all(ps);
    assert.deepEqual(results, Array.from({ length: 100 }, (_, i) => ({ status: 'ok', at: i, length: i + 1 })));
    assert.deepEqual(order, Array.from({ length: 100 }, (_, i) => i));
    assert.equal(gc.stats.batches, 1);
    assert.equal(gc.stats.requests, 100);
    const back = await store.read(site, 'main', 0, 1000, 1 << 20);
    assert.deepEqual(back.entries.map(String), Array.from({ length: 100 }, (_, i) => `e${i}`));
    await gc.close();
  });

  it('lets a burst read over a few turns share one commit, and stops waiting when a turn brings nothing', async () => {
    const gc = new GroupCommitter(store);
    const site = freshSite();
    const ps = [gc.submit(req(site, 0))];
    await tick();
    ps.push(gc.submit(req(site, 1)));
    await tick();
    ps.push(gc.submit(req(site, 2)));
    await Promise.all(ps);
    assert.deepEqual([gc.stats.batches, gc.stats.requests], [1, 3], 'three turns, one commit');
    // A lone request: one turn more, then it commits (the next turn brought nothing).
    const lone = gc.submit(req(site, 3));
    await tick();
    await tick();
    await tick();
    assert.deepEqual(await lone, { status: 'ok', at: 3, length: 4 });
    assert.equal(gc.stats.batches, 2);
    await gc.close();
  });

  it('enqueue: calls each sink of a batch in order, all inside one deliverWith run; a throwing sink spoils no other', async () => {
    const runs: string[][] = [];
    let current: string[] | null = null;
    const sinkErrors: unknown[] = [];
    const gc = new GroupCommitter(store, {
      maxBatch: 3,
      onSinkError: (e) => sinkErrors.push(e),
      deliverWith: (deliver) => {
        current = [];
        deliver();
        runs.push(current);
        current = null;
      },
    });
    const site = freshSite();
    const seen: string[] = [];
    const done = new Promise<void>((resolve) => {
      for (let i = 0; i < 5; i++) {
        gc.enqueue(req(site, i), {
          committed: (r) => {
            const tag = `${i}:${r.status}`;
            seen.push(tag);
            (current as string[] | null)?.push(tag);
            if (i === 1) throw new Error('a sink bug');
            if (i === 4) resolve();
          },
          failed: (err) => seen.push(`${i}:failed:${String(err)}`),
        });
      }
    });
    assert.equal(seen.length, 0, 'nothing is delivered synchronously');
    await done;
    assert.deepEqual(seen, ['0:ok', '1:ok', '2:ok', '3:ok', '4:ok']);
    assert.deepEqual(runs, [['0:ok', '1:ok', '2:ok'], ['3:ok', '4:ok']], 'one run per batch, every sink of the batch inside it');
    assert.deepEqual(sinkErrors.map(String), ['Error: a sink bug'], 'the sink\'s own error is reported, the others still delivered');
    assert.equal(gc.stats.batches, 2);

    // A request refused at once fails in a microtask, not inside enqueue.
    const failedWith: unknown[] = [];
    gc.enqueue(req(site, -1), { committed: () => assert.fail('not committed'), failed: (e) => failedWith.push(e) });
    assert.equal(failedWith.length, 0);
    await Promise.resolve();
    const e = failedWith[0];
    assert.ok(e instanceof DgError && e.code === 'BAD_REQUEST');
  });

  it('splits by maxBatch and maxBatchBytes, keeping the order', async () => {
    const site = freshSite();
    const byCount = new GroupCommitter(store, { maxBatch: 10 });
    const res = await Promise.all(Array.from({ length: 35 }, (_, i) => byCount.submit(req(site, i))));
    assert.equal(byCount.stats.batches, 4);
    assert.ok(res.every((r, i) => r.status === 'ok' && r.at === i));

    const bytes = freshSite();
    const byBytes = new GroupCommitter(store, { maxBatchBytes: 250 });
    const hundred = Buffer.alloc(100, 1);
    const big = Buffer.alloc(1000, 2);
    const res2 = await Promise.all([0, 1, 2, 3, 4].map((i) => byBytes.submit(req(bytes, i, hundred))).concat(byBytes.submit(req(bytes, 5, big))));
    assert.equal(byBytes.stats.batches, 4, '2 + 2 + 1 requests of 100 bytes, then the big one alone');
    assert.ok(res2.every((r) => r.status === 'ok'));
    assert.equal((await store.state(bytes, 'main')).length, 6);
  });

  it('decides pipelined writes in submission order (nack, fenced and dup pass through)', async () => {
    const gc = new GroupCommitter(store);
    const site = freshSite();
    const results = await Promise.all([
      gc.submit(req(site, 0, 'a', { wid: 'x' })),
      gc.submit(req(site, 1, 'b')),
      gc.submit(req(site, 1, 'late')),
      gc.submit(req(site, 2, 'c', { epoch: 3 })),
      gc.submit(req(site, 9, 'a', { wid: 'x' })),
    ]);
    assert.deepEqual(results, [
      { status: 'ok', at: 0, length: 1 },
      { status: 'ok', at: 1, length: 2 },
      { status: 'nack', length: 2, epoch: 0 },
      { status: 'fenced', length: 2, epoch: 0 },
      { status: 'dup', at: 0, length: 1 },
    ]);
  });

  it('rejects every request of a failing batch, stores none of it, and goes on', async () => {
    const gc = new GroupCommitter(store, { maxBatch: 3 });
    const site = freshSite();
    const first = [gc.submit(req(site, 0)), gc.submit(req(site, 1, POISON)), gc.submit(req(site, 2))];
    // The next batch was pipelined behind the failing one: its `at`s are past the length
    // the store really has, so it is nacked: a failed commit never leaves a hole.
    const second = [gc.submit(req(site, 3)), gc.submit(req(site, 4)), gc.submit(req(site, 5))];
    const s1 = await settleAll(first);
    const s2 = await settleAll(second);
    const reasons = s1.map((s) => (s.status === 'rejected' ? s.reason : null));
    assert.ok(reasons.every((r) => r instanceof Error && /poisoned entry/.test(r.message)), String(reasons));
    assert.ok(reasons.every((r) => r === reasons[0]), 'the batch error is given to each of its requests');
    assert.deepEqual(
      s2.map((s) => (s.status === 'fulfilled' ? s.value : s.reason)),
      [3, 4, 5].map(() => ({ status: 'nack', length: 0, epoch: 0 })),
    );
    assert.deepEqual(gc.stats, { batches: 1, requests: 3, failedBatches: 1, pending: 0, inFlight: 0 });
    assert.deepEqual(await store.state(site, 'main'), { length: 0, epoch: 0 });
    assert.deepEqual(await gc.submit(req(site, 0)), { status: 'ok', at: 0, length: 1 });
  });

  it('times each successful commit with onCommit, before its outcomes are delivered, and never a failed one', async () => {
    const events: string[] = [];
    const gc = new GroupCommitter(store, { maxBatch: 2, onCommit: (ms) => events.push(Number.isFinite(ms) && ms >= 0 ? 'timed' : `bad ${ms}`) });
    const site = freshSite();
    await new Promise<void>((resolve) => {
      let left = 4;
      const sink = (i: number) => ({
        committed: () => {
          events.push(`ok ${i}`);
          if (--left === 0) resolve();
        },
        failed: () => {
          events.push(`failed ${i}`);
          if (--left === 0) resolve();
        },
      });
      [req(site, 0), req(site, 1), req(site, 2, POISON), req(site, 3)].forEach((r, i) => gc.enqueue(r, sink(i)));
    });
    assert.deepEqual(events, ['timed', 'ok 0', 'ok 1', 'failed 2', 'failed 3']);
  });

  it('rejects a malformed request alone, with BAD_REQUEST', async () => {
    const gc = new GroupCommitter(store);
    const site = freshSite();
    const good = gc.submit(req(site, 0));
    const bad = gc.submit(req(site, -1));
    const good2 = gc.submit(req(site, 1));
    await assert.rejects(bad, (e: unknown) => e instanceof DgError && e.code === 'BAD_REQUEST');
    assert.deepEqual([await good, await good2].map((r) => r.status), ['ok', 'ok']);
    assert.equal(gc.stats.batches, 1);
  });

  it('refuses submits over the queue bound with UNAVAILABLE', async () => {
    const site = freshSite();
    const gc = new GroupCommitter(store, { maxPending: 5 });
    const ps = Array.from({ length: 8 }, (_, i) => gc.submit(req(site, i)));
    const s = await settleAll(ps);
    assert.deepEqual(s.slice(0, 5).map((x) => x.status), Array(5).fill('fulfilled'));
    for (const x of s.slice(5)) {
      assert.equal(x.status, 'rejected');
      const reason = x.status === 'rejected' ? x.reason : null;
      assert.ok(reason instanceof DgError && reason.code === 'UNAVAILABLE' && reason.retryAfter === 1, String(reason));
    }
    const bytes = new GroupCommitter(store, { maxPendingBytes: 150 });
    const b = await settleAll([bytes.submit(req(site, 5, Buffer.alloc(100))), bytes.submit(req(site, 6, Buffer.alloc(100)))]);
    assert.deepEqual(b.map((x) => x.status), ['fulfilled', 'rejected']);
    assert.equal((await store.state(site, 'main')).length, 6);
    // Once the queue drained, submits are accepted again.
    assert.equal((await gc.submit(req(site, 6))).status, 'ok');
  });

  it('flush waits for everything submitted so far; close drains then refuses', async () => {
    const gc = new GroupCommitter(store, { maxBatch: 4 });
    const site = freshSite();
    const settled: number[] = [];
    for (let i = 0; i < 10; i++) void gc.submit(req(site, i)).then(() => settled.push(i));
    await gc.flush();
    assert.equal(settled.length, 10);
    await gc.flush(); // nothing pending: resolves at once
    for (let i = 10; i < 13; i++) void gc.submit(req(site, i)).then(() => settled.push(i));
    await gc.close();
    assert.equal(settled.length, 13, 'close commits what was queued');
    await assert.rejects(gc.submit(req(site, 13)), (e: unknown) => e instanceof DgError && e.code === 'UNAVAILABLE');
    assert.equal((await store.state(site, 'main')).length, 13);
  });

  it('rejects the batch when the store is closed', async () => {
    const other = openSqliteLogStore(join(tempDir('dg-group-closed-'), 'tail.db'));
    const gc = new GroupCommitter(other);
    await other.close();
    const s = await settleAll([gc.submit(req(freshSite(), 0)), gc.submit(req(freshSite(), 0))]);
    for (const x of s) {
      assert.ok(x.status === 'rejected' && x.reason instanceof DgError && x.reason.code === 'UNAVAILABLE');
    }
    assert.equal(gc.stats.failedBatches, 1);
  });

  it('refuses nonsensical options', () => {
    assert.throws(() => new GroupCommitter(store, { maxBatch: 0 }), RangeError);
    assert.throws(() => new GroupCommitter(store, { maxPending: 1.5 }), RangeError);
    assert.throws(() => new GroupCommitter(store, { delayMs: -1 }), RangeError);
    assert.throws(() => new GroupCommitter(store, { delayMs: Number.NaN }), RangeError);
    assert.throws(() => new GroupCommitter(store, { target: 0 }), RangeError);
  });

  it('with delayMs, lets a pipelined stream share commits: at most one start per delayMs, sooner at target', async () => {
    // The delay is long against a commit, so that a slow disk's fsync cannot use it up;
    // waits are read from the committer or timed from before the commit they follow.
    const delayMs = 150;
    const gc = new GroupCommitter(store, { delayMs, target: 4 });
    const site = freshSite();
    // After a quiet spell a write commits in its own turn, waiting or not.
    assert.deepEqual(await gc.submit(req(site, 0), true), { status: 'ok', at: 0, length: 1 });
    assert.equal(gc.stats.batches, 1);
    // Right after a commit, writes that may wait do: three are not the target.
    const ps = [1, 2, 3].map((i) => gc.submit(req(site, i), true));
    await tick();
    await tick();
    assert.equal(gc.waiting, true);
    assert.deepEqual([gc.stats.pending, gc.stats.batches], [3, 1]);
    // The fourth reaches the target: one commit, at once.
    const beforeStart = performance.now();
    ps.push(gc.submit(req(site, 4), true));
    await tick();
    await tick();
    assert.equal(gc.waiting, false, 'the target ends the wait');
    await Promise.all(ps);
    assert.deepEqual([gc.stats.batches, gc.stats.requests], [2, 5]);
    // One alone waits for the delay since that commit started, then commits.
    const alone = gc.submit(req(site, 5), true);
    await tick();
    assert.equal(gc.waiting, true);
    assert.deepEqual(await alone, { status: 'ok', at: 5, length: 6 });
    const sinceStart = performance.now() - beforeStart;
    assert.ok(sinceStart >= delayMs - 2, `committed ${sinceStart} ms after the previous commit started`);
    assert.equal(gc.stats.batches, 3);
    // A write whose writer waits for each outcome is never held, even right after a commit.
    const own = gc.submit(req(site, 6));
    await tick();
    assert.equal(gc.waiting, false, 'not held');
    assert.deepEqual(await own, { status: 'ok', at: 6, length: 7 });
    // Nor is a large one: 8 KiB of entries already spread a commit's cost.
    const large = gc.submit(req(site, 7, Buffer.alloc(8192, 1)), true);
    await tick();
    assert.equal(gc.waiting, false, 'not held');
    assert.deepEqual(await large, { status: 'ok', at: 7, length: 8 });
    await gc.close();
  });

  it('with delayMs, stops waiting for a while when waits keep gaining nothing', async () => {
    // Whether a write waits is read from the committer, not from timing, so a slow fsync
    // cannot make a wait look short.
    const gc = new GroupCommitter(store, { delayMs: 150, target: 4 });
    const site = freshSite();
    await gc.submit(req(site, 0), true);
    // Each of these follows a commit at once and waits alone: nothing arrives meanwhile.
    let next = 1;
    let useless = 0;
    while (next <= 10) {
      const p = gc.submit(req(site, next++), true);
      await tick();
      const waits = gc.waiting;
      assert.equal((await p).status, 'ok');
      if (!waits) break;
      useless++;
    }
    assert.ok(useless >= 3 && useless < 10, `waiting stopped after ${useless} useless waits`);
    // Now a waitable write right after a commit goes at once.
    const p = gc.submit(req(site, next), true);
    await tick();
    assert.equal(gc.waiting, false);
    assert.equal((await p).status, 'ok');
    await gc.close();
  });
});

describe('GroupCommitter over PostgreSQL (commits take real time)', { skip: await pgSkip() }, () => {
  const schema = `test_gc_${randomBytes(5).toString('hex')}`;
  let store: LogStore;
  before(async () => {
    store = await openPgLogStore(PG_URL, { schema });
  });
  after(async () => {
    await store?.close();
    await dropPgSchemas(schema);
  });

  it('groups what arrives during a commit into the next batch, one batch in flight, in order', async () => {
    const gc = new GroupCommitter(store);
    const site = freshSite();
    const ps: Promise<unknown>[] = [];
    // A pipelining leader: one write per loop turn, each at the next position, never
    // waiting for acks. Were two batches ever in flight at once, a later one could commit
    // first and be nacked.
    for (let i = 0; i < 60; i++) {
      ps.push(gc.submit(req(site, i)));
      await tick();
    }
    const results = await Promise.all(ps);
    assert.deepEqual(results, Array.from({ length: 60 }, (_, i) => ({ status: 'ok', at: i, length: i + 1 })));
    assert.ok(gc.stats.batches < 60, `writes were grouped (${gc.stats.batches} batches)`);
    assert.equal((await store.state(site, 'main')).length, 60);
    await gc.close();
  });
});
