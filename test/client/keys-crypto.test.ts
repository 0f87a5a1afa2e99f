/**
 * The key material and formats on their own: BIP39 words (the standard's all-zero vector,
 * round trips, normalization, refusals), the entry cipher's bindings (site, log, epoch,
 * writer header), envelopes (sender signature, recipient binding), key chains, certificates,
 * attestations, box key signatures and device fingerprints, and the keyring's refusal to
 * replace a key.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ed25519 } from '@noble/curves/ed25519.js';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { DgError } from '../../src/protocol/errors.js';
import { userKeyStatement } from '../../src/protocol/key-statements.js';
import { b64urlDecode, b64urlEncode, randomBytes, utf8 } from '../../src/client/bytes.js';
import { DeviceKeys, deviceFingerprint, verifyBoxSig } from '../../src/client/device-keys.js';
import { signJws } from '../../src/client/crypto/jws.js';
import { checkAttestation } from '../../src/client/keys/attestation.js';
import { signDeviceCertificate, verifyDeviceCertificate } from '../../src/client/keys/certificate.js';
import { EntryCipher } from '../../src/client/keys/entry-cipher.js';
import { openEnvelope, sealEnvelope } from '../../src/client/keys/envelope.js';
import { SiteKeyring } from '../../src/client/keys/site-keyring.js';
import { UserKey } from '../../src/client/keys/user-key.js';
import { verifyUserKeyChain, type UserKeyLink } from '../../src/client/keys/user-key-chain.js';
import { MemoryKeyStorage } from '../../src/client/key-storage.js';
import { LocalVault, LOCAL_KEY_NAME } from '../../src/client/keys/vault.js';

const code = (c: string) => (e: unknown) => e instanceof DgError && e.code === c;

describe('user key words', () => {
  it('encodes the seed as the standard BIP39 words and back', () => {
    // BIP39 test vector: 256 bits of zeros.
    const zero = UserKey.fromSeed(new Uint8Array(32));
    assert.equal(zero.toWords(), `${'abandon '.repeat(23)}art`);
    for (let i = 0; i < 20; i++) {
      const k = UserKey.generate();
      const words = k.toWords();
      assert.equal(words.split(' ').length, 24);
      assert.ok(words.split(' ').every((w) => wordlist.includes(w)));
      const back = UserKey.fromWords(words);
      assert.equal(back.publicKey, k.publicKey);
      assert.deepEqual(back.seedBytes(), k.seedBytes());
      assert.equal(UserKey.fromWords(`\n ${words.toUpperCase().split(' ').join('  ')}\t`).publicKey, k.publicKey, 'case and spacing do not matter');
    }
  });

  it('refuses wrong words, a bad checksum and the wrong count', () => {
    // A fixed seed: with a random one, a swap keeps the 8-bit checksum right once in 256 runs.
    const words = UserKey.fromSeed(Uint8Array.from({ length: 32 }, (_, i) => i + 1)).toWords().split(' ');
    const swapped = [...words];
    [swapped[0], swapped[1]] = [swapped[1]!, swapped[0]!];
    assert.notEqual(swapped[0], swapped[1]);
    // A swap keeps every word valid; the checksum catches it.
    assert.throws(() => UserKey.fromWords(swapped.join(' ')), code('BAD_REQUEST'));
    assert.throws(() => UserKey.fromWords(words.slice(0, 23).join(' ')), code('BAD_REQUEST'));
    assert.throws(() => UserKey.fromWords([...words.slice(0, 23), 'notaword'].join(' ')), code('BAD_REQUEST'));
    const twelve = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
    assert.throws(() => UserKey.fromWords(twelve), code('BAD_REQUEST'), '12 valid words are not a user key');
  });

  it('derives distinct keys for distinct purposes', () => {
    const k = UserKey.generate();
    assert.notDeepEqual(k.deriveKey('keychain-v1'), k.deriveKey('other'));
    assert.notEqual(b64urlEncode(k.deriveKey('keychain-v1')), b64urlEncode(k.seedBytes()));
  });
});

describe('entry cipher', () => {
  const key = randomBytes(32);
  const cipher = new EntryCipher({ writeKey: async () => ({ epoch: 7, key }), readKey: async (_s, e) => (e === 7 ? key : null) });
  const origin = { device: DeviceKeys.generate().deviceId, stream: 'AAAAAAAAAAA', seq: 3 };
  const at = { site: 'site1', log: 'main', origin };

  it('round trips, and binds the site, log, epoch and writer header', async () => {
    const sealed = await cipher.seal(utf8('hello'), at);
    assert.equal(sealed.length, 5 + cipher.overhead);
    assert.deepEqual([sealed[0], sealed[1], sealed[2], sealed[3], sealed[4]], [1, 0, 0, 0, 7]);
    assert.equal(new TextDecoder().decode(await cipher.open(sealed, at)), 'hello');
    const again = await cipher.seal(utf8('hello'), at);
    assert.notDeepEqual(again, sealed, 'a fresh nonce each time');
    for (const other of [
      { ...at, site: 'site2' },
      { ...at, log: 'other' },
      { ...at, origin: { ...origin, seq: 4 } },
      { ...at, origin: { ...origin, device: DeviceKeys.generate().deviceId } },
      { ...at, origin: null },
    ]) {
      await assert.rejects(cipher.open(sealed, other), code('BAD_REQUEST'));
    }
    const tampered = new Uint8Array(sealed);
    tampered[tampered.length - 1]! ^= 1;
    await assert.rejects(cipher.open(tampered, at), code('BAD_REQUEST'));
    const relabelled = new Uint8Array(sealed);
    relabelled[4] = 8;
    await assert.rejects(cipher.open(relabelled, at), code('FORBIDDEN'), 'no key for epoch 8');
    await assert.rejects(cipher.open(utf8('plain text entry that is long enough'), at), code('BAD_REQUEST'));
  });
});

describe('envelopes', () => {
  it('open only for the recipient, signed by the sender, bound to both', async () => {
    const [a, b, c] = [DeviceKeys.generate(), DeviceKeys.generate(), DeviceKeys.generate()];
    const body = { t: 'site-keys' as const, site: 's', keys: [{ epoch: 1, key: b64urlEncode(randomBytes(32)) }] };
    const data = await sealEnvelope(a, { device: b.deviceId, boxKey: b.boxKey }, body);
    assert.deepEqual(await openEnvelope(b, a.deviceId, data), body);
    await assert.rejects(openEnvelope(c, a.deviceId, data), code('BAD_REQUEST'), 'another device cannot open it');
    await assert.rejects(openEnvelope(b, c.deviceId, data), code('BAD_REQUEST'), 'another claimed sender fails');
    // A sender that seals to b's box key under c's device id (b's key, another id) is caught by the binding.
    const misaddressed = await sealEnvelope(a, { device: c.deviceId, boxKey: b.boxKey }, body);
    await assert.rejects(openEnvelope(b, a.deviceId, misaddressed), code('BAD_REQUEST'));
  });
});

describe('key chains, certificates, attestations', () => {
  function link(user: string, version: number, key: UserKey, prev?: UserKey): UserKeyLink {
    const st = utf8(userKeyStatement(user, version, key.publicKey));
    return { version, publicKey: key.publicKey, sig: b64urlEncode(key.sign(st)), prevSig: prev === undefined ? null : b64urlEncode(prev.sign(st)) };
  }

  it('accepts a chain signed link by link, and names the first broken link', () => {
    const [k1, k2, k3] = [UserKey.generate(), UserKey.generate(), UserKey.generate()];
    const chain = [link('u', 1, k1), link('u', 2, k2, k1), link('u', 3, k3, k2)];
    assert.deepEqual(verifyUserKeyChain('u', [...chain].reverse()).map((l) => l.version), [1, 2, 3]);
    assert.throws(() => verifyUserKeyChain('u', [chain[0]!, link('u', 2, k2, k3), chain[2]!]), /version 2 is not signed by version 1/);
    assert.throws(() => verifyUserKeyChain('u', [chain[0]!, chain[2]!]), /hole/);
    assert.throws(() => verifyUserKeyChain('v', chain), /not signed by its key/, 'bound to the user');
  });

  it('verifies a device certificate under the key of the version it names only', () => {
    const k = UserKey.generate();
    const d = DeviceKeys.generate();
    const jws = signDeviceCertificate(k, { device: d.deviceId, boxKey: d.boxKey, user: 'u', keyVersion: 2 });
    assert.deepEqual(verifyDeviceCertificate(jws, (v) => (v === 2 ? k.publicKey : undefined))?.device, d.deviceId);
    assert.equal(verifyDeviceCertificate(jws, () => UserKey.generate().publicKey), null);
    assert.equal(verifyDeviceCertificate(jws, () => undefined), null);
    const [h, p, sig] = jws.split('.') as [string, string, string];
    const flipped = b64urlDecode(sig)!;
    flipped[10]! ^= 1;
    assert.equal(verifyDeviceCertificate(`${h}.${p}.${b64urlEncode(flipped)}`, () => k.publicKey), null, 'a changed signature');
  });

  it('checks identity attestations against the server keys and refuses revoked or unknown ones', () => {
    const secret = ed25519.utils.randomSecretKey();
    const publicKey = b64urlEncode(ed25519.getPublicKey(secret));
    const jws = signJws({ alg: 'EdDSA', typ: 'dg-identity+jwt', kid: 'k1' }, { iss: 'https://x', sub: 'dev', email: 'a@b.c', provider: 'dev', iat: 5, box: 'bx' }, (m) => ed25519.sign(m, secret));
    const ok = checkAttestation(jws, [{ kid: 'k1', publicKey, status: 'retired' }]);
    assert.deepEqual(ok, { ok: true, attested: { device: 'dev', email: 'a@b.c', provider: 'dev', iat: 5, kid: 'k1', box: 'bx' } });
    assert.deepEqual(checkAttestation(jws, [{ kid: 'k1', publicKey, status: 'revoked' }]), { ok: false, reason: 'revoked-key' });
    assert.deepEqual(checkAttestation(jws, [{ kid: 'k2', publicKey, status: 'active' }]), { ok: false, reason: 'unknown-key' });
    assert.deepEqual(checkAttestation(jws, [{ kid: 'k1', publicKey: UserKey.generate().publicKey, status: 'active' }]), { ok: false, reason: 'bad-signature' });
    assert.deepEqual(checkAttestation(jws, [{ kid: 'k1', publicKey, status: 'active' }], 'https://y'), { ok: false, reason: 'wrong-issuer' });
    assert.deepEqual(checkAttestation('x.y.z', []), { ok: false, reason: 'malformed' });
  });
});

describe('box key signatures and device fingerprints', () => {
  it('verifies a box key signature by the device over its own box key only', () => {
    const [d, other] = [DeviceKeys.generate(), DeviceKeys.generate()];
    assert.equal(verifyBoxSig(d.deviceId, d.boxKey, d.boxSig), true);
    assert.equal(verifyBoxSig(d.deviceId, other.boxKey, d.boxSig), false, 'another box key');
    assert.equal(verifyBoxSig(other.deviceId, d.boxKey, d.boxSig), false, 'another device');
    assert.equal(verifyBoxSig(d.deviceId, d.boxKey, d.signChallenge(d.boxKey)), false, 'a challenge signature is not one');
    assert.equal(verifyBoxSig(d.deviceId, d.boxKey, 'not base64url!'), false);
  });

  it('gives 20 digits in 5 groups, as docs/keys.md defines them', () => {
    // The vector of docs/keys.md, for the device id of the examples in docs/protocol.md.
    assert.equal(deviceFingerprint('NGDVqQnbSs5cKKXFSXLXxsZrzlhRRLb4IRfxH8c1y8A'), '3295 5867 9340 9524 0725');
    const d = DeviceKeys.generate();
    assert.match(deviceFingerprint(d.deviceId), /^\d{4} \d{4} \d{4} \d{4} \d{4}$/);
    assert.notEqual(deviceFingerprint(d.deviceId), deviceFingerprint(DeviceKeys.generate().deviceId));
  });
});

describe('site keyring and vault', () => {
  it('never replaces a key held for an epoch', () => {
    const ring = new SiteKeyring();
    const k = randomBytes(32);
    assert.equal(ring.add('s', 1, k), 'new');
    assert.equal(ring.add('s', 1, k), 'same');
    assert.equal(ring.add('s', 1, randomBytes(32)), 'conflict');
    assert.deepEqual(ring.get('s', 1), k);
    const other = new SiteKeyring();
    other.add('s', 1, randomBytes(32));
    other.add('s', 2, randomBytes(32));
    assert.deepEqual(ring.merge(other), { added: 1, conflicts: ['s#1'] });
    assert.equal(ring.newest('s')?.epoch, 2);
    assert.deepEqual(SiteKeyring.fromJSON(ring.toJSON()).toJSON(), ring.toJSON());
  });

  it('refuses epochs a sealed entry cannot name (its header holds 4 bytes)', () => {
    const ring = new SiteKeyring();
    assert.equal(ring.add('s', 0xffff_ffff, randomBytes(32)), 'new');
    assert.equal(ring.add('s', 2 ** 32 + 1, randomBytes(32)), 'conflict');
    assert.equal(ring.newest('s')?.epoch, 0xffff_ffff);
  });

  it('keeps values sealed at rest, bound to their names', async () => {
    const storage = new MemoryKeyStorage();
    const vault = await LocalVault.open(storage);
    await vault.save('secret', { seed: 'very secret value' });
    assert.deepEqual(await vault.load('secret'), { seed: 'very secret value' });
    assert.ok(!JSON.stringify(await storage.load('secret')).includes('very secret'));
    await storage.save('moved', (await storage.load('secret'))!);
    await assert.rejects(vault.load('moved'), code('BAD_REQUEST'), 'a sealed value does not open under another name');
    // Without the local key (kept apart from the storage) nothing opens.
    const apart = new MemoryKeyStorage();
    const sealedOnly = await LocalVault.open(storage, apart);
    await assert.rejects(sealedOnly.load('secret'), code('BAD_REQUEST'));
    assert.notEqual(await apart.load(LOCAL_KEY_NAME), null);
  });
});
