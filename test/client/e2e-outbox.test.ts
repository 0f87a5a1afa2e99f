/**
 * The outbox on an end-to-end encrypted log: what it keeps is the sealed entry (never the
 * plaintext), and the appends it restores open with the site key for every reader.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryKeyStorage, type OutboxEvent } from '../../src/client/index.js';
import { closeAll, device, newEmail, text, waitReady } from './e2e-world.js';
import { startServer } from '../helpers/server.js';
import { blockableSockets, enc, record, waitFor } from './harness.js';

test('appends restored from the outbox of an encrypted log are sealed there and open for readers', async () => {
  const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
  const net = blockableSockets();
  const alice = await device(srv, newEmail('alice'), 'alice laptop', {
    socket: net.socket,
  });
  const bobEmail = newEmail('bob');
  const bob = await device(srv, bobEmail, 'bob laptop');
  try {
    await waitReady(alice);
    const { site } = await alice.keys.createSite('outbox');
    await alice.keys.share(site, { email: bobEmail }, { rights: ['read'] });
    await waitFor('bob to take the site key', () => bob.keys.hasKey(site, 1));
    const outbox = new MemoryKeyStorage();
    const log = alice.client.openLog(site, 'notes', { outbox });
    await log.opened;
    await log.append([enc('sent at once')]);
    net.blocked = true;
    alice.cut();
    await waitFor('the log notices', () => log.state === 'recovering');
    const secret = 'a secret kept while offline';
    const pending = log.append([enc(secret)]);
    await new Promise((r) => setTimeout(r, 200));
    await log.close();
    await assert.rejects(pending);
    // What the outbox holds is the sealed entry: the plaintext is nowhere in it.
    const kept = JSON.stringify(await outbox.load(`outbox:${site}/notes/${alice.client.device}`)) + JSON.stringify([...(outbox as unknown as { values: Map<string, string> }).values.values()]);
    for (const form of [secret, Buffer.from(secret).toString('base64url'), Buffer.from(secret).toString('base64'), Buffer.from(secret).toString('hex')]) {
      assert.equal(kept.includes(form), false, `the outbox holds no plaintext (${form.slice(0, 12)}…)`);
    }

    net.blocked = false;
    const again = alice.client.openLog(site, 'notes', { outbox });
    const settled: OutboxEvent[] = [];
    again.on('outbox', (e) => settled.push(e));
    await again.opened;
    await waitFor('the restored append landed', () => settled.length === 1);
    assert.ok('index' in settled[0]!, JSON.stringify(settled[0]));

    const r = bob.client.openLog(site, 'notes', { lead: false });
    const rec = record(r);
    await r.opened;
    await waitFor('bob reads both', () => rec.seen.length === 2);
    assert.deepEqual(rec.seen.map((e) => [e.index, text(e.payload), e.error?.code ?? null, e.signed]), [
      [0, 'sent at once', null, true],
      [1, secret, null, true],
    ]);
    await again.close();
  } finally {
    await closeAll(alice, bob);
  }
});
