/**
 * Writer signatures on entries: every entry the SDK writes is signed by its device (header
 * version 2), and SDK readers refuse an entry whose signature does not verify against the
 * device its header names: delivered at its index with a FORBIDDEN error and no payload,
 * never opened, never taken as that writer's append. Against the real server, a member
 * writing as leader with a raw client forges entries in another member's name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TailClient } from '../helpers/tail-client.js';
import { b64urlEncode, decodeEntry, DeviceKeys, DgError, encodeEntry, entrySigner, originPrefix, type EntryOrigin, type LogEntry, type PayloadCodec } from '../../src/client/index.js';
import { randomBytes } from '../../src/client/bytes.js';
import { EntryCipher } from '../../src/client/keys/entry-cipher.js';
import { Ed25519Verifier } from '../../src/client/crypto/ed25519-verify.js';
import { Admission } from '../../src/client/log-admission.js';
import { entrySigningMessage } from '../../src/client/entry-header.js';
import { Sequencer } from '../../src/client/log-sequencer.js';
import type { LinkMessage } from '../../src/client/link-messages.js';
import { enc, makeClient, record, server, sharedSite, waitFor } from './harness.js';

const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** The end-to-end entry cipher under one fixed key; records the origins of what it opened. */
function cipher(key: Uint8Array): PayloadCodec & { opened: (EntryOrigin | null)[] } {
  const c = new EntryCipher({ writeKey: async () => ({ epoch: 1, key }), readKey: async () => key });
  const opened: (EntryOrigin | null)[] = [];
  return {
    overhead: c.overhead,
    opened,
    seal: (p, ctx) => c.seal(p, ctx),
    open: (s, ctx) => {
      opened.push(ctx.origin);
      return c.open(s, ctx);
    },
  };
}

function concat(x: Uint8Array, y: Uint8Array): Uint8Array {
  const out = new Uint8Array(x.length + y.length);
  out.set(x);
  out.set(y, x.length);
  return out;
}

/** An unsigned (version 1) entry, as earlier SDKs wrote them. */
function unsignedEntry(device: Uint8Array, stream: Uint8Array, seq: number, payload: Uint8Array): Uint8Array {
  assert.ok(seq < 0x80);
  return Uint8Array.from([0xdb, 1, ...device, ...stream, seq, ...payload]);
}

