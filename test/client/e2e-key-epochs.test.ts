/**
 * Site key epochs are the server's to count: a device takes a site key only for an epoch up
 * to the site's key epoch on the server, so a key planted for a future epoch — by an admin
 * before being removed, or by a stolen device (in envelopes, or in the user's keychain)
 * before it is revoked — is refused, and the rotation that follows the removal keeps the
 * removed party out of what is written after it. A rotation never runs against an epoch
 * the server has moved back.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { EntryCipher, sealedEpoch } from '../../src/client/keys/entry-cipher.js';
import { sealEnvelope } from '../../src/client/keys/envelope.js';
import { KEYCHAIN_DATA_KEY, openKeychain } from '../../src/client/keys/keychain.js';
import { b64urlEncode, randomBytes } from '../../src/client/bytes.js';
import type { DgError } from '../../src/protocol/errors.js';
import type { FetchLike } from '../../src/client/index.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { closeAll, device, newEmail, text, waitReady, type Device } from './e2e-world.js';
import { enc, makeClient, record, waitFor } from './harness.js';

const PLANTED_EPOCH = 50;

/** `from` sends every certified device of `user` a site-keys envelope for `epoch`. */
async function plant(from: Device, user: string, site: string, epoch: number, key: Uint8Array): Promise<void> {
  for (const d of (await from.keys.verified({ user })).devices) {
    if (d.device === from.client.device) continue;
    const data = await sealEnvelope(from.client.keys, d, { t: 'site-keys', site, keys: [{ epoch, key: b64urlEncode(key) }] });
    await from.keys.api.sendEnvelope(d.device, data);
  }
}

/** The log's entries as the server stores them (read by a client of `member` without a codec). */
async function rawEntries(srv: TestServer, member: Device, site: string, log: string, n: number) {
  const raw = await makeClient(srv, { storage: member.storage });
  const l = raw.client.openLog(site, log, { codec: null });
  const seen = record(l);
  await waitFor(`${n} raw entries`, () => seen.seen.length === n);
  await raw.client.close();
  return seen.seen;
}

/** A cipher holding exactly `keys` (what a removed member or a thief keeps). */
function cipherOf(keys: (epoch: number) => Uint8Array | undefined): EntryCipher {
  return new EntryCipher({
    writeKey: () => Promise.reject(new Error('reads only')),
    readKey: async (_site, epoch) => keys(epoch) ?? null,
  });
}

const refusedAbove = (epoch: number) => (e: DgError) => e.code === 'FORBIDDEN' && e.message.includes(`epoch ${epoch}`) && /above the site's key epoch on the server/.test(e.message);

