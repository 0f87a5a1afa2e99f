/**
 * Restoring the user key on a fresh device from its 24 words or its QR payload: the
 * device signs in (OIDC, same email), imports the key, certifies itself, and reads the
 * user's sites through the keychain. After a rotation, only the new words work.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DgError } from '../../src/protocol/errors.js';
import { startServer } from '../helpers/server.js';
import { closeAll, device, newEmail, text } from './e2e-world.js';
import { enc, record, waitFor } from './harness.js';

describe('restoring the user key on a fresh device', () => {
  it('imports the words (or the QR payload) and reads the user’s sites; old words stop working after a rotation', async () => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const email = newEmail('cy');
    const laptop = await device(srv, email, 'laptop', { approve: false });
    const words = laptop.keys.exportWords();
    assert.equal(words.split(' ').length, 24);
    const qr = laptop.keys.exportQrPayload();
    const { site: notes } = await laptop.keys.createSite('notes');
    const { site: photos } = await laptop.keys.createSite('photos');
    for (const [site, what] of [[notes, 'a note'], [photos, 'a photo caption']] as const) {
      const log = laptop.client.openLog(site, 'main');
      await log.opened;
      await log.append([enc(what)]);
    }

    // A fresh device: signed in, but the laptop declines to share; the words do it.
    const fresh = await device(srv, email, 'fresh', { approve: false });
    assert.equal(fresh.keys.state, 'awaiting-key');
    await waitFor('the laptop to decline', () => laptop.considered.some((c) => c.device === fresh.client.device));
    assert.equal(laptop.considered.find((c) => c.device === fresh.client.device)?.outcome, 'declined');
    await fresh.keys.importWords(`  ${words.toUpperCase().replaceAll(' ', '\n ')} `);
    assert.equal(fresh.keys.state, 'ready');
    assert.equal(fresh.keys.hasKey(notes, 1) && fresh.keys.hasKey(photos, 1), true, 'every site of the user, from the keychain');
    for (const [site, what] of [[notes, 'a note'], [photos, 'a photo caption']] as const) {
      const seen = record(fresh.client.openLog(site, 'main'));
      await waitFor(`the fresh device to read ${what}`, () => seen.seen.length === 1);
      assert.deepEqual([text(seen.seen[0]!.payload), seen.seen[0]!.error], [what, undefined]);
    }
    const dir = await fresh.keys.verified({ user: fresh.client.user! });
    assert.ok(dir.devices.some((d) => d.device === fresh.client.device), 'the fresh device certified itself');

    // Another fresh device restores from the QR payload.
    const other = await device(srv, email, 'other', { approve: false });
    await other.keys.importQrPayload(qr);
    const seen = record(other.client.openLog(notes, 'main'));
    await waitFor('the QR-restored device to read', () => seen.seen.length === 1);
    assert.equal(text(seen.seen[0]!.payload), 'a note');

    // The laptop revokes the fresh device (it held the key): the key moves to version 2.
    await laptop.keys.revokeDevice(fresh.client.device);
    assert.equal(laptop.keys.userKeyVersion, 2);
    const third = await device(srv, email, 'third');
    await assert.rejects(third.keys.importWords(words), (e: DgError) => e.code === 'FORBIDDEN' && /rotated to version 2/.test(e.message));
    assert.equal(third.keys.state, 'awaiting-key');
    await third.keys.importWords(laptop.keys.exportWords());
    assert.equal(third.keys.state, 'ready');
    assert.equal(third.keys.userKeyVersion, 2);
    const thirdSeen = record(third.client.openLog(photos, 'main'));
    await waitFor('the third device to read', () => thirdSeen.seen.length === 1);
    assert.equal(text(thirdSeen.seen[0]!.payload), 'a photo caption');
    await closeAll(laptop, fresh, other, third);
  });
});
