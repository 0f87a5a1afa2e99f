/**
 * Key rotation under a live reader: the writer seals under the new epoch as soon as it has
 * rotated, so its entries can reach a member before the envelope carrying the new key. The
 * member's log waits for the key instead of delivering those entries as unreadable.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startServer } from '../helpers/server.js';
import { closeAll, device, newEmail, text } from './e2e-world.js';
import { enc, record, waitFor } from './harness.js';

describe('site key rotation under a live reader', () => {
  it('delivers every entry written under a new epoch once its key arrives, none as unreadable', { timeout: 120_000 }, async () => {
    const srv = await startServer({ devIdp: true });
    const bobEmail = newEmail('bob');
    const alice = await device(srv, newEmail('alice'), 'alice laptop');
    const bob = await device(srv, bobEmail, 'bob laptop');
    const { site } = await alice.keys.createSite('live');
    await alice.keys.share(site, { email: bobEmail }, { rights: ['read', 'write'] });
    await waitFor('bob to hold the site key', () => bob.keys.hasKey(site, 1));

    const aliceLog = alice.client.openLog(site, 'chat');
    const bobLog = bob.client.openLog(site, 'chat');
    const bobSeen = record(bobLog);
    await Promise.all([aliceLog.opened, bobLog.opened]);

    // Alice writes all the time and rotates the site key three times meanwhile.
    let stop = false;
    let n = 0;
    const appends: Promise<unknown>[] = [];
    const writing = (async () => {
      while (!stop) {
        appends.push(aliceLog.append([enc(`m${n++}`)]));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 300));
      await alice.keys.rotateSite(site);
    }
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await writing;
    await Promise.all(appends);
    // Bob takes each key once a read of the site's epoch (at most one a second) shows it.
    await waitFor('bob to hold epoch 4', () => bob.keys.hasKey(site, 4));

    await waitFor(`bob to read all ${n} entries`, () => bobSeen.seen.length >= n, 30_000);
    const unreadable = bobSeen.seen.filter((e) => e.error !== undefined).map((e) => `${e.index}: ${e.error?.message ?? ''}`);
    assert.deepEqual(unreadable, [], 'no entry delivered as unreadable');
    assert.deepEqual(
      bobSeen.seen.map((e) => text(e.payload)),
      Array.from({ length: n }, (_, i) => `m${i}`),
    );

    // Opened means caught up: every entry (opened with the site keys) is with the subscriber.
    await bobLog.close();
    const again = bob.client.openLog(site, 'chat', { lead: false });
    const againSeen = record(again);
    await again.opened;
    assert.equal(againSeen.seen.length, n, 'every entry delivered when opened resolves');
    assert.equal(again.position, n, 'position counts delivered entries');
    assert.ok(againSeen.seen.every((e) => e.error === undefined));
    assert.deepEqual([alice.errors, bob.errors].map((e) => e.map((x) => x.message)), [[], []]);
    await closeAll(alice, bob);
  });
});
