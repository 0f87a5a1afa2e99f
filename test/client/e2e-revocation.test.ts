/**
 * Revocation and rotation end to end: a site shared by email with a user who has two
 * devices; one of them is revoked (by the other); the revoker moves the user key to a new
 * version; the site's admin rotates the site key for the remaining members; the revoked
 * device cannot open what is written after the rotation — neither through the server nor
 * with its keys and a copy of the ciphertext and of the user's keychain — while the
 * remaining members read everything.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { DgError } from '../../src/protocol/errors.js';
import { KEYCHAIN_DATA_KEY, openKeychain } from '../../src/client/keys/keychain.js';
import { startServer } from '../helpers/server.js';
import { closeAll, device, newEmail, text, waitReady } from './e2e-world.js';
import { enc, makeClient, record, waitFor } from './harness.js';

describe('device revocation and site key rotation', () => {
  it('keeps a revoked device out of everything written after the rotation', async () => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const bobEmail = newEmail('bob');
    const alice = await device(srv, newEmail('alice'), 'alice laptop');
    const bob1 = await device(srv, bobEmail, 'bob laptop');
    const bob2 = await device(srv, bobEmail, 'bob phone');
    await waitReady(bob2);
    const bobUser = bob1.client.user!;

    const { site } = await alice.keys.createSite('shared');
    const shared = await alice.keys.share(site, { email: bobEmail }, { rights: ['read', 'write'] });
    assert.deepEqual(new Set(shared.devices), new Set([bob1.client.device, bob2.client.device]), 'every device attested for the email');
    await waitFor('bob’s devices to receive the site key', () => bob1.keys.hasKey(site, 1) && bob2.keys.hasKey(site, 1));

    const aliceLog = alice.client.openLog(site, 'main');
    const aliceSeen = record(aliceLog);
    await aliceLog.opened;
    await aliceLog.append([enc('before the revocation')]);
    const bob1Log = bob1.client.openLog(site, 'main');
    const bob1Seen = record(bob1Log);
    const bob2Log = bob2.client.openLog(site, 'main');
    const bob2Seen = record(bob2Log);
    await waitFor('both of bob’s devices to read the first entry', () => bob1Seen.seen.length === 1 && bob2Seen.seen.length === 1);
    assert.equal(text(bob2Seen.seen[0]!.payload), 'before the revocation');

    // Bob's laptop revokes his phone: the phone held the user key, so it moves to version 2.
    const revoked = await bob1.keys.revokeDevice(bob2.client.device);
    assert.equal(bob1.keys.userKeyVersion, 2);
    assert.deepEqual(revoked, { rotated: [], left: [site] }, 'bob is not an admin of alice’s site');
    assert.equal((await alice.client.siteInfo(site)).rotationRequired, true);

    // Alice (the admin) rotates the site key for the remaining members only, on her sync.
    await alice.keys.sync();
    assert.deepEqual(await alice.keys.rotatePending(), { rotated: [], left: [site] }, 'sync rotated it: nothing is pending');
    const info = await alice.client.siteInfo(site);
    assert.deepEqual([info.keyEpoch, info.rotationRequired], [2, false]);
    await waitFor('bob’s laptop to receive epoch 2', () => bob1.keys.hasKey(site, 2));

    await aliceLog.append([enc('after the rotation')]);
    await bob1Log.append([enc('bob after the rotation')]);
    await waitFor('alice and bob to read all three', () => aliceSeen.seen.length === 3 && bob1Seen.seen.length === 3);
    for (const seen of [aliceSeen, bob1Seen]) {
      assert.deepEqual(seen.text(), ['0:before the revocation', '1:after the rotation', '2:bob after the rotation']);
      assert.ok(seen.seen.every((e) => e.error === undefined));
    }

    // The revoked phone: refused by the server, and holding no key of epoch 2.
    assert.equal(bob2.keys.hasKey(site, 2), false);
    assert.equal(bob2Seen.seen.length, 1, 'its log stopped with the revocation');
    await assert.rejects(bob2.keys.api.envelopes(), (e: DgError) => e.code === 'UNAUTHORIZED');

    // Even with the ciphertext (read here without a codec) it opens only what predates the rotation.
    const raw = await makeClient(srv, { storage: alice.storage });
    const rawLog = raw.client.openLog(site, 'main');
    const rawSeen = record(rawLog);
    await waitFor('the raw entries', () => rawSeen.seen.length === 3);
    assert.ok(rawSeen.seen.every((e) => !text(e.payload).includes('rotation')), 'stored entries are ciphertext');
    const open = (i: number) => bob2.keys.codec.open(rawSeen.seen[i]!.payload, { site, log: 'main', origin: rawSeen.seen[i]!.origin });
    assert.equal(text(await open(0)), 'before the revocation');
    await assert.rejects(open(1), (e: DgError) => e.code === 'FORBIDDEN' && /epoch 2/.test(e.message));
    await assert.rejects(open(2), (e: DgError) => e.code === 'FORBIDDEN');

    // And Bob's keychain (which holds epoch 2) is sealed under user key version 2, which the phone never had.
    const db = new BetterSqlite3(join(srv.dataDir, 'auth.db'), { readonly: true, fileMustExist: true });
    const row = db.prepare('SELECT data FROM profiles WHERE user_id = ?').get(bobUser) as { data: string };
    db.close();
    const keychain = (JSON.parse(row.data) as Record<string, { ukv: number }>)[KEYCHAIN_DATA_KEY];
    assert.equal(keychain?.ukv, 2);
    const phoneKey = bob2.keys.held();
    assert.equal(phoneKey?.version, 1);
    await assert.rejects(openKeychain(phoneKey!.key, bobUser, 2, keychain), (e: DgError) => e.code === 'BAD_REQUEST');
    assert.equal(await openKeychain(phoneKey!.key, bobUser, 1, keychain), null, 'not a version-1 keychain');
    const ring = await openKeychain(bob1.keys.held()!.key, bobUser, 2, keychain);
    assert.equal(ring?.get(site, 2) !== undefined, true, 'the laptop opens it');

    assert.deepEqual([alice.errors, bob1.errors].map((e) => e.map((x) => x.message)), [[], []]);
    await raw.client.close();
    await closeAll(alice, bob1, bob2);
  });

  it('moves the user key on before saving a key that arrives after a device revoked itself', async () => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const bobEmail = newEmail('bob');
    const alice = await device(srv, newEmail('alice'), 'alice laptop');
    const bob1 = await device(srv, bobEmail, 'bob laptop');
    const bob2 = await device(srv, bobEmail, 'bob phone');
    await waitReady(bob2);
    const { site } = await alice.keys.createSite('shared');
    await alice.keys.share(site, { user: bob1.client.user! }, { rights: ['read'] });
    await waitFor('bob’s devices to receive the site key', () => bob1.keys.hasKey(site, 1) && bob2.keys.hasKey(site, 1));

    // The phone signs itself out for good; the laptop does not know yet.
    await bob2.keys.revokeDevice(bob2.client.device);
    assert.equal(bob1.keys.userKeyVersion, 1);
    assert.deepEqual((await alice.keys.rotatePending()).rotated, [site]);
    await waitFor('bob’s laptop to receive epoch 2', () => bob1.keys.hasKey(site, 2));
    await waitFor('bob’s laptop to move to user key version 2', () => bob1.keys.userKeyVersion === 2);

    // The keychain is saved to the profile after the user key moves on: wait for that write.
    const readKeychain = () => {
      const db = new BetterSqlite3(join(srv.dataDir, 'auth.db'), { readonly: true, fileMustExist: true });
      try {
        const row = db.prepare('SELECT data FROM profiles WHERE user_id = ?').get(bob1.client.user) as { data: string };
        return (JSON.parse(row.data) as Record<string, { ukv: number }>)[KEYCHAIN_DATA_KEY];
      } finally {
        db.close();
      }
    };
    await waitFor('the keychain to be sealed under user key version 2', () => readKeychain()?.ukv === 2).catch(() => undefined);
    const keychain = readKeychain();
    assert.equal(keychain?.ukv, 2, 'epoch 2 was never sealed under the key the phone holds');
    await assert.rejects(openKeychain(bob2.keys.held()!.key, bob1.client.user!, 2, keychain), (e: DgError) => e.code === 'BAD_REQUEST');
    assert.equal((await openKeychain(bob1.keys.held()!.key, bob1.client.user!, 2, keychain))?.get(site, 2) !== undefined, true);
    assert.deepEqual([alice.errors, bob1.errors].map((e) => e.map((x) => x.message)), [[], []]);
    await closeAll(alice, bob1, bob2);
  });
});
