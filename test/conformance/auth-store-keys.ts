/**
 * The key directory part of the auth store conformance suite (src/auth/key-directory.ts):
 * user key chains (compare-and-set on the version), device certificates (live devices of the
 * user, newest key version only), email to user, and the site lookups for members.
 * `runAuthStoreConformance` runs it on every store.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { it } from 'node:test';
import { MAX_USER_KEY_VERSIONS, type UserKeyRecord } from '../../src/auth/key-directory.js';
import type { AuthStore } from '../../src/auth/store.js';

const id = (n = 16) => randomBytes(n).toString('base64url');
const dev = () => id(32);

export function keyDirectoryConformance(store: () => AuthStore): void {
  const s = () => store();

  async function newUser(now = 1000): Promise<{ user: string; device: string }> {
    const user = id();
    const device = dev();
    assert.equal(await s().createUser({ id: user, createdAt: now }, { id: device, boxKey: dev(), name: 'd', createdAt: now }), true);
    return { user, device };
  }

  const key = (user: string, version: number, over: Partial<UserKeyRecord> = {}): UserKeyRecord => ({
    user,
    version,
    publicKey: dev(),
    sig: id(64),
    prevSig: version === 1 ? null : id(64),
    createdAt: 100 * version,
    ...over,
  });

  it('keeps a user key chain: versions in order, first writer wins, no holes, bounded', async () => {
    const { user } = await newUser();
    assert.deepEqual(await s().keys.userKeys(user), []);
    assert.equal(await s().keys.addUserKey(key(user, 2)), false, 'a hole');
    const v1 = key(user, 1);
    assert.equal(await s().keys.addUserKey(v1), true);
    assert.equal(await s().keys.addUserKey(key(user, 1)), false, 'version 1 is taken');
    const v2 = key(user, 2);
    const racers = await Promise.all([s().keys.addUserKey(v2), s().keys.addUserKey(key(user, 2)), s().keys.addUserKey(key(user, 2))]);
    assert.equal(racers.filter(Boolean).length, 1, 'exactly one concurrent writer of a version wins');
    const chain = await s().keys.userKeys(user);
    assert.deepEqual(chain.map((k) => k.version), [1, 2]);
    assert.deepEqual(chain[0], v1);
    for (let v = 3; v <= MAX_USER_KEY_VERSIONS; v++) assert.equal(await s().keys.addUserKey(key(user, v)), true);
    assert.equal(await s().keys.addUserKey(key(user, MAX_USER_KEY_VERSIONS + 1)), false, 'over the limit');
    assert.deepEqual(await s().keys.userKeys(id()), []);
  });

  it('stores a certificate only for a live device of the user under the newest key version, and replaces it', async () => {
    const { user, device } = await newUser();
    const other = await newUser();
    const cert = (over: Partial<{ device: string; user: string; keyVersion: number; certificate: string }> = {}) => ({
      device,
      user,
      keyVersion: 1,
      certificate: `h.${id()}.s`,
      createdAt: 5,
      ...over,
    });
    assert.equal(await s().keys.putCertificate(cert()), 'stale-key', 'no user key yet');
    await s().keys.addUserKey(key(user, 1));
    assert.equal(await s().keys.putCertificate(cert({ device: other.device })), 'no-device', "another user's device");
    assert.equal(await s().keys.putCertificate(cert({ device: dev() })), 'no-device', 'unknown device');
    const first = cert();
    assert.equal(await s().keys.putCertificate(first), 'ok');
    await s().keys.addUserKey(key(user, 2));
    assert.equal(await s().keys.putCertificate(cert()), 'stale-key', 'version 1 is no longer the newest');
    const second = cert({ keyVersion: 2 });
    assert.equal(await s().keys.putCertificate(second), 'ok');
    const d2 = dev();
    assert.equal(await s().addDevice(user, { id: d2, boxKey: dev(), name: 'two', createdAt: 2000 }), true);
    assert.equal(await s().keys.putCertificate(cert({ device: d2, keyVersion: 2 })), 'ok');
    const listed = await s().keys.certificatesOf(user);
    assert.deepEqual(listed.map((c) => [c.device, c.keyVersion, c.certificate, c.revokedAt]), [
      [device, 2, second.certificate, null],
      [d2, 2, listed[1]?.certificate, null],
    ]);
    assert.equal(listed[0]?.boxKey, (await s().getDevice(device))?.boxKey);
    await s().revokeDevice(d2, 9000);
    assert.equal((await s().keys.certificatesOf(user))[1]?.revokedAt, 9000, 'revoked devices are listed with their revocation time');
    assert.equal(await s().keys.putCertificate(cert({ device: d2, keyVersion: 2 })), 'no-device', 'a revoked device');
    assert.deepEqual(await s().keys.certificatesOf(other.user), []);
  });

  it('finds the user an email is bound to', async () => {
    const email = `${id(6).toLowerCase()}@example.com`;
    const u = id();
    await s().linkIdentity({ email, provider: 'dev', device: { id: dev(), boxKey: dev(), name: 'p' }, newUser: u, attestation: 'a.b.c', now: 5 });
    assert.equal(await s().keys.userOfEmail(email), u);
    assert.equal(await s().keys.userOfEmail(`x${email}`), null);
  });

  it('lists the live access rows and unrevoked grants of a site', async () => {
    const owner = await newUser();
    const site = id();
    await s().createSite({ id: site, owner: owner.user, name: 's', createdAt: 1 });
    const [u1, u2, u3] = [id(), id(), id()];
    const grant = (hash: string, declaredAt: number) => ({
      hash,
      jws: 'h.p.s',
      issuer: owner.device,
      subject: `user:${u1}`,
      site,
      logs: ['*'],
      rights: ['read' as const],
      iat: 1,
      exp: null,
      prf: null,
      declaredAt,
    });
    const [g1, g2, g3] = [id(32), id(32), id(32)];
    await s().putGrant(grant(g1, 10));
    await s().putGrant(grant(g2, 20));
    await s().putGrant({ ...grant(g3, 30), site: id() });
    await s().revokeGrant(g2, 40);
    assert.deepEqual((await s().keys.grantsOfSite(site, 10)).map((g) => g.hash), [g1]);
    const row = (user: string, expiresAt: number | null, createdAt: number) => ({ user, site, grant: g1, logs: ['*'], rights: ['read' as const], expiresAt, createdAt });
    assert.equal(await s().putAccess(row(u1, null, 1), { grants: [g1], devices: [owner.device], anyOf: [] }), true);
    assert.equal(await s().putAccess(row(u2, 5000, 2), { grants: [g1], devices: [owner.device], anyOf: [] }), true);
    assert.equal(await s().putAccess(row(u3, 100, 3), { grants: [g1], devices: [owner.device], anyOf: [] }), true);
    assert.deepEqual((await s().keys.accessOfSite(site, 1000, 10)).map((r) => r.user), [u1, u2], 'expired rows are left out');
    assert.deepEqual((await s().keys.accessOfSite(site, 1000, 1)).map((r) => r.user), [u1], 'limit');
    assert.deepEqual(await s().keys.accessOfSite(id(), 1000, 10), []);
  });
}
