/**
 * The codec hook of logs against the real server: payloads are sealed before they leave
 * the device and opened before subscribers see them, in the log's order; an append whose
 * sealing fails is rejected as a whole and leaves no gap in its writer stream (a follower's
 * later appends still reach the leader); an entry that does not open is delivered with
 * `error`, not dropped.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DgError } from '../../src/protocol/errors.js';
import type { PayloadCodec } from '../../src/client/crypto/payload-codec.js';
import { decodeEntry } from '../../src/client/entry-header.js';
import { EntryCipher } from '../../src/client/keys/entry-cipher.js';
import { randomBytes } from '../../src/client/bytes.js';
import { enc, makeClient, record, server, sharedSite, waitFor } from './harness.js';

const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** The entry cipher under one fixed key, refusing to seal payloads that start with "bad". */
function codec(key: Uint8Array): PayloadCodec {
  const cipher = new EntryCipher({ writeKey: async () => ({ epoch: 1, key }), readKey: async () => key });
  return {
    overhead: cipher.overhead,
    seal: async (p, ctx) => {
      await new Promise((r) => setTimeout(r, Math.random() * 5)); // sealing finishes out of order
      if (text(p).startsWith('bad')) throw new DgError('FORBIDDEN', 'no key for this one');
      return cipher.seal(p, ctx);
    },
    open: (s, ctx) => cipher.open(s, ctx),
  };
}

describe('log payload codec', () => {
  it('seals before sending, opens in order, and leaves no gap when a seal fails', async () => {
    const srv = await server();
    const key = randomBytes(32);
    const [leader, follower, plain] = [await makeClient(srv), await makeClient(srv), await makeClient(srv)];
    const site = await sharedSite(leader, [follower]);
    const a = leader.client.openLog(site, 'main', { codec: codec(key) });
    const aSeen = record(a);
    await a.opened;
    follower.client.setCodec(codec(key));
    const b = follower.client.openLog(site, 'main', { lead: false });
    await b.opened;

    const results = await Promise.allSettled([b.append([enc('one')]), b.append([enc('bad one'), enc('lost with it')]), b.append([enc('two')]), a.append([enc('three')])]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    assert.equal(((results[1] as PromiseRejectedResult).reason as DgError).code, 'FORBIDDEN');
    for (let i = 0; i < 20; i++) await b.append([enc(`more ${i}`)]);
    await waitFor('the leader to see every entry', () => aSeen.seen.length === 23);
    const got = aSeen.seen.map((e) => text(e.payload));
    assert.deepEqual(new Set(got.slice(0, 3)), new Set(['one', 'two', 'three']));
    assert.deepEqual(got.slice(3), Array.from({ length: 20 }, (_, i) => `more ${i}`), 'the follower’s stream kept going after the failed seal');
    // The follower's seqs are contiguous: 1, 2, then 3… (the failed call took none).
    const seqs = aSeen.seen.filter((e) => e.origin?.device === follower.client.device).map((e) => e.origin!.seq);
    assert.deepEqual(seqs, Array.from({ length: 22 }, (_, i) => i + 1));

    // What the server holds is sealed; a reader without the codec sees ciphertext, with the wrong key an error.
    const raw = plain.client;
    await raw.signup('plain');
    const g = leader.client.signGrant({ sub: `user:${raw.user}`, site, logs: ['*'], rights: ['read'] });
    await leader.client.declare(g);
    await raw.join(site, g);
    const rawSeen = record(raw.openLog(site, 'main', { lead: false }));
    await waitFor('the raw reader', () => rawSeen.seen.length === 23);
    assert.ok(rawSeen.seen.every((e) => !text(decodeEntry(e.payload).payload).includes('more') && !text(e.payload).includes('more')));
    const wrong = await makeClient(srv, {});
    await wrong.client.signup('wrong key');
    const g2 = leader.client.signGrant({ sub: `user:${wrong.client.user}`, site, logs: ['*'], rights: ['read'] });
    await leader.client.declare(g2);
    await wrong.client.join(site, g2);
    const wrongSeen = record(wrong.client.openLog(site, 'main', { lead: false, codec: codec(randomBytes(32)) }));
    await waitFor('the wrong-key reader', () => wrongSeen.seen.length === 23);
    assert.ok(wrongSeen.seen.every((e, i) => e.index === i && e.error?.code === 'BAD_REQUEST' && e.payload.length === 0));
    for (const c of [leader, follower, plain, wrong]) await c.client.close();
  });
});
