/**
 * Who wrote an entry: a signed entry proves its device, and the KeyManager maps the device to
 * a member of the site (a user whose key chain certifies it, or an email a server key attests
 * it for), with the member's rights; anything else is nobody's.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startServer } from '../helpers/server.js';
import { closeAll, device, newEmail, text, waitReady } from './e2e-world.js';
import { enc, record, waitFor } from './harness.js';

describe('writers of a site', () => {
  it('names the member a signed entry’s device writes as, and nobody for a stranger or a revoked device', async () => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const bobEmail = newEmail('bob');
    const daveEmail = newEmail('dave');
    const alice = await device(srv, newEmail('alice'), 'alice laptop');
    const bob1 = await device(srv, bobEmail, 'bob laptop');
    const bob2 = await device(srv, bobEmail, 'bob phone');
    await waitReady(bob2);
    const carol = await device(srv, newEmail('carol'), 'carol laptop');
    // Dave signed in but never set up his keys: only the server's attestation names his email.
    const dave = await device(srv, daveEmail, 'dave laptop', { noStart: true });

    const { site } = await alice.keys.createSite('writers');
    await alice.keys.share(site, { email: bobEmail }, { rights: ['read', 'write'] });
    await alice.keys.share(site, { email: daveEmail }, { rights: ['read'] });
    await waitFor('bob’s laptop to take the site key', () => bob1.keys.hasKey(site, 1));

    const aliceLog = alice.client.openLog(site, 'main');
    const seen = record(aliceLog);
    await aliceLog.opened;
    const bobLog = bob1.client.openLog(site, 'main');
    await bobLog.opened;
    await bobLog.append([enc('from bob')]);
    await waitFor('alice to read bob’s entry', () => seen.seen.length === 1);
    const entry = seen.seen[0]!;
    assert.equal(text(entry.payload), 'from bob');
    assert.equal(entry.signed, true);
    assert.equal(entry.origin?.device, bob1.client.device);

    const bobUser = bob1.client.user!;
    assert.deepEqual(await alice.keys.writerOf(site, entry.origin.device), { user: bobUser, rights: ['read', 'write'] });
    assert.deepEqual(await alice.keys.writerOf(site, alice.client.device), { user: alice.client.user, rights: ['read', 'write', 'admin'] });
    assert.deepEqual(await bob1.keys.writerOf(site, bob2.client.device), { user: bobUser, rights: ['read', 'write'] }, 'a member asks too');
    assert.deepEqual(await alice.keys.writerOf(site, dave.client.device), { email: daveEmail, rights: ['read'] });
    assert.equal(await alice.keys.writerOf(site, carol.client.device), null, 'not a member');
    assert.equal(await alice.keys.writerOf(site, 'A'.repeat(43)), null, 'no such device');

    // Bob's laptop revokes his phone: from then on the phone is nobody's writer.
    await bob1.keys.revokeDevice(bob2.client.device);
    assert.equal(await bob1.keys.writerOf(site, bob2.client.device), null, 'the revoker knows at once');
    alice.keys.forgetWriters(site);
    assert.equal(await alice.keys.writerOf(site, bob2.client.device), null, 'others once they look again');
    assert.deepEqual(await alice.keys.writerOf(site, bob1.client.device), { user: bobUser, rights: ['read', 'write'] });

    // A stranger's devices are refused the list itself.
    await assert.rejects(carol.keys.writerOf(site, bob1.client.device), (err: Error & { code?: string }) => err.code === 'FORBIDDEN');
    await aliceLog.close();
    await bobLog.close();
    await closeAll(alice, bob1, bob2, carol, dave);
    await srv.stop();
  });
});
