/**
 * The auth store conformance suite: every AuthStore implementation runs it (see
 * src/auth/store.ts for the guarantees it checks). `open` gives a fresh, empty store.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { AccessRecord, AuthStore, GrantRecord } from '../../src/auth/store.js';
import { REVOKED_ACCESS_KEEP_MS } from '../../src/auth/store.js';
import { accountConformance } from './auth-store-accounts.js';
import { keyDirectoryConformance } from './auth-store-keys.js';

const id = (n = 16) => randomBytes(n).toString('base64url');
const dev = () => id(32);

export function runAuthStoreConformance(name: string, open: () => Promise<AuthStore>, opts: { skip?: string | false } = {}): void {
  describe(`auth store conformance: ${name}`, { skip: opts.skip ?? false }, () => {
    let s: AuthStore;
    before(async () => {
      s = await open();
    });
    after(async () => {
      await s.close();
    });

    async function newUser(now = 1000): Promise<{ user: string; device: string }> {
      const user = id();
      const device = dev();
      assert.equal(await s.createUser({ id: user, createdAt: now }, { id: device, boxKey: dev(), name: 'd', createdAt: now }), true);
      return { user, device };
    }

    function grant(over: Partial<GrantRecord> & { site: string; issuer: string }): Omit<GrantRecord, 'revokedAt'> {
      return { hash: id(32), jws: 'h.p.s', subject: 'user:x', logs: ['*'], rights: ['read'], iat: 1, exp: null, prf: null, declaredAt: 1, ...over };
    }

    function access(user: string, site: string, g: string, over: Partial<AccessRecord> = {}): AccessRecord {
      return { user, site, grant: g, logs: ['*'], rights: ['read'], expiresAt: null, createdAt: 1, ...over };
    }

    it('is healthy while open', async () => {
      assert.equal(await s.healthy(), true);
    });

    it('creates a user with its first device, and refuses an existing device id without writing', async () => {
      const { user, device } = await newUser();
      const d = await s.getDevice(device);
      assert.deepEqual(d && { ...d }, { id: device, user, boxKey: d?.boxKey, boxSig: null, name: 'd', createdAt: 1000, revokedAt: null });
      const other = id();
      assert.equal(await s.createUser({ id: other, createdAt: 2 }, { id: device, boxKey: dev(), name: 'x', createdAt: 2 }), false);
      assert.equal((await s.getDevice(device))?.user, user);
      assert.deepEqual(await s.listDevices(other), []);
      assert.equal(await s.getDevice(dev()), null);
    });

    it('adds devices to an existing user only, and lists them in creation order', async () => {
      const { user, device } = await newUser(1000);
      const second = dev();
      assert.equal(await s.addDevice(user, { id: second, boxKey: dev(), name: 'two', createdAt: 2000 }), true);
      assert.equal(await s.addDevice(user, { id: second, boxKey: dev(), name: 'again', createdAt: 3000 }), false, 'existing id');
      assert.equal(await s.addDevice(id(), { id: dev(), boxKey: dev(), name: 'x', createdAt: 3000 }), false, 'unknown user');
      assert.deepEqual((await s.listDevices(user)).map((d) => [d.id, d.name]), [[device, 'd'], [second, 'two']]);
    });

    it('keeps the signature of a device’s box key, given with the device or set later for that box key while it is live', async () => {
      const [user, a, boxA, b, boxB] = [id(), dev(), dev(), dev(), dev()];
      assert.equal(await s.createUser({ id: user, createdAt: 1 }, { id: a, boxKey: boxA, boxSig: 'sig-a', name: 'a', createdAt: 1 }), true);
      assert.equal(await s.addDevice(user, { id: b, boxKey: boxB, name: 'b', createdAt: 2 }), true);
      assert.deepEqual([(await s.getDevice(a))?.boxSig, (await s.getDevice(b))?.boxSig], ['sig-a', null]);
      assert.equal(await s.setBoxSig(b, dev(), 'sig-other-box'), false, 'another box key');
      assert.equal(await s.setBoxSig(dev(), boxB, 'sig-no-device'), false, 'no such device');
      assert.equal(await s.setBoxSig(b, boxB, 'sig-b'), true);
      assert.deepEqual((await s.listDevices(user)).map((d) => [d.id, d.boxKey, d.boxSig]), [[a, boxA, 'sig-a'], [b, boxB, 'sig-b']]);
      await s.revokeDevice(b, 3);
      assert.equal(await s.setBoxSig(b, boxB, 'sig-late'), false, 'revoked');
      assert.equal((await s.getDevice(b))?.boxSig, 'sig-b');
    });

    it('consumes a nonce once, only for its device and before it expires', async () => {
      const [n1, n2, n3, d] = [id(32), id(32), id(32), dev()];
      await s.putNonce(n1, d, 5000);
      await s.putNonce(n2, d, 5000);
      await s.putNonce(n3, d, 5000);
      assert.equal(await s.takeNonce(n1, dev(), 1000), false, 'another device');
      const both = await Promise.all([s.takeNonce(n1, d, 1000), s.takeNonce(n1, d, 1000)]);
      assert.deepEqual(both.sort(), [false, true], 'exactly one concurrent take succeeds');
      assert.equal(await s.takeNonce(n2, d, 5000), false, 'expired at its expiry time');
      await s.prune(6000);
      assert.equal(await s.takeNonce(n3, d, 1000), false, 'pruned');
    });

    it('rotates a refresh token exactly once and records the guid and answer', async () => {
      const { user, device } = await newUser();
      const fam = id();
      const t0 = id(32);
      await s.createFamily({ id: fam, user, device, createdAt: 1 }, { hash: t0, expiresAt: 10_000 });
      const r0 = await s.getRefresh(t0);
      assert.deepEqual(r0, { hash: t0, family: fam, user, device, state: 'live', expiresAt: 10_000, rotatedAt: null, guid: null, answer: null, familyRevoked: false, deviceRevoked: false });
      const [t1, t2] = [id(32), id(32)];
      const wins = await Promise.all([
        s.rotateRefresh(t0, { guid: 'g1', answer: 'a1', now: 100, next: { hash: t1, expiresAt: 20_000 } }),
        s.rotateRefresh(t0, { guid: 'g2', answer: 'a2', now: 100, next: { hash: t2, expiresAt: 20_000 } }),
      ]);
      assert.deepEqual([...wins].sort(), [false, true], 'exactly one concurrent rotation wins');
      const [won, lost, n] = wins[0] === true ? [t1, t2, '1'] : [t2, t1, '2'];
      const r0b = await s.getRefresh(t0);
      assert.deepEqual([r0b?.state, r0b?.guid, r0b?.answer, r0b?.rotatedAt], ['rotated', `g${n}`, `a${n}`, 100]);
      assert.equal((await s.getRefresh(won))?.state, 'live');
      assert.equal((await s.getRefresh(won))?.family, fam);
      assert.equal(await s.getRefresh(lost), null, 'the loser wrote nothing');
      assert.equal(await s.rotateRefresh(won, { guid: 'g', answer: 'a', now: 20_000, next: { hash: id(32), expiresAt: 1 } }), false, 'expired');
    });

    it('refuses to rotate in a revoked family or for a revoked device', async () => {
      const { user, device } = await newUser();
      const [fam, t] = [id(), id(32)];
      await s.createFamily({ id: fam, user, device, createdAt: 1 }, { hash: t, expiresAt: 10_000 });
      assert.equal(await s.revokeFamily(fam, 50), true);
      assert.equal(await s.revokeFamily(fam, 60), false, 'already revoked');
      assert.equal((await s.getRefresh(t))?.familyRevoked, true);
      assert.equal(await s.rotateRefresh(t, { guid: 'g', answer: 'a', now: 100, next: { hash: id(32), expiresAt: 10_000 } }), false);

      const u2 = await newUser();
      const [fam2, t2] = [id(), id(32)];
      await s.createFamily({ id: fam2, user: u2.user, device: u2.device, createdAt: 1 }, { hash: t2, expiresAt: 10_000 });
      const rev = await s.revokeDevice(u2.device, 70);
      assert.deepEqual(rev, { revoked: true, families: [fam2] });
      assert.deepEqual(await s.revokeDevice(u2.device, 80), { revoked: false, families: [] });
      const r = await s.getRefresh(t2);
      assert.deepEqual([r?.deviceRevoked, r?.familyRevoked], [true, true]);
      assert.equal(await s.rotateRefresh(t2, { guid: 'g', answer: 'a', now: 100, next: { hash: id(32), expiresAt: 10_000 } }), false);
      assert.equal((await s.getDevice(u2.device))?.revokedAt, 70);

      const since = await s.revokedSince(50);
      assert.ok(since.devices.some((d) => d.id === u2.device && d.at === 70));
      assert.ok(since.families.some((f) => f.id === fam && f.at === 50));
      assert.ok(!(await s.revokedSince(71)).devices.some((d) => d.id === u2.device));
    });

    it('lists the live families of a user, newest first, and revokes one only while it is a live family of that user', async () => {
      const u = await newUser();
      const other = await newUser();
      const second = dev();
      assert.equal(await s.addDevice(u.user, { id: second, boxKey: dev(), name: 'two', createdAt: 2 }), true);
      const fam = async (device: string, user: string, createdAt: number, expiresAt = 10_000) => {
        const [f, t] = [id(), id(32)];
        await s.createFamily({ id: f, user, device, createdAt }, { hash: t, expiresAt });
        return { f, t };
      };
      const a1 = await fam(u.device, u.user, 10);
      const a2 = await fam(u.device, u.user, 20);
      const b = await fam(second, u.user, 30);
      const expiring = await fam(u.device, u.user, 40, 500);
      const revoked = await fam(u.device, u.user, 50);
      const theirs = await fam(other.device, other.user, 60);
      assert.equal(await s.revokeFamily(revoked.f, 5), true);
      const live = async (user: string, now = 1000, limit = 10) => (await s.liveFamilies(user, now, limit)).map((x) => x.id);

      assert.deepEqual(await s.liveFamilies(u.user, 1000, 10), [
        { id: b.f, user: u.user, device: second, createdAt: 30 },
        { id: a2.f, user: u.user, device: u.device, createdAt: 20 },
        { id: a1.f, user: u.user, device: u.device, createdAt: 10 },
      ]);
      assert.deepEqual(await live(u.user, 100), [expiring.f, b.f, a2.f, a1.f], 'before its token expires');
      assert.deepEqual(await live(u.user, 1000, 2), [b.f, a2.f], 'at most the limit, newest first');
      assert.deepEqual(await live(other.user), [theirs.f]);
      assert.deepEqual(await live(id()), []);
      assert.equal(await s.rotateRefresh(a1.t, { guid: 'g', answer: 'a', now: 100, next: { hash: id(32), expiresAt: 20_000 } }), true);
      assert.deepEqual(await live(u.user, 15_000), [a1.f], 'the rotated token’s successor keeps it live');

      for (const [what, user, f] of [
        ['another user’s family', other.user, a1.f],
        ['a family of another user, asked by its id', u.user, theirs.f],
        ['an expired family', u.user, expiring.f],
        ['a revoked family', u.user, revoked.f],
        ['an unknown family', u.user, id()],
      ] as const) {
        assert.equal(await s.revokeLiveFamily(user, f, 1000), false, what);
      }
      assert.equal((await s.getRefresh(theirs.t))?.familyRevoked, false);
      const both = await Promise.all([s.revokeLiveFamily(u.user, a1.f, 1000), s.revokeLiveFamily(u.user, a1.f, 1000)]);
      assert.deepEqual(both.sort(), [false, true], 'exactly one concurrent revocation wins');
      assert.equal((await s.getRefresh(a1.t))?.familyRevoked, true);
      assert.ok((await s.revokedSince(1000)).families.some((x) => x.id === a1.f && x.at === 1000));
      assert.deepEqual(await live(u.user), [b.f, a2.f]);
      await s.revokeDevice(second, 1100);
      assert.deepEqual(await live(u.user, 1200), [a2.f], 'a revoked device has no live family');
      assert.equal(await s.revokeLiveFamily(u.user, b.f, 1200), false);
    });

    it('creates sites at key epoch 1 and advances the epoch only to current + 1', async () => {
      const { user } = await newUser();
      const [a, b] = [id(), id()];
      await s.createSite({ id: a, owner: user, name: 'A', createdAt: 1 });
      await s.createSite({ id: b, owner: user, name: 'B', createdAt: 2 });
      assert.deepEqual(await s.getSite(a), { id: a, owner: user, name: 'A', keyEpoch: 1, rotationRequired: false, createdAt: 1 });
      assert.deepEqual(await s.sitesOwnedBy(user), [a, b]);
      await s.markRotationRequired([a]);
      assert.equal((await s.getSite(a))?.rotationRequired, true);
      assert.equal((await s.getSite(b))?.rotationRequired, false);
      assert.equal(await s.advanceKeyEpoch(a, 3), false);
      const both = await Promise.all([s.advanceKeyEpoch(a, 2), s.advanceKeyEpoch(a, 2)]);
      assert.deepEqual(both.sort(), [false, true]);
      assert.deepEqual([(await s.getSite(a))?.keyEpoch, (await s.getSite(a))?.rotationRequired], [2, false]);
      assert.equal(await s.getSite(id()), null);
    });

    it('stores grants once by hash and finds them by issuer or subject', async () => {
      const site = id();
      const issuer = dev();
      const g = grant({ site, issuer, subject: 'device:abc', logs: ['a', 'b'], rights: ['read', 'admin'], exp: 99 });
      await s.putGrant(g);
      await s.putGrant({ ...g, jws: 'other' });
      assert.deepEqual(await s.getGrant(g.hash), { ...g, revokedAt: null });
      assert.deepEqual((await s.findGrants({ issuers: [issuer], subjects: [] })).map((x) => x.hash), [g.hash]);
      assert.deepEqual((await s.findGrants({ issuers: [], subjects: ['device:abc'] })).map((x) => x.hash), [g.hash]);
      assert.deepEqual(await s.findGrants({ issuers: [], subjects: [] }), []);
      assert.equal(await s.getGrant(id(32)), null);
    });

    it('finds a grant to an email whatever the case of its ASCII letters, and other subjects only exactly', async () => {
      const site = id();
      // Unique subjects: the store holds the grants of the other tests.
      const tag = id(8).replace(/[^A-Za-z]/g, 'q');
      const lower = tag.toLowerCase();
      const mail = grant({ site, issuer: dev(), subject: `email:Erin.K@${tag}.ORG` });
      const device = grant({ site, issuer: dev(), subject: `device:AbC${tag}` });
      await s.putGrant(mail);
      await s.putGrant(device);
      const find = async (subjects: string[]) => (await s.findGrants({ issuers: [], subjects })).map((x) => x.hash);
      assert.deepEqual(await find([`email:erin.k@${lower}.org`]), [mail.hash]);
      assert.deepEqual(await find([`email:ERIN.K@${tag.toUpperCase()}.ORG`]), [mail.hash]);
      assert.deepEqual(await find([`email:erin.k@${lower}.or`]), []);
      // Only ASCII letters fold: the Kelvin sign is not a k.
      assert.deepEqual(await find([`email:erin.\u212a@${lower}.org`]), []);
      assert.deepEqual(await find([`device:AbC${tag}`]), [device.hash]);
      assert.deepEqual(await find([`device:abc${lower}`]), [], 'device ids are case-sensitive');
      assert.deepEqual((await find([`email:Erin.K@${tag}.ORG`, `device:AbC${tag}`])).sort(), [mail.hash, device.hash].sort());
    });

    it('revokes a grant and, atomically, every access row through it or its descendants', async () => {
      const site = id();
      const issuer = dev();
      const root = grant({ site, issuer });
      const mid = grant({ site, issuer, prf: root.hash });
      const leaf = grant({ site, issuer, prf: mid.hash });
      const aside = grant({ site, issuer });
      for (const g of [root, mid, leaf, aside]) await s.putGrant(g);
      const [u1, u2, u3] = [id(), id(), id()];
      for (const [u, g] of [[u1, mid.hash], [u2, leaf.hash], [u3, aside.hash]] as const) {
        assert.equal(await s.putAccess(access(u, site, g), { grants: [g], devices: [issuer], anyOf: [] }), true);
      }
      assert.deepEqual((await s.accessThroughGrants([root.hash])).map((r) => r.user).sort(), [u1, u2].sort());
      const r = await s.revokeGrant(mid.hash, 500);
      assert.equal(r.revoked, true);
      assert.deepEqual(r.dropped.map((x) => x.user).sort(), [u1, u2].sort());
      assert.equal((await s.getGrant(mid.hash))?.revokedAt, 500);
      assert.deepEqual(await s.accessFor(u1, site), []);
      assert.deepEqual(await s.accessFor(u2, site), []);
      assert.equal((await s.accessFor(u3, site)).length, 1);
      assert.equal((await s.revokeGrant(mid.hash, 600)).revoked, false);
      // The guard refuses a new row through the revoked grant or a revoked device.
      assert.equal(await s.putAccess(access(u2, site, leaf.hash), { grants: [leaf.hash, mid.hash, root.hash], devices: [issuer], anyOf: [] }), false);
      assert.deepEqual(await s.accessFor(u2, site), []);
    });

    it('records the (user, site) pairs that lost access, for revokedSince, and forgets them after REVOKED_ACCESS_KEEP_MS', async () => {
      const site = id();
      const issuer = dev();
      const [g1, g2, g3] = [grant({ site, issuer }), grant({ site, issuer }), grant({ site, issuer })];
      for (const g of [g1, g2, g3]) await s.putGrant(g);
      const [u1, u2] = [id(), id()];
      const base = 50_000_000;
      const put = async (u: string, g: string) => assert.equal(await s.putAccess(access(u, site, g), { grants: [g], devices: [issuer], anyOf: [] }), true);
      const lost = async (since: number) =>
        (await s.revokedSince(since)).access
          .filter((a) => a.site === site)
          .map((a) => `${a.user === u1 ? 'u1' : 'u2'}@${a.at - base}`)
          .sort();
      await put(u1, g1.hash);
      await put(u2, g1.hash);
      await s.revokeGrant(g1.hash, base);
      assert.deepEqual(await lost(base), ['u1@0', 'u2@0'], 'a revoked grant records the pairs of its rows');
      assert.deepEqual(await lost(base + 1), []);
      // deleteAccess records only the rows it deleted, and a pair keeps its latest time.
      await put(u1, g2.hash);
      assert.equal(await s.deleteAccess([{ user: u1, site, grant: g2.hash }, { user: u2, site, grant: g2.hash }], base + 10), 1);
      assert.deepEqual(await lost(base), ['u1@10', 'u2@0']);
      await put(u1, g3.hash);
      assert.equal(await s.deleteAccess([{ user: u1, site, grant: g3.hash }], base + 5), 1);
      assert.deepEqual(await lost(base), ['u1@10', 'u2@0'], 'an earlier time does not move a pair back');
      assert.equal(await s.deleteAccess([], base + 20), 0);
      await s.prune(base + 10 + REVOKED_ACCESS_KEEP_MS);
      assert.deepEqual(await lost(0), ['u1@10'], 'older than the keep time: forgotten');
      await s.prune(base + 11 + REVOKED_ACCESS_KEEP_MS);
      assert.deepEqual(await lost(0), []);
    });

    it('keeps access rows: upsert per (user, site, grant), lists, deletes, prunes the expired', async () => {
      const { user, device } = await newUser();
      const site = id();
      const [g1, g2] = [id(32), id(32)];
      assert.equal(await s.putAccess(access(user, site, g1, { rights: ['read'], createdAt: 1 }), { grants: [g1], devices: [device], anyOf: [] }), true);
      assert.equal(await s.putAccess(access(user, site, g1, { rights: ['read', 'write'], createdAt: 2 }), { grants: [g1], devices: [device], anyOf: [] }), true);
      assert.equal(await s.putAccess(access(user, site, g2, { logs: ['x'], expiresAt: 5000, createdAt: 3 }), { grants: [g2], devices: [device], anyOf: [] }), true);
      const rows = await s.accessFor(user, site);
      assert.deepEqual(rows.map((r) => [r.grant, r.rights, r.logs, r.expiresAt]), [[g1, ['read', 'write'], ['*'], null], [g2, ['read'], ['x'], 5000]]);
      assert.equal((await s.accessOfUser(user)).length, 2);
      await s.prune(5000);
      assert.deepEqual((await s.accessFor(user, site)).map((r) => r.grant), [g1]);
      assert.equal(await s.deleteAccess([{ user, site, grant: g1 }, { user, site, grant: g2 }], 6000), 1);
      assert.deepEqual(await s.accessOfUser(user), []);
      await s.revokeDevice(device, 10);
      assert.equal(await s.putAccess(access(user, site, g1), { grants: [g1], devices: [device], anyOf: [] }), false, 'revoked device in the guard');
    });

    it('writes an access row only while every anyOf set of its guard keeps a live device', async () => {
      // The devices through which an email is attested for a user: it names the user while one is live.
      const { user: holder, device: a } = await newUser();
      const b = dev();
      assert.equal(await s.addDevice(holder, { id: b, boxKey: dev(), name: 'b', createdAt: 2 }), true);
      const other = await newUser();
      const [joiner, site] = [id(), id()];
      const [g1, g2, g3] = [id(32), id(32), id(32)];
      const guard = (g: string, anyOf: string[][]) => ({ grants: [g], devices: [], anyOf });
      await s.revokeDevice(a, 10);
      assert.equal(await s.putAccess(access(joiner, site, g1), guard(g1, [[a, b]])), true, 'one live device of the set is enough');
      assert.equal(await s.putAccess(access(joiner, site, g2), guard(g2, [[other.device], [a]])), false, 'every set needs a live device');
      assert.equal(await s.putAccess(access(joiner, site, g2), guard(g2, [[dev()]])), false, 'an unknown device is not live');
      // Revoking the last live device of a set comes before the write: the write is refused.
      await s.revokeDevice(b, 20);
      assert.equal(await s.putAccess(access(joiner, site, g3), guard(g3, [[a, b]])), false);
      assert.deepEqual((await s.accessFor(joiner, site)).map((r) => r.grant), [g1], 'refused rows are not written');
    });

    it('records identities per device, emails lower-cased', async () => {
      const { user, device } = await newUser();
      await s.addIdentity({ email: 'Ann@Example.com', provider: 'google', device, user, attestedAt: 5 });
      await s.addIdentity({ email: 'ann@example.com', provider: 'google', device, user, attestedAt: 6 });
      assert.deepEqual(await s.identitiesOf(user), [{ email: 'ann@example.com', provider: 'google', device, user, attestedAt: 6 }]);
      assert.deepEqual(await s.identitiesOf(id()), []);
    });

    accountConformance(() => s);
    keyDirectoryConformance(() => s);
  });
}
