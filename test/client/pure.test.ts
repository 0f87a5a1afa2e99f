/**
 * The SDK's pure parts: byte encodings, the entry header, rendezvous hashing, backoff,
 * grant signatures (checked with jose, an independent JWS implementation), link framing
 * and the file key storage.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readdir, readFile, stat, utimes, writeFile, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as jose from 'jose';
import fc from 'fast-check';
import {
  b64urlDecode,
  b64urlEncode,
  backoffDelay,
  DatagroveClient,
  DgError,
  decodeEntry,
  DeviceKeys,
  encodeEntry,
  ENTRY_VERSION,
  entrySigner,
  grantHash,
  MAX_HEADER_BYTES,
  MemoryKeyStorage,
  originPrefix,
  pickShard,
  readGrant,
  signGrant,
  tailUrl,
  verifyDeviceSignature,
} from '../../src/client/index.js';
import { FileKeyStorage } from '../../src/client/node/index.js';
import { toFrames, type LinkMessage } from '../../src/client/link-messages.js';
import { FragmentPool, Reassembler, reassemblyLimits } from '../../src/client/link-reassembly.js';
import { Forwarder } from '../../src/client/log-forwarder.js';
import { PendingAppends } from '../../src/client/log-pending.js';
import { tempDir } from '../helpers/server.js';

test('base64url matches Node and rejects non-canonical input', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const enc = b64urlEncode(bytes);
      assert.equal(enc, Buffer.from(bytes).toString('base64url'));
      assert.deepEqual(b64urlDecode(enc), bytes);
    }),
  );
  assert.equal(b64urlDecode('a'), null, 'length 1 mod 4');
  assert.equal(b64urlDecode('ab+c'), null, 'standard alphabet');
  assert.equal(b64urlDecode('ab=='), null, 'padding');
  assert.equal(b64urlDecode('AB'), null, 'non-zero trailing bits');
  assert.deepEqual(b64urlDecode('AA'), new Uint8Array([0]));
});

test('entry header: round trip, layout (version 2, signed), and raw entries pass through', async () => {
  const keys = DeviceKeys.generate();
  const stream = b64urlEncode(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  const prefix = originPrefix(keys.deviceId, stream);
  const signer = entrySigner('site1', 'chat', (m) => keys.signAsync(m));
  // The signature checked by node:crypto, an implementation independent of the SDK's, over
  // the message as documented: the scope, the header before the signature, the payload.
  const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: keys.deviceId }, format: 'jwk' });
  const signs = (bytes: Uint8Array, sigAt: number, site = 'site1', log = 'chat') =>
    verify(null, Buffer.concat([Buffer.from(`datagrove-entry-v2\n${site}\n${log}\n`), bytes.subarray(0, sigAt), bytes.subarray(sigAt + 64)]), publicKey, bytes.subarray(sigAt, sigAt + 64));
  for (const seq of [1, 127, 128, 300, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
    const payload = new TextEncoder().encode(`p${seq}`);
    const bytes = await encodeEntry(prefix, seq, payload, signer);
    const d = decodeEntry(bytes);
    assert.deepEqual(d.origin, { device: keys.deviceId, stream, seq });
    assert.deepEqual(d.payload, payload);
    assert.equal(d.signature?.length, 64);
    assert.ok(signs(bytes, d.signedHeader.length));
  }
  const e = await encodeEntry(prefix, 300, new Uint8Array([9]), signer);
  assert.equal(e[0], 0xdb);
  assert.equal(e[1], ENTRY_VERSION);
  assert.equal(ENTRY_VERSION, 2);
  assert.deepEqual(e.subarray(2, 34), keys.publicKey);
  assert.deepEqual([...e.subarray(34, 42)], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...e.subarray(42, 44)], [0xac, 0x02], 'LEB128 of 300');
  assert.equal(e.length, 44 + 64 + 1, 'then the 64-byte signature, then the payload');
  assert.deepEqual([...e.subarray(108)], [9]);
  assert.ok(signs(e, 44));
  assert.ok(!signs(e, 44, 'site2'), 'the site is signed');
  assert.ok(!signs(e, 44, 'site1', 'other'), 'the log is signed');
  assert.ok(e.length <= MAX_HEADER_BYTES + 1);
  // Version 1 (earlier SDKs, unsigned) still decodes: no signature, the payload right after the seq.
  const v1 = Uint8Array.from([0xdb, 1, ...keys.publicKey, 1, 2, 3, 4, 5, 6, 7, 8, 0xac, 0x02, 9]);
  assert.deepEqual(decodeEntry(v1), { origin: { device: keys.deviceId, stream, seq: 300 }, payload: new Uint8Array([9]), signature: null, signedHeader: new Uint8Array(0) });
  // Empty payloads are fine; entries not written by the SDK come back unchanged with no origin,
  // and so does a version 2 header cut before the end of its signature, or an unknown version.
  assert.equal(decodeEntry(await encodeEntry(prefix, 1, new Uint8Array(), signer)).payload.length, 0);
  const v3 = Uint8Array.from(e);
  v3[1] = 3;
  for (const raw of [new Uint8Array([1, 2, 3]), new TextEncoder().encode('plain text entry, no header at all, long enough'), e.subarray(0, 42), e.subarray(0, 107), v3]) {
    const d = decodeEntry(raw);
    assert.equal(d.origin, null);
    assert.equal(d.signature, null);
    assert.deepEqual(d.payload, raw);
  }
  await assert.rejects(encodeEntry(prefix, 0, new Uint8Array(), signer));
});

test('rendezvous hashing agrees with an independent SHA-256 computation', () => {
  const shards = [
    { id: 'tail-1', url: 'ws://a/tail' },
    { id: 'tail-2', url: 'ws://b/tail' },
    { id: 'tail-3', url: 'ws://c/tail' },
  ];
  const score = (id: string, site: string) => createHash('sha256').update(`${id}/${site}`, 'utf8').digest().readBigUInt64BE(0);
  const counts = new Map<string, number>();
  for (let i = 0; i < 300; i++) {
    const site = `site${i}`;
    const expected = [...shards].sort((a, b) => (score(b.id, site) > score(a.id, site) ? 1 : -1))[0]!;
    const got = pickShard(shards, site)!;
    assert.equal(got.id, expected.id, site);
    counts.set(got.id, (counts.get(got.id) ?? 0) + 1);
    // Removing a shard moves only that shard's sites.
    const without = pickShard(shards.filter((s) => s.id !== 'tail-3'), site)!;
    if (got.id !== 'tail-3') assert.equal(without.id, got.id);
  }
  for (const s of shards) assert.ok((counts.get(s.id) ?? 0) > 60, `fair share for ${s.id}`);
  // Fixed vectors, computed once with node:crypto and frozen here.
  const fixed: [string, string][] = [
    ['alpha', 'tail-3'],
    ['beta', 'tail-2'],
    ['gamma', 'tail-3'],
    ['delta', 'tail-3'],
    ['site-42', 'tail-2'],
  ];
  for (const [site, id] of fixed) assert.equal(pickShard(shards, site)!.id, id, site);
  assert.equal(score('tail-1', 'alpha').toString(16), 'c93bad357dd4c47c');
  assert.equal(pickShard([], 'x'), null);
  assert.equal(tailUrl('http://h:1'), 'ws://h:1/tail');
  assert.equal(tailUrl('https://h/x/tail'), 'wss://h/x/tail');
  assert.equal(tailUrl('ws://h:2/tail'), 'ws://h:2/tail');
});

test('backoff grows exponentially, stays within [d/2, d], and is capped', () => {
  for (let n = 0; n < 20; n++) {
    const d = Math.min(30_000, 250 * 2 ** n);
    assert.equal(backoffDelay(n, {}, () => 0), Math.round(d / 2));
    assert.equal(backoffDelay(n, {}, () => 1), d);
    const r = backoffDelay(n);
    assert.ok(r >= d / 2 - 1 && r <= d + 1);
  }
  assert.equal(backoffDelay(3, { baseMs: 100, maxMs: 500 }, () => 1), 500);
});

test('grants verify with jose and hash as the protocol says', async () => {
  const keys = DeviceKeys.generate();
  const jws = signGrant(keys, { sub: 'user:bob', site: 'site1', logs: ['*'], rights: ['read', 'write'], exp: 2_000_000_000 }, 1_700_000_000_000);
  const jwk = { kty: 'OKP', crv: 'Ed25519', x: keys.deviceId };
  const key = await jose.importJWK(jwk, 'EdDSA');
  const { payload, protectedHeader } = await jose.compactVerify(jws, key);
  assert.deepEqual(protectedHeader, { alg: 'EdDSA', typ: 'dg-grant+jwt' });
  assert.deepEqual(JSON.parse(new TextDecoder().decode(payload)), {
    iss: keys.deviceId,
    sub: 'user:bob',
    site: 'site1',
    logs: ['*'],
    rights: ['read', 'write'],
    iat: 1_700_000_000,
    exp: 2_000_000_000,
  });
  assert.equal(grantHash(jws), createHash('sha256').update(jws, 'ascii').digest('base64url'));
  assert.equal(readGrant(jws)?.sub, 'user:bob');
  const [h, p, s] = jws.split('.');
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), rights: ['admin'] })).toString('base64url')}.${s}`;
  assert.equal(readGrant(forged), null);
  // Signed, but with a key given twice: other verifiers would read other rights.
  const twice = Buffer.from(Buffer.from(p!, 'base64url').toString().replace('"rights":["read","write"]', '"rights":["read"],"rights":["admin"]')).toString('base64url');
  const input = `${h}.${twice}`;
  const twiceJws = `${input}.${Buffer.from(keys.sign(new TextEncoder().encode(input))).toString('base64url')}`;
  assert.ok(verifyDeviceSignature(keys.deviceId, new TextEncoder().encode(input), keys.sign(new TextEncoder().encode(input))));
  assert.equal(readGrant(twiceJws), null);
  assert.throws(() => signGrant(keys, { sub: 'bob', site: 'x', logs: ['*'], rights: ['read'] }), /sub/);
  assert.throws(() => signGrant(keys, { sub: 'user:b', site: 'x', logs: [], rights: ['read'] }), /logs/);
  // The challenge signature is Ed25519 over "datagrove-auth-v1:" + nonce.
  const sig = Buffer.from(keys.signChallenge('n0nce'), 'base64url');
  assert.ok(verifyDeviceSignature(keys.deviceId, new TextEncoder().encode('datagrove-auth-v1:n0nce'), sig));
  assert.ok(!verifyDeviceSignature(keys.deviceId, new TextEncoder().encode('datagrove-auth-v1:other'), sig));
});

test('link messages fragment and reassemble; bad frames are dropped', () => {
  const big: LinkMessage = { t: 'submit', epoch: 3, stream: 'abc', floor: 1, entries: Array.from({ length: 50 }, (_, i) => 'A'.repeat(2000) + i) };
  const frames = toFrames(big);
  assert.ok(frames.length > 1);
  for (const f of frames) assert.ok(JSON.stringify(f).length < 64 * 1024);
  const r = new Reassembler(new FragmentPool(() => reassemblyLimits(1 << 20)));
  const shuffled = [...frames].reverse();
  let out: LinkMessage | null = null;
  for (const f of shuffled) out = r.push(f) ?? out;
  assert.deepEqual(out, big);
  assert.equal(r.push({ t: 'frag', id: 'x', i: 5, n: 2, d: '' }), null);
  assert.equal(r.push({ t: 'submit', epoch: -1, stream: 'a', floor: 0, entries: [] }), null);
  assert.equal(r.push('nope'), null);
  assert.deepEqual(r.push({ t: 'ack', epoch: 1, stream: 's', acks: [[1, 2]] }), { t: 'ack', epoch: 1, stream: 's', acks: [[1, 2]] });
});

test('a follower splits its pending entries into submit messages that fit the link, by bytes as well as by count', () => {
  const pending = new PendingAppends();
  // 130 entries of 200 KB: over the 1024 fragments a message can have, were they sent as one.
  for (let seq = 1; seq <= 130; seq++) void pending.add(seq, new Uint8Array(200_000).fill(seq)).catch(() => undefined);
  const messages: LinkMessage[] = [];
  const forwarder = new Forwarder({
    pending,
    stream: 'stream',
    nextSeq: () => 131,
    seen: () => 0,
    send: (_leader, msg) => {
      toFrames(msg); // what the link does with it: throws when it cannot be framed
      messages.push(msg);
    },
    stalled: () => undefined,
    busy: () => false,
    retransmitMs: 60_000,
    batch: 256,
    batchBytes: 512 * 1024,
  });
  forwarder.setLeader('leader', 1);
  forwarder.stop();
  const submits = messages.filter((m) => m.t === 'submit');
  assert.deepEqual(submits.flatMap((m) => m.entries).length, 130, 'every entry sent once');
  for (const m of submits) assert.ok(m.entries.reduce((n, e) => n + e.length, 0) <= (512 * 1024 * 4) / 3 + 4, 'each message within the byte budget');
});

test('device keys persist through a 0600 key file, and memory storage', async () => {
  const path = join(tempDir(), 'sub', 'keys.json');
  const storage = new FileKeyStorage(path);
  const a = await DeviceKeys.loadOrCreate(storage);
  const b = await DeviceKeys.loadOrCreate(new FileKeyStorage(path));
  assert.equal(a.deviceId, b.deviceId);
  assert.equal(a.boxKey, b.boxKey);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  await storage.save('other', { x: [1, 'two', null] });
  assert.deepEqual(await new FileKeyStorage(path).load('other'), { x: [1, 'two', null] });
  await storage.remove('other');
  assert.equal(await storage.load('other'), null);
  assert.ok(JSON.parse(await readFile(path, 'utf8'))['datagrove.device']);
  const mem = new MemoryKeyStorage();
  const c = await DeviceKeys.loadOrCreate(mem);
  assert.equal((await DeviceKeys.loadOrCreate(mem)).deviceId, c.deviceId);
  assert.notEqual(c.deviceId, a.deviceId);
  assert.throws(() => DeviceKeys.fromJSON({ sign: 'short', box: 'x' }), /malformed/);
});

test('FileKeyStorage: concurrent saves through several instances and processes all land', async () => {
  const path = join(tempDir('keys-many'), 'nested', 'keys.json');
  const stores = [new FileKeyStorage(path), new FileKeyStorage(path)];
  await Promise.all(Array.from({ length: 20 }, (_, i) => (stores[i % 2] as FileKeyStorage).save(`k${i}`, i)));
  // Another process writing the same file at the same time.
  const url = new URL('../../src/client/node/storage-file.ts', import.meta.url).href;
  const script = `const { FileKeyStorage } = await import(${JSON.stringify(url)}); const s = new FileKeyStorage(${JSON.stringify(path)}); await Promise.all(Array.from({ length: 20 }, (_, i) => s.save('p' + i, i)));`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: 'inherit' });
  await Promise.all(Array.from({ length: 20 }, (_, i) => (stores[i % 2] as FileKeyStorage).save(`q${i}`, i)));
  assert.equal(await new Promise((r) => child.on('exit', r)), 0);
  const all = JSON.parse(await readFile(path, 'utf8')) as Record<string, number>;
  for (let i = 0; i < 20; i++) {
    assert.equal(all[`k${i}`], i);
    assert.equal(all[`q${i}`], i);
    assert.equal(all[`p${i}`], i, `the other process's save p${i}`);
  }
  assert.deepEqual((await readdir(dirname(path))).sort(), ['keys.json'], 'no temp or lock file left');
});

test('FileKeyStorage.lock: one holder at a time across instances, saves inside it, released on throw, stale lock files taken over', async () => {
  const dir = join(tempDir('keys-lock'), 'nested');
  const path = join(dir, 'keys.json');
  const stores = [new FileKeyStorage(path), new FileKeyStorage(path)];
  let inside = 0;
  let most = 0;
  const files: string[][] = [];
  await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      (stores[i % 2] as FileKeyStorage).lock('session:http://h/auth/v1:refresh', async () => {
        most = Math.max(most, ++inside);
        await new Promise((r) => setTimeout(r, 20));
        await (stores[(i + 1) % 2] as FileKeyStorage).save(`k${i}`, i); // the file's own lock is another one
        files.push(await readdir(dir));
        inside--;
      }),
    ),
  );
  assert.equal(most, 1, 'never two holders');
  assert.equal(await new FileKeyStorage(path).load('k5'), 5);
  const lockFile = files[0]!.find((f) => f.endsWith('.lock'))!;
  assert.match(lockFile, /^keys\.json\.session_http_h_auth_v1_refresh\.[0-9a-f]{12}\.lock$/);
  await assert.rejects(stores[0]!.lock('x', async () => Promise.reject(new Error('boom'))), /boom/);
  assert.equal(await stores[1]!.lock('x', async () => 'after a throw'), 'after a throw');
  assert.deepEqual(await readdir(dir), ['keys.json'], 'no lock file left');

  // A lock file another process holds (fresh) is waited for; one of a process that died
  // holding it (untouched for a minute) is taken over.
  const held = join(dir, lockFile);
  await writeFile(held, '');
  let ran = false;
  const waiting = stores[0]!.lock('session:http://h/auth/v1:refresh', async () => (ran = true));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(ran, false, 'waits while the lock file is held');
  await unlink(held);
  await waiting;
  await writeFile(held, '');
  const old = new Date(Date.now() - 60_000);
  await utimes(held, old, old);
  assert.equal(await stores[1]!.lock('session:http://h/auth/v1:refresh', async () => 'taken over'), 'taken over');
  assert.deepEqual(await readdir(dir), ['keys.json']);
});

test('MemoryKeyStorage.lock: callers of one name take turns, other names do not wait', async () => {
  const mem = new MemoryKeyStorage();
  const order: string[] = [];
  let release!: () => void;
  const first = mem.lock('a', () => new Promise<void>((r) => (release = r)).then(() => order.push('a1')));
  const second = mem.lock('a', async () => order.push('a2'));
  await mem.lock('b', async () => order.push('b'));
  release();
  await Promise.all([first, second]);
  assert.deepEqual(order, ['b', 'a1', 'a2']);
  await assert.rejects(mem.lock('a', async () => Promise.reject(new Error('boom'))), /boom/);
  assert.equal(await mem.lock('a', async () => 'free again'), 'free again');
});

test('signGrant refuses an expiry that is not later than now, or that is in milliseconds', async () => {
  const keys = await DeviceKeys.loadOrCreate(new MemoryKeyStorage());
  const spec = { sub: `user:${'A'.repeat(22)}`, site: 'A'.repeat(22), logs: ['*'], rights: ['read' as const] };
  const now = Date.now();
  for (const exp of [Math.floor(now / 1000) - 1, Math.floor(now / 1000), now + 60_000, 1.5]) {
    assert.throws(() => signGrant(keys, { ...spec, exp }, now), (e: unknown) => e instanceof DgError && e.code === 'BAD_REQUEST' && /^exp: /.test(e.message), String(exp));
  }
  assert.equal(readGrant(signGrant(keys, { ...spec, exp: Math.floor(now / 1000) + 60 }, now))?.exp, Math.floor(now / 1000) + 60);
});

test('a client made with a URL that is not http(s) says so at once', async () => {
  for (const url of ['localhost:8080', 'ws://localhost:8080', '', 'http://']) {
    await assert.rejects(DatagroveClient.create({ url }), (e: unknown) => e instanceof DgError && e.code === 'BAD_REQUEST' && /^url: expected the server's http/.test(e.message), url);
  }
});
