/**
 * Entries naming key epochs the site has not reached: a member with the write right can
 * write them (any bytes, validly signed), but a reader does not wait for keys that cannot
 * exist. An epoch above the site's key epoch on the server is answered at once as one this
 * device holds no key for, so a run of such entries delays what follows them by about a
 * server read each (at most one a second per site), not by the 10 s wait for a new key.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomBytes } from '../../src/client/bytes.js';
import { ENTRY_CIPHER_VERSION } from '../../src/client/keys/entry-cipher.js';
import { NEW_KEY_WAIT_MS } from '../../src/client/keys/key-source.js';
import { startServer } from '../helpers/server.js';
import { closeAll, device, newEmail, text } from './e2e-world.js';
import { enc, waitFor } from './harness.js';

/** A payload shaped like a sealed entry under `epoch`, that opens with no key. */
function garbageUnder(epoch: number): Uint8Array {
  const p = randomBytes(1 + 4 + 12 + 32);
  p[0] = ENTRY_CIPHER_VERSION;
  new DataView(p.buffer, p.byteOffset).setUint32(1, epoch);
  return p;
}

describe('entries under future key epochs', () => {
  it('do not hold a live reader up for the new-key wait each', { timeout: 120_000 }, async () => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const carolEmail = newEmail('carol');
    const alice = await device(srv, newEmail('alice'), 'alice laptop');
    const carol = await device(srv, carolEmail, 'carol laptop');
    const { site } = await alice.keys.createSite('notes');
    await alice.keys.share(site, { email: carolEmail }, { rights: ['read', 'write'] });
    await waitFor('carol to hold epoch 1', () => carol.keys.hasKey(site, 1));

    const aliceLog = alice.client.openLog(site, 'main');
    const delivered = new Map<number, { at: number; payload: string; error?: string }>();
    aliceLog.subscribe((es) => {
      for (const e of es) delivered.set(e.index, { at: Date.now(), payload: text(e.payload), ...(e.error === undefined ? {} : { error: e.error.code }) });
    });
    await aliceLog.opened;

    // Carol writes, without a codec, N entries each under another far-future epoch.
    const N = 6;
    const carolLog = carol.client.openLog(site, 'main', { codec: null });
    await carolLog.opened;
    for (let i = 0; i < N; i++) await carolLog.append([garbageUnder(1000 + i)]);
    const start = Date.now();
    const [legit] = await aliceLog.append([enc('a real entry')]);
    assert.equal(legit, N);

    // The old behaviour took N × 10 s; give it far less.
    const budget = (N * NEW_KEY_WAIT_MS) / 4;
    await waitFor('the real entry to be delivered', () => delivered.has(legit!), budget);
    const took = delivered.get(legit!)!.at - start;
    assert.ok(took < budget, `delivered after ${took} ms`);
    console.log(`the real entry was delivered ${took} ms after it was appended`);
    assert.deepEqual(
      [...delivered.entries()].sort(([a], [b]) => a - b).map(([i, d]) => `${i}:${d.error ?? d.payload}`),
      [...Array.from({ length: N }, (_, i) => `${i}:FORBIDDEN`), `${N}:a real entry`],
    );
    await closeAll(alice, carol);
  });
});
