/**
 * What a device revocation reaches: every site whose key the device may hold is marked for
 * rotation (grants naming its user, joined or not, and grants its user issued through an
 * unjoined proof), and a profile update racing the revocation leaves nothing of the device.
 */
import assert from 'node:assert/strict';
import { createECDH, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { SqliteAuthStore } from '../../src/auth/sqlite/store.js';
import type { ProfileReply } from '../../src/protocol/auth-schemas.js';
import { createSite, declareGrant, get, loginDevice, post, signupDevice, type SignedUpDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { addDevice, rotationRequired } from './db.js';

type ErrorBody = { error: { code: string; message: string } };
type Members = { members: { user: string }[] };

describe('auth: what a device revocation reaches', async () => {
  const { url, dataDir } = await startServer();

  /** A second device of `of`'s user, logged in. */
  async function secondDevice(of: SignedUpDevice): Promise<SignedUpDevice> {
    const keys = addDevice(dataDir, of.user);
    const r = await loginDevice(url, keys);
    assert.equal(r.status, 200, r.text);
    return { ...keys, user: r.body.user, access: r.body.access, refresh: r.body.refresh, expiresIn: r.body.expiresIn };
  }

  // docs/protocol.md "POST /auth/v1/revoke": `rotate` lists every site the user owns or could
  // read, and each is marked rotationRequired. A user named by a declared grant is a member
  // (GET /sites/:site/members) and is sent the site key with the grant, before any join; its
  // revoked device holds that key, so the site must rotate.
  it('marks for rotation the sites whose declared grants name the revoked device’s user, joined or not', async () => {
    const owner = await signupDevice(url);
    const site = await createSite(url, owner.access);
    const bySubject = await createSite(url, owner.access);
    const member = await signupDevice(url);
    const other = await secondDevice(member);
    await declareGrant(url, owner, { sub: `user:${member.user}`, site, logs: ['*'], rights: ['read'] });
    await declareGrant(url, owner, { sub: `device:${member.device}`, site: bySubject, logs: ['*'], rights: ['read'] });
    const listed = await get<Members>(url, `/sites/${site}/members`, owner.access);
    assert.ok(listed.body.members.some((m) => m.user === member.user), 'a member, whom the site key reaches');

    const r = await post<{ rotate: string[] } & ErrorBody>(url, '/revoke', { device: member.device }, other.access);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.rotate, [site, bySubject].sort());
    assert.equal(rotationRequired(dataDir, site), true);
    assert.equal(rotationRequired(dataDir, bySubject), true);
    assert.equal((await get<{ rotationRequired: boolean }>(url, `/sites/${site}`, owner.access)).body.rotationRequired, true);
  });

  it('marks for rotation the sites where the revoked device’s user is an admin through a proof it never joined', async () => {
    const owner = await signupDevice(url);
    const site = await createSite(url, owner.access);
    const admin = await signupDevice(url);
    const other = await secondDevice(admin);
    const proof = await declareGrant(url, owner, { sub: `user:${admin.user}`, site, logs: ['*'], rights: ['admin'] });
    const friend = await signupDevice(url);
    await declareGrant(url, admin, { sub: `user:${friend.user}`, site, logs: ['*'], rights: ['read'], prf: proof.hash });

    const r = await post<{ rotate: string[] } & ErrorBody>(url, '/revoke', { device: admin.device }, other.access);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.rotate, [site]);
    assert.equal(rotationRequired(dataDir, site), true);
  });

  // docs/protocol.md "POST /auth/v1/profile": revoking a device removes its subscriptions and
  // push endpoint. An update that checked the device while it was live and writes after the
  // revocation has swept must not put them back: notify would push to the revoked device. The
  // pause stands for a store that answers slowly (PostgreSQL), where the two interleave so.
  it('leaves no subscription or push endpoint of a device revoked while an update naming it was written', async () => {
    const me = await signupDevice(url);
    const other = await secondDevice(me);
    const site = await createSite(url, me.access);
    const keys = { p256dh: createECDH('prime256v1').generateKeys().toString('base64url'), auth: randomBytes(16).toString('base64url') };
    const changes = [
      { op: 'join', device: other.device, site },
      { op: 'push', device: other.device, subscription: { endpoint: `https://fcm.googleapis.com/fcm/send/${randomBytes(8).toString('hex')}`, keys } },
    ];
    const write = Object.getOwnPropertyDescriptor(SqliteAuthStore.prototype, 'putProfile') as PropertyDescriptor;
    const putProfile = write.value as SqliteAuthStore['putProfile'];
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    let reached = () => {};
    const paused = new Promise<void>((r) => (reached = r));
    Object.defineProperty(SqliteAuthStore.prototype, 'putProfile', {
      ...write,
      value: async function (this: SqliteAuthStore, ...args: Parameters<SqliteAuthStore['putProfile']>) {
        reached();
        await gate;
        return putProfile.apply(this, args);
      },
    });
    let updated;
    try {
      const updating = post<{ ok: boolean }>(url, '/profile', { version: 0, changes }, me.access);
      await paused;
      Object.defineProperty(SqliteAuthStore.prototype, 'putProfile', write);
      const r = await post<ErrorBody>(url, '/revoke', { device: other.device }, me.access);
      assert.equal(r.status, 200, r.text);
      release();
      updated = await updating;
    } finally {
      Object.defineProperty(SqliteAuthStore.prototype, 'putProfile', write);
      release();
    }
    assert.equal(updated.status, 200, updated.text);
    const p = await get<ProfileReply>(url, '/profile', me.access);
    assert.deepEqual(p.body.subscriptions.filter((s) => s.device === other.device), [], 'no subscription of the revoked device');
    assert.deepEqual(p.body.push.filter((x) => x.device === other.device), [], 'no push endpoint of the revoked device');
  });
});
