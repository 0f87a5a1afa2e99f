/**
 * Site keys of one device whose clients share a storage (two tabs on one MemoryKeyStorage,
 * two processes on one FileKeyStorage file): each client saves the site keys it holds, and
 * a save never drops a key another client of the device saved. The case that matters most:
 * a device still waiting for its user key (`awaiting-key`) has no keychain to get keys back
 * from, so a key shared with it by email lives only in its storage once the envelope is
 * opened (and deleted).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { randomBytes } from '../../src/client/bytes.js';
import { MemoryKeyStorage, type KeyStorage } from '../../src/client/index.js';
import { KeyManager } from '../../src/client/keys/key-manager.js';
import { FileKeyStorage } from '../../src/client/node/index.js';
import { startServer, tempDir } from '../helpers/server.js';
import { closeAll, device, newEmail, withKeys, type Device } from './e2e-world.js';
import { makeClient, waitFor } from './harness.js';

const storages: { what: string; make: () => [KeyStorage, KeyStorage] }[] = [
  {
    what: 'two tabs on one MemoryKeyStorage',
    make: () => {
      const s = new MemoryKeyStorage();
      return [s, s];
    },
  },
  {
    what: 'two processes on one FileKeyStorage file',
    make: () => {
      const path = join(tempDir('dg-shared-keys-'), 'keys.json');
      return [new FileKeyStorage(path), new FileKeyStorage(path)];
    },
  },
];

describe('site keys of clients sharing one storage', () => {
  for (const { what, make } of storages) {
    it(`keeps the keys each client took, awaiting the user key (${what})`, async (t) => {
      const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
      const opened: Device[] = [];
      t.after(() => closeAll(...opened));
      const alice = await device(srv, newEmail('alice'), 'alice laptop');
      opened.push(alice);
      const bobEmail = newEmail('bob');
      // Bob's laptop holds his user key and declines the phone: the phone stays awaiting-key.
      const laptop = await device(srv, bobEmail, 'bob laptop', { approve: false });
      opened.push(laptop);
      const [storageA, storageB] = make();
      const tabA = await device(srv, bobEmail, 'bob phone', { storage: storageA, noStart: true, approve: false });
      opened.push(tabA);
      const tabB = await withKeys(await makeClient(srv, { storage: storageB }), storageB, tabA.identity, { noStart: true, approve: false });
      opened.push(tabB);
      assert.equal(tabB.client.device, tabA.client.device, 'one device');

      // Tab A opens the envelope of site 1 (and deletes it), then stops listening.
      const { site: s1 } = await alice.keys.createSite('one');
      await alice.keys.share(s1, { email: bobEmail }, { rights: ['read'] });
      assert.equal(await tabA.keys.start(), 'awaiting-key');
      assert.ok(tabA.keys.hasKey(s1, 1), 'tab A took site 1');
      tabA.keys.close();

      // Tab B, opened before tab A saved, opens the envelope of site 2.
      const { site: s2 } = await alice.keys.createSite('two');
      await alice.keys.share(s2, { email: bobEmail }, { rights: ['read'] });
      assert.equal(await tabB.keys.start(), 'awaiting-key');
      await waitFor('tab B to take site 2', () => tabB.keys.hasKey(s2, 1));

      // A tab opened now (or either after a restart) finds both in the device's storage.
      const later = await KeyManager.open(tabB.client, { storage: storageB });
      assert.deepEqual([later.hasKey(s1, 1), later.hasKey(s2, 1)], [true, true], 'both sites kept in the storage');
      assert.ok(tabB.keys.hasKey(s1, 1), 'tab B took site 1 from the storage when it saved');

      // Saves at the same moment from both clients keep every key of both.
      const made: { site: string; epoch: number }[] = [];
      for (let i = 0; i < 10; i++) {
        for (const [k, tab] of [tabA, tabB].entries()) {
          const site = `made-${k}-${i}`;
          tab.keys.ring.add(site, 1, randomBytes(32));
          tab.keys.ring.add(site, 2, randomBytes(32));
          made.push({ site, epoch: 1 }, { site, epoch: 2 });
        }
      }
      await Promise.all([tabA, tabB].flatMap((tab) => Array.from({ length: 5 }, () => tab.keys.persistRing())));
      const after = await KeyManager.open(tabB.client, { storage: storageA });
      assert.deepEqual(
        made.filter((m) => !after.hasKey(m.site, m.epoch)),
        [],
        'every key either client held is in the storage',
      );
      assert.deepEqual([after.hasKey(s1, 1), after.hasKey(s2, 1)], [true, true]);
      assert.deepEqual([...tabA.errors, ...tabB.errors].map((e) => e.message), []);
    });
  }
});

describe('revoked devices remembered by clients sharing one storage', () => {
  it('keeps the devices each client revoked (two tabs on one MemoryKeyStorage)', async (t) => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const opened: Device[] = [];
    t.after(() => closeAll(...opened));
    const email = newEmail('carol');
    const laptop = await device(srv, email, 'carol laptop', { approve: false });
    const tablet = await device(srv, email, 'carol tablet', { noStart: true, approve: false });
    const watch = await device(srv, email, 'carol watch', { noStart: true, approve: false });
    opened.push(laptop, tablet, watch);
    const storage = new MemoryKeyStorage();
    const tabA = await device(srv, email, 'carol phone', { storage, noStart: true, approve: false });
    opened.push(tabA);
    const tabB = await withKeys(await makeClient(srv, { storage }), storage, tabA.identity, { noStart: true, approve: false });
    opened.push(tabB);

    // Each tab, opened before the other saved, revokes another device of the user.
    await tabA.keys.revokeDevice(tablet.client.device as string);
    await tabB.keys.revokeDevice(watch.client.device as string);
    const later = await KeyManager.open(tabB.client, { storage });
    assert.deepEqual([later.revokedHere(tablet.client.device as string), later.revokedHere(watch.client.device as string)], [true, true]);
    later.close();
  });
});