describe('site key epochs', () => {
  it('refuses a future epoch an admin plants in envelopes; after his removal he reads nothing new', { timeout: 120_000 }, async () => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const [bobEmail, carolEmail] = [newEmail('bob'), newEmail('carol')];
    const alice = await device(srv, newEmail('alice'), 'alice laptop');
    const bob = await device(srv, bobEmail, 'bob laptop');
    const carol = await device(srv, carolEmail, 'carol laptop');
    const { site } = await alice.keys.createSite('notes');
    const toBob = await alice.keys.share(site, { email: bobEmail }, { rights: ['read', 'write', 'admin'] });
    await alice.keys.share(site, { email: carolEmail }, { rights: ['read', 'write'] });
    await waitFor('bob and carol to hold epoch 1', () => bob.keys.hasKey(site, 1) && carol.keys.hasKey(site, 1));

    const aliceLog = alice.client.openLog(site, 'main');
    const aliceSeen = record(aliceLog);
    await aliceLog.opened;
    await aliceLog.append([enc('before the removal')]);

    // Bob, still an admin, plants epoch 50 (a key he made) in Alice's and Carol's devices.
    const planted = randomBytes(32);
    await plant(bob, alice.client.user!, site, PLANTED_EPOCH, planted);
    await plant(bob, carol.client.user!, site, PLANTED_EPOCH, planted);
    await alice.keys.sync();
    await carol.keys.sync();
    for (const d of [alice, carol]) {
      assert.equal(d.keys.hasKey(site, PLANTED_EPOCH), false, 'the planted key is not taken');
      assert.ok(d.errors.some(refusedAbove(PLANTED_EPOCH)), `the refusal is reported: ${d.errors.map((e) => e.message).join('; ')}`);
    }
    assert.equal((await alice.keys.api.envelopes()).envelopes.length, 0, 'the refused envelope is not kept');

    // Alice removes Bob and rotates, as documented.
    await alice.client.revoke({ grant: toBob.hash });
    await alice.keys.sync();
    const info = await alice.client.siteInfo(site);
    assert.deepEqual([info.keyEpoch, info.rotationRequired], [2, false]);
    await waitFor('carol to receive epoch 2', () => carol.keys.hasKey(site, 2));
    assert.equal(bob.keys.hasKey(site, 2), false);

    const carolLog = carol.client.openLog(site, 'main');
    const carolSeen = record(carolLog);
    await carolLog.opened;
    await aliceLog.append([enc('alice after the removal')]);
    await carolLog.append([enc('carol after the removal')]);
    await waitFor('alice and carol to read all three', () => aliceSeen.seen.length === 3 && carolSeen.seen.length === 3);
    for (const seen of [aliceSeen, carolSeen]) {
      assert.deepEqual(seen.text(), ['0:before the removal', '1:alice after the removal', '2:carol after the removal']);
      assert.ok(seen.seen.every((e) => e.error === undefined));
    }

    // As stored: the new entries are under epoch 2, which Bob never had, planted key or not.
    const stored = await rawEntries(srv, alice, site, 'main', 3);
    assert.deepEqual(stored.map((e) => sealedEpoch(e.payload)), [1, 2, 2]);
    const bobs = cipherOf((epoch) => (epoch === PLANTED_EPOCH ? planted : bob.keys.ring.get(site, epoch)));
    const open = (i: number) => bobs.open(stored[i]!.payload, { site, log: 'main', origin: stored[i]!.origin });
    assert.equal(text(await open(0)), 'before the removal');
    await assert.rejects(open(1), (e: DgError) => e.code === 'FORBIDDEN');
    await assert.rejects(open(2), (e: DgError) => e.code === 'FORBIDDEN');
    await closeAll(alice, bob, carol);
  });

  it('refuses a future epoch a stolen device saves in the keychain; after its revocation nothing new opens with its keys', { timeout: 120_000 }, async () => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const [aliceEmail, carolEmail] = [newEmail('alice'), newEmail('carol')];
    const laptop = await device(srv, aliceEmail, 'alice laptop');
    const phone = await device(srv, aliceEmail, 'alice phone');
    await waitReady(phone);
    const carol = await device(srv, carolEmail, 'carol laptop');
    const { site } = await laptop.keys.createSite('notes');
    await laptop.keys.share(site, { email: carolEmail }, { rights: ['read', 'write'] });
    await phone.keys.sync();
    await waitFor('the phone and carol to hold epoch 1', () => phone.keys.hasKey(site, 1) && carol.keys.hasKey(site, 1));
    const laptopLog = laptop.client.openLog(site, 'main');
    const laptopSeen = record(laptopLog);
    await laptopLog.opened;
    await laptopLog.append([enc('before the theft')]);

    // The thief, with the phone: a key for epoch 50 into the phone's ring and the user's keychain.
    const planted = randomBytes(32);
    assert.equal(phone.keys.ring.add(site, PLANTED_EPOCH, planted), 'new');
    await phone.keys.saveRing();
    await plant(phone, carol.client.user!, site, PLANTED_EPOCH, planted);

    await laptop.keys.sync();
    await carol.keys.sync();
    assert.equal(laptop.keys.hasKey(site, PLANTED_EPOCH), false, 'the keychain’s planted key is not taken');
    assert.ok(laptop.errors.some(refusedAbove(PLANTED_EPOCH)), `reported: ${laptop.errors.map((e) => e.message).join('; ')}`);
    assert.equal(carol.keys.hasKey(site, PLANTED_EPOCH), false);
    assert.ok(carol.errors.some(refusedAbove(PLANTED_EPOCH)));

    // Alice revokes the phone from her laptop: user key version 2, site epoch 2.
    const revoked = await laptop.keys.revokeDevice(phone.client.device);
    assert.deepEqual(revoked, { rotated: [site], left: [] });
    assert.equal(laptop.keys.userKeyVersion, 2);
    assert.equal(laptop.keys.hasKey(site, PLANTED_EPOCH), false);
    await waitFor('carol to receive epoch 2', () => carol.keys.hasKey(site, 2));

    // The keychain sealed under version 2 holds epochs 1 and 2, not the planted one.
    const db = new BetterSqlite3(join(srv.dataDir, 'auth.db'), { readonly: true, fileMustExist: true });
    const row = db.prepare('SELECT data FROM profiles WHERE user_id = ?').get(laptop.client.user) as { data: string };
    db.close();
    const keychain = await openKeychain(laptop.keys.held()!.key, laptop.client.user!, 2, (JSON.parse(row.data) as Record<string, unknown>)[KEYCHAIN_DATA_KEY]);
    assert.deepEqual(keychain?.keysOf(site).map((k) => k.epoch), [1, 2]);

    const carolLog = carol.client.openLog(site, 'main');
    const carolSeen = record(carolLog);
    await carolLog.opened;
    await laptopLog.append([enc('alice after the revocation')]);
    await carolLog.append([enc('carol after the revocation')]);
    await waitFor('alice and carol to read all three', () => laptopSeen.seen.length === 3 && carolSeen.seen.length === 3);
    for (const seen of [laptopSeen, carolSeen]) {
      assert.deepEqual(seen.text(), ['0:before the theft', '1:alice after the revocation', '2:carol after the revocation']);
      assert.ok(seen.seen.every((e) => e.error === undefined));
    }

    const stored = await rawEntries(srv, laptop, site, 'main', 3);
    assert.deepEqual(stored.map((e) => sealedEpoch(e.payload)), [1, 2, 2]);
    const thief = cipherOf((epoch) => phone.keys.ring.get(site, epoch));
    const open = (i: number) => thief.open(stored[i]!.payload, { site, log: 'main', origin: stored[i]!.origin });
    assert.equal(text(await open(0)), 'before the theft');
    await assert.rejects(open(1), (e: DgError) => e.code === 'FORBIDDEN');
    await assert.rejects(open(2), (e: DgError) => e.code === 'FORBIDDEN');
    await closeAll(laptop, phone, carol);
  });

  it('refuses to rotate when the server’s key epoch went back, claiming nothing', { timeout: 120_000 }, async () => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const bobEmail = newEmail('bob');
    const alice = await device(srv, newEmail('alice'), 'alice laptop');
    const bob = await device(srv, bobEmail, 'bob laptop');
    const { site } = await alice.keys.createSite('notes');
    const toBob = await alice.keys.share(site, { email: bobEmail }, { rights: ['read'] });
    await alice.keys.rotateSite(site);
    await waitFor('bob to hold epoch 2', () => bob.keys.hasKey(site, 2));

    await alice.client.revoke({ grant: toBob.hash });
    // The operator moves the site's key epoch back to 1 (Alice holds 2, as Bob does).
    const db = new BetterSqlite3(join(srv.dataDir, 'auth.db'));
    db.pragma('busy_timeout = 5000');
    assert.equal(db.prepare('UPDATE sites SET key_epoch = 1 WHERE id = ?').run(site).changes, 1);
    db.close();

    const wentBack = (e: DgError) => e.code === 'CONFLICT' && /went back from 2 to 1/.test(e.message) && /nothing was rotated/.test(e.message);
    await assert.rejects(alice.keys.rotatePending(), wentBack);
    await assert.rejects(alice.keys.rotateSite(site), wentBack);
    const info = await alice.client.siteInfo(site);
    assert.deepEqual([info.keyEpoch, info.rotationRequired], [1, true], 'no epoch was claimed');
    assert.deepEqual(alice.keys.ring.keysOf(site).map((k) => k.epoch), [1, 2]);

    // Writers still seal under the newest epoch held (2), never under the older one the server names.
    const log = alice.client.openLog(site, 'main');
    await log.opened;
    await log.append([enc('after the rollback')]);
    const stored = await rawEntries(srv, alice, site, 'main', 1);
    assert.equal(sealedEpoch(stored[0]!.payload), 2);
    await closeAll(alice, bob);
  });

  it('keeps an envelope whose site key epoch cannot be read, and takes its keys once it can', { timeout: 120_000 }, async () => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const carolEmail = newEmail('carol');
    const alice = await device(srv, newEmail('alice'), 'alice laptop');
    // Carol's GET /sites/:site fails as an unreachable server does, while `down` is set.
    let down = false;
    const fetchOf: FetchLike = (url, init) => {
      if (down && init?.method === 'GET' && /^\/auth\/v1\/sites\/[^/]+$/.test(new URL(url).pathname)) return Promise.reject(new TypeError('fetch failed'));
      return (globalThis.fetch as unknown as FetchLike)(url, init);
    };
    const carol = await device(srv, carolEmail, 'carol laptop', { fetch: fetchOf });
    const { site } = await alice.keys.createSite('notes');
    await alice.keys.share(site, { email: carolEmail }, { rights: ['read', 'write'] });
    await waitFor('carol to hold epoch 1', () => carol.keys.hasKey(site, 1));

    down = true;
    await alice.keys.rotateSite(site);
    await assert.rejects(carol.keys.sync(), (e: DgError) => e.code === 'UNAVAILABLE');
    assert.equal(carol.keys.hasKey(site, 2), false, 'not taken while the epoch cannot be checked');
    assert.equal((await carol.keys.api.envelopes()).envelopes.length, 1, 'the envelope is kept');

    down = false;
    await carol.keys.sync();
    assert.equal(carol.keys.hasKey(site, 2), true);
    assert.equal((await carol.keys.api.envelopes()).envelopes.length, 0);
    // The background attempt (on the envelope event) reported that the server was not reached, nothing else.
    assert.deepEqual(carol.errors.filter((e) => e.code !== 'UNAVAILABLE').map((e) => e.message), []);
    await closeAll(alice, carol);
  });
});
