/**
 * Envelopes whose sealed message is not what the SDK writes. Any signed-in device can send
 * an envelope to any device, so what one holds after it opens is a stranger's to choose:
 * it is reported (BAD_REQUEST) and deleted like any message that can never be used, and
 * the envelopes behind it (a site's keys, the user key) are still opened. One that threw
 * a TypeError instead would stop every later drain at the same envelope, and the device
 * would never receive a key again while it waited (30 days).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { b64urlDecode, b64urlEncode, utf8 } from '../../src/client/bytes.js';
import { hpkeSeal } from '../../src/client/crypto/hpke.js';
import { openEnvelope } from '../../src/client/keys/envelope.js';
import { DeviceKeys, DgError } from '../../src/client/index.js';
import { startServer } from '../helpers/server.js';
import { closeAll, device, newEmail } from './e2e-world.js';
import { waitFor } from './harness.js';

/** An envelope from `from` to `to` whose HPKE plaintext is `plaintext`, as a sender of its own would seal it. */
async function sealRaw(from: string, to: { device: string; boxKey: string }, plaintext: string): Promise<string> {
  const box = b64urlDecode(to.boxKey)!;
  return b64urlEncode(await hpkeSeal(box, utf8(plaintext), utf8('datagrove-envelope-v1'), utf8(`${from}\n${to.device}`)));
}

describe('malformed envelopes', () => {
  it('every JSON plaintext that is not a message is refused with BAD_REQUEST', async () => {
    const me = DeviceKeys.generate();
    const other = DeviceKeys.generate();
    for (const plaintext of ['null', '1', '"text"', '[]', 'true', '{}', '{"b":null,"s":null}', '{"b":"null","s":"AA"}', 'not json']) {
      const data = await sealRaw(other.deviceId, { device: me.deviceId, boxKey: me.boxKey }, plaintext);
      await assert.rejects(openEnvelope(me, other.deviceId, data), (err: unknown) => {
        assert.ok(err instanceof DgError, `${plaintext}: a DgError, not ${String(err)}`);
        assert.equal(err.code, 'BAD_REQUEST', plaintext);
        return true;
      });
    }
  });

  it('a stranger\'s envelope holding JSON null does not stop the keys behind it', { timeout: 60_000 }, async () => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const bobEmail = newEmail('bob');
    const alice = await device(srv, newEmail('alice'), 'alice laptop');
    const bob = await device(srv, bobEmail, 'bob laptop');
    const mallory = await device(srv, newEmail('mallory'), 'mallory laptop');

    const data = await sealRaw(mallory.client.device, { device: bob.client.device, boxKey: bob.client.keys.boxKey }, 'null');
    await mallory.keys.api.sendEnvelope(bob.client.device, data);

    const { site } = await alice.keys.createSite('notes');
    await alice.keys.share(site, { email: bobEmail }, { rights: ['read', 'write'] });
    await waitFor('bob to take the site key despite the envelope before it', () => bob.keys.hasKey(site, 1));
    const refused = bob.errors.find((e) => e.message.includes(mallory.client.device));
    assert.equal(refused?.code, 'BAD_REQUEST', `reported as a bad message: ${bob.errors.map((e) => `${e.code} ${e.message}`).join('; ')}`);
    // The key is taken before its envelope is deleted: give the delete its moment.
    let left = -1;
    for (let i = 0; i < 100 && left !== 0; i++) {
      left = (await bob.keys.api.envelopes()).envelopes.length;
      if (left !== 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(left, 0, 'both envelopes were deleted');
    await closeAll(alice, bob, mallory);
  });
});
