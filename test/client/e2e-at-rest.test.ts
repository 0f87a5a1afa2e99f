/**
 * What the server keeps: after a session of end-to-end encrypted work (a device approved,
 * sites made, shared by email, a device revoked, keys rotated, entries appended by several
 * writers, big and small), every table and every byte of every file in the server's data
 * dir (auth.db, tail.db, notify.db, their WAL files, the server's own secrets) is searched
 * for the plaintext markers and for every private key of the session (device signing and
 * box keys, user key seeds and what derives from them, site keys, device-local keys) in
 * every encoding (raw, base64url, base64, hex). None may be there. Controls show the search
 * works: an entry written without a codec, and public keys, are found.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { b64urlDecode, randomId } from '../../src/client/bytes.js';
import { derive32 } from '../../src/client/crypto/kdf.js';
import { LOCAL_KEY_NAME } from '../../src/client/keys/vault.js';
import type { UserKey } from '../../src/client/keys/user-key.js';
import { startServer } from '../helpers/server.js';
import { closeAll, device, newEmail, waitReady, type Device } from './e2e-world.js';
import { enc, makeClient, record, waitFor } from './harness.js';

interface Needle {
  what: string;
  bytes: Buffer;
}

function encodings(what: string, raw: Uint8Array): Needle[] {
  const b = Buffer.from(raw);
  return [
    { what: `${what} (raw)`, bytes: b },
    { what: `${what} (base64url)`, bytes: Buffer.from(b.toString('base64url')) },
    { what: `${what} (base64)`, bytes: Buffer.from(b.toString('base64')) },
    { what: `${what} (hex)`, bytes: Buffer.from(b.toString('hex')) },
    { what: `${what} (HEX)`, bytes: Buffer.from(b.toString('hex').toUpperCase()) },
  ];
}

/** Every place the server keeps bytes: whole files, and every value of every table. */
function haystacks(dataDir: string): { where: string; bytes: Buffer }[] {
  const out: { where: string; bytes: Buffer }[] = [];
  for (const f of readdirSync(dataDir)) {
    const path = join(dataDir, f);
    if (statSync(path).isFile()) out.push({ where: `file ${f}`, bytes: readFileSync(path) });
  }
  for (const f of ['auth.db', 'tail.db', 'notify.db']) {
    const db = new BetterSqlite3(join(dataDir, f), { readonly: true, fileMustExist: true });
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
      for (const t of tables) {
        const parts: Buffer[] = [];
        for (const row of db.prepare(`SELECT * FROM "${t}"`).raw().iterate() as Iterable<unknown[]>) {
          for (const v of row) {
            if (v instanceof Uint8Array) parts.push(Buffer.from(v));
            else if (v !== null) parts.push(Buffer.from(String(v)));
          }
        }
        out.push({ where: `${f} table ${t}`, bytes: Buffer.concat(parts) });
      }
    } finally {
      db.close();
    }
  }
  return out;
}

function found(hay: { where: string; bytes: Buffer }[], needles: Needle[]): string[] {
  const hits: string[] = [];
  for (const n of needles) for (const h of hay) if (h.bytes.includes(n.bytes)) hits.push(`${n.what} in ${h.where}`);
  return hits;
}

function userKeySecrets(label: string, key: UserKey): Needle[] {
  const seed = key.seedBytes();
  return [
    ...encodings(`${label} seed`, seed),
    ...encodings(`${label} signing key`, derive32(seed, 'datagrove-user-key-v1', 'sign')),
    ...encodings(`${label} root secret`, derive32(seed, 'datagrove-user-key-v1', 'root')),
    ...encodings(`${label} keychain key`, key.deriveKey('keychain-v1')),
  ];
}

async function deviceSecrets(label: string, d: Device): Promise<Needle[]> {
  const { sign, box } = d.client.keys.toJSON();
  const local = await d.storage.load(LOCAL_KEY_NAME);
  return [
    ...encodings(`${label} device signing key`, b64urlDecode(sign)!),
    ...encodings(`${label} device box key`, b64urlDecode(box)!),
    ...encodings(`${label} device-local key`, b64urlDecode(String(local))!),
  ];
}