for (const sealed of [false, true]) {
  test(`SDK appends are signed and verify, from the leader and from a follower${sealed ? ', end-to-end encrypted' : ''}`, async () => {
    const srv = await server();
    const a = await makeClient(srv);
    const b = await makeClient(srv);
    const site = await sharedSite(a, [b]);
    const key = randomBytes(32);
    const opts = sealed ? { codec: cipher(key) } : {};
    const la = a.client.openLog(site, 'chat', opts);
    const ra = record(la);
    await la.opened;
    const lb = b.client.openLog(site, 'chat', { ...(sealed ? { codec: cipher(key) } : {}), lead: false });
    const rb = record(lb);
    await lb.opened;
    assert.equal(lb.role, 'follower');
    await Promise.all([la.append([enc('a1'), enc('a2')]), lb.append([enc('b1')]), lb.append([enc('b2'), enc('b3')]), la.append([enc('a3')])]);
    await waitFor('both see every entry', () => ra.seen.length === 6 && rb.seen.length === 6);
    for (const seen of [ra.seen, rb.seen]) {
      assert.deepEqual(seen.map((e) => [e.signed, e.error]), Array.from({ length: 6 }, () => [true, undefined]));
      assert.deepEqual(seen.map((e) => text(e.payload)).sort(), ['a1', 'a2', 'a3', 'b1', 'b2', 'b3']);
    }
    assert.deepEqual(new Set(ra.seen.map((e) => e.origin?.device)), new Set([a.client.device, b.client.device]));
    for (const c of [a, b]) await c.client.close();
  });

  test(`a member forging entries in another member's name: readers refuse them, the real writer's stream is unaffected${sealed ? ' (end-to-end encrypted)' : ''}`, async () => {
    const srv = await server();
    const [victim, forger, reader] = [await makeClient(srv), await makeClient(srv), await makeClient(srv)];
    const site = await sharedSite(victim, [forger, reader]);
    const key = randomBytes(32);

    // The forger leads the log with a raw client and never takes followers' entries, so the
    // victim's append waits, pending, while the forger writes in its name.
    const raw = await TailClient.connect(srv.wsUrl, await forger.client.session.accessToken());
    const l = await raw.call<{ handle: string; role: string }>('lease', { site, log: 'chat' });
    assert.equal(l.role, 'leader');
    const victimCodec = sealed ? cipher(key) : null;
    const lv = victim.client.openLog(site, 'chat', victimCodec === null ? {} : { codec: victimCodec });
    const rv = record(lv);
    await lv.opened;
    assert.equal(lv.role, 'follower');
    let firstAt: number | null = null;
    const first = lv.append([enc('real one')]).then(([i]) => (firstAt = i!));

    // The victim's header on every forgery: its device, its stream, the seq of its pending append.
    const prefix = originPrefix(victim.client.device, lv.writerStream);
    const origin = { device: victim.client.device, stream: lv.writerStream, seq: 1 };
    const forgerCipher = new EntryCipher({ writeKey: async () => ({ epoch: 1, key }), readKey: async () => key });
    // A member holds the site key: with the codec, the forged payloads open as the victim's would.
    const payload = async (s: string, as: EntryOrigin = origin) => (sealed ? forgerCipher.seal(enc(s), { site, log: 'chat', origin: as }) : enc(s));
    const forgerSigns = entrySigner(site, 'chat', (m) => forger.client.keys.signAsync(m));
    const garbage = entrySigner(site, 'chat', async () => randomBytes(64));
    const zeros = entrySigner(site, 'chat', async () => new Uint8Array(64));
    const ownStream = b64urlEncode(randomBytes(8));
    const genuine = await encodeEntry(originPrefix(forger.client.device, ownStream), 1, await payload('forger, in its own name', { device: forger.client.device, stream: ownStream, seq: 1 }), forgerSigns);
    // A genuine entry of the victim's, signed for another log, copied here.
    const elsewhere = await encodeEntry(prefix, 1, await payload('real one, elsewhere'), entrySigner(site, 'other', (m) => victim.client.keys.signAsync(m)));
    const entries = [
      await encodeEntry(prefix, 1, await payload('forged, bad signature'), garbage),
      await encodeEntry(prefix, 1, await payload("forged, the forger's own signature"), forgerSigns),
      await encodeEntry(prefix, 2, await payload('forged, no signature (zeros)'), zeros),
      elsewhere,
      genuine,
      unsignedEntry(prefix.device, prefix.stream, 1, await payload('unsigned, in the old format')),
    ];
    await raw.call('write', { handle: l.handle, at: 0, entries: entries.map((e) => b64urlEncode(e)) });
    await waitFor('the victim reads the forgeries', () => rv.seen.length === 6);
    assert.equal(firstAt, null, "the forgeries did not settle the victim's append");

    // The forger steps down; the victim leads and writes its own entry, which counts as seq 1.
    await raw.call('release', { handle: l.handle });
    raw.close();
    await first;
    assert.equal(firstAt, 6);
    assert.equal(lv.role, 'leader');
    assert.deepEqual(await lv.append([enc('real two')]), [7]);

    const readerCodec = sealed ? cipher(key) : null;
    const lr = reader.client.openLog(site, 'chat', { lead: false, ...(readerCodec === null ? {} : { codec: readerCodec }) });
    const rr = record(lr);
    await lr.opened;
    await waitFor('every entry, for both', () => rr.seen.length === 8 && rv.seen.length === 8);
    for (const seen of [rv.seen, rr.seen]) {
      const view = (e: LogEntry) => [e.index, e.error?.code ?? null, e.signed, e.error === undefined ? text(e.payload) : e.payload.length];
      assert.deepEqual(seen.map(view), [
        [0, 'FORBIDDEN', false, 0],
        [1, 'FORBIDDEN', false, 0],
        [2, 'FORBIDDEN', false, 0],
        [3, 'FORBIDDEN', false, 0],
        [4, null, true, 'forger, in its own name'],
        [5, null, false, 'unsigned, in the old format'],
        [6, null, true, 'real one'],
        [7, null, true, 'real two'],
      ]);
      assert.match(seen[0]!.error!.message, /signature does not verify/);
      assert.deepEqual(seen.slice(0, 4).map((e) => e.origin), [origin, origin, { ...origin, seq: 2 }, origin], 'a refused entry still says whose it claimed to be');
      assert.deepEqual(seen[6]!.origin, origin, "the victim's real entry is its seq 1, not taken for a replay of a forgery");
    }
    for (const codec of [victimCodec, readerCodec]) {
      if (codec === null) continue;
      const forged = codec.opened.filter((o) => o?.device === victim.client.device && o.seq === 1);
      assert.equal(forged.length, 2, 'only the unsigned entry and the real one were opened in the victim’s name, never a refused one');
    }
    await lr.close();
    for (const c of [victim, forger, reader]) await c.client.close();
  });
}

