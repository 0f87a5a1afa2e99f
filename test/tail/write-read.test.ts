import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeEntry, entry, TailClient } from '../helpers/tail-client.js';
import { connect, joined, lease, logName, world, type World } from './fixture.js';
import { metric } from '../helpers/metrics.js';

describe('tail: write and read', async () => {
  const w: World = await world();

  it('connects, leases as leader, appends conditionally, nacks a wrong position and reads back', async () => {
    const c = await TailClient.open(w.wsUrl);
    const hello = await c.call<{ session: string; user: string; device: string; limits: Record<string, number> }>('connect', { token: w.owner.access });
    assert.equal(hello.user, w.owner.user);
    assert.equal(hello.device, w.owner.device);
    assert.equal(typeof hello.session, 'string');
    assert.deepEqual(hello.limits, { maxFrame: 1048576, maxEntries: 1024, maxEntryBytes: 262144, maxHandles: 256 });

    const log = logName();
    const l = await lease(c, w.site, log);
    assert.equal(l.role, 'leader');
    assert.equal(l.length, 0);
    assert.equal(l.leader, w.owner.device);
    assert.ok(l.epoch >= 1);
    assert.deepEqual(l.peers, []);

    assert.deepEqual(await c.call('write', { handle: l.handle, at: 0, entries: [entry('a'), entry('b')] }), { re: 3, length: 2 });
    const nack = await c.call('write', { handle: l.handle, at: 0, entries: [entry('x')] });
    assert.deepEqual({ nack: nack.nack, length: nack.length }, { nack: true, length: 2 });
    assert.equal((await c.call('write', { handle: l.handle, at: 2, entries: [entry('c')] })).length, 3);

    const r = await c.call<{ from: number; entries: string[]; length: number }>('read', { handle: l.handle, from: 1 });
    assert.equal(r.from, 1);
    assert.equal(r.length, 3);
    assert.deepEqual(r.entries.map(decodeEntry), ['b', 'c']);
    const limited = await c.call<{ entries: string[] }>('read', { handle: l.handle, from: 0, limit: 2 });
    assert.deepEqual(limited.entries.map(decodeEntry), ['a', 'b']);
    const empty = await c.call<{ entries: string[]; length: number }>('read', { handle: l.handle, from: 3 });
    assert.deepEqual(empty.entries, []);
    assert.equal((await c.failure('read', { handle: l.handle, from: 4 })).code, 'BAD_REQUEST');
    c.close();
  });

  it('answers a resent wid with dup and does not append it again', async () => {
    const c = await connect(w, w.owner);
    const l = await lease(c, w.site, logName());
    // Any printable ASCII, space included, up to 128 characters.
    const w1 = 'write 1';
    const w2 = `~${'x'.repeat(126)} `;
    assert.equal((await c.call('write', { handle: l.handle, at: 0, entries: [entry('one')], wid: w1 })).length, 1);
    assert.equal((await c.call('write', { handle: l.handle, at: 1, entries: [entry('two')], wid: w2 })).length, 2);
    const dup = await c.call('write', { handle: l.handle, at: 0, entries: [entry('one')], wid: w1 });
    assert.deepEqual({ length: dup.length, at: dup.at, dup: dup.dup }, { length: 1, at: 0, dup: true });
    // Resent at the current end (a client that lost the ack and re-read the length): still dup.
    const dup2 = await c.call('write', { handle: l.handle, at: 2, entries: [entry('two')], wid: w2 });
    assert.deepEqual({ length: dup2.length, at: dup2.at, dup: dup2.dup }, { length: 2, at: 1, dup: true });
    const r = await c.call<{ entries: string[]; length: number }>('read', { handle: l.handle, from: 0 });
    assert.deepEqual(r.entries.map(decodeEntry), ['one', 'two']);
    c.close();
  });

  it('answers a wid resent while the first is in flight with the same position, once', async () => {
    const c = await connect(w, w.owner);
    const l = await lease(c, w.site, logName());
    const [a, b] = await Promise.all([
      c.call('write', { handle: l.handle, at: 0, entries: [entry('x')], wid: 'same' }),
      c.call('write', { handle: l.handle, at: 0, entries: [entry('x')], wid: 'same' }),
    ]);
    assert.deepEqual(a, { re: a.re, length: 1 });
    assert.deepEqual({ length: b.length, at: b.at, dup: b.dup }, { length: 1, at: 0, dup: true });
    const r = await c.call<{ length: number }>('read', { handle: l.handle, from: 0 });
    assert.equal(r.length, 1);
    c.close();
  });

  it('decides a wid resent at another position while the first is in flight on its own', async () => {
    const c = await connect(w, w.owner);
    const l = await lease(c, w.site, logName());
    // The first copy is at a wrong position; the resend, after another write, is at the right one.
    const [wrong, other, right] = await Promise.all([
      c.request('write', { handle: l.handle, at: 5, entries: [entry('w')], wid: 'moved' }),
      c.request('write', { handle: l.handle, at: 0, entries: [entry('o')] }),
      c.request('write', { handle: l.handle, at: 1, entries: [entry('w')], wid: 'moved' }),
    ]);
    assert.deepEqual({ nack: wrong.nack, length: wrong.length }, { nack: true, length: 0 });
    assert.equal(other.length, 1);
    assert.deepEqual({ length: right.length, nack: right.nack, dup: right.dup }, { length: 2, nack: undefined, dup: undefined });
    // And when the first copy commits, one at another position is dup of it.
    const [first, moved] = await Promise.all([
      c.request('write', { handle: l.handle, at: 2, entries: [entry('x')], wid: 'twice' }),
      c.request('write', { handle: l.handle, at: 3, entries: [entry('x')], wid: 'twice' }),
    ]);
    assert.equal(first.length, 3);
    assert.deepEqual({ length: moved.length, at: moved.at, dup: moved.dup }, { length: 3, at: 2, dup: true });
    const r = await c.call<{ entries: string[]; length: number }>('read', { handle: l.handle, from: 0 });
    assert.deepEqual(r.entries.map(decodeEntry), ['o', 'w', 'x']);
    c.close();
  });

  it('keeps the order of replies when a pipelined write is refused for its entries', async () => {
    const c = await connect(w, w.owner);
    const l = await lease(c, w.site, logName());
    const order: number[] = [];
    const sent = [
      { handle: l.handle, at: 0, entries: [entry('a')] },
      { handle: l.handle, at: 1, entries: ['not base64!'] },
      { handle: l.handle, at: 1, entries: Array.from({ length: 1025 }, () => entry('x')) },
      { handle: l.handle, at: 1, entries: [entry('b')] },
    ].map((args) => c.request('write', args).then((r) => (order.push(r.re as number), r)));
    const got = await Promise.all(sent);
    assert.deepEqual(order, [...order].sort((x, y) => x - y), 'replies in request order');
    assert.deepEqual(got.map((r) => r.error?.code ?? r.length), [1, 'BAD_REQUEST', 'TOO_LARGE', 2]);
    c.close();
  });

  it('answers a resend of a write committed before the log loaded dup at once: the writes pipelined after it are decided without it', async () => {
    const c = await connect(w, w.owner);
    const log = logName();
    let l = await lease(c, w.site, log);
    await c.call('write', { handle: l.handle, at: 0, entries: [entry('a')], wid: 'old' });
    await c.call('write', { handle: l.handle, at: 1, entries: [entry('b')] });
    // Released and leased again: the node forgets the log, so only the store knows the wid.
    await c.call('release', { handle: l.handle });
    l = await lease(c, w.site, log);
    const got = await Promise.all([
      c.request('write', { handle: l.handle, at: 2, entries: [entry('c')] }),
      // Resent at the end of the log, not where it went: still the same write.
      c.request('write', { handle: l.handle, at: 3, entries: [entry('a')], wid: 'old' }),
      c.request('write', { handle: l.handle, at: 3, entries: [entry('d')] }),
      c.request('write', { handle: l.handle, at: 5, entries: [entry('e')] }),
    ]);
    assert.equal(got[0]?.length, 3);
    assert.deepEqual({ at: got[1]?.at, length: got[1]?.length, dup: got[1]?.dup }, { at: 0, length: 1, dup: true });
    assert.deepEqual({ length: got[2]?.length, error: got[2]?.error }, { length: 4, error: undefined }, 'the dup took no place');
    assert.deepEqual({ nack: got[3]?.nack, length: got[3]?.length }, { nack: true, length: 4 });
    assert.deepEqual((await c.call<{ entries: string[] }>('read', { handle: l.handle, from: 0 })).entries, ['a', 'b', 'c', 'd'].map(entry));
    c.close();
  });

  it('decides pipelined writes in order and replies in order, acknowledging only durable lengths', async () => {
    const c = await connect(w, w.owner);
    const l = await lease(c, w.site, logName());
    const n = 200;
    const order: number[] = [];
    const replies = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        c.request('write', { handle: l.handle, at: i * 2, entries: [entry(`e${i}a`), entry(`e${i}b`)] }).then((r) => {
          order.push(r.re as number);
          return r;
        }),
      ),
    );
    for (let i = 0; i < n; i++) assert.equal(replies[i]?.length, (i + 1) * 2);
    assert.deepEqual(order, [...order].sort((x, y) => x - y));
    const r = await c.call<{ entries: string[]; length: number }>('read', { handle: l.handle, from: 398 });
    assert.equal(r.length, 400);
    assert.deepEqual(r.entries.map(decodeEntry), ['e199a', 'e199b']);
    // A write in the middle of a pipeline at a stale position is nacked with the length it was
    // checked against: after every earlier accepted write, none of the later ones.
    const [ok1, stale, ok2] = await Promise.all([
      c.request('write', { handle: l.handle, at: 400, entries: [entry('p')] }),
      c.request('write', { handle: l.handle, at: 400, entries: [entry('q')] }),
      c.request('write', { handle: l.handle, at: 401, entries: [entry('r')] }),
    ]);
    assert.equal(ok1.length, 401);
    assert.deepEqual({ nack: stale.nack, length: stale.length }, { nack: true, length: 401 });
    assert.equal(ok2.length, 402);
    // The same with writes far ahead and behind, several in flight before any commit.
    const got = await Promise.all([
      c.request('write', { handle: l.handle, at: 402, entries: [entry('s')] }),
      c.request('write', { handle: l.handle, at: 407, entries: [entry('t')] }),
      c.request('write', { handle: l.handle, at: 403, entries: [entry('u'), entry('v')] }),
      c.request('write', { handle: l.handle, at: 403, entries: [entry('w')] }),
      c.request('write', { handle: l.handle, at: 405, entries: [entry('x')] }),
    ]);
    assert.deepEqual(
      got.map((r) => (r.nack === true ? `nack ${String(r.length)}` : String(r.length))),
      ['403', 'nack 403', '405', 'nack 405', '406'],
    );
    c.close();
  });

  it('limits read replies by count and byte size', async () => {
    const c = await connect(w, w.owner);
    const l = await lease(c, w.site, logName());
    const big = Buffer.alloc(200 * 1024, 7).toString('base64url');
    for (let i = 0; i < 8; i++) await c.call('write', { handle: l.handle, at: i * 3, entries: [big, big, big] });
    const small = Array.from({ length: 1024 }, (_, i) => entry(String(i)));
    await c.call('write', { handle: l.handle, at: 24, entries: small });
    await c.call('write', { handle: l.handle, at: 1048, entries: small });
    const bytes = await c.call<{ entries: string[]; length: number }>('read', { handle: l.handle, from: 0 });
    assert.equal(bytes.length, 24 + 2048);
    assert.ok(bytes.entries.length >= 1 && bytes.entries.length <= 6, `about 1 MiB: ${bytes.entries.length} entries`);
    const count = await c.call<{ entries: string[] }>('read', { handle: l.handle, from: 24, limit: 5000 });
    assert.equal(count.entries.length, 1000);
    const huge = await c.call<{ entries: string[] }>('read', { handle: l.handle, from: 24, limit: 1_000_000_000_000 });
    assert.equal(huge.entries.length, 1000, 'any larger limit counts as 1000');
    c.close();
  });

  it('lets a member with a read grant follow and read, but not write or lead', async () => {
    const reader = await joined(w, ['read']);
    const log = logName();
    const lc = await connect(w, w.owner);
    const ll = await lease(lc, w.site, log);
    await lc.call('write', { handle: ll.handle, at: 0, entries: [entry('hello')] });
    const rc = await connect(w, reader);
    const rl = await lease(rc, w.site, log);
    assert.equal(rl.role, 'follower');
    assert.equal(rl.leader, w.owner.device);
    assert.equal(rl.length, 1);
    assert.deepEqual(rl.peers, [w.owner.device]);
    assert.equal((await rc.failure('write', { handle: rl.handle, at: 1, entries: [entry('no')] })).code, 'NOT_LEADER');
    const r = await rc.call<{ entries: string[] }>('read', { handle: rl.handle, from: 0 });
    assert.deepEqual(r.entries.map(decodeEntry), ['hello']);
    lc.close();
    rc.close();
  });

  it('counts sessions, leases, writes, entries, batches and errors in /metrics', async () => {
    const c = await connect(w, w.owner);
    const l = await lease(c, w.site, logName());
    await c.call('write', { handle: l.handle, at: 0, entries: [entry('m1'), entry('m2')] });
    assert.equal((await c.request('write', { handle: l.handle, at: 7, entries: [entry('x')], wid: 'nope' })).nack, true);
    await c.failure('read', { handle: 'h-none', from: 0 });
    assert.ok((await metric(w.url, 'datagrove_tail_sessions')) >= 1);
    assert.ok((await metric(w.url, 'datagrove_tail_leases', 'role="leader"')) >= 1);
    assert.ok((await metric(w.url, 'datagrove_tail_writes_total', 'result="ok"')) >= 1);
    assert.ok((await metric(w.url, 'datagrove_tail_entries_committed_total')) >= 2);
    assert.ok((await metric(w.url, 'datagrove_tail_commit_batch_writes_count')) >= 1);
    // Every successful commit is timed, and the 2 s bucket holds them all on a test machine.
    const commits = await metric(w.url, 'datagrove_tail_commit_seconds_count');
    assert.ok(commits >= 1);
    assert.equal(await metric(w.url, 'datagrove_tail_commit_seconds_bucket', 'le="2"'), commits);
    assert.ok((await metric(w.url, 'datagrove_tail_errors_total', 'code="NOT_FOUND"')) >= 1);
    c.close();
  });
});
