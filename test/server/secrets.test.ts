/**
 * The data directory's key files (src/server/secrets.ts): made once and private, checked
 * when read (a damaged file is named, never half-used), never made by a cluster process,
 * and rotated so that a replaced HMAC key keeps verifying for a day.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ATTESTATION_FILE, createPrivateFiles, ensureDataDir, HMAC_FILE, initKeyFiles, loadSecrets, RETIRED_HMAC_KEY_MS, rotateSecrets } from '../../src/server/secrets.js';
import { tempDir } from '../helpers/server.js';

interface HmacFile {
  active: string;
  keys: { kid: string; secret: string; createdAt: number }[];
}

const readRing = (dir: string) => JSON.parse(readFileSync(join(dir, HMAC_FILE), 'utf8')) as HmacFile;

describe('key files', () => {
  it('a cluster process (create: false) refuses to start without them and makes none', () => {
    const dir = tempDir();
    assert.throws(() => loadSecrets(dir, { create: false, alsoRequire: ['vapid-keys.json'] }), (err: Error) => {
      assert.match(err.message, /no hmac-keys\.json or attestation-keys\.json or vapid-keys\.json in /);
      assert.match(err.message, /datagrove keys init --data DIR/);
      return true;
    });
    assert.equal(existsSync(join(dir, HMAC_FILE)), false);
    initKeyFiles(dir);
    const s = loadSecrets(dir, { create: false });
    assert.equal(s.ring.keys.size, 1);
  });

  it('initKeyFiles makes only what is missing, with mode 0600', () => {
    const dir = join(tempDir(), 'nested', 'data');
    let vapidMade = 0;
    const vapid = { file: 'vapid-keys.json', make: (d: string) => void (vapidMade++, writeFileSync(join(d, 'vapid-keys.json'), '{}', { mode: 0o600 })) };
    assert.deepEqual(initKeyFiles(dir, vapid), [HMAC_FILE, ATTESTATION_FILE, 'vapid-keys.json']);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const f of [HMAC_FILE, ATTESTATION_FILE]) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    const ring = readFileSync(join(dir, HMAC_FILE), 'utf8');
    assert.deepEqual(initKeyFiles(dir, vapid), []);
    assert.equal(readFileSync(join(dir, HMAC_FILE), 'utf8'), ring, 'an existing ring is kept');
    assert.equal(vapidMade, 1);
  });

  it('a damaged file is refused with its name, whatever is wrong with it', () => {
    const cases: [string, unknown, RegExp][] = [
      [HMAC_FILE, '{"active": "x",\u0001', /hmac-keys\.json is not valid JSON/],
      [HMAC_FILE, { active: 'x', keys: [] }, /hmac-keys\.json: the active key x is not in the ring/],
      [HMAC_FILE, { active: 'k', keys: [{ kid: 'k', secret: 'c2hvcnQ', createdAt: 1 }] }, /key k has a secret shorter than 32 bytes/],
      [HMAC_FILE, [], /hmac-keys\.json: not an HMAC key ring/],
      [ATTESTATION_FILE, { keys: [] }, /attestation-keys\.json: no active key/],
      [ATTESTATION_FILE, { keys: [{ kid: 'a', status: 'active', privateKeyPkcs8: 'AAAA', createdAt: 1 }] }, /attestation-keys\.json: key a is not a PKCS#8 private key/],
    ];
    for (const [file, content, message] of cases) {
      const dir = tempDir();
      initKeyFiles(dir);
      writeFileSync(join(dir, file), typeof content === 'string' ? content : JSON.stringify(content));
      assert.throws(() => loadSecrets(dir), message, `${file}: ${JSON.stringify(content)}`);
    }
  });

  it('rotation keeps every HMAC key replaced within a day, so three rotations in a row log nobody out', () => {
    const dir = tempDir();
    initKeyFiles(dir);
    const first = readRing(dir).active;
    const t0 = Date.now();
    for (let i = 1; i <= 3; i++) rotateSecrets(dir, t0 + i * 60_000);
    const ring = readRing(dir);
    assert.equal(ring.keys.length, 4);
    assert.ok(ring.keys.some((k) => k.kid === first), 'the first key still verifies');
    assert.equal(loadSecrets(dir).ring.keys.size, 4);
    // A day after the second rotation, the keys replaced by then (the first and second) go.
    const r = rotateSecrets(dir, t0 + 2 * 60_000 + RETIRED_HMAC_KEY_MS + 1);
    assert.equal(r.droppedHmacKids.length, 2);
    assert.ok(r.droppedHmacKids.includes(first));
    const after = readRing(dir);
    assert.deepEqual(after.keys.map((k) => k.kid).sort(), [r.hmacKid, ...ring.keys.slice(0, 2).map((k) => k.kid)].sort());
    assert.equal(after.active, r.hmacKid);
  });

  it('rotation refuses a directory that does not exist or holds no keys, and makes nothing', () => {
    const missing = join(tempDir(), 'typo');
    assert.throws(() => rotateSecrets(missing), /no data directory/);
    assert.equal(existsSync(missing), false);
    const empty = tempDir();
    assert.throws(() => rotateSecrets(empty), /nothing to rotate/);
    assert.equal(existsSync(join(empty, HMAC_FILE)), false);
  });

  it('database files are made private before anything opens them; existing files keep their mode', () => {
    const dir = tempDir();
    createPrivateFiles(dir, ['auth.db']);
    assert.equal(statSync(join(dir, 'auth.db')).mode & 0o777, 0o600);
    writeFileSync(join(dir, 'tail.db'), '', { mode: 0o640 });
    createPrivateFiles(dir, ['tail.db']);
    assert.equal(statSync(join(dir, 'tail.db')).mode & 0o777, 0o640);
  });

  it('a data directory that cannot be made is an error at once (also under /proc)', () => {
    const t0 = Date.now();
    assert.throws(() => ensureDataDir('/proc/datagrove-test/data'), /cannot make the data directory/);
    assert.ok(Date.now() - t0 < 5000);
    const file = join(tempDir(), 'f');
    writeFileSync(file, 'x');
    assert.throws(() => ensureDataDir(join(file, 'data')), /cannot make the data directory/);
    assert.throws(() => ensureDataDir(file), /the data directory .*\/f is not a directory/);
    mkdirSync(join(tempDir(), 'ok'));
  });
});
