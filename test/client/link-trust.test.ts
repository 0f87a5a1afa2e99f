/**
 * Whom a Log takes link messages from. Any member holding a handle on a log, a reader too,
 * can signal every device there: it must not settle a writer's appends with an `ack`, nor
 * make a leader answer its offers or keep its fragments. A leader's `ack` is its word, not
 * the log's: an append settles at the index where its entry is read in the log. A writer's
 * unfinished messages are bounded in bytes.
 *
 * Real server and SDK clients (werift for WebRTC); the other side is a raw tail client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RTCPeerConnection } from 'werift';
import { TailClient, type TailEventFrame } from '../helpers/tail-client.js';
import type { TestServer } from '../helpers/server.js';
import { b64urlDecode, decodeEntry, type Log } from '../../src/client/index.js';
import { enc, makeClient, server, sharedSite, type TestClient } from './harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Gives `member` (signed up here) the rights on every log of `site`, from its owner. */
async function grant(owner: TestClient, member: TestClient, site: string, rights: ('read' | 'write')[]): Promise<void> {
  const { user } = await member.client.signup('member');
  const g = owner.client.signGrant({ sub: `user:${user}`, site, logs: ['*'], rights });
  await owner.client.declare(g);
  await member.client.join(site, g);
}

interface Raw {
  raw: TailClient;
  handle: string;
  epoch: number;
  role: string;
}

/** A raw tail session of `c`'s device holding a handle on the log. */
async function rawLease(srv: TestServer, c: TestClient, site: string, log: string, lead = false): Promise<Raw> {
  const raw = await TailClient.connect(srv.wsUrl, await c.client.session.accessToken());
  const l = await raw.call<{ handle: string; epoch: number; role: string }>('lease', { site, log, lead });
  return { raw, handle: l.handle, epoch: l.epoch, role: l.role };
}

/** Sends a signal, waiting out the relay's budget when it says so. */
async function signal(r: Raw, to: string, kind: string, data: unknown): Promise<void> {
  for (;;) {
    const reply = await r.raw.request('signal', { handle: r.handle, to, kind, data });
    if (reply.error === undefined) return;
    if (reply.error.code !== 'RATE_LIMITED') assert.fail(`signal refused: ${reply.error.code} ${reply.error.message}`);
    await sleep(100);
  }
}

/** Characters of unfinished link messages `log`'s links hold (what its reassembly keeps). */
function heldChars(log: Log): number {
  const hub = (log as unknown as { hub: { links: Map<string, { rx: { partial: Map<string, { parts: (string | undefined)[] }> } }> } }).hub;
  let n = 0;
  for (const link of hub.links.values()) for (const p of link.rx.partial.values()) for (const s of p.parts) n += s?.length ?? 0;
  return n;
}

/** Tracks a promise's outcome without awaiting it. */
function watch<T>(p: Promise<T>): { outcome: () => T | Error | undefined } {
  let outcome: T | Error | undefined;
  p.then(
    (v) => (outcome = v),
    (e: unknown) => (outcome = e instanceof Error ? e : new Error(String(e))),
  );
  return { outcome: () => outcome };
}

async function payloadsAt(r: Raw, from: number): Promise<string[]> {
  const read = await r.raw.call<{ entries: string[] }>('read', { handle: r.handle, from });
  return read.entries.map((e) => dec(decodeEntry(b64urlDecode(e)!).payload));
}

