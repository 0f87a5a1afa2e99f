/**
 * A commit that fails: another connection holds the SQLite write lock past the store's busy
 * timeout, so the group's transaction fails. Every write of it is answered UNAVAILABLE
 * (never acknowledged), nothing of it is stored, and the leader continues from the
 * committed length. A leadership that ends while the store cannot record its new epoch
 * still ends: the holders hear it, and the next leader's epoch is still higher.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { decodeEntry, entry } from '../helpers/tail-client.js';
import { connect, joined, lease, logName, world } from './fixture.js';

describe('tail: a failing commit', async () => {
  const w = await world();

  it('fails every write decided with it, acknowledges none, and restarts from the committed length', { timeout: 60_000 }, async () => {
    const c = await connect(w, w.owner);
    const name = logName();
    const l = await lease(c, w.site, name);
    const f = await connect(w, await joined(w, ['read']));
    const fh = (await lease(f, w.site, name)).handle;
    assert.equal((await c.call('write', { handle: l.handle, at: 0, entries: [entry('kept')] })).length, 1);
    const blocker = new Database(join(w.srv.dataDir, 'tail.db'));
    blocker.exec('BEGIN IMMEDIATE');
    let replies;
    try {
      replies = await Promise.all(Array.from({ length: 5 }, (_, i) => c.request('write', { handle: l.handle, at: 1 + i, entries: [entry(`lost${i}`)], wid: `x${i}` })));
    } finally {
      blocker.exec('ROLLBACK');
      blocker.close();
    }
    for (const r of replies) assert.equal(r.error?.code, 'UNAVAILABLE', JSON.stringify(r));
    // The writes decided after the failed ones are checked against the committed length again.
    const nack = await c.call('write', { handle: l.handle, at: 6, entries: [entry('gap')] });
    assert.deepEqual({ nack: nack.nack, length: nack.length }, { nack: true, length: 1 });
    // Resending with the same wids stores them now (they were never committed).
    for (let i = 0; i < 5; i++) {
      const r = await c.call('write', { handle: l.handle, at: 1 + i, entries: [entry(`lost${i}`)], wid: `x${i}` });
      assert.deepEqual(r, { re: r.re, length: 2 + i });
    }
    const read = await c.call<{ entries: string[] }>('read', { handle: l.handle, from: 0 });
    assert.deepEqual(read.entries.map(decodeEntry), ['kept', 'lost0', 'lost1', 'lost2', 'lost3', 'lost4']);
    // The follower saw exactly the committed entries, in order, nothing of the failed commit.
    const seen: string[] = [];
    while (seen.length < 6) {
      const e = await f.nextEvent('tail', fh);
      assert.equal(e.at, seen.length, 'events continue where the last ended');
      seen.push(...(e.entries as string[]).map(decodeEntry));
    }
    assert.deepEqual(seen, ['kept', 'lost0', 'lost1', 'lost2', 'lost3', 'lost4']);
    c.close();
    f.close();
  });

  it('ends a leadership whose new epoch the store cannot record: the holders hear it, and the next leader\'s epoch is still higher', { timeout: 60_000 }, async () => {
    const a = await connect(w, w.owner);
    const name = logName();
    const la = await lease(a, w.site, name);
    const member = await joined(w, ['read', 'write']);
    const b = await connect(w, member);
    const lb = await lease(b, w.site, name, { lead: false });
    const blocker = new Database(join(w.srv.dataDir, 'tail.db'));
    blocker.exec('BEGIN IMMEDIATE');
    try {
      assert.equal((await a.call('release', { handle: la.handle })).error, undefined);
      // The store stays locked past its busy timeout: the event comes with the epoch it had.
      assert.deepEqual(await b.nextEvent('leader', lb.handle, 15_000), { ev: 'leader', handle: lb.handle, leader: null, epoch: la.epoch });
    } finally {
      blocker.exec('ROLLBACK');
      blocker.close();
    }
    const taken = await lease(b, w.site, name);
    assert.equal(taken.role, 'leader');
    assert.ok(taken.epoch > la.epoch, 'the next leader takes a higher epoch');
    assert.equal((await b.call('write', { handle: taken.handle, at: 0, entries: [entry('after')] })).length, 1);
    a.close();
    b.close();
  });
});
