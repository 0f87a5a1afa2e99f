/**
 * Guarantees of the device, user and site keys that docs/keys.md states, each checked where
 * it could break: clients of one device sharing a storage on first use, a pinned user key
 * chain the server answers with nothing, and a device saving a site key while another
 * device of its user is moving the user key on after a revocation.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceKeys } from '../../src/client/device-keys.js';
import { MemoryKeyStorage } from '../../src/client/index.js';
import type { KeyApi } from '../../src/client/keys/key-api.js';
import { verifiedUser } from '../../src/client/keys/directory.js';
import { KEYCHAIN_DATA_KEY, openKeychain } from '../../src/client/keys/keychain.js';
import { KeyPins } from '../../src/client/keys/pins.js';
import { UserKey } from '../../src/client/keys/user-key.js';
import { rotateUserKey } from '../../src/client/keys/user-key-flows.js';
import { LocalVault } from '../../src/client/keys/vault.js';
import { b64urlEncode, utf8 } from '../../src/client/bytes.js';
import type { DgError } from '../../src/protocol/errors.js';
import { userKeyStatement } from '../../src/protocol/key-statements.js';
import { startServer } from '../helpers/server.js';
import { closeAll, device, newEmail, waitReady } from './e2e-world.js';
import { waitFor } from './harness.js';

describe('keys at rest on a device shared by several clients', () => {
  it('two clients opening a fresh storage at once seal under one device-local key', async () => {
    const storage = new MemoryKeyStorage();
    const [tab1, tab2] = await Promise.all([LocalVault.open(storage), LocalVault.open(storage)]);
    await tab1.save('datagrove.user-key:u', { seed: 'a', version: 1 });
    await tab2.save('datagrove.site-keys:u', { s: { 1: 'k' } });
    // After a restart, whatever either client sealed must still open.
    const again = await LocalVault.open(storage);
    assert.deepEqual(await again.load('datagrove.user-key:u'), { seed: 'a', version: 1 });
    assert.deepEqual(await again.load('datagrove.site-keys:u'), { s: { 1: 'k' } });
  });

  it('two clients creating the device keys at once get the same device', async () => {
    const storage = new MemoryKeyStorage();
    const [tab1, tab2] = await Promise.all([DeviceKeys.loadOrCreate(storage), DeviceKeys.loadOrCreate(storage)]);
    assert.equal(tab1.deviceId, tab2.deviceId);
    assert.equal((await DeviceKeys.loadOrCreate(storage)).deviceId, tab1.deviceId);
  });
});

describe('pinned user key chains', () => {
  it('refuses an empty key chain for a user whose version 1 is pinned', async () => {
    const key = UserKey.generate();
    const sig = b64urlEncode(key.sign(utf8(userKeyStatement('u1', 1, key.publicKey))));
    let userKeys = [{ version: 1, publicKey: key.publicKey, sig, prevSig: null }];
    const api = { directory: async () => ({ user: 'u1', userKeys, certificates: [], rotationRequired: false }) } as unknown as KeyApi;
    const pins = new KeyPins(new MemoryKeyStorage());
    assert.equal((await verifiedUser(api, pins, { user: 'u1' })).newest, 1, 'pinned on first sight');
    // The server now answers as if the user had no key: a device without one would make a
    // "first" key of its own, and sharing would find no device to trust.
    userKeys = [];
    await assert.rejects(verifiedUser(api, pins, { user: 'u1' }), (e: DgError) => e.code === 'FORBIDDEN' && /pinned/.test(e.message));
  });

  it('keeps the pins of every client sharing the storage', async () => {
    const link = (publicKey: string) => [{ version: 1, publicKey, sig: 's', prevSig: null }];
    const storage = new MemoryKeyStorage();
    const tab1 = new KeyPins(storage);
    const tab2 = new KeyPins(storage);
    // Both tabs have read the pins; then each pins a user of its own.
    const k0 = UserKey.generate().publicKey;
    await tab1.check('u0', link(k0));
    await tab2.check('u0', link(k0));
    const first = UserKey.generate().publicKey;
    await tab1.check('u1', link(first));
    await tab2.check('u2', link(UserKey.generate().publicKey));
    // A client opened later still finds u1 pinned: another first key is refused.
    const later = new KeyPins(storage);
    await later.check('u1', link(first));
    await assert.rejects(later.check('u1', link(UserKey.generate().publicKey)), (e: DgError) => e.code === 'FORBIDDEN');
    // And a tab whose copy of the pins is older refuses another first key for a user the other tab pinned.
    await assert.rejects(tab2.check('u1', link(UserKey.generate().publicKey)), (e: DgError) => e.code === 'FORBIDDEN');
  });
});

describe('user key rotation racing a site key save', () => {
  it('never saves a site key into a keychain under a user key version a revoked device held', async () => {
    const srv = await startServer({ devIdp: true });
    const email = newEmail('bob');
    const laptop = await device(srv, email, 'bob laptop');
    const phone = await device(srv, email, 'bob phone');
    const tablet = await device(srv, email, 'bob tablet');
    await waitReady(phone);
    await waitReady(tablet);
    const user = laptop.client.user!;
    const v1 = tablet.keys.held()!;
    assert.equal(v1.version, 1);

    // The tablet (holding version 1) is revoked; the phone starts moving the user key on and
    // has published version 2, but has not written the keychain under it yet.
    await tablet.client.revoke({ device: tablet.client.device });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let phoneSaving = false;
    const setProfileData = phone.keys.api.setProfileData.bind(phone.keys.api);
    phone.keys.api.setProfileData = async (...args) => {
      phoneSaving = true;
      await gate;
      return setProfileData(...args);
    };
    const rotation = rotateUserKey(phone.keys);
    await waitFor('the phone to publish version 2', () => phoneSaving);

    // Meanwhile the laptop, still at version 1, makes a site.
    const { site } = await laptop.keys.createSite('notes');
    const stored = (await laptop.keys.api.profile()).data[KEYCHAIN_DATA_KEY];
    const asTabletSees = await openKeychain(v1.key, user, 1, stored).catch(() => null);
    assert.equal(asTabletSees?.get(site, 1) !== undefined, false, 'the new site key is in a keychain the revoked tablet opens');

    // The rotation ends; the laptop gets version 2 and the keychain under it holds the site.
    release();
    assert.equal(await rotation, true);
    await waitFor('the laptop to move to version 2', () => laptop.keys.userKeyVersion === 2);
    const v2 = phone.keys.held()!;
    const deadline = Date.now() + 15_000;
    let underV2 = false;
    while (!underV2 && Date.now() < deadline) {
      const value = (await laptop.keys.api.profile()).data[KEYCHAIN_DATA_KEY];
      underV2 = (await openKeychain(v2.key, user, 2, value).catch(() => null))?.get(site, 1) !== undefined;
      if (!underV2) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(underV2, 'the keychain under version 2 holds the site key');
    assert.equal(laptop.keys.hasKey(site, 1), true);
    await closeAll(laptop, phone);
    tablet.keys.close();
    await tablet.client.close();
  });
});
