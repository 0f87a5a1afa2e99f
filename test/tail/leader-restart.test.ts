/**
 * The leader's grace across a restart of the node: the store records who took each epoch,
 * so the node that loads the log gives that device the rest of the grace instead of
 * handing the log to whichever device leases first. A leadership released before the
 * restart gives none.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { declareGrant, loginDevice, post } from '../helpers/auth-client.js';
import { sameStoreDir, startServer } from '../helpers/server.js';
import { TailClient } from '../helpers/tail-client.js';
import { connect, joined, lease, logName, member, sleep, world, type World } from './fixture.js';

const GRACE = 1500;

describe('tail: the leader grace across a restart', () => {
  it('keeps a log for its last leader for the grace after the node restarts, unless it released', async () => {
    const w = await world({ leaseGraceMs: GRACE });
    const writer = await joined(w, ['read', 'write']);
    const back = logName('back');
    const gone = logName('gone');
    const freed = logName('freed');
    const a = await connect(w, w.owner);
    const lBack = await lease(a, w.site, back);
    const lGone = await lease(a, w.site, gone);
    const lFreed = await lease(a, w.site, freed);
    for (const l of [lBack, lGone, lFreed]) assert.equal(l.role, 'leader');
    await a.call('release', { handle: lFreed.handle });
    await w.srv.stop();

    const srv = await startServer({ dataDir: w.srv.dataDir, leaseGraceMs: GRACE });
    const w2: World = { ...w, srv, url: srv.url, wsUrl: srv.wsUrl };
    const started = performance.now();
    const b = await connect(w2, writer);
    const bBack = await lease(b, w.site, back);
    assert.equal(bBack.role, 'follower', 'the last leader keeps the log through the restart');
    assert.equal(bBack.leader, w.owner.device);
    const bGone = await lease(b, w.site, gone);
    assert.equal(bGone.role, 'follower');
    assert.equal(bGone.leader, w.owner.device);
    const bFreed = await lease(b, w.site, freed);
    assert.equal(bFreed.role, 'leader', 'a released leadership gives no grace');
    assert.ok(bFreed.epoch > lFreed.epoch);

    // The leader's device comes back within the grace and leads again, at a new epoch.
    const a2 = await connect(w2, w.owner);
    const again = await lease(a2, w.site, back);
    assert.equal(again.role, 'leader');
    assert.ok(again.epoch > lBack.epoch);
    assert.equal((await b.nextEvent('leader', bBack.handle)).leader, w.owner.device);

    // The other one never comes back: its grace ends, and the writer takes the log.
    const lapsed = await b.nextEvent('leader', bGone.handle, GRACE + 3000);
    assert.equal(lapsed.leader, null);
    assert.ok(performance.now() - started < GRACE + 1500, 'the grace counts from the start of the node');
    const took = await lease(b, w.site, gone);
    assert.equal(took.role, 'leader');
    assert.ok(took.epoch > lGone.epoch);
    a2.close();
    b.close();
  });
});

describe('tail: the leader grace of a revoked device', () => {
  it('ends at once, for a session that ended before the revocation and across a restart', async () => {
    const LONG = 20_000;
    const w = await world({ leaseGraceMs: LONG });
    const dev = await joined(w, ['read', 'write']);
    const live = logName('live');
    const stored = logName('stored');
    const d = await connect(w, dev);
    assert.equal((await lease(d, w.site, live)).role, 'leader');
    const o = await connect(w, w.owner);
    const lo = await lease(o, w.site, live);
    assert.equal(lo.role, 'follower');
    d.close();
    await d.closedWith();
    assert.equal((await lease(o, w.site, live)).leader, dev.device, 'in the grace');
    assert.equal((await post(w.url, '/revoke', { device: dev.device }, dev.access)).status, 200);
    assert.deepEqual(await o.nextEvent('leader', lo.handle, 3000), { ev: 'leader', handle: lo.handle, leader: null, epoch: lo.epoch + 1 });
    assert.equal((await lease(o, w.site, live)).role, 'leader', 'a revoked device never comes back for it');
    o.close();

    // The store recorded a leader that a restart cut off; it is revoked before the log loads again.
    const dev2 = await joined(w, ['read', 'write']);
    const d2 = await connect(w, dev2);
    assert.equal((await lease(d2, w.site, stored)).role, 'leader');
    await w.srv.stop();
    const srv = await startServer({ dataDir: w.srv.dataDir, leaseGraceMs: LONG });
    const w2: World = { ...w, srv, url: srv.url, wsUrl: srv.wsUrl };
    const login = await post<{ access: string }>(w2.url, '/refresh', { refresh: dev2.refresh, guid: 'guid-revoke-1' });
    assert.equal(login.status, 200, login.text);
    assert.equal((await post(w2.url, '/revoke', { device: dev2.device }, login.body.access)).status, 200);
    const o2 = await connect(w2, w.owner);
    assert.equal((await lease(o2, w.site, stored)).role, 'leader');
    o2.close();
  });
});

describe('tail: the leader grace of a user whose grant is revoked', () => {
  it('ends when the user can no longer write the log, and stays while another grant still lets it', async () => {
    const LONG = 20_000;
    const w = await world({ leaseGraceMs: LONG });
    const m = await member(w, ['read', 'write']);
    assert.equal((await post(w.url, '/join', { site: w.site, grant: m.grant.hash }, m.dev.access)).status, 200);
    const kept = logName('kept');
    const lost = logName('lost');
    // A second grant writes only `kept`: revoking the first leaves the user that one.
    const other = await declareGrant(w.url, w.owner, { sub: `user:${m.dev.user}`, site: w.site, logs: [kept], rights: ['read', 'write'] });
    assert.equal((await post(w.url, '/join', { site: w.site, grant: other.hash }, m.dev.access)).status, 200);
    const d = await connect(w, m.dev);
    assert.equal((await lease(d, w.site, kept)).role, 'leader');
    assert.equal((await lease(d, w.site, lost)).role, 'leader');
    const o = await connect(w, w.owner);
    const ok = await lease(o, w.site, kept);
    const ol = await lease(o, w.site, lost);
    d.close();
    await d.closedWith();
    assert.equal((await lease(o, w.site, lost)).leader, m.dev.device, 'in the grace');
    assert.equal((await post(w.url, '/revoke', { grant: m.grant.hash }, w.owner.access)).status, 200);
    assert.deepEqual(await o.nextEvent('leader', ol.handle, 3000), { ev: 'leader', handle: ol.handle, leader: null, epoch: ol.epoch + 1 });
    assert.equal((await lease(o, w.site, lost)).role, 'leader', 'the grace ended with the write right');
    const still = await lease(o, w.site, kept);
    assert.equal(still.role, 'follower', 'the other grant still lets the device write there: its grace runs');
    assert.equal(still.leader, m.dev.device);
    assert.equal(o.events.some((e) => e.ev === 'leader' && e.handle === ok.handle), false);
    o.close();
  });
});


describe('tail: the leader grace of a user whose grant is revoked, across a restart', () => {
  it('ends for a grace loaded from the store, whether the revocation comes before or after the log loads', async () => {
    const LONG = 20_000;
    const w = await world({ leaseGraceMs: LONG });
    const m = await member(w, ['read', 'write']);
    assert.equal((await post(w.url, '/join', { site: w.site, grant: m.grant.hash }, m.dev.access)).status, 200);
    const loaded = logName('loaded');
    const later = logName('later');
    const d = await connect(w, m.dev);
    assert.equal((await lease(d, w.site, loaded)).role, 'leader');
    assert.equal((await lease(d, w.site, later)).role, 'leader');
    await w.srv.stop();

    const srv = await startServer({ dataDir: w.srv.dataDir, leaseGraceMs: LONG });
    const w2: World = { ...w, srv, url: srv.url, wsUrl: srv.wsUrl };
    const o = await connect(w2, w.owner);
    // Loaded before the revocation: the grace is the member's, and ends with its write right.
    const ol = await lease(o, w.site, loaded);
    assert.equal(ol.role, 'follower');
    assert.equal(ol.leader, m.dev.device, 'the grace survived the restart');
    const owner = await post<{ access: string }>(w2.url, '/refresh', { refresh: w.owner.refresh, guid: 'guid-grace-user-1' });
    assert.equal(owner.status, 200, owner.text);
    assert.equal((await post(w2.url, '/revoke', { grant: m.grant.hash }, owner.body.access)).status, 200);
    assert.deepEqual(await o.nextEvent('leader', ol.handle, 3000), { ev: 'leader', handle: ol.handle, leader: null, epoch: ol.epoch + 1 });
    assert.equal((await lease(o, w.site, loaded)).role, 'leader', 'the grace ended with the write right');

    // Loaded after the revocation: the node remembers it and asks auth before keeping the
    // grace, so the first lease already finds the log free.
    const first = await lease(o, w.site, later);
    assert.equal(first.role, 'leader', 'no lease sees a grace its user no longer may hold');
    assert.equal(o.events.some((e) => e.ev === 'leader' && e.handle === first.handle && e.leader === m.dev.device), false);
    o.close();
  });
});

describe('tail: the leader grace of a user whose grant was revoked before the node restarted', () => {
  it('ends when the log loads after the restart: the node learns the revocation from auth', async () => {
    const LONG = 20_000;
    const w = await world({ leaseGraceMs: LONG });
    const m = await member(w, ['read', 'write']);
    assert.equal((await post(w.url, '/join', { site: w.site, grant: m.grant.hash }, m.dev.access)).status, 200);
    const log = logName('twice');
    const d = await connect(w, m.dev);
    assert.equal((await lease(d, w.site, log)).role, 'leader');
    await w.srv.stop();

    // Revoked while the restarted node has not loaded the log, then restarted again.
    const srv = await startServer({ dataDir: w.srv.dataDir, leaseGraceMs: LONG });
    const owner = await post<{ access: string }>(srv.url, '/refresh', { refresh: w.owner.refresh, guid: 'guid-grace-twice-1' });
    assert.equal(owner.status, 200, owner.text);
    assert.equal((await post(srv.url, '/revoke', { grant: m.grant.hash }, owner.body.access)).status, 200);
    await srv.stop();
    const srv2 = await startServer({ dataDir: w.srv.dataDir, leaseGraceMs: LONG });
    const login = await loginDevice(srv2.url, w.owner);
    assert.equal(login.status, 200);
    const o = await TailClient.connect(srv2.wsUrl, login.body.access);
    const first = await lease(o, w.site, log);
    assert.equal(first.role, 'leader', 'no lease sees a grace whose user lost the write right before the restart');
    o.close();
  });

  it('ends on a node that has not had auth\'s revocation list yet: it cannot know, so it asks, and auth does not answer', async () => {
    const LONG = 20_000;
    const w = await world({ leaseGraceMs: LONG });
    const m = await member(w, ['read', 'write']);
    assert.equal((await post(w.url, '/join', { site: w.site, grant: m.grant.hash }, m.dev.access)).status, 200);
    const log = logName('unknown');
    const d = await connect(w, m.dev);
    assert.equal((await lease(d, w.site, log)).role, 'leader');
    await w.srv.stop();
    // Revoked through an auth node whose bus reaches no tail node.
    const authOnly = await startServer({ dataDir: sameStoreDir(w.srv.dataDir), roles: ['auth'] });
    const owner = await loginDevice(authOnly.url, w.owner);
    assert.equal(owner.status, 200);
    assert.equal((await post(authOnly.url, '/revoke', { grant: m.grant.hash }, owner.body.access)).status, 200);
    // A tail node on the store with no auth on its bus: it never gets the list.
    const tailOnly = await startServer({ dataDir: sameStoreDir(w.srv.dataDir), roles: ['tail'], leaseGraceMs: LONG });
    const started = Date.now();
    // Tokens issued after it began listening are taken (iat has whole seconds; a margin of 2 s).
    await sleep(Math.max(0, started + 3100 - Date.now()));
    const fresh = await loginDevice(authOnly.url, w.owner);
    assert.equal(fresh.status, 200);
    const t = await post<{ token: string }>(authOnly.url, '/lease', { site: w.site, log }, fresh.body.access);
    assert.equal(t.status, 200, t.text);
    const o = await TailClient.connect(tailOnly.wsUrl, fresh.body.access);
    const first = await lease(o, w.site, log, { token: t.body.token });
    assert.equal(first.role, 'leader', 'a grace the node cannot check with auth is not kept');
    o.close();
    await tailOnly.stop();
    await authOnly.stop();
  });
});
