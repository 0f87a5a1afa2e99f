import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SUBJECTS, type NotifyPublish } from '../../src/protocol/bus-messages.js';
import { decodeEntry, entry, type TailClient, type TailEventFrame } from '../helpers/tail-client.js';
import { connect, joined, lease, logName, sleep, until, world, type World } from './fixture.js';
import type { SignedUpDevice } from '../helpers/auth-client.js';
import { metric } from '../helpers/metrics.js';

/** Checks the tail events of a handle cover `from`…`to` exactly, each starting where the last ended. */
function assertContiguous(events: TailEventFrame[], from: number, to: number): void {
  let pos = from;
  for (const e of events) {
    assert.equal(e.at, pos, `event at ${String(e.at)} continues at ${pos}`);
    assert.ok((e.length as number) > pos);
    if (e.entries !== undefined) assert.equal((e.entries as string[]).length, (e.length as number) - pos);
    pos = e.length as number;
  }
  assert.equal(pos, to);
}

async function tailEventsUntil(c: TailClient, handle: string, length: number, timeoutMs = 20_000): Promise<TailEventFrame[]> {
  const out: TailEventFrame[] = [];
  let last = -1;
  while (last < length) {
    const e = await c.nextEvent('tail', handle, timeoutMs);
    out.push(e);
    last = e.length as number;
  }
  return out;
}

/** Writes 60 KiB entries one at a time until the server reports a lagging session; returns the length. */
async function fillUntilLagging(url: string, a: TailClient, handle: string, from: number): Promise<number> {
  const chunk = Buffer.alloc(60 * 1024, 2).toString('base64url');
  let at = from;
  for (let i = 0; i < 1000; i++) {
    await a.call('write', { handle, at, entries: [chunk] });
    at++;
    if (i % 10 === 9 && (await metric(url, 'datagrove_tail_lagging_sessions')) > 0) return at;
  }
  throw new Error('the follower never lagged');
}

/** 15 entries of 250 KiB written by the owner, and `reader` following that log: a read of it from 0 is about 1 MiB. */
async function bigLog(w: World, reader: SignedUpDevice): Promise<{ a: TailClient; f: TailClient; h: string; log: string }> {
  const log = logName();
  const a = await connect(w, w.owner);
  const la = await lease(a, w.site, log);
  const quarter = Buffer.alloc(250 * 1024, 3).toString('base64url');
  for (let i = 0; i < 5; i++) await a.call('write', { handle: la.handle, at: i * 3, entries: [quarter, quarter, quarter] });
  const f = await connect(w, reader);
  const h = (await lease(f, w.site, log)).handle;
  return { a, f, h, log };
}

