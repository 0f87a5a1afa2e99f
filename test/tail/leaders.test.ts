import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sameStoreDir, startServer } from '../helpers/server.js';
import { entry, TailClient } from '../helpers/tail-client.js';
import { connect, joined, lease, logName, sleep, world } from './fixture.js';

const GRACE = 400;

describe('tail: leases and leaders', async () => {
  const w = await world({ leaseGraceMs: GRACE, tailLimits: { leaderProbeMs: 300 } });
  const writer = await joined(w, ['read', 'write']);

  it('makes the first writer leader and later ones followers that get NOT_LEADER', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    const b = await connect(w, writer);
    const lb = await lease(b, w.site, log);
    assert.equal(lb.role, 'follower');
    assert.equal(lb.leader, w.owner.device);
    assert.equal(lb.epoch, la.epoch);
    assert.equal((await b.failure('write', { handle: lb.handle, at: 0, entries: [entry('x')] })).code, 'NOT_LEADER');
    assert.equal((await b.failure('write', { handle: 'nope', at: 0, entries: [entry('x')] })).code, 'NOT_FOUND');
    a.close();
    b.close();
  });

  it('returns the same handle with fresh state when leasing again, and steps down with lead:false', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const first = await lease(a, w.site, log);
    await a.call('write', { handle: first.handle, at: 0, entries: [entry('1')] });
    const again = await lease(a, w.site, log);
    assert.equal(again.handle, first.handle);
    assert.equal(again.role, 'leader');
    assert.equal(again.epoch, first.epoch, 'the leader keeps its epoch');
    assert.equal(again.length, 1);
    const b = await connect(w, writer);
    const lb = await lease(b, w.site, log, { lead: false });
    assert.equal(lb.role, 'follower');
    const down = await lease(a, w.site, log, { lead: false });
    assert.equal(down.role, 'follower');
    assert.equal(down.leader, null);
    assert.equal(down.epoch, first.epoch + 1, 'stepping down ends the epoch: the reply gives the next');
    assert.deepEqual(await b.nextEvent('leader', lb.handle), { ev: 'leader', handle: lb.handle, leader: null, epoch: down.epoch });
    assert.equal((await a.failure('write', { handle: first.handle, at: 1, entries: [entry('2')] })).code, 'NOT_LEADER');
    const up = await lease(b, w.site, log);
    assert.equal(up.role, 'leader');
    assert.equal(up.epoch, down.epoch + 1);
    assert.equal(up.length, 1);
    a.close();
    b.close();
  });

  it('decides writes sent after a lease of the same log after that lease: after a step-down they get NOT_LEADER, and a release after them answers last', async () => {
    for (let round = 0; round < 10; round++) {
      const log = logName();
      const a = await connect(w, w.owner);
      const la = await lease(a, w.site, log);
      await a.call('write', { handle: la.handle, at: 0, entries: [entry('first')] });
      const order: string[] = [];
      const track = <T>(name: string, p: Promise<T>) => p.then((r) => (order.push(name), r));
      // Pipelined without waiting: step down, write twice, release.
      const down = track('lease', a.request('lease', { site: w.site, log, lead: false }));
      const w1 = track('write 1', a.request('write', { handle: la.handle, at: 1, entries: [entry('late 1')] }));
      const w2 = track('write 2', a.request('write', { handle: la.handle, at: 2, entries: [entry('late 2')] }));
      const released = track('release', a.request('release', { handle: la.handle }));
      const d = await down;
      assert.equal(d.role, 'follower', `round ${round}`);
      assert.equal(d.length, 1, 'the step-down counts no write sent after it');
      assert.equal((await w1).error?.code, 'NOT_LEADER', `round ${round}`);
      assert.equal((await w2).error?.code, 'NOT_LEADER', `round ${round}`);
      assert.equal((await released).error, undefined);
      assert.deepEqual(order, ['lease', 'write 1', 'write 2', 'release']);
      // The log holds only the write made while leading.
      const b = await connect(w, writer);
      const lb = await lease(b, w.site, log);
      assert.equal(lb.length, 1);
      a.close();
      b.close();
    }
  });

  it("answers a leader's lease after the writes it sent before it: the length counts them, and a write there is taken", async () => {
    for (let round = 0; round < 10; round++) {
      const log = logName();
      const a = await connect(w, w.owner);
      const la = await lease(a, w.site, log);
      const order: string[] = [];
      const track = <T>(name: string, p: Promise<T>) => p.then((r) => (order.push(name), r));
      const w1 = track('write 1', a.request('write', { handle: la.handle, at: 0, entries: [entry('1'), entry('2')] }));
      const w2 = track('write 2', a.request('write', { handle: la.handle, at: 2, entries: [entry('3')] }));
      const again = await track('lease', a.request('lease', { site: w.site, log }));
      assert.equal((await w1).length, 2);
      assert.equal((await w2).length, 3);
      assert.equal(again.role, 'leader');
      assert.equal(again.length, 3, `round ${round}: a leader appends at its lease's length`);
      assert.deepEqual(order, ['write 1', 'write 2', 'lease']);
      assert.equal((await a.call<{ length: number }>('write', { handle: la.handle, at: again.length, entries: [entry('4')] })).length, 4);
      a.close();
    }
  });

  it('decides a write held for one lease before a step-down sent after it', async () => {
    for (let round = 0; round < 10; round++) {
      const log = logName();
      const a = await connect(w, w.owner);
      const la = await lease(a, w.site, log);
      // Renew, write (held for the renewal), step down: the write was sent while leading.
      const renewed = a.request('lease', { site: w.site, log });
      const wrote = a.request('write', { handle: la.handle, at: 0, entries: [entry('kept')] });
      const down = a.request('lease', { site: w.site, log, lead: false });
      assert.equal((await renewed).role, 'leader');
      assert.deepEqual({ length: (await wrote).length, error: (await wrote).error }, { length: 1, error: undefined }, `round ${round}`);
      const d = await down;
      assert.equal(d.role, 'follower');
      assert.equal(d.length, 1, 'the step-down counts the write sent before it');
      a.close();
    }
  });

  it('sends peer join and leave events to the other holders', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    const b = await connect(w, writer);
    const lb = await lease(b, w.site, log);
    assert.deepEqual(lb.peers, [w.owner.device]);
    assert.deepEqual(await a.nextEvent('peer', la.handle), { ev: 'peer', handle: la.handle, device: writer.device, state: 'join', write: true });
    b.close();
    assert.deepEqual(await a.nextEvent('peer', la.handle), { ev: 'peer', handle: la.handle, device: writer.device, state: 'leave' });
    a.close();
  });

  it('tells of a device, not of each of its handles: leave when its last handle goes, and to its own other sessions as to anyone', async () => {
    const log = logName();
    const a1 = await connect(w, w.owner);
    const l1 = await lease(a1, w.site, log);
    const a2 = await connect(w, w.owner);
    const l2 = await lease(a2, w.site, log, { lead: false });
    // To each other, the owner's two sessions are peers: as in the lease reply's `peers`.
    assert.deepEqual(l2.peers, [w.owner.device]);
    assert.deepEqual(await a1.nextEvent('peer', l1.handle), { ev: 'peer', handle: l1.handle, device: w.owner.device, state: 'join', write: true });
    const b = await connect(w, writer);
    const lb = await lease(b, w.site, log, { lead: false });
    assert.deepEqual(lb.peers, [w.owner.device]);
    await a1.nextEvent('peer', l1.handle);
    await a2.nextEvent('peer', l2.handle);
    await a1.call('release', { handle: l1.handle });
    assert.equal((await b.nextEvent('leader', lb.handle)).leader, null);
    // a2 no longer sees another handle of its device; b still does (a2's): no leave for b.
    assert.deepEqual(await a2.nextEvent('peer', l2.handle), { ev: 'peer', handle: l2.handle, device: w.owner.device, state: 'leave' });
    await b.call('ping', {});
    assert.deepEqual(b.drainEvents('peer'), []);
    assert.deepEqual((await lease(b, w.site, log, { lead: false })).peers, [w.owner.device]);
    assert.deepEqual((await lease(a2, w.site, log, { lead: false })).peers, [writer.device]);
    a2.close();
    assert.deepEqual(await b.nextEvent('peer', lb.handle), { ev: 'peer', handle: lb.handle, device: w.owner.device, state: 'leave' });
    assert.equal(l2.handle, lb.handle);
    a1.close();
    b.close();
  });

  it('replaces a leader whose connection died silently when its device leases again from a new session', async () => {
    const log = logName();
    const old = await connect(w, w.owner);
    const lo = await lease(old, w.site, log);
    assert.equal(lo.role, 'leader');
    const other = await connect(w, writer);
    const lw = await lease(other, w.site, log, { lead: false });
    old.pause(); // reads nothing more, so answers no ping: a connection gone quiet
    const fresh = await connect(w, w.owner);
    const first = await lease(fresh, w.site, log);
    assert.equal(first.role, 'follower', 'the old session still leads when the lease arrives');
    // Within the probe time the old session is cut; its leadership is in the grace, which
    // this device takes.
    let again = first;
    const t0 = performance.now();
    while (again.role !== 'leader' && performance.now() - t0 < 5000) {
      await sleep(100);
      again = await lease(fresh, w.site, log);
    }
    assert.equal(again.role, 'leader');
    assert.ok(again.epoch > lo.epoch);
    assert.equal((await other.nextEvent('leader', lw.handle)).leader, w.owner.device);
    // A second session of the device whose first one is alive leaves the leader alone.
    const third = await connect(w, w.owner);
    assert.equal((await lease(third, w.site, log)).role, 'follower');
    await sleep(600);
    assert.equal((await fresh.call('write', { handle: again.handle, at: 0, entries: [entry('x')] })).length, 1);
    for (const c of [old, other, fresh, third]) c.close();
  });

  it('answers a lease with a snapshot no earlier event contradicts: a peer that joined before the reply is in its peers', async () => {
    for (let round = 0; round < 20; round++) {
      const log = logName();
      const a = await connect(w, w.owner);
      const la = await lease(a, w.site, log);
      const b = await connect(w, writer);
      // a leases again while b joins: whichever runs first, a's reply and b's join event
      // reach a in an order that agrees.
      const [again] = await Promise.all([a.request('lease', { site: w.site, log }), lease(b, w.site, log, { lead: false })]);
      assert.equal(again.handle, la.handle);
      const joinedAt = a.received.findIndex((f) => f.ev === 'peer' && f.device === writer.device && f.state === 'join');
      const replyAt = a.received.findIndex((f) => f.re === again.re);
      if (joinedAt >= 0 && joinedAt < replyAt) assert.deepEqual(again.peers, [writer.device], `round ${round}: the join came first, so the reply lists b`);
      else assert.deepEqual(again.peers, [], `round ${round}: the reply came first, then the join`);
      a.close();
      b.close();
    }
  });

  it('takes a release sent after a step-down after that step-down has answered: the handle is gone', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    await a.call('write', { handle: la.handle, at: 0, entries: [entry('1')] });
    const stepDown = a.request('lease', { site: w.site, log, lead: false });
    const release = a.request('release', { handle: la.handle });
    const read = a.request('read', { handle: la.handle, from: 0 });
    const [s, r, rd] = await Promise.all([stepDown, release, read]);
    assert.equal(s.error, undefined);
    assert.equal(s.role, 'follower');
    assert.deepEqual(r, { re: r.re });
    assert.equal(rd.error?.code, 'NOT_FOUND', 'a request after the release finds no handle');
    const order = a.received.filter((f) => f.re === s.re || f.re === r.re).map((f) => f.re);
    assert.deepEqual(order, [s.re, r.re], 'the step-down is answered before the release');
    await sleep(100);
    assert.equal((await a.failure('read', { handle: la.handle, from: 0 })).code, 'NOT_FOUND', 'still gone once all settled');
    a.close();
  });

  it('says which peers may write: writers in the lease reply, write on peer joins', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    assert.deepEqual(la.writers, []);
    const reader = await joined(w, ['read']);
    const r = await connect(w, reader);
    const lr = await lease(r, w.site, log);
    assert.deepEqual(await a.nextEvent('peer', la.handle), { ev: 'peer', handle: la.handle, device: reader.device, state: 'join', write: false });
    assert.deepEqual(lr.writers, [w.owner.device], 'the leader may write');
    const b = await connect(w, writer);
    const lb = await lease(b, w.site, log, { lead: false });
    assert.deepEqual(await a.nextEvent('peer', la.handle), { ev: 'peer', handle: la.handle, device: writer.device, state: 'join', write: true });
    assert.deepEqual(new Set(lb.peers), new Set([w.owner.device, reader.device]));
    assert.deepEqual(lb.writers, [w.owner.device], 'the read-only member is a peer, not a writer');
    for (const c of [a, r, b]) c.close();
  });

  it('ends leadership at once on release, and the released handle is gone', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    const b = await connect(w, writer);
    const lb = await lease(b, w.site, log);
    assert.deepEqual(await a.call('release', { handle: la.handle }), { re: 3 });
    // The end of a leadership is a change of leader: a new epoch.
    assert.deepEqual(await b.nextEvent('leader', lb.handle), { ev: 'leader', handle: lb.handle, leader: null, epoch: la.epoch + 1 });
    assert.equal((await b.nextEvent('peer', lb.handle)).state, 'leave');
    assert.equal((await a.failure('write', { handle: la.handle, at: 0, entries: [entry('x')] })).code, 'NOT_FOUND');
    assert.equal((await a.failure('release', { handle: la.handle })).code, 'NOT_FOUND');
    const taken = await lease(b, w.site, log);
    assert.equal(taken.role, 'leader');
    assert.equal(taken.epoch, la.epoch + 2);
    a.close();
    b.close();
  });

  it('delivers the entries a leadership committed to its followers before the leader events that end it and start the next', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const b = await connect(w, writer);
    let la = await lease(a, w.site, log);
    const lb = await lease(b, w.site, log, { lead: false });
    assert.equal(lb.role, 'follower');
    // What the follower had of the log when each leader event came, in arrival order.
    let had = 0;
    const seen: string[] = [];
    b.ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString()) as { ev?: string; length?: number; leader?: string | null };
      if (f.ev === 'tail') had = Math.max(had, f.length ?? 0);
      if (f.ev === 'leader') seen.push(`${f.leader === null ? 'none' : 'leader'} at ${had}`);
    });
    for (let round = 0; round < 3; round++) {
      // The leader pipelines writes and releases without waiting, then leads again.
      const writes = [0, 1, 2, 3, 4].map((i) => a.request('write', { handle: la.handle, at: round * 5 + i, entries: [entry(`${round}.${i}`)] }));
      const released = a.request('release', { handle: la.handle });
      la = await lease(a, w.site, log);
      assert.deepEqual((await Promise.all(writes)).map((r) => r.length), [1, 2, 3, 4, 5].map((n) => round * 5 + n));
      assert.equal((await released).error, undefined);
      assert.equal(la.role, 'leader');
    }
    await b.event((e) => e.ev === 'leader' && e.leader !== null && e.epoch === la.epoch);
    assert.deepEqual(seen, ['none at 5', 'leader at 5', 'none at 10', 'leader at 10', 'none at 15', 'leader at 15']);
    a.close();
    b.close();
  });

  it('commits the writes a leader sent before its release, answers the release after them, and lets the next leader append after them', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const b = await connect(w, writer);
    let length = 0;
    for (let round = 0; round < 5; round++) {
      const la = await lease(a, w.site, log);
      assert.equal(la.role, 'leader');
      assert.equal(la.length, length);
      const order: string[] = [];
      const writes = [0, 1, 2, 3, 4].map((i) =>
        a.request('write', { handle: la.handle, at: length + i, entries: [entry(`r${round}.${i}`)], wid: `r${round}.${i}` }).then((r) => {
          order.push(`write ${i}`);
          return r;
        }),
      );
      const released = a.request('release', { handle: la.handle }).then((r) => {
        order.push('release');
        return r;
      });
      // Another device asks to lead at once: it leads after those writes, at their end.
      const taking = lease(b, w.site, log);
      const results = await Promise.all(writes);
      assert.deepEqual(
        results.map((r) => r.error?.code ?? r.length),
        [1, 2, 3, 4, 5].map((n) => length + n),
        'every write sent before the release committed',
      );
      assert.equal((await released).error, undefined);
      assert.deepEqual(order, ['write 0', 'write 1', 'write 2', 'write 3', 'write 4', 'release']);
      length += 5;
      let lb = await taking;
      // It may have asked while a still led: then it follows, and takes the log on the leader event.
      if (lb.role === 'follower') {
        await b.nextEvent('leader', lb.handle);
        lb = await lease(b, w.site, log);
      }
      assert.equal(lb.role, 'leader');
      assert.equal(lb.length, length);
      assert.ok(lb.epoch > la.epoch);
      await b.call('release', { handle: lb.handle });
    }
    const r = await lease(b, w.site, log);
    const read = await b.call<{ entries: string[] }>('read', { handle: r.handle, from: 0 });
    assert.equal(read.entries.length, 25);
    a.close();
    b.close();
  });

  it('keeps leadership for the same device during the grace, then lapses it for the next taker with a higher epoch', async () => {
    const log = logName();
    const a1 = await connect(w, w.owner);
    const l1 = await lease(a1, w.site, log);
    await a1.call('write', { handle: l1.handle, at: 0, entries: [entry('a')] });
    const b = await connect(w, writer);
    const lb = await lease(b, w.site, log);
    a1.terminate();
    await sleep(50);
    // Within the grace: another device cannot take it; the departed leader still shows.
    const during = await lease(b, w.site, log);
    assert.equal(during.role, 'follower');
    assert.equal(during.leader, w.owner.device);
    // The same device, from a new session, retakes it with a new epoch.
    const a2 = await connect(w, w.owner);
    const l2 = await lease(a2, w.site, log);
    assert.equal(l2.role, 'leader');
    assert.equal(l2.epoch, l1.epoch + 1);
    assert.equal(l2.length, 1);
    assert.deepEqual(await b.event((e) => e.ev === 'leader' && e.leader !== null), { ev: 'leader', handle: lb.handle, leader: w.owner.device, epoch: l2.epoch });
    // It leaves again: after the grace, followers learn the log has no leader.
    const left = Date.now();
    a2.close();
    const lapse = await b.event((e) => e.ev === 'leader' && e.leader === null);
    assert.ok(Date.now() - left >= GRACE - 50, 'lapsed only after the grace');
    assert.deepEqual(lapse, { ev: 'leader', handle: lb.handle, leader: null, epoch: l2.epoch + 1 }, 'a lapse is a new epoch');
    const l3 = await lease(b, w.site, log);
    assert.equal(l3.role, 'leader');
    assert.equal(l3.epoch, l2.epoch + 2);
    assert.equal((await b.call('write', { handle: l3.handle, at: 1, entries: [entry('b')] })).length, 2);
    b.close();
  });

  it('fences a leader whose log another node took over (two servers on one store)', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    assert.equal((await a.call('write', { handle: la.handle, at: 0, entries: [entry('a')] })).length, 1);
    const f = await connect(w, writer);
    const lf = await lease(f, w.site, log);
    // A second node on the same data: it knows nothing of the first node's leader.
    const other = await startServer({ dataDir: sameStoreDir(w.srv.dataDir), leaseGraceMs: GRACE });
    const z = await TailClient.connect(other.wsUrl, w.owner.access);
    const lz = await lease(z, w.site, log);
    assert.equal(lz.role, 'leader');
    assert.equal(lz.epoch, la.epoch + 1);
    assert.equal((await a.failure('write', { handle: la.handle, at: 1, entries: [entry('zombie')] })).code, 'FENCED');
    assert.deepEqual(await f.nextEvent('leader', lf.handle), { ev: 'leader', handle: lf.handle, leader: null, epoch: lz.epoch });
    assert.equal((await a.failure('write', { handle: la.handle, at: 1, entries: [entry('zombie')] })).code, 'FENCED');
    assert.equal((await z.call('write', { handle: lz.handle, at: 1, entries: [entry('b')] })).length, 2);
    const r = await z.call<{ entries: string[] }>('read', { handle: lz.handle, from: 0 });
    assert.deepEqual(r.entries.map((e) => Buffer.from(e, 'base64url').toString()), ['a', 'b']);
    z.close();
    await other.stop();

    // Back on this node, the follower takes the log with a higher epoch; the fenced handle is
    // a follower from then on: its lease says so (lead or not), its writes are NOT_LEADER.
    const lf2 = await lease(f, w.site, log);
    assert.equal(lf2.role, 'leader');
    assert.ok(lf2.epoch > lz.epoch);
    for (const lead of [true, false]) {
      const again = await lease(a, w.site, log, { lead });
      assert.deepEqual([again.role, again.epoch, again.leader], ['follower', lf2.epoch, writer.device], `lead: ${lead}`);
    }
    assert.equal((await a.failure('write', { handle: la.handle, at: 2, entries: [entry('zombie')] })).code, 'NOT_LEADER');
    assert.equal((await f.call('write', { handle: lf2.handle, at: 2, entries: [entry('c')] })).length, 3);
    // Once the log has no leader, the fenced handle's device leads again, with a new epoch.
    f.close();
    await sleep(GRACE + 200);
    const back = await lease(a, w.site, log);
    assert.deepEqual([back.role, back.epoch > lf2.epoch], ['leader', true]);
    assert.equal((await a.call('write', { handle: back.handle, at: 3, entries: [entry('d')] })).length, 4);
    a.close();
  });

  it('refuses more handles than maxHandles per session', async () => {
    const a = await connect(w, w.owner);
    const prefix = logName('many');
    await Promise.all(Array.from({ length: 256 }, (_, i) => lease(a, w.site, `${prefix}-${i}`, { lead: false })));
    assert.equal((await a.failure('lease', { site: w.site, log: `${prefix}-x`, lead: false })).code, 'TOO_LARGE');
    // Leasing one it already holds is fine.
    assert.equal((await lease(a, w.site, `${prefix}-0`, { lead: false })).role, 'follower');
    // Refusals of well-formed leases are not bad frames: the session is not closed 4400.
    for (let i = 0; i < 30; i++) assert.equal((await a.failure('lease', { site: w.site, log: `${prefix}-y${i}`, lead: false })).code, 'TOO_LARGE');
    assert.equal((await a.call('ping', {})).error, undefined, 'the session still answers');
    a.close();
  });
});

