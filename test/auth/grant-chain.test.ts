import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { verifyChain, type GrantLink } from '../../src/auth/grant-chain.js';
import { SqliteAuthStore } from '../../src/auth/sqlite/store.js';
import { tempDir } from '../helpers/server.js';

const dev = (c: string) => c.repeat(43);

/** Chain checks that need state no HTTP route can make yet: identities attested by OIDC logins. */
describe('grant chains through attested emails', () => {
  it('accepts a proof naming an email attested for the issuer, until its attesting device is revoked', async () => {
    const s = new SqliteAuthStore(join(tempDir(), 'auth.db'));
    try {
      await s.createUser({ id: 'owner', createdAt: 1 }, { id: dev('O'), boxKey: dev('b'), name: '', createdAt: 1 });
      await s.createUser({ id: 'ann', createdAt: 1 }, { id: dev('A'), boxKey: dev('b'), name: '', createdAt: 1 });
      await s.createSite({ id: 'site1', owner: 'owner', name: '', createdAt: 1 });
      await s.addIdentity({ email: 'ann@example.com', provider: 'google', device: dev('A'), user: 'ann', attestedAt: 1 });
      const root: GrantLink = { hash: dev('r'), iss: dev('O'), sub: 'email:Ann@Example.com', site: 'site1', logs: ['*'], rights: ['admin'], exp: null, prf: null, revokedAt: null };
      await s.putGrant({ hash: root.hash, jws: 'x.y.z', issuer: root.iss, subject: root.sub, site: 'site1', logs: root.logs, rights: root.rights, iat: 1, exp: null, prf: null, declaredAt: 1 });
      const child: GrantLink = { hash: dev('c'), iss: dev('A'), sub: 'user:bob', site: 'site1', logs: ['chat'], rights: ['read'], exp: null, prf: root.hash, revokedAt: null };

      const ok = await verifyChain(s, child, 100);
      assert.ok(ok.ok, JSON.stringify(ok));
      assert.deepEqual(ok.chain.grants, [child.hash, root.hash]);
      assert.equal(ok.chain.issuerUser, 'ann');

      const stranger: GrantLink = { ...child, iss: dev('O') };
      const r1 = await verifyChain(s, stranger, 100);
      assert.ok(!r1.ok);
      assert.match(r1.message, /does not name the issuer's user/);

      // Ann's second device issues under the same proof; the email is attested through her first device.
      assert.equal(await s.addDevice('ann', { id: dev('B'), boxKey: dev('b'), name: '', createdAt: 2 }), true);
      const fromSecond: GrantLink = { ...child, hash: dev('d'), iss: dev('B') };
      assert.ok((await verifyChain(s, fromSecond, 100)).ok);
      await s.revokeDevice(dev('A'), 50);
      const r2 = await verifyChain(s, child, 100);
      assert.ok(!r2.ok, 'the issuer is revoked');
      const r3 = await verifyChain(s, fromSecond, 100);
      assert.ok(!r3.ok, 'the email is no longer attested through a live device');
      assert.match(r3.message, /does not name the issuer's user/);
    } finally {
      await s.close();
    }
  });

  it('names every device it rests on: issuers, devices that proofs name, and the live devices attesting an email proof', async () => {
    const s = new SqliteAuthStore(join(tempDir(), 'auth.db'));
    try {
      await s.createUser({ id: 'owner', createdAt: 1 }, { id: dev('O'), boxKey: dev('b'), name: '', createdAt: 1 });
      await s.createUser({ id: 'ann', createdAt: 1 }, { id: dev('A'), boxKey: dev('b'), name: '', createdAt: 1 });
      await s.addDevice('ann', { id: dev('C'), boxKey: dev('b'), name: '', createdAt: 1 });
      await s.addDevice('ann', { id: dev('D'), boxKey: dev('b'), name: '', createdAt: 1 });
      await s.createUser({ id: 'bob', createdAt: 1 }, { id: dev('B'), boxKey: dev('b'), name: '', createdAt: 1 });
      await s.createSite({ id: 'site1', owner: 'owner', name: '', createdAt: 1 });
      // Ann holds ann@ through C and D (not through A, which issues); another email through A.
      for (const [email, d] of [['ann@example.com', 'D'], ['ann@example.com', 'C'], ['other@example.com', 'A']] as const) {
        await s.addIdentity({ email, provider: 'google', device: dev(d), user: 'ann', attestedAt: 1 });
      }
      const put = async (g: GrantLink) =>
        s.putGrant({ hash: g.hash, jws: 'x.y.z', issuer: g.iss, subject: g.sub, site: g.site, logs: g.logs, rights: g.rights, iat: 1, exp: g.exp, prf: g.prf, declaredAt: 1 });
      const root: GrantLink = { hash: dev('r'), iss: dev('O'), sub: 'email:ann@example.com', site: 'site1', logs: ['*'], rights: ['admin'], exp: null, prf: null, revokedAt: null };
      const mid: GrantLink = { ...root, hash: dev('m'), iss: dev('A'), sub: `device:${dev('B')}`, prf: root.hash };
      const leaf: GrantLink = { ...root, hash: dev('l'), iss: dev('B'), sub: 'user:carol', rights: ['read'], prf: mid.hash };
      await put(root);
      await put(mid);

      const r = await verifyChain(s, leaf, 100);
      assert.ok(r.ok, JSON.stringify(r));
      assert.deepEqual(r.chain.grants, [leaf.hash, mid.hash, root.hash]);
      assert.deepEqual(r.chain.devices, [dev('B'), dev('A'), dev('O')]);
      assert.deepEqual(r.chain.attested, [[dev('C'), dev('D')]], 'the proof to ann@ holds while C or D is live');

      await s.revokeDevice(dev('C'), 50);
      const r2 = await verifyChain(s, leaf, 100);
      assert.ok(r2.ok);
      assert.deepEqual(r2.chain.attested, [[dev('D')]], 'a revoked device attests nothing');
    } finally {
      await s.close();
    }
  });

  it('refuses an expired grant or an expired proof', async () => {
    const s = new SqliteAuthStore(join(tempDir(), 'auth.db'));
    try {
      await s.createUser({ id: 'owner', createdAt: 1 }, { id: dev('O'), boxKey: dev('b'), name: '', createdAt: 1 });
      await s.createUser({ id: 'ann', createdAt: 1 }, { id: dev('A'), boxKey: dev('b'), name: '', createdAt: 1 });
      await s.createSite({ id: 'site1', owner: 'owner', name: '', createdAt: 1 });
      await s.putGrant({ hash: dev('r'), jws: 'x.y.z', issuer: dev('O'), subject: 'user:ann', site: 'site1', logs: ['*'], rights: ['admin'], iat: 1, exp: 200, prf: null, declaredAt: 1 });
      const child: GrantLink = { hash: dev('c'), iss: dev('A'), sub: 'user:bob', site: 'site1', logs: ['*'], rights: ['read'], exp: 150, prf: dev('r'), revokedAt: null };
      assert.ok((await verifyChain(s, child, 100)).ok);
      const r1 = await verifyChain(s, child, 150);
      assert.ok(!r1.ok);
      assert.match(r1.message, /expired/);
      const r2 = await verifyChain(s, { ...child, exp: 200 }, 199);
      assert.ok(r2.ok);
      const r3 = await verifyChain(s, { ...child, exp: 200 }, 200);
      assert.ok(!r3.ok);
    } finally {
      await s.close();
    }
  });
});