test('readers admit batches in order (each verified concurrently), and count only entries whose signature verifies', async () => {
  const site = 'site1';
  const writer = DeviceKeys.generate();
  const other = DeviceKeys.generate();
  const self = { device: other.deviceId, stream: b64urlEncode(randomBytes(8)) };
  const w = originPrefix(writer.deviceId, b64urlEncode(randomBytes(8)));
  const signs = entrySigner(site, 'chat', (m) => writer.signAsync(m));
  const committed: [number, boolean][] = [];
  const admitted: LogEntry[][] = [];
  const pending = new Map<number, Uint8Array>();
  const refusedOwn: [string, number, number][] = [];
  const admission = new Admission({ site, log: 'chat' }, self, {
    pendingBytes: (seq) => pending.get(seq),
    committed: (_o, index, signed) => committed.push([index, signed]),
    refusedOwn: (stream, seq, index) => refusedOwn.push([stream, seq, index]),
    admitted: (entries) => admitted.push(entries),
  });
  const forged = await encodeEntry(w, 2, enc('forged'), entrySigner(site, 'chat', (m) => other.signAsync(m)));
  admission.push(0, [await encodeEntry(w, 1, enc('one'), signs), forged, await encodeEntry(w, 2, enc('two'), signs)]);
  const oldStream = new Uint8Array(randomBytes(8));
  admission.push(3, [
    await encodeEntry(w, 2, enc('two'), signs),
    enc('no header'),
    // Seq 3 of the signed stream, unsigned: a forgery, or a signed entry stripped and replayed.
    unsignedEntry(w.device, w.stream, 3, enc('stripped')),
    unsignedEntry(w.device, oldStream, 1, enc('old')),
  ]);
  await admission.settled();
  assert.deepEqual(admitted.map((b) => b.map((e) => e.index)), [[0, 1, 2], [3, 4, 5, 6]], 'in order, batch by batch');
  assert.deepEqual(admitted.flat().map((e) => [e.error?.code ?? null, e.signed]), [
    [null, true],
    ['FORBIDDEN', false],
    [null, true],
    ['CONFLICT', true],
    [null, false],
    ['CONFLICT', false],
    [null, false],
  ]);
  assert.deepEqual(committed, [[0, true], [2, true], [6, false]], 'the forgery, the replay and the unsigned entry on a signing stream count for no one; an unsigned stream is kept apart');

  // This writer's own pending entries are admitted without verifying, by their bytes; an entry
  // with its header but other bytes is verified (and refused) like any other.
  const mine = originPrefix(self.device, self.stream);
  const own = await encodeEntry(mine, 1, enc('mine'), entrySigner(site, 'chat', (m) => other.signAsync(m)));
  pending.set(1, own);
  admission.push(6, [own]);
  assert.equal(admitted.length, 3, 'admitted at once: nothing to verify');
  admission.push(7, [await encodeEntry(mine, 2, enc('not mine'), signs)]);
  await admission.settled();
  assert.deepEqual(admitted.slice(2).flat().map((e) => [e.index, e.error?.code ?? null]), [[6, null], [7, 'FORBIDDEN']]);

  // An own entry that lands after a later seq of this writer (seq 3, then 2) is refused by
  // every reader: this writer is told, so that append fails instead of waiting for ever.
  const three = await encodeEntry(mine, 3, enc('three'), entrySigner(site, 'chat', (m) => other.signAsync(m)));
  const two = await encodeEntry(mine, 2, enc('two'), entrySigner(site, 'chat', (m) => other.signAsync(m)));
  pending.set(3, three);
  pending.set(2, two);
  admission.push(8, [three, two]);
  await admission.settled();
  assert.deepEqual(admitted.slice(4).flat().map((e) => [e.index, e.error?.code ?? null]), [[8, null], [9, 'CONFLICT']]);
  assert.deepEqual(committed.slice(-2), [[6, true], [8, true]], 'the replayed seq counts for no one');
  assert.deepEqual(refusedOwn, [[self.stream, 2, 9]], 'only this device’s own replayed seq is reported');
});

