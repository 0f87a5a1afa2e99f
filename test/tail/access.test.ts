import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SUBJECTS, type PresenceMessage } from '../../src/protocol/bus-messages.js';
import { declareGrant, loginDevice, post, signupDevice } from '../helpers/auth-client.js';
import { sameStoreDir, startServer } from '../helpers/server.js';
import { entry, TailClient } from '../helpers/tail-client.js';
import { connect, joined, lease, logName, member, revokeGrantUnannounced, sleep, until, world, type World } from './fixture.js';

/** A member with the read right who joined over HTTP, and a lease token for `log` minted now. */
async function readerWithLeaseToken(w: World, log: string) {
  const m = await member(w, ['read']);
  assert.equal((await post(w.url, '/join', { site: w.site, grant: m.grant.hash }, m.dev.access)).status, 200);
  const t = await post<{ token: string }>(w.url, '/lease', { site: w.site, log }, m.dev.access);
  assert.equal(t.status, 200, t.text);
  return { m, t };
}

describe('tail: access', async () => {
  const w = await world();

  it('answers needproof without access, then attest joins the grant and the lease succeeds', async () => {
    const m = await member(w, ['read', 'write'], ['notes', 'chat']);
    const c = await connect(w, m.dev);
    assert.deepEqual(await c.call('lease', { site: w.site, log: 'notes' }), { re: 2, needproof: true });
    const att = await c.call('attest', { grant: m.grant.jws });
    assert.deepEqual(att, { re: 3, site: w.site, logs: ['notes', 'chat'], rights: ['read', 'write'] });
    const l = await lease(c, w.site, 'notes');
    assert.equal(l.role, 'leader');
    assert.deepEqual(await c.call('lease', { site: w.site, log: 'other' }), { re: 5, needproof: true });
    c.close();
  });

  it('runs a lease sent right after an attest with the access the attest gave', async () => {
    const m = await member(w, ['read', 'write']);
    const c = await connect(w, m.dev);
    const [att, l] = await Promise.all([c.request('attest', { grant: m.grant.jws }), c.request('lease', { site: w.site, log: logName() })]);
    assert.equal(att.error, undefined, JSON.stringify(att));
    assert.equal(l.role, 'leader', JSON.stringify(l));
    c.close();
  });

  it('takes the rights of each log from auth, never from the answer for another log', async () => {
    // Read on every log, write on one: leading that one must not make the others writable.
    const m = await member(w, ['read']);
    assert.equal((await post(w.url, '/join', { site: w.site, grant: m.grant.hash }, m.dev.access)).status, 200);
    const notes = logName('notes');
    const secret = logName('secret');
    const g = await declareGrant(w.url, w.owner, { sub: `user:${m.dev.user}`, site: w.site, logs: [notes], rights: ['write'] });
    assert.equal((await post(w.url, '/join', { site: w.site, grant: g.hash }, m.dev.access)).status, 200);
    const c = await connect(w, m.dev);
    const ln = await lease(c, w.site, notes);
    assert.equal(ln.role, 'leader', 'write on notes');
    const ls = await lease(c, w.site, secret);
    assert.equal(ls.role, 'follower', 'read only on the other logs');
    assert.equal((await c.failure('write', { handle: ls.handle, at: 0, entries: [entry('forged')] })).code, 'NOT_LEADER');
    // The other order, in a fresh session: a read answer does not take write away from notes.
    const c2 = await connect(w, m.dev);
    const notes2 = logName('notes');
    const g2 = await declareGrant(w.url, w.owner, { sub: `user:${m.dev.user}`, site: w.site, logs: [notes2], rights: ['write'] });
    assert.equal((await c2.call('attest', { grant: g2.jws })).site, w.site);
    assert.equal((await lease(c2, w.site, logName('other'))).role, 'follower');
    assert.equal((await lease(c2, w.site, notes2)).role, 'leader');
    c.close();
    c2.close();
  });

  it('answers attest of a bad grant with the error auth gives', async () => {
    const m = await member(w, ['read']);
    const c = await connect(w, m.dev);
    const stranger = await signupDevice(w.url);
    const forged = await declareGrant(w.url, stranger, { sub: `user:${m.dev.user}`, site: w.site, logs: ['*'], rights: ['read'] }).catch(() => null);
    assert.equal(forged, null, 'a stranger cannot declare a grant on a site it does not own');
    const err = await c.failure('attest', { grant: 'not-a-grant' });
    assert.ok(['BAD_REQUEST', 'NOT_FOUND', 'FORBIDDEN'].includes(err.code), err.code);
    assert.equal(c.open, true);
    c.close();
  });

  it('accepts a lease token from auth for exactly its device and log', async () => {
    const dev = await joined(w, ['read', 'write'], ['tok']);
    const r = await post<{ token: string }>(w.url, '/lease', { site: w.site, log: 'tok' }, dev.access);
    assert.equal(r.status, 200, r.text);
    const c = await connect(w, dev);
    const l = await lease(c, w.site, 'tok', { token: r.body.token });
    assert.equal(l.role, 'leader');
    assert.equal((await c.failure('lease', { site: w.site, log: 'other', token: r.body.token })).code, 'UNAUTHORIZED');
    const other = await connect(w, w.owner);
    assert.equal((await other.failure('lease', { site: w.site, log: 'tok', token: r.body.token })).code, 'UNAUTHORIZED');
    assert.equal((await other.failure('lease', { site: w.site, log: 'tok', token: 'x.y.z' })).code, 'UNAUTHORIZED');
    assert.equal(other.open, true, 'a bad lease token does not end the session');
    c.close();
    other.close();
  });

  it('kills the handles of a revoked grant with a revoke event; the session goes on', async () => {
    const m = await member(w, ['read']);
    await post(w.url, '/join', { site: w.site, grant: m.grant.hash }, m.dev.access);
    const log = logName();
    const c = await connect(w, m.dev);
    const l = await lease(c, w.site, log);
    assert.equal(l.role, 'follower');
    const r = await post(w.url, '/revoke', { grant: m.grant.hash }, w.owner.access);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(await c.nextEvent('revoke'), { ev: 'revoke', handle: l.handle, reason: 'grant' });
    assert.equal((await c.failure('read', { handle: l.handle, from: 0 })).code, 'NOT_FOUND');
    assert.deepEqual(await c.call('lease', { site: w.site, log }), { re: 4, needproof: true });
    assert.deepEqual(await c.call('ping'), { re: 5 });
    c.close();
  });

  it('leaves no live handle when a grant is revoked while leases of new logs are in flight', async () => {
    const m = await member(w, ['read']);
    await post(w.url, '/join', { site: w.site, grant: m.grant.hash }, m.dev.access);
    const c = await connect(w, m.dev);
    await lease(c, w.site, logName()); // the access answer is cached: the leases below do not ask
    const pending = Array.from({ length: 60 }, () => c.request('lease', { site: w.site, log: logName('race') }));
    const r = await post(w.url, '/revoke', { grant: m.grant.hash }, w.owner.access);
    assert.equal(r.status, 200, r.text);
    const replies = await Promise.all(pending);
    const granted = replies.filter((x) => typeof x.handle === 'string').map((x) => x.handle as string);
    for (const x of replies) assert.ok(typeof x.handle === 'string' || x.needproof === true, JSON.stringify(x));
    // Every handle the leases gave is dead by now: each got its revoke event, none still reads.
    await until(() => granted.every((h) => c.events.some((e) => e.ev === 'revoke' && e.handle === h)), 5000, 'a revoke event for every handle');
    for (const h of granted) assert.equal((await c.failure('read', { handle: h, from: 0 })).code, 'NOT_FOUND');
    c.close();
  });

  it('no longer takes a lease token minted before its grant was revoked: auth is asked', async () => {
    const log = logName();
    const { m, t } = await readerWithLeaseToken(w, log);
    const c = await connect(w, m.dev);
    const l = await lease(c, w.site, log, { token: t.body.token });
    assert.equal(l.role, 'follower');
    assert.equal((await post(w.url, '/revoke', { grant: m.grant.hash }, w.owner.access)).status, 200);
    assert.deepEqual(await c.nextEvent('revoke'), { ev: 'revoke', handle: l.handle, reason: 'grant' });
    // The token is still within its lifetime and well signed, but it predates the revocation.
    const again = await c.call<{ needproof?: boolean; handle?: string }>('lease', { site: w.site, log, token: t.body.token });
    assert.equal(again.needproof, true);
    assert.equal(again.handle, undefined);
    // A new grant gives access again, and a token minted after it is taken as before.
    const g2 = await declareGrant(w.url, w.owner, { sub: `user:${m.dev.user}`, site: w.site, logs: [log], rights: ['read'] }); // not the revoked grant's claims
    assert.equal((await post(w.url, '/join', { site: w.site, grant: g2.hash }, m.dev.access)).status, 200);
    await new Promise((r) => setTimeout(r, 1100)); // a token's iat has whole seconds
    const t2 = await post<{ token: string }>(w.url, '/lease', { site: w.site, log }, m.dev.access);
    assert.equal(t2.status, 200, t2.text);
    assert.equal((await lease(c, w.site, log, { token: t2.body.token })).role, 'follower');
    c.close();
  });

  it('learns a grant revocation that never came over the bus from auth\'s list, and kills the handle', async () => {
    // A node of its own that asks auth for the recent revocations every second.
    const v = await world({ tailLimits: { revokedPollMs: 1000 } });
    const log = logName();
    const { m, t } = await readerWithLeaseToken(v, log);
    const c = await connect(v, m.dev);
    const l = await lease(c, v.site, log);
    assert.equal(l.role, 'follower');
    // The revocation is stored, but no dg.tail.revoke is published.
    assert.deepEqual(await revokeGrantUnannounced(v, m.grant.hash), [m.dev.user]);
    assert.deepEqual(await c.nextEvent('revoke', l.handle, 5000), { ev: 'revoke', handle: l.handle, reason: 'grant' });
    assert.equal((await c.failure('read', { handle: l.handle, from: 0 })).code, 'NOT_FOUND');
    // The lease token minted before the revocation proves nothing any more.
    const again = await c.call<{ needproof?: boolean; handle?: string }>('lease', { site: v.site, log, token: t.body.token });
    assert.equal(again.needproof, true);
    c.close();
    await v.srv.stop();
  });

  it('closes every session of a revoked device with a revoke event and 4403, and refuses its token', async () => {
    const dev = await signupDevice(w.url);
    const c1 = await TailClient.connect(w.wsUrl, dev.access);
    const c2 = await TailClient.connect(w.wsUrl, dev.access);
    const bystander = await connect(w, w.owner);
    const r = await post(w.url, '/revoke', { device: dev.device }, dev.access);
    assert.equal(r.status, 200, r.text);
    for (const c of [c1, c2]) {
      assert.deepEqual(await c.nextEvent('revoke'), { ev: 'revoke', reason: 'device' });
      assert.equal((await c.closedWith()).code, 4403);
    }
    const again = await TailClient.open(w.wsUrl);
    assert.equal((await again.failure('connect', { token: dev.access })).code, 'UNAUTHORIZED');
    assert.equal((await again.closedWith()).code, 4401);
    assert.deepEqual(await bystander.call('ping'), { re: 2 });
    bystander.close();
  });

  it('closes the sessions of a refresh family revoked for reuse with 4403', async () => {
    const dev = await signupDevice(w.url);
    const c = await TailClient.connect(w.wsUrl, dev.access);
    const first = await post(w.url, '/refresh', { refresh: dev.refresh, guid: 'guid-0001' });
    assert.equal(first.status, 200, first.text);
    const reuse = await post<{ error: { code: string } }>(w.url, '/refresh', { refresh: dev.refresh, guid: 'guid-0002' });
    assert.equal(reuse.body.error.code, 'REFRESH_REUSED');
    assert.deepEqual(await c.nextEvent('revoke'), { ev: 'revoke', reason: 'family' });
    assert.equal((await c.closedWith()).code, 4403);
  });

  it('closes a session extended with a token of another sign-in when either family is revoked', async () => {
    const dev = await signupDevice(w.url);
    const second = await loginDevice(w.url, dev);
    assert.equal(second.status, 200, second.text);
    const c = await TailClient.connect(w.wsUrl, dev.access);
    await c.call('connect', { token: second.body.access }); // a newer sign-in's token extends it
    // Reusing the first sign-in's refresh token revokes that family: the session goes.
    assert.equal((await post(w.url, '/refresh', { refresh: dev.refresh, guid: 'guid-0001' })).status, 200);
    assert.equal((await post(w.url, '/refresh', { refresh: dev.refresh, guid: 'guid-0002' })).status, 401);
    assert.deepEqual(await c.nextEvent('revoke'), { ev: 'revoke', reason: 'family' });
    assert.equal((await c.closedWith()).code, 4403);
  });

  it('revokes a handle whose grant expires', async () => {
    const m = await member(w, ['read']);
    const exp = Math.floor(Date.now() / 1000) + 2;
    const g = await declareGrant(w.url, w.owner, { sub: `user:${m.dev.user}`, site: w.site, logs: ['*'], rights: ['read'], exp });
    const c = await connect(w, m.dev);
    await c.call('attest', { grant: g.jws });
    const l = await lease(c, w.site, logName());
    assert.deepEqual(await c.nextEvent('revoke', l.handle, 6000), { ev: 'revoke', handle: l.handle, reason: 'expired' });
    c.close();
  });

  it('tells the other holders when a follower keeps reading but loses the write right', async () => {
    const m = await member(w, ['read']);
    assert.equal((await post(w.url, '/join', { site: w.site, grant: m.grant.hash }, m.dev.access)).status, 200);
    const gw = await declareGrant(w.url, w.owner, { sub: `user:${m.dev.user}`, site: w.site, logs: ['*'], rights: ['write'] });
    assert.equal((await post(w.url, '/join', { site: w.site, grant: gw.hash }, m.dev.access)).status, 200);
    const log = logName();
    const leader = await connect(w, w.owner);
    const ll = await lease(leader, w.site, log);
    const c = await connect(w, m.dev);
    const l = await lease(c, w.site, log, { lead: false });
    assert.deepEqual(await leader.nextEvent('peer', ll.handle), { ev: 'peer', handle: ll.handle, device: m.dev.device, state: 'join', write: true });
    assert.equal((await post(w.url, '/revoke', { grant: gw.hash }, w.owner.access)).status, 200);
    // The leader takes relayed entries only from writers: it must hear that this one is no longer one.
    assert.deepEqual(await leader.nextEvent('peer', ll.handle, 3000), { ev: 'peer', handle: ll.handle, device: m.dev.device, state: 'join', write: false });
    assert.equal(c.events.some((e) => e.ev === 'revoke'), false, 'the handle still reads');
    assert.equal((await c.call<{ length: number }>('read', { handle: l.handle, from: 0 })).length, 0);
    leader.close();
    c.close();
  });

  it('delivers user events to the sessions of the user, or of one device', async () => {
    const dev = await signupDevice(w.url);
    const a = await TailClient.connect(w.wsUrl, dev.access);
    const b = await TailClient.connect(w.wsUrl, dev.access);
    const other = await connect(w, w.owner);
    w.srv.server.bus.publish(SUBJECTS.tailUser, { user: dev.user, event: { ev: 'device', device: w.owner.device, name: 'new phone' } });
    for (const c of [a, b]) assert.deepEqual(await c.nextEvent('device'), { ev: 'device', device: w.owner.device, name: 'new phone' });
    w.srv.server.bus.publish(SUBJECTS.tailUser, { user: dev.user, device: dev.device, event: { ev: 'envelope', id: 'e1', from: w.owner.device } });
    assert.deepEqual(await a.nextEvent('envelope'), { ev: 'envelope', id: 'e1', from: w.owner.device });
    w.srv.server.bus.publish(SUBJECTS.tailUser, { user: dev.user, device: 'someone-else', event: { ev: 'envelope', id: 'e2', from: w.owner.device } });
    w.srv.server.bus.publish(SUBJECTS.tailUser, { user: dev.user, event: { ev: 'bogus' } });
    assert.deepEqual(await a.call('ping'), { re: 2 });
    assert.deepEqual(a.events, []);
    assert.equal(other.events.length, 0);
    for (const c of [a, b, other]) c.close();
  });

  it('publishes presence when a user comes online and goes offline', async () => {
    const seen: PresenceMessage[] = [];
    const sub = w.srv.server.bus.subscribe(SUBJECTS.notifyPresence, (m) => void seen.push(m as PresenceMessage));
    const dev = await signupDevice(w.url);
    const a = await TailClient.connect(w.wsUrl, dev.access);
    const b = await TailClient.connect(w.wsUrl, dev.access);
    await until(() => seen.some((p) => !p.full && p.online.includes(dev.user)), 3000, 'online');
    a.close();
    await b.call('ping');
    assert.equal(seen.filter((p) => !p.full && p.offline.includes(dev.user)).length, 0, 'still online with one session');
    b.close();
    await until(() => seen.some((p) => !p.full && p.offline.includes(dev.user)), 3000, 'offline');
    assert.equal(seen.filter((p) => !p.full && p.online.includes(dev.user)).length, 1);
    assert.equal(seen[0]?.node, 'tail-1');
    sub.unsubscribe();
  });
});