describe('tail: fan-out', async () => {
  const w = await world();
  const reader = await joined(w, ['read']);

  it('sends followers one tail event per committed batch, with the entries, built once', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    const f1 = await connect(w, reader);
    const f2 = await connect(w, reader);
    const h1 = (await lease(f1, w.site, log)).handle;
    const h2 = (await lease(f2, w.site, log)).handle;
    assert.equal((await a.call('write', { handle: la.handle, at: 0, entries: [entry('a'), entry('b')] })).length, 2);
    const e1 = await f1.nextEvent('tail', h1);
    assert.deepEqual(e1, { ev: 'tail', handle: h1, at: 0, length: 2, entries: [entry('a'), entry('b')] });
    assert.deepEqual(await f2.nextEvent('tail', h2), { ...e1, handle: h2 });
    assert.equal(a.events.filter((e) => e.ev === 'tail').length, 0, 'the leader gets no tail event for its own writes');

    // 100 pipelined writes commit in few batches: fewer events than writes, covering every entry once.
    const n = 100;
    await Promise.all(Array.from({ length: n }, (_, i) => a.call('write', { handle: la.handle, at: 2 + i, entries: [entry(`w${i}`)] })));
    const events = await tailEventsUntil(f1, h1, 2 + n);
    assertContiguous(events, 2, 2 + n);
    assert.ok(events.length < n, `${events.length} events for ${n} writes`);
    const all = events.flatMap((e) => (e.entries as string[]).map(decodeEntry));
    assert.deepEqual(all, Array.from({ length: n }, (_, i) => `w${i}`));
    assert.ok((await metric(w.url, 'datagrove_tail_fanout_deliveries_total', 'kind="entries"')) >= events.length * 2);
    for (const c of [a, f1, f2]) c.close();
  });

  it('never sends a follower entries its lease reply already counted: events continue at the length the reply gave', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    const standing = await connect(w, reader);
    await lease(standing, w.site, log);
    // The leader pipelines five one-entry writes at a time, all the time: commits wait in
    // the fan-out (for the end of the turn, or held for the next commit) while leases come.
    let stop = false;
    let at = 0;
    const writing = (async () => {
      while (!stop) {
        await Promise.all(Array.from({ length: 5 }, (_, i) => a.call('write', { handle: la.handle, at: at + i, entries: [entry(`x${at + i}`)] })));
        at += 5;
      }
    })();
    const f = await connect(w, reader);
    const frames: Record<string, unknown>[] = [];
    f.ws.on('message', (d: Buffer) => frames.push(JSON.parse(d.toString('utf8')) as Record<string, unknown>));
    for (let trial = 0; trial < 60; trial++) {
      await f.call('lease', { site: w.site, log });
      await sleep(trial % 4);
      // Leasing a held handle again answers its state afresh.
      await f.call('lease', { site: w.site, log });
      await sleep(trial % 3);
      await f.call('release', { handle: la.handle });
    }
    stop = true;
    await writing;
    await sleep(50);
    // Replay the frames as a client would: a lease reply says how much of the log it has
    // accounted for, and every tail event after it must start exactly there.
    let known: number | null = null;
    let leases = 0;
    let events = 0;
    for (const fr of frames) {
      if (typeof fr.role === 'string') {
        assert.equal(fr.role, 'follower');
        known = fr.length as number;
        leases++;
      } else if (fr.ev === 'tail') {
        assert.notEqual(known, null, 'no tail event for a released handle');
        assert.equal(fr.at, known, `an event at ${String(fr.at)} after the client knew ${String(known)} entries`);
        known = fr.length as number;
        events++;
      } else if (typeof fr.re === 'number' && Object.keys(fr).length === 1) {
        known = null; // released
      }
    }
    assert.equal(leases, 120);
    assert.ok(events > 0, 'the follower saw events between its leases');
    for (const c of [a, standing, f]) c.close();
  });

  it('leaves the entries out of events for batches over 64 KiB', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    const f = await connect(w, reader);
    const h = (await lease(f, w.site, log)).handle;
    const big = Buffer.alloc(70 * 1024, 1).toString('base64url');
    await a.call('write', { handle: la.handle, at: 0, entries: [big] });
    assert.deepEqual(await f.nextEvent('tail', h), { ev: 'tail', handle: h, at: 0, length: 1 });
    const r = await f.call<{ entries: string[] }>('read', { handle: h, from: 0 });
    assert.equal(r.entries[0], big);
    a.close();
    f.close();
  });

  it('packs pipelined commits into events of at most 64 KiB of entries, splitting writes', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    const f = await connect(w, reader);
    const h = (await lease(f, w.site, log)).handle;
    // 12 writes of 3 entries of 8 KiB: 288 KiB committed in a few batches.
    const e8k = (i: number) => Buffer.alloc(8 * 1024, i).toString('base64url');
    const n = 12;
    await Promise.all(Array.from({ length: n }, (_, i) => a.call('write', { handle: la.handle, at: 3 * i, entries: [e8k(3 * i), e8k(3 * i + 1), e8k(3 * i + 2)] })));
    const events = await tailEventsUntil(f, h, 3 * n);
    assertContiguous(events, 0, 3 * n);
    for (const e of events) {
      assert.ok(e.entries !== undefined, 'every event carries its entries');
      assert.ok((e.entries as string[]).length <= 8, `${(e.entries as string[]).length} entries of 8 KiB in one event`);
    }
    const all = events.flatMap((e) => e.entries as string[]);
    assert.deepEqual(all, Array.from({ length: 3 * n }, (_, i) => e8k(i)));
    assert.ok(events.length < 2 * n, `${events.length} events for ${n} writes`);

    // One write of 20 entries of 8 KiB (160 KiB) is split into events of 8, 8 and 4.
    const one = Array.from({ length: 20 }, (_, i) => e8k(100 + i));
    await a.call('write', { handle: la.handle, at: 3 * n, entries: one });
    const split = await tailEventsUntil(f, h, 3 * n + 20);
    assertContiguous(split, 3 * n, 3 * n + 20);
    assert.deepEqual(split.map((e) => (e.entries as string[]).length), [8, 8, 4]);
    assert.deepEqual(split.flatMap((e) => e.entries as string[]), one);

    // A write mixing small entries and one over the limit: inline, length-only, inline.
    const big = Buffer.alloc(70 * 1024, 9).toString('base64url');
    await a.call('write', { handle: la.handle, at: 3 * n + 20, entries: [entry('x'), big, entry('y')] });
    const mixed = await tailEventsUntil(f, h, 3 * n + 23);
    assertContiguous(mixed, 3 * n + 20, 3 * n + 23);
    assert.deepEqual(
      mixed.map((e) => e.entries),
      [[entry('x')], undefined, [entry('y')]],
    );
    a.close();
    f.close();
  });

  it('publishes dg.notify.publish coalesced per log with the latest length', async () => {
    const log = logName();
    const seen: NotifyPublish[] = [];
    const sub = w.srv.server.bus.subscribe(SUBJECTS.notifyPublish, (m) => {
      const p = m as NotifyPublish;
      if (p.log === log) seen.push(p);
    });
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    for (let i = 0; i < 30; i++) await a.call('write', { handle: la.handle, at: i, entries: [entry(String(i))] });
    await until(() => seen.at(-1)?.length === 30, 5000, 'the latest length published');
    assert.ok(seen.length < 30, `${seen.length} publishes for 30 commits`);
    const { ageMs, ...first } = seen[0] ?? {};
    assert.deepEqual(first, { site: w.site, log, length: 1 });
    assert.ok(Number.isInteger(ageMs) && (ageMs as number) >= 0 && (ageMs as number) < 5000, `ageMs ${String(ageMs)}: how long ago the write was taken`);
    sub.unsubscribe();
    a.close();
  });

  it('sends a follower that stops reading length-only events, then one catch-up event', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    const f = await connect(w, reader);
    const h = (await lease(f, w.site, log)).handle;
    f.pause();
    let at = 0;
    // Fill the socket (one write per batch, so each event carries its 60 KiB) until the
    // server counts the follower as lagging (bounded).
    at = await fillUntilLagging(w.url, a, la.handle, at);
    assert.equal(await metric(w.url, 'datagrove_tail_lagging_sessions'), 1, 'the follower lags');
    for (let i = 0; i < 10; i++) await a.call('write', { handle: la.handle, at: at++, entries: [entry('late')] });
    f.resume();
    const events = await tailEventsUntil(f, h, at);
    assertContiguous(events, 0, at);
    assert.ok(events[0]?.entries !== undefined, 'entries while it kept up');
    const last = events.at(-1) as TailEventFrame;
    assert.equal(last.entries, undefined, 'length only after it fell behind');
    assert.ok((last.length as number) - (last.at as number) >= 10, 'the missed writes are coalesced into one event');
    await until(async () => (await metric(w.url, 'datagrove_tail_lagging_sessions')) === 0, 5000, 'caught up');
    assert.equal(f.open, true);
    // It catches up by reading and keeps following.
    await a.call('write', { handle: la.handle, at, entries: [entry('fresh')] });
    assert.deepEqual((await f.nextEvent('tail', h)).entries, [entry('fresh')]);
    a.close();
    f.close();
  });

  it('refuses reads while earlier replies are still queued, so a client that never reads holds little', async () => {
    const { a, f, h } = await bigLog(w, reader);
    f.pause();
    // 40 reads of ~1 MiB replies, not read: without the check they would queue 40 MiB.
    const ids = Array.from({ length: 40 }, () => f.freshId());
    for (const id of ids) {
      f.send({ id, op: 'read', handle: h, from: 0 });
      await sleep(5);
    }
    await sleep(200);
    f.resume();
    const replies = await Promise.all(ids.map((id) => f.reply(id, 20_000)));
    const data = replies.filter((r) => Array.isArray(r.entries)).length;
    const refused = replies.filter((r) => r.error?.code === 'RATE_LIMITED').length;
    assert.equal(data + refused, ids.length);
    assert.ok(data >= 1 && data <= 12, `${data} replies queued for a client that did not read (the socket's own buffers take a few)`);
    assert.equal(f.open, true, 'refused reads do not close the session');
    // Once it has taken its replies, it reads again.
    assert.equal((await f.call<{ entries: string[] }>('read', { handle: h, from: 0 })).entries.length, 4);
    a.close();
    f.close();
  });

  it('runs a burst of reads one at a time, so clients that do not read cannot stall the node', async () => {
    const { a, f, h, log } = await bigLog(w, reader);
    const sessions = [f];
    for (let i = 0; i < 5; i++) {
      const c = await connect(w, reader);
      assert.equal((await lease(c, w.site, log)).handle, h);
      sessions.push(c);
    }
    const all: { c: TailClient; ids: number[] }[] = [];
    for (const c of sessions) {
      c.pause();
      // 200 reads of ~1 MiB sent in one go: each would be read from the store before any
      // reply was queued, if the reads of a session ran side by side.
      const ids = Array.from({ length: 200 }, () => c.freshId());
      for (const id of ids) c.send({ id, op: 'read', handle: h, from: 0 });
      all.push({ c, ids });
    }
    const t0 = performance.now();
    await a.call('ping', {});
    const pingMs = performance.now() - t0;
    for (const { c, ids } of all) {
      c.resume();
      const replies = await Promise.all(ids.map((id) => c.reply(id, 30_000)));
      const data = replies.filter((r) => Array.isArray(r.entries)).length;
      assert.ok(data >= 1 && data <= 12, `${data} replies read from the store and queued for a client that did not read`);
    }
    assert.ok(pingMs < 1500, `another client waited ${Math.round(pingMs)} ms for a ping`);
    a.close();
    for (const c of sessions) c.close();
  });
});

