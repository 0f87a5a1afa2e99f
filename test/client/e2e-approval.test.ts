/**
 * The new-device flow end to end, with two SDK clients and the real OIDC dev provider:
 * the second device signs in with the user's email, the first hears of it, checks the
 * server's identity attestation and the second device's signature of its box key, asks the
 * app (showing the fingerprint the second device shows), and sends the user key in an HPKE
 * envelope; the second device certifies itself and decrypts the entries written before it
 * existed. With the attestation key that signed the new device's sign-in revoked (and the
 * server restarted), the first device refuses to share and never asks the app. A server
 * that swaps its own box key in for the new device's while the user approves it gets
 * nothing, and neither does a device whose box key is unsigned until it signs it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { DeviceKeys, type DgError } from '../../src/client/index.js';
import { decodeJws } from '../../src/client/crypto/jws.js';
import { revokeAttestationKey } from '../../src/server/secrets.js';
import { get } from '../helpers/auth-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { closeAll, device, newEmail, text, waitReady, withKeys } from './e2e-world.js';
import { enc, makeClient, record, waitFor } from './harness.js';

/** Runs `fn` on the monolith's auth database, as a compromised server would. */
function withAuthDb<T>(srv: TestServer, fn: (db: BetterSqlite3.Database) => T): T {
  const db = new BetterSqlite3(join(srv.dataDir, 'auth.db'), { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    return fn(db);
  } finally {
    db.close();
  }
}

/** How many envelopes wait for `device` (anything sealed to the box key the server lists for it). */
function envelopesTo(srv: TestServer, device: string): number {
  return withAuthDb(srv, (db) => (db.prepare('SELECT count(*) AS n FROM envelopes WHERE to_device = ?').get(device) as { n: number }).n);
}

describe('new device approval', () => {
  it('the first device approves the second, which then decrypts the older entries', async () => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const email = newEmail('ada');
    const laptop = await device(srv, email, 'laptop');
    assert.equal(laptop.keys.state, 'ready', 'the first device makes the user key');
    assert.equal(laptop.keys.userKeyVersion, 1);
    const { site } = await laptop.keys.createSite('notes');
    const log = laptop.client.openLog(site, 'main');
    const laptopSeen = record(log);
    await log.opened;
    await log.append([enc('written before the phone existed'), enc('second secret')]);

    const phone = await device(srv, email, 'phone', { noStart: true });
    await waitFor('the laptop to consider the phone', () => laptop.considered.length > 0);
    assert.deepEqual(laptop.considered, [{ device: phone.client.device, outcome: 'shared' }]);
    assert.equal(laptop.asked.length, 1);
    assert.deepEqual([laptop.asked[0]?.device, laptop.asked[0]?.name, laptop.asked[0]?.email, laptop.asked[0]?.provider], [phone.client.device, 'phone', email, 'dev']);
    assert.equal(laptop.asked[0]?.fingerprint, phone.client.fingerprint, 'the app shows what the phone shows');
    assert.match(phone.client.fingerprint, /^\d{4}( \d{4}){4}$/);
    assert.notEqual(phone.client.fingerprint, laptop.client.fingerprint);

    await phone.keys.start();
    await waitReady(phone);
    assert.equal(phone.keys.userKeyVersion, 1);
    assert.equal(phone.keys.hasKey(site, 1), true, 'the site key came through the keychain');
    const envelopes = await get<{ envelopes: unknown[] }>(srv.url, '/envelopes', await phone.client.session.accessToken());
    assert.deepEqual(envelopes.body.envelopes, [], 'the envelope was deleted once opened');

    // Both devices are certified by the user key.
    const dir = await phone.keys.verified({ user: phone.client.user! });
    assert.deepEqual(new Set(dir.devices.map((d) => d.device)), new Set([laptop.client.device, phone.client.device]));

    const phoneLog = phone.client.openLog(site, 'main');
    const seen = record(phoneLog);
    await waitFor('the phone to read the old entries', () => seen.seen.length >= 2);
    assert.deepEqual(seen.seen.map((e) => [text(e.payload), e.error?.code]), [
      ['written before the phone existed', undefined],
      ['second secret', undefined],
    ]);
    await phoneLog.append([enc('from the phone')]);
    await waitFor('the laptop to read the phone’s entry', () => laptopSeen.seen.length === 3);
    assert.deepEqual(laptopSeen.text(), ['0:written before the phone existed', '1:second secret', '2:from the phone']);
    assert.deepEqual(phone.errors, []);
    assert.deepEqual(laptop.errors, []);
    await closeAll(laptop, phone);
  });

  it('refuses to share with a device attested by a revoked server key, and never asks the app', async () => {
    const first = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const email = newEmail('bea');
    const laptop = await device(first, email, 'laptop');
    assert.equal(laptop.keys.state, 'ready');
    await closeAll(laptop);
    // A tablet signs in while the laptop is away: the server attests it with its active key.
    const tablet = await device(first, email, 'tablet', { noStart: true });
    const { kid } = JSON.parse(Buffer.from(tablet.identity.split('.')[0] ?? '', 'base64url').toString('utf8')) as { kid: string };
    await closeAll(tablet);
    await first.stop();

    // That attestation key is found compromised: revoked, then the server restarts.
    assert.equal(revokeAttestationKey(first.dataDir, kid), true);
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300, dataDir: first.dataDir });
    const keys = await get<{ keys: { kid: string; status: string }[] }>(srv.url, '/server-keys');
    assert.equal(keys.body.keys.find((k) => k.kid === kid)?.status, 'revoked');

    const back = await makeClient(srv, { storage: laptop.storage });
    await back.client.login();
    const laptop2 = await withKeys(back, laptop.storage, laptop.identity);
    assert.equal(laptop2.keys.state, 'ready');
    assert.deepEqual(laptop2.considered, [{ device: tablet.client.device, outcome: 'revoked-key' }]);
    assert.deepEqual(laptop2.asked, [], 'the app is not even asked');

    // The tablet got nothing: its envelopes are empty and it still waits for the key.
    const tabletBack = await makeClient(srv, { storage: tablet.storage });
    await tabletBack.client.login();
    const waiting = await get<{ envelopes: unknown[] }>(srv.url, '/envelopes', await tabletBack.client.session.accessToken());
    assert.deepEqual(waiting.body.envelopes, []);
    const tablet2 = await withKeys(tabletBack, tablet.storage, tablet.identity);
    assert.equal(tablet2.keys.state, 'awaiting-key');
    // Without the user key it cannot save a site key in the keychain: no site is made.
    await assert.rejects(tablet2.keys.createSite('lost'), (e: DgError) => e.code === 'FORBIDDEN' && /does not hold it yet/.test(e.message));

    // A device that signs in now is attested by the new active key, and is approved.
    const phone = await device(srv, email, 'phone', { noStart: true });
    await waitFor('the laptop to consider the phone', () => laptop2.considered.length > 1);
    assert.deepEqual(laptop2.considered[1], { device: phone.client.device, outcome: 'shared' });
    await phone.keys.start();
    await waitReady(phone);
    await closeAll(laptop2, tablet2, phone);
  });

  for (const [server, outcome] of [
    ['keeps the phone’s signature', 'bad-box-signature'],
    ['drops the phone’s signature', 'box-key-unsigned'],
  ] as const) {
    it(`refuses a box key the server swaps in while the user approves the real device (it ${server}), and seals nothing`, async () => {
      const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
      const email = newEmail('cy');
      const laptop = await device(srv, email, 'laptop');
      assert.equal(laptop.keys.state, 'ready');
      // The server's own box key goes into the phone's login between its start and its
      // completion: the phone is added with it, /me lists it, the attestation carries it.
      const attacker = DeviceKeys.generate();
      const swap = (state: string) =>
        withAuthDb(srv, (db) => {
          assert.equal(db.prepare('UPDATE oidc_logins SET box_key = ? WHERE state = ?').run(attacker.boxKey, state).changes, 1);
          if (outcome === 'box-key-unsigned') db.prepare('UPDATE oidc_logins SET box_sig = NULL WHERE state = ?').run(state);
        });
      const phone = await device(srv, email, 'phone', { noStart: true, signIn: { beforeComplete: swap } });
      assert.equal(decodeJws(phone.identity)?.payload.box, attacker.boxKey, 'the server attests its own box key');
      const listed = (await laptop.client.me()).devices.find((d) => d.device === phone.client.device);
      assert.equal(listed?.boxKey, attacker.boxKey);

      await waitFor('the laptop to consider the phone', () => laptop.considered.length > 0);
      assert.deepEqual(laptop.considered, [{ device: phone.client.device, outcome }]);
      assert.deepEqual(laptop.asked, [], 'the app is not even asked');
      assert.equal(envelopesTo(srv, phone.client.device), 0, 'nothing sealed to the server’s box key');

      // The phone signs no box key but its own, and the laptop's next review refuses again.
      await phone.keys.start();
      assert.equal(phone.keys.state, 'awaiting-key');
      await laptop.keys.sync();
      assert.equal(envelopesTo(srv, phone.client.device), 0);
      assert.deepEqual(laptop.asked, []);
      assert.ok(laptop.considered.every((c) => c.outcome === outcome), JSON.stringify(laptop.considered));
      await closeAll(laptop, phone);
    });
  }

  it('refuses a device whose box key is unsigned until the device signs it, then approves it', async () => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const email = newEmail('dee');
    const laptop = await device(srv, email, 'laptop');
    // An app that signs in without sending the signature of the box key.
    const phone = await device(srv, email, 'phone', { noStart: true, signIn: { boxSig: false } });
    await waitFor('the laptop to consider the phone', () => laptop.considered.length > 0);
    assert.deepEqual(laptop.considered, [{ device: phone.client.device, outcome: 'box-key-unsigned' }]);
    assert.equal(laptop.asked.length, 0, 'the app is not asked');
    assert.equal(envelopesTo(srv, phone.client.device), 0);

    // The phone's KeyManager registers its signature when it starts; the laptop's next review shares.
    await phone.keys.start();
    const listed = (await laptop.client.me()).devices.find((d) => d.device === phone.client.device);
    assert.equal(listed?.boxSig, phone.client.keys.boxSig);
    await laptop.keys.sync();
    assert.deepEqual(laptop.considered.at(-1), { device: phone.client.device, outcome: 'shared' });
    assert.equal(laptop.asked[0]?.fingerprint, phone.client.fingerprint);
    await waitReady(phone);
    assert.deepEqual(phone.errors, []);
    await closeAll(laptop, phone);
  });
});