describe('tail: access while auth is unreachable', async () => {
  it('refuses tokens issued before it started until it has the revocation list, and answers lease UNAVAILABLE with no auth on its bus', async () => {
    const w = await world();
    const log = logName();
    // Before the tail-only node starts: a device is revoked, and a lease token is minted.
    const gone = await signupDevice(w.url);
    assert.equal((await post(w.url, '/revoke', { device: gone.device }, gone.access)).status, 200);
    const early = await post<{ token: string }>(w.url, '/lease', { site: w.site, log }, w.owner.access);
    const tailOnly = await startServer({ dataDir: sameStoreDir(w.srv.dataDir), roles: ['tail'] });
    const started = Date.now();
    // It cannot know of that revocation: no token issued before it listened is taken.
    const revoked = await TailClient.open(tailOnly.wsUrl);
    const refused = await revoked.failure('connect', { token: gone.access });
    assert.equal(refused.code, 'UNAVAILABLE');
    assert.match(refused.message, /revocation list/);
    assert.equal((await revoked.failure('connect', { token: w.owner.access })).code, 'UNAVAILABLE', 'nor any other token of before');
    revoked.close();
    // Tokens issued after it listened (iat has whole seconds; a margin of 2 s) are taken.
    await sleep(Math.max(0, started + 3100 - Date.now()));
    const fresh = await loginDevice(w.url, w.owner);
    assert.equal(fresh.status, 200);
    const c = await TailClient.connect(tailOnly.wsUrl, fresh.body.access);
    // The reply names no internal subject (the log has it).
    assert.deepEqual(await c.failure('lease', { site: w.site, log }), { code: 'UNAVAILABLE', message: 'auth unreachable; retry shortly' });
    assert.deepEqual(await c.failure('attest', { grant: 'x'.repeat(43) + '.y.z' }), { code: 'UNAVAILABLE', message: 'auth unreachable; retry shortly' });
    assert.equal((await c.failure('attest', { grant: 'x' })).code, 'BAD_REQUEST', 'a malformed grant is answered at once');
    // A lease token from before it listened is checked with auth, which does not answer.
    assert.equal((await c.failure('lease', { site: w.site, log, token: early.body.token })).code, 'UNAVAILABLE');
    // A later lease token needs no round trip to auth.
    const t = await post<{ token: string }>(w.url, '/lease', { site: w.site, log }, fresh.body.access);
    const l = await lease(c, w.site, log, { token: t.body.token });
    assert.equal(l.role, 'leader');
    assert.equal((await c.call('write', { handle: l.handle, at: 0, entries: [entry('x')] })).length, 1);
    c.close();
  });
});