describe('tail: a session over the hard buffer limit', async () => {
  // A soft limit above the hard one lets reads fill the queue, which is what is tested here.
  const w = await world({ tailLimits: { softBuffer: 64 * 1024 * 1024, hardBuffer: 2 * 1024 * 1024 } });
  const reader = await joined(w, ['read']);

  it('is closed with 4408', async () => {
    const { a, f, h } = await bigLog(w, reader);
    const before = await metric(w.url, 'datagrove_tail_slow_consumer_closes_total');
    f.pause();
    // Ask for ~1 MiB replies without reading them (bounded).
    for (let i = 0; i < 200 && (await metric(w.url, 'datagrove_tail_slow_consumer_closes_total')) === before; i++) {
      f.send({ id: f.freshId(), op: 'read', handle: h, from: 0 });
      await sleep(10);
    }
    assert.equal(await metric(w.url, 'datagrove_tail_slow_consumer_closes_total'), before + 1);
    f.resume();
    assert.equal((await f.closedWith(20_000)).code, 4408);
    a.close();
  });
});

describe('tail: fan-out to a follower lagging too long', async () => {
  const w = await world({ tailLimits: { lagCloseMs: 300 } });
  const reader = await joined(w, ['read']);

  it('closes it with 4408', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    const f = await connect(w, reader);
    await lease(f, w.site, log);
    f.pause();
    await fillUntilLagging(w.url, a, la.handle, 0);
    await until(async () => (await metric(w.url, 'datagrove_tail_slow_consumer_closes_total')) === 1, 5000, 'the lag close');
    f.resume();
    assert.equal((await f.closedWith(20_000)).code, 4408);
    a.close();
  });

  it('closes with 4408 a session that leaves its read replies unread, as a lagging follower', async () => {
    const { a, f, h } = await bigLog(w, reader);
    const before = await metric(w.url, 'datagrove_tail_slow_consumer_closes_total');
    const limited = () => metric(w.url, 'datagrove_tail_errors_total', 'code="RATE_LIMITED"');
    const limitedBefore = await limited();
    f.pause();
    // Reads until they are refused (the queue is over the soft limit), then none: only the
    // time over the limit closes it.
    let refused = false;
    for (let i = 0; i < 200 && !refused; i++) {
      f.send({ id: f.freshId(), op: 'read', handle: h, from: 0 });
      await sleep(10);
      refused = (await limited()) > limitedBefore;
    }
    assert.ok(refused, 'reads were refused while replies waited');
    await until(async () => (await metric(w.url, 'datagrove_tail_slow_consumer_closes_total')) === before + 1, 5000, 'the backlog close');
    f.resume();
    assert.equal((await f.closedWith(20_000)).code, 4408);
    a.close();
  });
});
