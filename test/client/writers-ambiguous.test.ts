/**
 * A device that the key chains of two users both certify belongs to neither as far as a
 * reader can tell: a certificate is the user key's word, not the device's, so a user (with
 * a server that lists the certificate) could certify another member's device and have that
 * member's signed entries named as its own. `writerOf` names nobody for such a device.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Right } from '../../src/protocol/ids.js';
import { DgError } from '../../src/client/index.js';
import type { KeyApi, SiteMembers } from '../../src/client/keys/key-api.js';
import type { VerifiedUser } from '../../src/client/keys/directory.js';
import { WriterDirectory } from '../../src/client/keys/writers.js';

const SITE = 'site1';
const ALICE_DEVICE = 'A'.repeat(43);
const MALLORY_DEVICE = 'M'.repeat(43);

function directory(certified: Record<string, string[]>, members: { user: string; rights: Right[] }[]): WriterDirectory {
  const site: SiteMembers = { site: SITE, owner: 'alice', members, emails: [], more: false };
  const api = { members: async () => site } as unknown as KeyApi;
  const verified = async (who: { user: string } | { email: string }): Promise<VerifiedUser> => {
    if (!('user' in who)) throw new DgError('NOT_FOUND', 'no such email');
    const devices = (certified[who.user] ?? []).map((device) => ({ device, boxKey: 'b', keyVersion: 1 }));
    return { user: who.user, chain: [], newest: 1, devices, rotationRequired: false };
  };
  return new WriterDirectory({ api, verified, serverKeys: async () => [], revokedHere: () => false });
}

describe('writers certified by two users', () => {
  it('are nobody’s, whichever order the server lists the members in', async () => {
    for (const order of [0, 1]) {
      const members: { user: string; rights: Right[] }[] = [
        { user: 'alice', rights: ['read', 'write', 'admin'] },
        { user: 'mallory', rights: ['read'] },
      ];
      if (order === 1) members.reverse();
      const w = directory({ alice: [ALICE_DEVICE], mallory: [MALLORY_DEVICE, ALICE_DEVICE] }, members);
      assert.equal(await w.writerOf(SITE, ALICE_DEVICE), null, `order ${order}`);
      assert.deepEqual(await w.writerOf(SITE, MALLORY_DEVICE), { user: 'mallory', rights: ['read'] });
    }
  });

  it('a device certified by one user is that user’s', async () => {
    const w = directory({ alice: [ALICE_DEVICE] }, [{ user: 'alice', rights: ['read', 'write', 'admin'] }]);
    assert.deepEqual(await w.writerOf(SITE, ALICE_DEVICE), { user: 'alice', rights: ['read', 'write', 'admin'] });
  });
});
