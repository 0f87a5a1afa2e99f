/**
 * A user's key chain as the server shows it later must extend what this device saw before,
 * not only start with the pinned version 1. A server that answers with the chain cut back
 * to an older version (or with another key for a version seen, which the holder of the
 * older version can sign) would bring back a user key a revoked device holds: certificates
 * under it would be trusted again, and a device of the user that has not received the
 * newer key would take the older one as the newest and save the keychain under it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { b64urlEncode, utf8 } from '../../src/client/bytes.js';
import { MemoryKeyStorage } from '../../src/client/index.js';
import { verifiedUser } from '../../src/client/keys/directory.js';
import type { KeyApi } from '../../src/client/keys/key-api.js';
import { KeyPins } from '../../src/client/keys/pins.js';
import type { UserKeyLink } from '../../src/client/keys/user-key-chain.js';
import { UserKey } from '../../src/client/keys/user-key.js';
import type { DgError } from '../../src/protocol/errors.js';
import { userKeyStatement } from '../../src/protocol/key-statements.js';

function link(user: string, version: number, key: UserKey, prev: UserKey | null): UserKeyLink {
  const statement = utf8(userKeyStatement(user, version, key.publicKey));
  return { version, publicKey: key.publicKey, sig: b64urlEncode(key.sign(statement)), prevSig: prev === null ? null : b64urlEncode(prev.sign(statement)) };
}

function server(): { api: KeyApi; answer: (chain: UserKeyLink[]) => void } {
  let userKeys: UserKeyLink[] = [];
  const api = { directory: async () => ({ user: 'u1', userKeys, certificates: [], rotationRequired: false }) } as unknown as KeyApi;
  return { api, answer: (chain) => (userKeys = chain) };
}

const refused = (e: DgError) => e.code === 'FORBIDDEN';

describe('user key chains seen before', () => {
  const [k1, k2, k3, forged] = [UserKey.generate(), UserKey.generate(), UserKey.generate(), UserKey.generate()];
  const v1 = link('u1', 1, k1, null);
  const v2 = link('u1', 2, k2, k1);
  const v3 = link('u1', 3, k3, k2);
  // What the holder of version 1 (a revoked device) can sign on its own.
  const v2forged = link('u1', 2, forged, k1);

  it('refuses a chain cut back to an older version', async () => {
    const storage = new MemoryKeyStorage();
    const { api, answer } = server();
    answer([v1, v2]);
    assert.equal((await verifiedUser(api, new KeyPins(storage), { user: 'u1' })).newest, 2);
    answer([v1]);
    await assert.rejects(verifiedUser(api, new KeyPins(storage), { user: 'u1' }), refused, 'after a restart too');
    const pins = new KeyPins(storage);
    await assert.rejects(verifiedUser(api, pins, { user: 'u1' }), refused);
    answer([v1, v2, v3]);
    assert.equal((await verifiedUser(api, pins, { user: 'u1' })).newest, 3, 'a longer chain is taken');
    answer([v1, v2]);
    await assert.rejects(verifiedUser(api, pins, { user: 'u1' }), refused, 'and then is the one to extend');
  });

  it('refuses another key for a version seen', async () => {
    const { api, answer } = server();
    const pins = new KeyPins(new MemoryKeyStorage());
    answer([v1, v2]);
    await verifiedUser(api, pins, { user: 'u1' });
    answer([v1, v2forged]);
    await assert.rejects(verifiedUser(api, pins, { user: 'u1' }), refused);
    answer([v1, v2forged, link('u1', 3, k3, forged)]);
    await assert.rejects(verifiedUser(api, pins, { user: 'u1' }), refused);
  });

  it('keeps what every client sharing the storage saw', async () => {
    const storage = new MemoryKeyStorage();
    const tab1 = new KeyPins(storage);
    const tab2 = new KeyPins(storage);
    const { api, answer } = server();
    answer([v1]);
    await verifiedUser(api, tab1, { user: 'u1' });
    await verifiedUser(api, tab2, { user: 'u1' });
    answer([v1, v2]);
    await verifiedUser(api, tab1, { user: 'u1' });
    answer([v1]);
    await assert.rejects(verifiedUser(api, tab2, { user: 'u1' }), refused, 'the other tab saw version 2');
  });
});