describe('what the server stores after an end-to-end encrypted session', () => {
  it('holds no plaintext and no private key, in any table or file', async () => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const tag = randomId(6);
    const marker = (i: number | string) => `MARKER-${tag}-${i}`;
    const aliceEmail = newEmail('alice');
    const bobEmail = newEmail('bob');
    const alice = await device(srv, aliceEmail, 'alice laptop');
    const phone = await device(srv, aliceEmail, 'alice phone');
    await waitReady(phone);
    const bob = await device(srv, bobEmail, 'bob laptop');
    const aliceV1 = alice.keys.held()!.key;

    const { site: shared } = await alice.keys.createSite('shared');
    const { site: own } = await alice.keys.createSite('private');
    await alice.keys.share(shared, { email: bobEmail }, { rights: ['read', 'write'] });
    await waitFor('bob to receive the key', () => bob.keys.hasKey(shared, 1));

    const aliceLog = alice.client.openLog(shared, 'main');
    const aliceSeen = record(aliceLog);
    await aliceLog.opened;
    const bobLog = bob.client.openLog(shared, 'main');
    await bobLog.opened;
    const texts: string[] = [];
    for (let i = 0; i < 10; i++) texts.push(marker(`alice-${i}`), marker(`bob-${i}`));
    await Promise.all([
      aliceLog.append(texts.filter((t) => t.includes('alice')).map(enc)),
      bobLog.append(texts.filter((t) => t.includes('bob')).map(enc)),
      aliceLog.append([enc(`${marker('big')} `.repeat(4000))]),
    ]);
    const ownLog = phone.client.openLog(own, 'main');
    await ownLog.opened;
    await ownLog.append([enc(marker('private'))]);

    // Revoking the phone rotates the user key and both sites' keys; then more entries.
    const siteKeysBefore = [...alice.keys.ring.keysOf(shared), ...alice.keys.ring.keysOf(own)];
    await alice.keys.revokeDevice(phone.client.device);
    await waitFor('bob to receive epoch 2', () => bob.keys.hasKey(shared, 2));
    await aliceLog.append([enc(marker('after-rotation'))]);
    await bobLog.append([enc(marker('bob-after-rotation'))]);
    await waitFor('alice to read every entry', () => aliceSeen.seen.length === 23);
    assert.ok(aliceSeen.seen.every((e) => e.error === undefined));

    // Control: an entry written without a codec is stored as it is.
    const raw = await makeClient(srv, { storage: alice.storage });
    const control = raw.client.openLog(shared, 'control');
    await control.opened;
    await control.append([enc(`CONTROL-${tag}`)]);

    const plaintext = [...texts, marker('big'), marker('private'), marker('after-rotation'), marker('bob-after-rotation')].flatMap((t) =>
      encodings(`plaintext "${t}"`, Buffer.from(t, 'utf8')).filter((n) => !n.what.endsWith('(HEX)')),
    );
    const siteKeys = [...siteKeysBefore, ...alice.keys.ring.keysOf(shared), ...alice.keys.ring.keysOf(own), ...bob.keys.ring.keysOf(shared)];
    assert.ok(siteKeys.length >= 6, 'site keys of both epochs of both sites');
    const secrets = [
      ...userKeySecrets('alice user key v1', aliceV1),
      ...userKeySecrets('alice user key v2', alice.keys.held()!.key),
      ...userKeySecrets('bob user key', bob.keys.held()!.key),
      ...siteKeys.flatMap((k) => encodings(`site key epoch ${k.epoch}`, k.key)),
      ...(await deviceSecrets('alice', alice)),
      ...(await deviceSecrets('phone', phone)),
      ...(await deviceSecrets('bob', bob)),
    ];
    assert.equal(alice.keys.userKeyVersion, 2);

    const check = (when: string) => {
      const hay = haystacks(srv.dataDir);
      const names = hay.map((h) => h.where);
      for (const f of ['file auth.db', 'file tail.db', 'file notify.db', 'auth.db table envelopes', 'auth.db table profiles', 'auth.db table device_certificates']) {
        assert.ok(names.includes(f), `${when}: ${f} was searched`);
      }
      assert.deepEqual(found(hay, plaintext), [], `${when}: plaintext on the server`);
      assert.deepEqual(found(hay, secrets), [], `${when}: private keys on the server`);
      // The search does find what is there.
      assert.ok(found(hay, encodings('control', Buffer.from(`CONTROL-${tag}`))).length > 0, `${when}: the control entry is found`);
      assert.ok(found(hay, [{ what: 'alice device id', bytes: Buffer.from(alice.client.device) }]).length > 0, `${when}: public keys are found`);
      assert.ok(found(hay, [{ what: 'alice user key', bytes: Buffer.from(aliceV1.publicKey) }]).length > 0, `${when}: the public user key is found`);
    };
    check('while the server runs');
    await raw.client.close();
    await closeAll(alice, phone, bob);
    await srv.stop();
    check('after the server stopped');
  });
});