test('entries are signed through WebCrypto with the device key imported once, not extractable, byte for byte as @noble/curves signs; without Ed25519 in WebCrypto, noble signs', async (t) => {
  // RFC 8032, 7.1, test 1: the empty message.
  const rfcSeed = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
  const rfcSig = 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';
  const stored = { sign: b64urlEncode(Buffer.from(rfcSeed, 'hex')), box: b64urlEncode(randomBytes(32)) };
  const long = randomBytes(60_000);
  const messages = [new Uint8Array(0), enc('m'), long, long.subarray(3, 40_003), ...Array.from({ length: 20 }, (_, i) => enc(`message ${i}`))];

  const importKey = t.mock.method(globalThis.crypto.subtle, 'importKey');
  const sign = t.mock.method(globalThis.crypto.subtle, 'sign');
  for (const keys of [DeviceKeys.generate(), DeviceKeys.fromJSON(stored)]) {
    importKey.mock.resetCalls();
    const signatures = await Promise.all(messages.map((m) => keys.signAsync(m)));
    assert.deepEqual(signatures.map((s) => Buffer.from(s).toString('hex')), messages.map((m) => Buffer.from(keys.sign(m)).toString('hex')));
    assert.equal(importKey.mock.callCount(), 1, 'imported once, though the first signatures were asked for together');
    const [format, , , extractable, usages] = importKey.mock.calls[0]!.arguments;
    assert.deepEqual([format, extractable, usages], ['pkcs8', false, ['sign']]);
  }
  assert.equal(sign.mock.callCount(), 2 * messages.length, 'through WebCrypto');
  assert.equal(Buffer.from(await DeviceKeys.fromJSON(stored).signAsync(new Uint8Array(0))).toString('hex'), rfcSig);

  importKey.mock.resetCalls();
  sign.mock.resetCalls();
  importKey.mock.mockImplementation(async () => {
    throw new DOMException('Unrecognized algorithm name', 'NotSupportedError');
  });
  const fallback = DeviceKeys.fromJSON(stored);
  assert.equal(Buffer.from(await fallback.signAsync(new Uint8Array(0))).toString('hex'), rfcSig);
  const again = await Promise.all(messages.map((m) => fallback.signAsync(m)));
  assert.deepEqual(again.map((s) => Buffer.from(s).toString('hex')), messages.map((m) => Buffer.from(fallback.sign(m)).toString('hex')));
  assert.equal(importKey.mock.callCount(), 1, 'found out once');
  assert.equal(sign.mock.callCount(), 0);
});

