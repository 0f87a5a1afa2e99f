import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { join } from 'node:path';
import { SUBJECTS, type AccessChanged, type AccessReply, type JoinReply, type RevokeEvent, type RevokedList } from '../../src/protocol/bus-messages.js';
import { MAX_LISTED_ACCESS } from '../../src/auth/bus-handlers.js';
import { openSqliteAuthStore } from '../../src/auth/index.js';
import { publishRevoke, REVOKE_PAIRS_PER_MESSAGE } from '../../src/auth/session.js';
import { createECDH, randomBytes } from 'node:crypto';
import { call, createSite, declareGrant, post, signGrant, signupDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';

describe('auth on the bus', async () => {
  const srv = await startServer();
  const { url, server } = srv;
  const bus = server.bus;
  const owner = await signupDevice(url);
  const site = await createSite(url, owner.access);

  it('answers dg.auth.access: owner, joined member (with logs and expiry), and needproof', async () => {
    const member = await signupDevice(url);
    const exp = Math.floor(Date.now() / 1000) + 600;
    const g = await declareGrant(url, owner, { sub: `user:${member.user}`, site, logs: ['chat', 'docs'], rights: ['write'], exp });
    const ask = (who: typeof owner, log: string) => bus.request<AccessReply>(SUBJECTS.authAccess, { user: who.user, device: who.device, site, log });

    assert.deepEqual(await ask(owner, 'anything'), { ok: true, allowed: true, rights: ['read', 'write', 'admin'], logs: ['*'], expiresAt: null });
    assert.deepEqual(await ask(member, 'chat'), { ok: true, allowed: false }, 'not joined yet');
    assert.equal((await post(url, '/join', { site, grant: g.hash }, member.access)).status, 200);
    assert.deepEqual(await ask(member, 'chat'), { ok: true, allowed: true, rights: ['read', 'write'], logs: ['chat', 'docs'], expiresAt: exp * 1000 });
    assert.deepEqual(await ask(member, 'other'), { ok: true, allowed: false });
  });

  it('answers dg.auth.join like POST /join, and records the access', async () => {
    const member = await signupDevice(url);
    const g = signGrant(owner.privateKey, { iss: owner.device, sub: `device:${member.device}`, site, logs: ['*'], rights: ['read'] });
    const r = await bus.request<JoinReply>(SUBJECTS.authJoin, { user: member.user, device: member.device, grant: g.jws });
    assert.deepEqual(r, { ok: true, site, logs: ['*'], rights: ['read'], expiresAt: null });
    const lease = await post(url, '/lease', { site, log: 'chat' }, member.access);
    assert.equal(lease.status, 200);
    // The grant names another device: refused.
    const other = await signupDevice(url);
    const refused = await bus.request<JoinReply>(SUBJECTS.authJoin, { user: other.user, device: other.device, grant: g.hash });
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.error.code, 'FORBIDDEN');
  });

  it('publishes dg.tail.access after every join that records access, over HTTP and dg.auth.join, and after no other', async () => {
    const seen: AccessChanged[] = [];
    const sub = bus.subscribe(SUBJECTS.tailAccess, (m) => void seen.push(m as AccessChanged));
    try {
      const member = await signupDevice(url);
      const g = await declareGrant(url, owner, { sub: `user:${member.user}`, site, logs: ['*'], rights: ['read'] });
      const t0 = Date.now();
      assert.equal((await post(url, '/join', { site, grant: g.hash }, member.access)).status, 200);
      const w = signGrant(owner.privateKey, { iss: owner.device, sub: `device:${member.device}`, site, logs: ['*'], rights: ['write'] });
      assert.equal((await bus.request<JoinReply>(SUBJECTS.authJoin, { user: member.user, device: member.device, grant: w.jws })).ok, true);
      // Refused joins change nothing, and say nothing.
      const stranger = await signupDevice(url);
      assert.equal((await post(url, '/join', { site, grant: g.hash }, stranger.access)).status, 403);
      assert.equal((await bus.request<JoinReply>(SUBJECTS.authJoin, { user: stranger.user, device: stranger.device, grant: w.jws })).ok, false);
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(seen.map((e) => ({ user: e.user, site: e.site })), [{ user: member.user, site }, { user: member.user, site }]);
      for (const e of seen) assert.ok(e.at >= t0 && e.at <= Date.now(), `at ${e.at}`);
    } finally {
      sub.unsubscribe();
    }
  });

  it('validates bus payloads and answers errors, never crashing', async () => {
    const bad: [string, unknown, string][] = [
      [SUBJECTS.authAccess, { user: owner.user, device: owner.device, site }, 'BAD_REQUEST'],
      [SUBJECTS.authAccess, null, 'BAD_REQUEST'],
      [SUBJECTS.authAccess, { user: owner.user, device: 'x', site, log: 'a' }, 'BAD_REQUEST'],
      [SUBJECTS.authAccess, { user: owner.user, device: owner.device, site: 'nosuchsite', log: 'a' }, 'NOT_FOUND'],
      [SUBJECTS.authAccess, { user: 'someoneelse', device: owner.device, site, log: 'a' }, 'UNAUTHORIZED'],
      [SUBJECTS.authJoin, { user: owner.user, device: owner.device, grant: 42 }, 'BAD_REQUEST'],
      [SUBJECTS.authJoin, { user: owner.user, device: owner.device, grant: 'x.y.z'.padEnd(50, 'a') }, 'BAD_REQUEST'],
    ];
    for (const [subject, msg, code] of bad) {
      const r = await bus.request<{ ok: boolean; error?: { code: string } }>(subject, msg);
      assert.equal(r.ok, false, JSON.stringify(msg));
      assert.equal(r.error?.code, code, JSON.stringify(msg));
    }
  });

  it('drops a push endpoint on dg.auth.push-gone only while it is still the device\'s', async () => {
    const d = await signupDevice(url);
    const keys = { p256dh: createECDH('prime256v1').generateKeys().toString('base64url'), auth: randomBytes(16).toString('base64url') };
    const endpoint = (n: number) => `https://fcm.googleapis.com/fcm/send/device-${d.device.slice(0, 8)}-${n}`;
    type Profile = { version: number; push: { device: string; endpoint: string }[] };
    const profile = async () => (await call<Profile>(url, 'GET', '/profile', { token: d.access })).body;
    const push = async (n: number) => {
      const p = await profile();
      const r = await post(url, '/profile', { version: p.version, changes: [{ op: 'push', device: d.device, subscription: { endpoint: endpoint(n), keys } }] }, d.access);
      assert.equal(r.status, 200);
    };
    // Waits for the bus to deliver (pub is fire-and-forget), then reads the profile.
    const afterGone = async (msg: unknown, expectVersion: number) => {
      bus.publish(SUBJECTS.authPushGone, msg);
      for (let i = 0; i < 100 && (await profile()).version !== expectVersion; i++) await new Promise((r) => setTimeout(r, 20));
      return profile();
    };
    await push(1);
    await push(2); // the browser renewed its subscription: endpoint 1 is no longer the device's
    const v = (await profile()).version;
    let p = await afterGone({ user: d.user, device: d.device, endpoint: endpoint(1) }, v + 1);
    assert.equal(p.version, v, 'an old endpoint called gone leaves the renewed one alone');
    assert.deepEqual(p.push, [{ device: d.device, endpoint: endpoint(2) }]);
    for (const bad of [null, 'x', { user: d.user, device: d.device }, { user: d.user, device: 'short', endpoint: endpoint(2) }, { user: d.user, device: d.device, endpoint: 7 }]) {
      bus.publish(SUBJECTS.authPushGone, bad);
    }
    p = await afterGone({ user: d.user, device: d.device, endpoint: endpoint(2) }, v + 1);
    assert.equal(p.version, v + 1, 'dropping it is a new version of the profile');
    assert.deepEqual(p.push, []);
    p = await afterGone({ user: d.user, device: d.device, endpoint: endpoint(2) }, v + 2);
    assert.equal(p.version, v + 1, 'a repeated message changes nothing');
  });

  it('lists recent revocations on dg.auth.revoked', async () => {
    const d = await signupDevice(url);
    const before = await bus.request<RevokedList>(SUBJECTS.authRevoked, {});
    assert.equal(before.ok, true);
    assert.ok(!before.devices.includes(d.device));
    assert.equal((await post(url, '/revoke', { device: d.device }, d.access)).status, 200);
    const after = await bus.request<RevokedList>(SUBJECTS.authRevoked, {});
    assert.ok(after.devices.includes(d.device));
    assert.ok(after.families.length > before.families.length, 'the device families are revoked with it');
  });

  it('lists only the newest lost access pairs, saying from when older ones may be missing', async () => {
    // Rows written through a second connection to auth's database, as a large site's would be.
    const store = openSqliteAuthStore(join(srv.dataDir, 'auth.db'));
    const site2 = `big${randomBytes(6).toString('hex')}`;
    const rows = Array.from({ length: MAX_LISTED_ACCESS + 2 }, (_, i) => ({
      user: `u${i}x${randomBytes(4).toString('hex')}`,
      site: site2,
      grant: 'g'.repeat(43),
      logs: ['*'],
      rights: ['read' as const],
      expiresAt: null,
      createdAt: Date.now(),
    }));
    const t = Date.now();
    try {
      for (const r of rows) assert.equal(await store.putAccess(r, { grants: [], devices: [], anyOf: [] }), true);
      assert.equal(await store.deleteAccess(rows.slice(0, 2), t - 10), 2);
      assert.equal(await store.deleteAccess(rows.slice(2), t), MAX_LISTED_ACCESS);
    } finally {
      await store.close();
    }
    const list = await bus.request<RevokedList>(SUBJECTS.authRevoked, {});
    assert.equal(list.access?.length, MAX_LISTED_ACCESS);
    assert.ok(list.access?.every((a) => a.site === site2), 'the newest ones');
    assert.equal(list.accessTruncatedAt, t - 10, 'the newest pair left out');
  });

  it('sends a revocation of many pairs in several dg.tail.revoke messages', async () => {
    const events: RevokeEvent[] = [];
    const sub = bus.subscribe(SUBJECTS.tailRevoke, (m) => void events.push(m as RevokeEvent));
    const access = Array.from({ length: 2 * REVOKE_PAIRS_PER_MESSAGE + 1 }, (_, i) => ({ user: `u${i}`, site: 's', at: 1 }));
    const log = { warn: () => undefined };
    publishRevoke({ deps: { bus, log } } as unknown as Parameters<typeof publishRevoke>[0], { reason: 'grant', access });
    await new Promise((r) => setTimeout(r, 50));
    sub.unsubscribe();
    assert.deepEqual(events.map((e) => e.access?.length), [REVOKE_PAIRS_PER_MESSAGE, REVOKE_PAIRS_PER_MESSAGE, 1]);
    assert.deepEqual(events.flatMap((e) => e.access ?? []), access, 'every pair once, in order');
  });
});