test("a reader's forged ack settles nothing: the append is written after the leader died, at the index it reports", async () => {
  const srv = await server({ leaseGraceMs: 1500 });
  const [a, b, m] = await Promise.all([0, 1, 2].map(() => makeClient(srv)));
  const site = await sharedSite(a!, [b!]);
  await grant(a!, m!, site, ['read']);
  const la = a!.client.openLog(site, 'main');
  await la.opened;
  const lb = b!.client.openLog(site, 'main');
  await lb.opened;
  assert.equal(lb.role, 'follower');
  assert.deepEqual(await lb.append([enc('b-1')]), [0]);

  // The reader learns b's writer stream from b's entry, as anyone who may read the log can.
  const reader = await rawLease(srv, m!, site, 'main');
  const read = await reader.raw.call<{ entries: string[] }>('read', { handle: reader.handle, from: 0 });
  const stream = decodeEntry(b64urlDecode(read.entries[0]!)!).origin!.stream;
  assert.equal(stream, lb.writerStream);

  // The leader dies: its socket is cut and its client gone, so nothing b sends it lands.
  a!.cut();
  void a!.client.close();
  const appended = lb.append([enc('b-2'), enc('b-3')]);
  const w = watch(appended);
  await sleep(100);
  await signal(reader, b!.client.device, 'data', { t: 'ack', epoch: reader.epoch, stream, acks: [[2, 1000], [3, 1001]] });
  await sleep(300);
  assert.equal(w.outcome(), undefined, 'a forged ack settles no append');

  // After the grace b leads, finds them missing and writes them.
  const indexes = await appended;
  assert.equal(lb.role, 'leader');
  assert.deepEqual(indexes, [1, 2]);
  assert.deepEqual(await payloadsAt(reader, 0), ['b-1', 'b-2', 'b-3']);
  reader.raw.close();
  for (const c of [b!, m!]) await c.client.close();
});

test("the leader's ack is not the log's word: an append settles where its entry is read in the log", async () => {
  const srv = await server();
  const [owner, b, w] = await Promise.all([0, 1, 2].map(() => makeClient(srv)));
  const site = await sharedSite(owner!, [b!]);
  await grant(owner!, w!, site, ['read', 'write']);
  // A writer leads with other code than the SDK's: it acknowledges at an index it made up.
  const leader = await rawLease(srv, w!, site, 'main', true);
  assert.equal(leader.role, 'leader');
  const lb = b!.client.openLog(site, 'main');
  await lb.opened;
  assert.equal(lb.role, 'follower');

  const appended = lb.append([enc('b-1')]);
  const seen = watch(appended);
  const ev = await leader.raw.event((e: TailEventFrame) => e.ev === 'signal' && e.kind === 'data' && (e.data as { t?: string }).t === 'submit');
  const submit = ev.data as { stream: string; epoch: number; entries: string[] };
  await signal(leader, (ev.peer as string | undefined) ?? (ev.from as string), 'data', { t: 'ack', epoch: submit.epoch, stream: submit.stream, acks: [[1, 77]] });
  await sleep(300);
  assert.equal(seen.outcome(), undefined, 'the ack alone settles nothing');

  // The leader writes the entry (the follower's bytes, as the SDK's leader does): now it settles, at its index.
  await leader.raw.call('write', { handle: leader.handle, at: 0, entries: submit.entries });
  assert.deepEqual(await appended, [0]);
  leader.raw.close();
  for (const c of [owner!, b!, w!]) await c.client.close();
});

test('a leader answers no offer of a device that may not write', async () => {
  const srv = await server();
  const [a, m] = await Promise.all([0, 1].map(() => makeClient(srv, { rtc: true })));
  const site = await sharedSite(a!, []);
  await grant(a!, m!, site, ['read']);
  const la = a!.client.openLog(site, 'main');
  await la.opened;
  const reader = await rawLease(srv, m!, site, 'main');
  assert.equal(reader.role, 'follower');

  const pc = new RTCPeerConnection({ iceServers: [] });
  try {
    pc.createDataChannel('datagrove', { ordered: true });
    await pc.setLocalDescription(await pc.createOffer());
    await signal(reader, 'leader', 'offer', { link: 'L1', type: 'offer', sdp: pc.localDescription!.sdp });
    const answer = await reader.raw.event((e) => e.ev === 'signal' && (e.kind === 'answer' || e.kind === 'bye'));
    assert.equal(answer.kind, 'bye', 'the offer is declined: the reader relays, and is told it may not write');
  } finally {
    await pc.close();
  }
  reader.raw.close();
  for (const c of [a!, m!]) await c.client.close();
});