for (const sealed of [false, true]) {
  test(`an append whose signing fails is rejected as a whole and leaves no gap in its writer stream; seqs follow the order of calls${sealed ? ' (end-to-end encrypted)' : ''}`, async (t) => {
    const srv = await server();
    const a = await makeClient(srv);
    const b = await makeClient(srv);
    const site = await sharedSite(a, [b]);
    const key = randomBytes(32);
    // Signatures finish out of order, and the devices refuse to sign payloads that start with
    // REFUSE (with the codec, such a payload is sealed as REFUSE + ciphertext).
    const REFUSE = 'do not sign:';
    for (const c of [a, b]) {
      const real = c.client.keys.signAsync.bind(c.client.keys);
      t.mock.method(c.client.keys, 'signAsync', async (m: Uint8Array) => {
        await new Promise((r) => setTimeout(r, Math.random() * 5));
        if (Buffer.from(m).includes(REFUSE)) throw new DgError('INTERNAL', 'refused to sign');
        return real(m);
      });
    }
    const mark = (codec: PayloadCodec): PayloadCodec => ({
      overhead: codec.overhead + REFUSE.length,
      seal: async (p, ctx) => (text(p).startsWith(REFUSE) ? concat(enc(REFUSE), await codec.seal(p, ctx)) : codec.seal(p, ctx)),
      open: (s, ctx) => codec.open(s, ctx),
    });
    const opts = (lead: boolean) => ({ lead, ...(sealed ? { codec: mark(cipher(key)) } : {}) });
    const la = a.client.openLog(site, 'chat', opts(true));
    const ra = record(la);
    await la.opened;
    const lb = b.client.openLog(site, 'chat', opts(false));
    await lb.opened;
    assert.equal(lb.role, 'follower');

    const calls = [lb.append([enc('b1')]), lb.append([enc(`${REFUSE} b`), enc('lost with it')]), lb.append([enc('b2'), enc('b3')]), la.append([enc(`${REFUSE} a`)]), la.append([enc('a1')]), lb.append([enc('b4')])];
    const results = await Promise.allSettled(calls);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    assert.equal(((results[1] as PromiseRejectedResult).reason as DgError).message, 'refused to sign');
    await Promise.all(Array.from({ length: 20 }, (_, i) => lb.append([enc(`more ${i}`)])));
    await waitFor('the leader sees every entry', () => ra.seen.length === 25);
    const fromB = ra.seen.filter((e) => e.origin?.device === b.client.device);
    assert.deepEqual(fromB.map((e) => e.origin!.seq), Array.from({ length: 24 }, (_, i) => i + 1), "the follower's seqs are contiguous: the failed call took none");
    assert.deepEqual(fromB.map((e) => text(e.payload)), ['b1', 'b2', 'b3', 'b4', ...Array.from({ length: 20 }, (_, i) => `more ${i}`)], 'in the order of the calls');
    assert.deepEqual(ra.seen.filter((e) => e.origin?.device === a.client.device).map((e) => [e.origin!.seq, text(e.payload)]), [[1, 'a1']]);
    assert.ok(ra.seen.every((e) => e.signed && e.error === undefined));
    for (const c of [a, b]) await c.client.close();
  });
}

test('the verifier imports each device key once, and falls back to @noble/curves without Ed25519 in WebCrypto', async (t) => {
  const keys = DeviceKeys.generate();
  const msg = enc('message');
  const sig = keys.sign(msg);
  const bad = Uint8Array.from(sig);
  bad[10]! ^= 1;
  const importKey = t.mock.method(globalThis.crypto.subtle, 'importKey');
  const v = new Ed25519Verifier();
  assert.deepEqual(await Promise.all([v.verify(keys.deviceId, keys.publicKey, msg, sig), v.verify(keys.deviceId, keys.publicKey, msg, bad), v.verify(keys.deviceId, keys.publicKey, enc('other'), sig)]), [true, false, false]);
  assert.equal(await v.verify(keys.deviceId, keys.publicKey, msg, sig.subarray(1)), false);
  assert.equal(importKey.mock.callCount(), 1);
  importKey.mock.mockImplementation(async () => {
    throw new DOMException('Unrecognized algorithm name', 'NotSupportedError');
  });
  const fallback = new Ed25519Verifier();
  assert.deepEqual(await Promise.all([fallback.verify(keys.deviceId, keys.publicKey, msg, sig), fallback.verify(keys.deviceId, keys.publicKey, msg, bad)]), [true, false]);
  assert.equal(await fallback.verify(keys.deviceId, keys.publicKey, msg, sig), true);
});

