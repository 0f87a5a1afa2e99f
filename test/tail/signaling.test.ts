import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connect, joined, lease, logName, world } from './fixture.js';

describe('tail: signaling', async () => {
  const w = await world();
  const peer = await joined(w, ['read', 'write']);

  it('relays signals both ways between a follower and the leader, stamping the sender', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    const b = await connect(w, peer);
    const lb = await lease(b, w.site, log);
    const offer = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n', nested: [1, { x: 'é' }] };
    assert.deepEqual(await b.call('signal', { handle: lb.handle, to: 'leader', kind: 'offer', data: offer }), { re: 3 });
    const got = await a.nextEvent('signal', la.handle);
    assert.match(String(got.peer), /^p[A-Za-z0-9_-]{12}$/, 'the sender handle\'s address');
    assert.deepEqual(got, { ev: 'signal', handle: la.handle, from: peer.device, peer: got.peer, kind: 'offer', data: offer });
    await a.call('signal', { handle: la.handle, to: peer.device, kind: 'answer', data: { type: 'answer', sdp: 'ok' } });
    const back = await b.nextEvent('signal', lb.handle);
    assert.deepEqual(back, { ev: 'signal', handle: lb.handle, from: w.owner.device, peer: back.peer, kind: 'answer', data: { type: 'answer', sdp: 'ok' } });
    assert.notEqual(back.peer, got.peer);
    for (const kind of ['candidate', 'data', 'bye']) {
      await b.call('signal', { handle: lb.handle, to: w.owner.device, kind, data: kind === 'bye' ? null : { k: kind } });
      assert.equal((await a.nextEvent('signal', la.handle)).kind, kind);
    }
    a.close();
    b.close();
  });

  it('reaches one session of a device that holds several through the peer address of its signal', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    const tabs = [await connect(w, peer), await connect(w, peer), await connect(w, peer)];
    const handles = [];
    for (const t of tabs) handles.push((await lease(t, w.site, log)).handle);
    const peers: string[] = [];
    for (const [k, t] of tabs.entries()) {
      await t.call('signal', { handle: handles[k], to: 'leader', kind: 'data', data: { tab: k } });
      const ev = await a.nextEvent('signal', la.handle);
      assert.deepEqual([ev.from, ev.data], [peer.device, { tab: k }]);
      peers.push(String(ev.peer));
    }
    assert.equal(new Set(peers).size, 3, 'one address per session');
    // The reply to each address reaches that session, and only it (the first tab, which a
    // reply to the device id would never reach: that goes to the newest handle).
    await a.call('signal', { handle: la.handle, to: peers[0], kind: 'data', data: { to: 0 } });
    assert.deepEqual((await tabs[0]!.nextEvent('signal', handles[0])).data, { to: 0 });
    await a.call('signal', { handle: la.handle, to: peers[1], kind: 'data', data: { to: 1 } });
    assert.deepEqual((await tabs[1]!.nextEvent('signal', handles[1])).data, { to: 1 });
    await a.call('signal', { handle: la.handle, to: peer.device, kind: 'data', data: { to: 'device' } });
    assert.deepEqual((await tabs[2]!.nextEvent('signal', handles[2])).data, { to: 'device' }, 'a device id still means its newest handle');
    // An address whose handle is gone, or that was never made, is not found.
    await tabs[0]!.call('release', { handle: handles[0] });
    assert.equal((await a.failure('signal', { handle: la.handle, to: peers[0], kind: 'data', data: 1 })).code, 'NOT_FOUND');
    assert.equal((await a.failure('signal', { handle: la.handle, to: 'pAAAAAAAAAAAA', kind: 'data', data: 1 })).code, 'NOT_FOUND');
    assert.equal((await a.failure('signal', { handle: la.handle, to: 'p!', kind: 'data', data: 1 })).code, 'BAD_REQUEST');
    for (const c of [a, ...tabs]) c.close();
  });

  it('answers NOT_FOUND for a peer without a handle on the log, or no leader', async () => {
    const log = logName();
    const b = await connect(w, peer);
    const lb = await lease(b, w.site, log, { lead: false });
    assert.equal((await b.failure('signal', { handle: lb.handle, to: 'leader', kind: 'offer', data: {} })).code, 'NOT_FOUND');
    assert.equal((await b.failure('signal', { handle: lb.handle, to: w.owner.device, kind: 'offer', data: {} })).code, 'NOT_FOUND');
    assert.equal((await b.failure('signal', { handle: lb.handle, to: peer.device, kind: 'offer', data: {} })).code, 'NOT_FOUND', 'not to itself');
    assert.equal((await b.failure('signal', { handle: 'h0', to: 'leader', kind: 'offer', data: {} })).code, 'NOT_FOUND');
    // The owner holds a handle on another log only: still not found on this one.
    const a = await connect(w, w.owner);
    await lease(a, w.site, logName());
    assert.equal((await b.failure('signal', { handle: lb.handle, to: w.owner.device, kind: 'offer', data: {} })).code, 'NOT_FOUND');
    a.close();
    b.close();
  });

  it('refuses bad kinds, missing data and data over 64 KiB', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    const b = await connect(w, peer);
    const lb = await lease(b, w.site, log);
    const badKind = await b.failure('signal', { handle: lb.handle, to: 'leader', kind: 'shout', data: {} });
    assert.equal(badKind.code, 'BAD_REQUEST');
    assert.match(badKind.message, /kind/);
    assert.match((await b.failure('signal', { handle: lb.handle, to: 'leader', kind: 'data' })).message, /data/);
    assert.match((await b.failure('signal', { handle: lb.handle, to: 'nobody', kind: 'data', data: 1 })).message, /^to/);
    assert.equal((await b.failure('signal', { handle: lb.handle, to: 'leader', kind: 'data', data: 'x'.repeat(64 * 1024) })).code, 'TOO_LARGE');
    assert.deepEqual(await b.call('signal', { handle: lb.handle, to: 'leader', kind: 'data', data: 'x'.repeat(60 * 1024) }), { re: 7 });
    assert.equal((await a.nextEvent('signal', la.handle)).data, 'x'.repeat(60 * 1024));
    a.close();
    b.close();
  });

  it('rate-limits signals per session', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    await lease(a, w.site, log);
    const b = await connect(w, peer);
    const lb = await lease(b, w.site, log);
    const replies = await Promise.all(Array.from({ length: 600 }, () => b.request('signal', { handle: lb.handle, to: 'leader', kind: 'candidate', data: { c: 1 } })));
    const limited = replies.filter((r) => r.error?.code === 'RATE_LIMITED').length;
    // A burst of 400, then 200/s: some of the 600 are refused, never more than the 200 over the burst.
    assert.ok(limited >= 1 && limited <= 200, `${limited} of 600 rate-limited`);
    assert.equal(b.open, true);
    a.close();
    b.close();
  });
});

describe('tail: signaling to a peer that does not read', async () => {
  const w = await world({ tailLimits: { softBuffer: 256 * 1024, hardBuffer: 1024 * 1024, signalBytesPerSec: 64 * 1024 * 1024, signalBytesBurst: 64 * 1024 * 1024, signalsPerSec: 10_000, signalsBurst: 10_000 } });
  const peer = await joined(w, ['read', 'write']);

  it('refuses signals to a recipient whose queue is over the soft limit, instead of pushing it to 4408', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    const b = await connect(w, peer);
    const lb = await lease(b, w.site, log);
    a.pause(); // the leader reads nothing more
    const data = { blob: 'x'.repeat(60_000) };
    let refused: { code: string; message: string } | undefined;
    for (let i = 0; i < 2000 && refused === undefined; i++) {
      const r = await b.request('signal', { handle: lb.handle, to: 'leader', kind: 'data', data });
      if (r.error !== undefined) refused = r.error as { code: string; message: string };
    }
    assert.equal(refused?.code, 'RATE_LIMITED');
    assert.match(refused.message, /not keeping up/);
    a.resume();
    await a.call('ping'); // the leader is still connected
    assert.equal((await lease(a, w.site, log)).handle, la.handle);
    a.close();
    b.close();
  });
});