test('a leader keeps none of the fragments of a device that may not write, and tells it so', async () => {
  const srv = await server();
  const [a, m] = await Promise.all([0, 1].map(() => makeClient(srv)));
  const site = await sharedSite(a!, []);
  await grant(a!, m!, site, ['read']);
  const la = a!.client.openLog(site, 'main');
  await la.opened;
  const reader = await rawLease(srv, m!, site, 'main');

  // Pieces of a message it never finishes.
  const d = 'q'.repeat(24_000);
  for (let i = 0; i < 10; i++) await signal(reader, 'leader', 'data', { t: 'frag', id: 'x1', i, n: 20, d });
  await sleep(300);
  assert.equal(heldChars(la), 0);
  // …and it is answered as its submit would be, so an honest reader's append fails in time.
  const denied = await reader.raw.event((e) => e.ev === 'signal' && e.kind === 'data' && (e.data as { t?: string }).t === 'denied');
  assert.equal((denied.data as { epoch: number }).epoch, la.epoch);
  reader.raw.close();
  for (const c of [a!, m!]) await c.client.close();
});

test('a member without the write right appending a large entry is refused in time, though none of its pieces is kept', async () => {
  const srv = await server();
  const [a, m] = await Promise.all([0, 1].map(() => makeClient(srv, { rtc: true })));
  const site = await sharedSite(a!, []);
  await grant(a!, m!, site, ['read']);
  const la = a!.client.openLog(site, 'main');
  await la.opened;
  const lm = m!.client.openLog(site, 'main', { channelTimeoutMs: 15_000 });
  await lm.opened;
  const started = Date.now();
  // 100 KB: its submit goes in several pieces, over the relay (the leader declined the offer).
  await assert.rejects(lm.append([new Uint8Array(100_000).fill(7)]), (e: unknown) => (e as { code?: string }).code === 'FORBIDDEN');
  assert.ok(Date.now() - started < 10_000, 'without waiting for the channel timeout');
  assert.equal(heldChars(la), 0);
  assert.equal(la.length, 0);
  for (const c of [a!, m!]) await c.client.close();
});

test("a leader refuses a writer's message longer than a link may hold unfinished", async () => {
  const srv = await server();
  const [a, w] = await Promise.all([0, 1].map(() => makeClient(srv)));
  const site = await sharedSite(a!, [w!]);
  const la = a!.client.openLog(site, 'main');
  await la.opened;
  const writer = await rawLease(srv, w!, site, 'main');
  const d = 'q'.repeat(24_000);

  // A message longer than a link may hold unfinished is refused from its first piece.
  await signal(writer, 'leader', 'data', { t: 'frag', id: 'big', i: 0, n: 1024, d });
  await sleep(200);
  assert.equal(heldChars(la), 0);

  writer.raw.close();
  for (const c of [a!, w!]) await c.client.close();
});

test("a writer's unfinished messages are held up to the link's budget", async () => {
  const srv = await server();
  const [a, w] = await Promise.all([0, 1].map(() => makeClient(srv)));
  const site = await sharedSite(a!, [w!]);
  const la = a!.client.openLog(site, 'main');
  await la.opened;
  const writer = await rawLease(srv, w!, site, 'main');
  const d = 'q'.repeat(24_000);

  // Several unfinished messages (4.6 MB): what is held stays within the link's budget (4 MiB).
  for (let id = 0; id < 8; id++) for (let i = 0; i < 24; i++) await signal(writer, 'leader', 'data', { t: 'frag', id: `m${id}`, i, n: 25, d });
  await sleep(300);
  const held = heldChars(la);
  assert.ok(held > 0, 'a writer may send fragments');
  assert.ok(held <= 4 * 1024 * 1024, `held ${held} characters`);
  writer.raw.close();
  for (const c of [a!, w!]) await c.client.close();
});