test('a small-order public key verifies nothing: an entry under one, whoever wrote it, is refused as forged', async () => {
  // The all-zero encoding is a point of order 4: with R of small order too and S = 0, the
  // cofactorless equation holds for about a third of messages, whoever made them. WebCrypto
  // (OpenSSL) accepts them; RFC 8032 strict verification (noble, zip215: false) does not.
  const zeroKey = new Uint8Array(32);
  const zeroSig = new Uint8Array(64);
  const zeroDevice = b64urlEncode(zeroKey);
  const site = 'site1';
  const stream = randomBytes(8);
  const prefix = { device: zeroKey, stream };
  const scope = entrySigner(site, 'chat', async () => zeroSig);
  const entries: Uint8Array[] = [];
  for (let seq = 1; entries.length < 4 && seq < 200; seq++) {
    const e = await encodeEntry(prefix, seq, enc(`forged ${seq}`), scope);
    const d = decodeEntry(e);
    const key = await globalThis.crypto.subtle.importKey('raw', zeroKey, { name: 'Ed25519' }, false, ['verify']);
    if (await globalThis.crypto.subtle.verify('Ed25519', key, zeroSig, new Uint8Array(entrySigningMessage(scope.scope, d.signedHeader, d.payload)))) entries.push(e);
  }
  assert.equal(entries.length, 4, 'WebCrypto alone accepts such signatures');
  const v = new Ed25519Verifier();
  for (const e of entries) {
    const d = decodeEntry(e);
    assert.equal(await v.verify(zeroDevice, zeroKey, entrySigningMessage(scope.scope, d.signedHeader, d.payload), zeroSig), false);
  }
  const admitted: LogEntry[] = [];
  const committed: number[] = [];
  const admission = new Admission({ site, log: 'chat' }, { device: DeviceKeys.generate().deviceId, stream: b64urlEncode(randomBytes(8)) }, {
    pendingBytes: () => undefined,
    committed: (_o, index) => committed.push(index),
    refusedOwn: () => undefined,
    admitted: (batch) => admitted.push(...batch),
  });
  admission.push(0, entries);
  await admission.settled();
  assert.deepEqual(admitted.map((e) => [e.index, e.error?.code, e.signed]), entries.map((_, i) => [i, 'FORBIDDEN', false]));
  assert.deepEqual(committed, []);
});

test("a leader counts an unsigned entry naming a follower that signs as no one's, and does not acknowledge it", async () => {
  const follower = DeviceKeys.generate();
  const stream = b64urlEncode(randomBytes(8));
  const signed = await encodeEntry(originPrefix(follower.deviceId, stream), 1, enc('one'), entrySigner('site1', 'chat', (m) => follower.signAsync(m)));
  const replies: LinkMessage[] = [];
  const seq = new Sequencer(
    { write: () => new Promise(() => undefined), written: () => undefined, failed: () => undefined, refused: () => undefined, mayWrite: () => true, find: async () => [] },
    'w',
    { maxFrame: 1 << 20, maxEntries: 1000, maxEntryBytes: 256 * 1024, maxHandles: 256 },
  );
  seq.resume(1, 0);
  seq.submitRemote(follower.deviceId, { t: 'submit', epoch: 1, stream, floor: 1, entries: [b64urlEncode(signed)] }, (m) => replies.push(m));
  const origin = { device: follower.deviceId, stream, seq: 1 };
  seq.noteCommitted(origin, 0, false);
  seq.flushAcks();
  assert.deepEqual(replies, []);
  seq.noteCommitted(origin, 1, true);
  seq.flushAcks();
  assert.deepEqual(replies, [{ t: 'ack', epoch: 1, stream, acks: [[1, 1]] }]);
});
