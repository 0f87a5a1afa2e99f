/**
 * A `lease` sent after a `release` of the same log finds the handle gone, also when the
 * release waited for a lease sent before it (a step-down, say) or for writes: it takes a new
 * handle, which lives on, rather than being given the released one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeEntry, entry } from '../helpers/tail-client.js';
import { connect, lease, logName, world, type Lease } from './fixture.js';

describe('tail: a lease sent after a release', async () => {
  const w = await world();

  it('takes a live follower handle when the release waited for an earlier lease', async () => {
    const c = await connect(w, w.owner);
    const log = logName();
    const l = await lease(c, w.site, log, { lead: false });
    const [first, released, again] = await Promise.all([
      c.request('lease', { site: w.site, log, lead: false }),
      c.request('release', { handle: l.handle }),
      c.request('lease', { site: w.site, log, lead: false }),
    ]);
    assert.equal(first.role, 'follower');
    assert.deepEqual(released, { re: released.re });
    assert.equal(again.error, undefined, JSON.stringify(again));
    assert.equal(again.role, 'follower');
    const read = await c.request('read', { handle: again.handle, from: 0 });
    assert.deepEqual(read.error, undefined, 'the handle the lease answered is live');
    assert.equal((await c.call<Lease>('lease', { site: w.site, log, lead: false })).handle, again.handle);
    c.close();
  });

  it('takes leadership again when the release waited for a step-down', async () => {
    const c = await connect(w, w.owner);
    const log = logName();
    const l = await lease(c, w.site, log);
    await c.call('write', { handle: l.handle, at: 0, entries: [entry('a')] });
    const [down, released, again] = await Promise.all([
      c.request('lease', { site: w.site, log, lead: false }),
      c.request('release', { handle: l.handle }),
      c.request('lease', { site: w.site, log }),
    ]);
    assert.equal(down.role, 'follower');
    assert.deepEqual(released, { re: released.re });
    assert.equal(again.error, undefined, JSON.stringify(again));
    assert.equal(again.role, 'leader');
    assert.equal(again.length, 1);
    assert.ok((again.epoch as number) > (down.epoch as number));
    const wrote = await c.request('write', { handle: again.handle, at: 1, entries: [entry('b')] });
    assert.deepEqual(wrote, { re: wrote.re, length: 2 });
    const read = await c.call<{ entries: string[] }>('read', { handle: again.handle, from: 0 });
    assert.deepEqual(read.entries.map(decodeEntry), ['a', 'b']);
    c.close();
  });

  it('takes a live handle when the release waited for a write with a wid', async () => {
    const c = await connect(w, w.owner);
    const log = logName();
    const l = await lease(c, w.site, log);
    const [wrote, released, again] = await Promise.all([
      c.request('write', { handle: l.handle, at: 0, entries: [entry('a')], wid: 'first' }),
      c.request('release', { handle: l.handle }),
      c.request('lease', { site: w.site, log }),
    ]);
    assert.deepEqual(wrote, { re: wrote.re, length: 1 });
    assert.deepEqual(released, { re: released.re });
    assert.equal(again.role, 'leader');
    assert.equal(again.length, 1);
    const next = await c.request('write', { handle: again.handle, at: 1, entries: [entry('b')] });
    assert.deepEqual(next, { re: next.re, length: 2 });
    c.close();
  });

  it('tells the other holders that the device left and joined again', async () => {
    const c = await connect(w, w.owner);
    const log = logName();
    const l = await lease(c, w.site, log, { lead: false });
    const o = await connect(w, w.owner);
    const ol = await lease(o, w.site, log, { lead: false });
    await Promise.all([
      c.request('lease', { site: w.site, log, lead: false }),
      c.request('release', { handle: l.handle }),
      c.request('lease', { site: w.site, log, lead: false }),
    ]);
    const leave = await o.nextEvent('peer', ol.handle);
    const join = await o.nextEvent('peer', ol.handle);
    assert.deepEqual([leave.state, join.state], ['leave', 'join']);
    c.close();
    o.close();
  });
});