describe('tail: leader liveness', async () => {
  const w = await world({ leaseGraceMs: GRACE, tailLimits: { pingIntervalMs: 60_000, leaderPingIntervalMs: 1000 } });
  const writer = await joined(w, ['read', 'write']);

  it('pings a leading session more often, so a leader whose connection died silently lapses in seconds', async () => {
    const log = logName();
    const lead = await connect(w, w.owner);
    const ll = await lease(lead, w.site, log);
    assert.equal(ll.role, 'leader');
    const quiet = await connect(w, writer);
    const lq = await lease(quiet, w.site, log, { lead: false });
    const watcher = await connect(w, writer);
    const lw = await lease(watcher, w.site, log, { lead: false });
    lead.pause(); // answers no ping from now on
    quiet.pause(); // a follower gone quiet too: only the regular (60 s) ping would find it
    const t0 = performance.now();
    const ev = await watcher.nextEvent('leader', lw.handle, 8000);
    assert.equal(ev.leader, null, 'the leadership lapsed after the grace');
    const took = performance.now() - t0;
    assert.ok(took < 4000 + GRACE, `lapsed after ${Math.round(took)} ms`);
    const now = await lease(watcher, w.site, log);
    assert.equal(now.role, 'leader');
    assert.ok(now.epoch > ll.epoch);
    // The quiet follower still holds its handle: it is not a leader, so no early ping cut it.
    quiet.resume();
    assert.equal((await quiet.call('ping', {})) !== undefined, true);
    assert.equal((await lease(quiet, w.site, log, { lead: false })).handle, lq.handle);
    for (const c of [lead, quiet, watcher]) c.close();
  });
});
