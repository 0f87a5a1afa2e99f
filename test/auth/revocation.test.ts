import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SUBJECTS, type RevokeEvent, type RevokedList } from '../../src/protocol/bus-messages.js';
import { createSite, declareGrant, get, loginDevice, post, signupDevice, type SignedUpDevice } from '../helpers/auth-client.js';
import { startServer, tempDir } from '../helpers/server.js';
import { addDevice, rotationRequired } from './db.js';

type ErrorBody = { error: { code: string; message: string } };
const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));

describe('revocation', async () => {
  const { url, server, dataDir } = await startServer();
  const events: RevokeEvent[] = [];
  server.bus.subscribe(SUBJECTS.tailRevoke, (m) => void events.push(m as RevokeEvent));
  const eventsSince = async (n: number) => {
    await tick();
    return events.slice(n);
  };

  const revoke = (by: SignedUpDevice, body: unknown) => post<{ rotate: string[] } & ErrorBody>(url, '/revoke', body, by.access);
  const lease = (d: SignedUpDevice, site: string, log = 'chat') => post<ErrorBody>(url, '/lease', { site, log }, d.access);
  const join = (d: SignedUpDevice, site: string, grant: string) => post<ErrorBody>(url, '/join', { site, grant }, d.access);

  /** A second device of `of`'s user, logged in. */
  async function secondDevice(of: SignedUpDevice): Promise<SignedUpDevice> {
    const keys = addDevice(dataDir, of.user);
    const r = await loginDevice(url, keys);
    assert.equal(r.status, 200, r.text);
    return { ...keys, user: r.body.user, access: r.body.access, refresh: r.body.refresh, expiresIn: r.body.expiresIn };
  }

  it('revokes a device: its tokens die at once, every site its user could read must rotate, tail is told', async () => {
    const me = await signupDevice(url);
    const mine = await createSite(url, me.access);
    const friend = await signupDevice(url);
    const theirs = await createSite(url, friend.access);
    const g = await declareGrant(url, friend, { sub: `user:${me.user}`, site: theirs, logs: ['*'], rights: ['read'] });
    assert.equal((await join(me, theirs, g.hash)).status, 200);
    const untouched = await createSite(url, friend.access);
    const other = await secondDevice(me);

    const n = events.length;
    const r = await revoke(other, { device: me.device });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.rotate, [mine, theirs].sort());
    assert.deepEqual(await eventsSince(n), [{ reason: 'device', device: me.device }]);
    assert.equal(rotationRequired(dataDir, mine), true);
    assert.equal(rotationRequired(dataDir, theirs), true);
    assert.equal(rotationRequired(dataDir, untouched), false);
    const view = await get<{ rotationRequired: boolean }>(url, `/sites/${theirs}`, friend.access);
    assert.equal(view.body.rotationRequired, true);

    assert.equal((await get(url, '/me', me.access)).status, 401, 'the access token dies at once');
    assert.equal((await post(url, '/refresh', { refresh: me.refresh, guid: 'guid-0001' })).status, 401);
    assert.equal((await loginDevice(url, me)).status, 401);
    // The user's other device keeps working and sees the revocation.
    const meView = await get<{ devices: { device: string; revoked: boolean }[] }>(url, '/me', other.access);
    assert.equal(meView.status, 200);
    assert.deepEqual(meView.body.devices.map((d) => [d.device, d.revoked]), [[me.device, true], [other.device, false]]);
    assert.equal((await lease(other, theirs)).status, 200, 'the user keeps its access');
  });

  it('lets a device revoke itself, and kills the access derived from grants it issued', async () => {
    const owner = await signupDevice(url);
    const site = await createSite(url, owner.access);
    const admin = await signupDevice(url);
    const member = await signupDevice(url);
    const root = await declareGrant(url, owner, { sub: `user:${admin.user}`, site, logs: ['*'], rights: ['admin'] });
    const child = await declareGrant(url, admin, { sub: `user:${member.user}`, site, logs: ['chat'], rights: ['read', 'write'], prf: root.hash });
    assert.equal((await join(member, site, child.hash)).status, 200);
    assert.equal((await lease(member, site)).status, 200);

    const n = events.length;
    const r = await revoke(admin, { device: admin.device });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.rotate, [site]);
    const evs = await eventsSince(n);
    const at = evs[1]?.access?.[0]?.at;
    assert.ok(typeof at === 'number' && Math.abs(at - Date.now()) < 60_000, 'when, on auth\'s clock');
    assert.deepEqual(evs, [
      { reason: 'device', device: admin.device },
      { reason: 'grant', access: [{ user: member.user, site, at }] },
    ]);
    // Kept for tail nodes that missed the event.
    const list = await server.bus.request<RevokedList>(SUBJECTS.authRevoked, {});
    assert.ok(list.access?.some((a) => a.user === member.user && a.site === site && a.at === at));
    assert.equal((await lease(member, site)).status, 403, 'the chain through the revoked issuer is dead');
    const again = await join(member, site, child.hash);
    assert.equal(again.status, 403);
    assert.match(again.body.error.message, /issuer is not a live device/);
  });

  it('revokes a middle grant: every chain through it dies, the chain above it stands', async () => {
    const owner = await signupDevice(url);
    const site = await createSite(url, owner.access);
    const [a, b, c] = [await signupDevice(url), await signupDevice(url), await signupDevice(url)];
    const g1 = await declareGrant(url, owner, { sub: `user:${a.user}`, site, logs: ['*'], rights: ['admin'] });
    const g2 = await declareGrant(url, a, { sub: `device:${b.device}`, site, logs: ['*'], rights: ['admin'], prf: g1.hash });
    const g3 = await declareGrant(url, b, { sub: `user:${c.user}`, site, logs: ['chat'], rights: ['read'], prf: g2.hash });
    for (const [d, g] of [[a, g1], [b, g2], [c, g3]] as const) assert.equal((await join(d, site, g.hash)).status, 200);

    assert.equal((await revoke(c, { grant: g2.hash })).status, 403, 'a member may not revoke its proof');
    const n = events.length;
    const r = await revoke(owner, { grant: g2.hash });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.rotate, [site]);
    const ev = await eventsSince(n);
    assert.equal(ev.length, 1);
    assert.equal(ev[0]?.reason, 'grant');
    assert.deepEqual(new Set(ev[0]?.access?.map((x) => x.user)), new Set([b.user, c.user]));
    assert.equal(rotationRequired(dataDir, site), true);

    assert.equal((await lease(c, site)).status, 403);
    assert.equal((await lease(b, site)).status, 403);
    assert.equal((await lease(a, site)).status, 200, 'the grant above the revoked one still stands');
    const rejoin = await join(c, site, g3.hash);
    assert.equal(rejoin.status, 403);
    assert.match(rejoin.body.error.message, /revoked/);
    const redeclare = await post<ErrorBody>(url, '/declare', { grant: g2.jws }, a.access);
    assert.equal(redeclare.status, 403, 'declaring a revoked grant again is refused, not answered as valid');
    assert.equal(redeclare.body.error.message, 'grant: revoked');
    assert.equal((await join(b, site, g2.hash)).status, 403);
    // The issuer's user may revoke its own grant too (idempotent for an already revoked one).
    assert.equal((await revoke(a, { grant: g2.hash })).status, 200);
  });

  it('lets a site admin revoke any grant of the site, even one over logs its admin grant does not name', async () => {
    const owner = await signupDevice(url);
    const site = await createSite(url, owner.access);
    const [admin, member, outsider] = [await signupDevice(url), await signupDevice(url), await signupDevice(url)];
    const adminGrant = await declareGrant(url, owner, { sub: `user:${admin.user}`, site, logs: ['a'], rights: ['admin'] });
    assert.equal((await join(admin, site, adminGrant.hash)).status, 200);
    const onB = await declareGrant(url, owner, { sub: `user:${member.user}`, site, logs: ['b'], rights: ['read'] });
    assert.equal((await join(member, site, onB.hash)).status, 200);
    const outsiderTry = await revoke(outsider, { grant: onB.hash });
    assert.equal(outsiderTry.status, 403, 'a user without admin on the site may not');
    assert.match(outsiderTry.body.error.message, /only its issuer's user or a site admin/);
    assert.equal((await revoke(member, { grant: onB.hash })).status, 403, 'nor may its subject');
    const r = await revoke(admin, { grant: onB.hash });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.rotate, [site]);
    assert.equal((await lease(member, site, 'b')).status, 403);
  });

  it('refuses a revoked grant whose signature is spelled another way (base64url malleability)', async () => {
    const owner = await signupDevice(url);
    const site = await createSite(url, owner.access);
    const friend = await signupDevice(url);
    const g = await declareGrant(url, owner, { sub: `user:${friend.user}`, site, logs: ['*'], rights: ['read'] });
    assert.equal((await join(friend, site, g.jws)).status, 200);
    assert.equal((await revoke(owner, { grant: g.hash })).status, 200);
    // The last character of an 86-character signature carries 4 bits that decoding ignores:
    // changing them gives another string (another hash) for the same signature bytes.
    const [h, p, sig] = g.jws.split('.') as [string, string, string];
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(sig.slice(-1));
    const twin = `${h}.${p}.${sig.slice(0, -1)}${alphabet[last ^ 1]}`;
    assert.deepEqual(Buffer.from(twin.split('.')[2] as string, 'base64url'), Buffer.from(sig, 'base64url'), 'same signature bytes');
    const rejoin = await join(friend, site, twin);
    assert.equal(rejoin.status, 400, rejoin.text);
    assert.match(rejoin.body.error.message, /signature/);
    assert.equal((await post<ErrorBody>(url, '/declare', { grant: twin }, owner.access)).status, 400);
    assert.equal((await lease(friend, site)).status, 403);
  });

  it('still refuses the tokens of a revoked device after a restart', async () => {
    const dir = tempDir();
    const first = await startServer({ dataDir: dir });
    const d = await signupDevice(first.url);
    const keep = await signupDevice(first.url);
    assert.equal((await post(first.url, '/revoke', { device: d.device }, d.access)).status, 200);
    await first.stop();
    const second = await startServer({ dataDir: dir });
    assert.equal((await get(second.url, '/me', d.access)).status, 401, 'the revocation set is loaded from the store');
    assert.equal((await get(second.url, '/me', keep.access)).status, 200, 'other tokens survive the restart');
  });

  it('checks who may revoke, and what', async () => {
    const me = await signupDevice(url);
    const stranger = await signupDevice(url);
    const site = await createSite(url, me.access);
    const g = await declareGrant(url, me, { sub: `user:${stranger.user}`, site, logs: ['*'], rights: ['read'] });
    const cases: [string, SignedUpDevice, unknown, number][] = [
      ["another user's device", stranger, { device: me.device }, 403],
      ['an unknown device', me, { device: 'A'.repeat(43) }, 404],
      ['an unknown grant', me, { grant: 'A'.repeat(43) }, 404],
      ['a grant by a non-admin who is not its issuer', stranger, { grant: g.hash }, 403],
      ['both fields', me, { device: me.device, grant: g.hash }, 400],
      ['no field', me, {}, 400],
    ];
    for (const [what, by, body, status] of cases) assert.equal((await revoke(by, body)).status, status, what);
    assert.equal((await get(url, '/me', me.access)).status, 200, 'nothing was revoked');
    assert.equal(rotationRequired(dataDir, site), false);
  });
});
