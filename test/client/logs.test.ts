/**
 * Logs through the SDK against the real server: leader election, follower appends over a
 * real WebRTC data channel (werift) and over the signal relay, and exactly-once delivery
 * when the leader's connection is cut while followers append.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DgError, MAX_HEADER_BYTES } from '../../src/client/index.js';
import { assertExactlyOnce, enc, makeClient, record, server, sharedSite, waitFor, type TestClient } from './harness.js';

test('one leader, the others follow; leadership passes on when the leader closes', async () => {
  const srv = await server();
  const cs = await Promise.all([0, 1, 2].map(() => makeClient(srv)));
  const site = await sharedSite(cs[0]!, cs.slice(1));
  const logs = cs.map((c) => c.client.openLog(site, 'election'));
  await Promise.all(logs.map((l) => l.opened));
  const leaders = logs.filter((l) => l.role === 'leader');
  assert.equal(leaders.length, 1);
  const leaderDevice = cs[logs.indexOf(leaders[0]!)]!.client.device;
  for (const l of logs) assert.equal(l.leader, leaderDevice);
  const epoch = leaders[0]!.epoch;

  const rest = logs.filter((l) => l !== leaders[0]);
  await leaders[0]!.close(); // release: leadership ends at once
  await waitFor('a new leader', () => rest.filter((l) => l.role === 'leader').length === 1 && rest.every((l) => l.leader !== leaderDevice && l.leader !== null));
  const next = rest.find((l) => l.role === 'leader')!;
  assert.ok(next.epoch > epoch, 'every change of leader increments the epoch');
  await waitFor('followers agree', () => rest.every((l) => l.leader === next.leader));
  for (const c of cs) await c.client.close();
});

async function followerAppends(rtc: boolean): Promise<void> {
  const srv = await server();
  const a = await makeClient(srv, { rtc });
  const b = await makeClient(srv, { rtc });
  const site = await sharedSite(a, [b]);
  const la = a.client.openLog(site, 'chat', { channelTimeoutMs: 15_000 });
  const ra = record(la);
  await la.opened;
  const lb = b.client.openLog(site, 'chat', { channelTimeoutMs: 15_000 });
  const rb = record(lb);
  await lb.opened;
  assert.equal(la.role, 'leader');
  assert.equal(lb.role, 'follower');

  const acked = new Map<string, number>();
  const idx = await lb.append([enc('b1'), enc('b2')]);
  idx.forEach((i, k) => acked.set(`b${k + 1}`, i));
  assert.equal(lb.leaderPath, rtc ? 'channel' : 'relay');
  const [ia] = await la.append([enc('a1')]);
  acked.set('a1', ia!);
  const more = await Promise.all([lb.append([enc('b3')]), lb.append([enc('b4'), enc('b5')]), la.append([enc('a2')])]);
  ['b3', 'b4', 'b5', 'a2'].forEach((p, k) => acked.set(p, more.flat()[k]!));
  assert.equal(lb.leaderPath, rtc ? 'channel' : 'relay');

  await waitFor('both caught up', () => ra.seen.length === 7 && rb.seen.length === 7);
  assertExactlyOnce(acked, [ra, rb]);
  // The follower's own entries carry its origin; payloads come back without the header.
  const mine = rb.seen.filter((e) => e.origin?.device === b.client.device);
  assert.deepEqual(mine.map((e) => new TextDecoder().decode(e.payload)), ['b1', 'b2', 'b3', 'b4', 'b5']);
  assert.deepEqual(mine.map((e) => e.origin!.seq), [1, 2, 3, 4, 5]);
  await a.client.close();
  await b.client.close();
}

test("a follower's appends reach the log over a WebRTC data channel (werift)", async () => {
  await followerAppends(true);
});

test("a follower's appends reach the log through the signal relay when WebRTC is off", async () => {
  await followerAppends(false);
});

test('a follower relaying a call of many large entries (more than the relay lets through at once) gets every one in', async () => {
  const srv = await server();
  const a = await makeClient(srv);
  const b = await makeClient(srv);
  const site = await sharedSite(a, [b]);
  const la = a.client.openLog(site, 'big');
  await la.opened;
  const lb = b.client.openLog(site, 'big', { lead: false });
  const rb = record(lb);
  await lb.opened;
  assert.equal(lb.role, 'follower');
  // About 7 MB of base64: over the relay's 4 MiB signal burst if sent as one message.
  const payloads = Array.from({ length: 24 }, (_, i) => new Uint8Array(220_000).fill(i));
  const idx = await lb.append(payloads);
  assert.equal(lb.leaderPath, 'relay');
  assert.deepEqual(idx, Array.from({ length: 24 }, (_, i) => i));
  await waitFor('the follower sees them', () => rb.seen.length === 24);
  assert.deepEqual(rb.seen.map((e) => [e.index, e.payload.length, e.payload[0]]), payloads.map((p, i) => [i, p.length, i]));
  await a.client.close();
  await b.client.close();
});

test("a follower relaying more than the relay's budget keeps to it: its session is never closed for refused signals", async () => {
  const srv = await server();
  const a = await makeClient(srv);
  const b = await makeClient(srv);
  const site = await sharedSite(a, [b]);
  const la = a.client.openLog(site, 'budget');
  await la.opened;
  const lb = b.client.openLog(site, 'budget', { lead: false });
  await lb.opened;
  const closes: number[] = [];
  (await b.client.connection(site)).on('close', ({ code }) => closes.push(code));
  // About 17 MB of base64 (700 relayed frames): the relay carries 4 MiB at once, then 1 MiB
  // a second; a session with 500 signals refused within 10 s is closed 4429.
  const payloads = Array.from({ length: 64 }, (_, i) => new Uint8Array(200_000).fill(i));
  const idx = await lb.append(payloads);
  assert.deepEqual(idx, Array.from({ length: 64 }, (_, i) => i));
  assert.equal(lb.leaderPath, 'relay');
  assert.deepEqual(closes, [], 'the session stayed open');
  await a.client.close();
  await b.client.close();
});

/** Followers (and the leader) append steadily; `disrupt` runs in the middle. */
async function appendThroughDisruption(cs: TestClient[], site: string, disrupt: (leader: TestClient, others: TestClient[]) => Promise<void>): Promise<void> {
  const logs = cs.map((c) => c.client.openLog(site, 'stream', { retransmitMs: 1500, channelTimeoutMs: 1000 }));
  const recs = logs.map((l) => record(l));
  await Promise.all(logs.map((l) => l.opened));
  const acked = new Map<string, number>();
  const appends: Promise<void>[] = [];
  let stop = false;
  const writers = logs.map(async (log, w) => {
    for (let i = 0; !stop && i < 200; i++) {
      const payloads = [`w${w}-${i}a`, `w${w}-${i}b`];
      appends.push(
        log.append(payloads.map(enc)).then((idx) => {
          payloads.forEach((p, k) => acked.set(p, idx[k]!));
        }),
      );
      await new Promise((r) => setTimeout(r, 5));
    }
  });
  await new Promise((r) => setTimeout(r, 400));
  const leader = cs[logs.findIndex((l) => l.role === 'leader')]!;
  await disrupt(
    leader,
    cs.filter((c) => c !== leader),
  );
  await new Promise((r) => setTimeout(r, 1200));
  stop = true;
  await Promise.all(writers);
  await Promise.all(appends);
  const total = acked.size;
  assert.ok(total >= 100, `appends went through (${total})`);
  await waitFor('every subscriber caught up', () => recs.every((r) => r.seen.length >= total), 20_000);
  await new Promise((r) => setTimeout(r, 300));
  for (const r of recs) assert.equal(r.seen.length, total, 'nothing beyond the acknowledged appends');
  assertExactlyOnce(acked, recs);
}

test("the leader's connection is cut mid-stream: every acknowledged append is in the log exactly once", async () => {
  const srv = await server();
  const cs = await Promise.all([0, 1, 2].map(() => makeClient(srv)));
  const site = await sharedSite(cs[0]!, cs.slice(1));
  await appendThroughDisruption(cs, site, async (leader) => {
    leader.cut();
    await new Promise((r) => setTimeout(r, 500));
    leader.cut(); // again, while it recovers
  });
  for (const c of cs) await c.client.close();
});

test('the leader is cut for longer than the grace: another device leads and nothing is lost', async () => {
  const srv = await server({ leaseGraceMs: 100 });
  const cs = await Promise.all([0, 1, 2].map(() => makeClient(srv)));
  const site = await sharedSite(cs[0]!, cs.slice(1));
  let first = '';
  await appendThroughDisruption(cs, site, async (leader) => {
    first = leader.client.device;
    // Keep cutting its sockets so it cannot retake leadership within the grace.
    const end = Date.now() + 700;
    while (Date.now() < end) {
      leader.cut();
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  const leaders = cs.map((c) => c.client.openLog(site, 'stream')).filter((l) => l.role === 'leader');
  assert.equal(leaders.length, 1);
  assert.ok(first !== '');
  for (const c of cs) await c.client.close();
});

test('with WebRTC links, the leader and a follower are cut at the same moment, twice: still exactly once', async () => {
  const srv = await server({ leaseGraceMs: 150 });
  const cs = await Promise.all([0, 1, 2].map(() => makeClient(srv, { rtc: true })));
  const site = await sharedSite(cs[0]!, cs.slice(1));
  await appendThroughDisruption(cs, site, async (leader, others) => {
    // The follower's entries keep flowing over the data channel while its socket is down,
    // so it misses the tail events of its own entries: after the leader change it must
    // find them by reading, not resend them.
    for (let round = 0; round < 2; round++) {
      const end = Date.now() + 400;
      while (Date.now() < end) {
        leader.cut();
        others[0]!.cut();
        await new Promise((r) => setTimeout(r, 25));
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  });
  for (const c of cs) await c.client.close();
});

test('a leader without WebRTC refuses the offer, so the follower relays at once', async () => {
  const srv = await server();
  const a = await makeClient(srv); // no WebRTC
  const b = await makeClient(srv, { rtc: true });
  const site = await sharedSite(a, [b]);
  const la = a.client.openLog(site, 'mixed');
  await la.opened;
  const lb = b.client.openLog(site, 'mixed', { channelTimeoutMs: 20_000 });
  await lb.opened;
  const t0 = Date.now();
  assert.deepEqual(await lb.append([enc('hi')]), [0]);
  assert.ok(Date.now() - t0 < 10_000, 'did not wait for the channel timeout');
  assert.equal(lb.leaderPath, 'relay');
  await a.client.close();
  await b.client.close();
});

test('append refuses bad payloads; close fails what is pending and releases leadership', async () => {
  const srv = await server();
  const a = await makeClient(srv);
  const b = await makeClient(srv);
  const site = await sharedSite(a, [b]);
  const la = a.client.openLog(site, 'x');
  await la.opened;
  const max = (await a.client.connection(site)).info!.limits.maxEntryBytes;
  await assert.rejects(la.append([new Uint8Array(max)]), (e: DgError) => e.code === 'TOO_LARGE');
  await assert.rejects(la.append(['text' as unknown as Uint8Array]), (e: DgError) => e.code === 'BAD_REQUEST');
  await assert.rejects(la.append([new Uint8Array(max - MAX_HEADER_BYTES + 1)]), (e: DgError) => e.code === 'TOO_LARGE');
  assert.deepEqual(await la.append([new Uint8Array(max - MAX_HEADER_BYTES)]), [0], 'the largest payload fits (with the largest header and its signature)');
  assert.equal(a.client.openLog(site, 'x'), la, 'one Log per (site, log)');

  const lb = b.client.openLog(site, 'x');
  await lb.opened;
  const leaderless = lb.append([enc('waits for a leader')]);
  await la.close();
  await assert.rejects(la.append([enc('late')]), (e: DgError) => e.code === 'UNAVAILABLE');
  // The follower takes over and its append goes through.
  assert.equal((await leaderless).length, 1);
  assert.equal(lb.role, 'leader');
  const pendingAtClose = b.client.openLog(site, 'y');
  const failed = assert.rejects(pendingAtClose.append([enc('never sent')]), (e: DgError) => e.code === 'UNAVAILABLE');
  await b.client.close();
  await failed;
  await a.client.close();
});

test('a follower catches up by reading when a tail event comes without its entries (an entry over 64 KiB)', async () => {
  const srv = await server();
  const a = await makeClient(srv);
  const b = await makeClient(srv);
  const site = await sharedSite(a, [b]);
  const la = a.client.openLog(site, 'big');
  await la.opened;
  const lb = b.client.openLog(site, 'big');
  const rb = record(lb);
  await lb.opened;
  const events: { entries?: unknown[] }[] = [];
  (await b.client.connection(site)).on('event', (ev) => {
    if (ev.ev === 'tail') events.push(ev);
  });
  const big = Array.from({ length: 3 }, (_, i) => new Uint8Array(i === 1 ? 100_000 : 30_000).fill(i + 1));
  assert.deepEqual(await la.append(big), [0, 1, 2]);
  await la.append([enc('small')]);
  await waitFor('the follower has all four', () => rb.seen.length === 4);
  assert.ok(events.some((e) => e.entries === undefined), 'the big entry came without its bytes');
  assert.deepEqual(rb.seen.map((e) => e.index), [0, 1, 2, 3]);
  assert.deepEqual(rb.seen[1]!.payload, big[1]);
  assert.equal(new TextDecoder().decode(rb.seen[3]!.payload), 'small');
  // A follower's large entry crosses the relay in fragments (a relayed signal is at most 64 KiB).
  assert.deepEqual(await lb.append([new Uint8Array(100_000).fill(9)]), [4]);
  assert.equal(lb.leaderPath, 'relay');
  await waitFor('the follower sees its own', () => rb.seen.length === 5);
  assert.deepEqual(rb.seen[4]!.payload, new Uint8Array(100_000).fill(9));
  await a.client.close();
  await b.client.close();
});

/** An owner and a member of its site with the read right only. */
async function readOnlyMember(rtc: boolean): Promise<{ owner: TestClient; reader: TestClient; site: string }> {
  const srv = await server();
  const owner = await makeClient(srv, { rtc });
  const reader = await makeClient(srv, { rtc });
  await owner.client.signup('owner');
  const { site } = await owner.client.createSite('read only');
  const { user } = await reader.client.signup('reader');
  const grant = owner.client.signGrant({ sub: `user:${user}`, site, logs: ['*'], rights: ['read'] });
  await owner.client.declare(grant);
  await reader.client.join(site, grant);
  return { owner, reader, site };
}

/** A member with only the read right appends: the leader refuses the entries, so they never land. */
async function readOnlyAppend(rtc: boolean): Promise<void> {
  const { owner, reader, site } = await readOnlyMember(rtc);
  const lo = owner.client.openLog(site, 'guarded', { channelTimeoutMs: 15_000 });
  await lo.opened;
  await lo.append([enc('o1')]);
  const lr = reader.client.openLog(site, 'guarded', { channelTimeoutMs: 15_000 });
  const seen = record(lr);
  await lr.opened;
  assert.equal(lr.role, 'follower');
  await assert.rejects(lr.append([enc('forged')]), (e: unknown) => e instanceof DgError && e.code === 'FORBIDDEN');
  await lo.append([enc('o2')]);
  await waitFor('the reader to see the owner\'s entries', () => seen.seen.length === 2);
  assert.deepEqual(seen.text(), ['0:o1', '1:o2'], 'nothing of the read-only member landed');
  await reader.client.close();
  await owner.client.close();
}

test('a member without the write right cannot append through the leader (WebRTC)', async () => {
  await readOnlyAppend(true);
});

test('a member without the write right cannot append through the leader (signal relay)', async () => {
  await readOnlyAppend(false);
});

/** `p`, or a rejection when it has not settled within `ms`. */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms))]);
}

test('a member without the write right gets FORBIDDEN from append at once when no device leads the log', async () => {
  const { owner, reader, site } = await readOnlyMember(false);
  const forbidden = (e: unknown) => e instanceof DgError && e.code === 'FORBIDDEN' && /no write right/.test(e.message);
  const lr = reader.client.openLog(site, 'unled');
  // Made before the lease: it waits for it, then fails.
  const early = within(lr.append([enc('early')]), 5000);
  await lr.opened;
  assert.deepEqual([lr.role, lr.leader], ['follower', null]);
  await assert.rejects(early, forbidden);
  for (let i = 0; i < 2; i++) {
    const t0 = Date.now();
    await assert.rejects(within(lr.append([enc('late')]), 5000), forbidden);
    assert.ok(Date.now() - t0 < 1000, `refused in ${Date.now() - t0} ms`);
  }
  // The owner, who may write, then leads and writes; nothing of the reader's landed.
  const lo = owner.client.openLog(site, 'unled');
  await lo.opened;
  assert.equal(lo.role, 'leader');
  assert.equal(lo.length, 0);
  await lo.append([enc('o1')]);
  await reader.client.close();
  await owner.client.close();
});

test("from: 'end' delivers only what is written after the log opened; a number beyond the end is BAD_REQUEST", async () => {
  const srv = await server();
  const a = await makeClient(srv);
  const b = await makeClient(srv);
  const site = await sharedSite(a, [b]);
  const la = a.client.openLog(site, 'tail-end');
  await la.opened;
  await la.append([enc('old1'), enc('old2'), enc('old3')]);
  const lb = b.client.openLog(site, 'tail-end', { from: 'end', lead: false });
  const rb = record(lb);
  await lb.opened;
  assert.deepEqual([lb.position, lb.length], [3, 3]);
  await la.append([enc('new1')]);
  await lb.append([enc('new2')]);
  await waitFor('the new entries', () => rb.seen.length === 2);
  assert.deepEqual(rb.seen.map((e) => [e.index, new TextDecoder().decode(e.payload)]), [[3, 'new1'], [4, 'new2']]);
  const lc = b.client.openLog(site, 'tail-end-2', { from: 100 });
  await assert.rejects(lc.opened, (e: unknown) => e instanceof DgError && e.code === 'BAD_REQUEST' && /'end'/.test(e.message));
  // A log that failed says why to every later append, not a retryable UNAVAILABLE.
  await assert.rejects(lc.append([enc('x')]), (e: unknown) => e instanceof DgError && e.code === 'BAD_REQUEST' && /^log closed: from: 100 is beyond/.test(e.message));
  // One the app closed itself says so.
  await lb.close();
  await assert.rejects(lb.append([enc('y')]), (e: unknown) => e instanceof DgError && e.code === 'UNAVAILABLE' && e.message === 'log closed');
  for (const c of [a, b]) await c.client.close();
});

test('a log opened with codec: null reads and writes plaintext on a client whose codec seals everything else', async () => {
  const srv = await server();
  const a = await makeClient(srv);
  const b = await makeClient(srv);
  const site = await sharedSite(a, [b]);
  const la = a.client.openLog(site, 'plain');
  await la.opened;
  await la.append([enc('in the clear')]);
  // A codec that refuses everything: any log that used it would deliver errors.
  b.client.setCodec({
    overhead: 0,
    seal: () => Promise.reject(new DgError('FORBIDDEN', 'sealing refused')),
    open: () => Promise.reject(new DgError('FORBIDDEN', 'opening refused')),
  });
  const sealed = b.client.openLog(site, 'plain');
  const sealedSeen = record(sealed);
  await sealed.opened;
  assert.equal(sealedSeen.seen[0]?.error?.message, 'opening refused', 'the client codec applies by default');
  await sealed.close();
  const lb = b.client.openLog(site, 'plain', { codec: null, lead: false });
  const rb = record(lb);
  await lb.opened;
  assert.deepEqual(rb.text(), ['0:in the clear']);
  assert.deepEqual(await lb.append([enc('also clear')]), [1]);
  await waitFor('the plaintext append', () => rb.seen.length === 2);
  assert.deepEqual(rb.text(), ['0:in the clear', '1:also clear']);
  assert.ok(rb.seen.every((e) => e.error === undefined));
  for (const c of [a, b]) await c.client.close();
});

test('a log tells its peers as they change, and holds none once closed', async () => {
  const srv = await server();
  const a = await makeClient(srv);
  const b = await makeClient(srv);
  const site = await sharedSite(a, [b]);
  const la = a.client.openLog(site, 'presence');
  const told: string[][] = [];
  la.on('peers', (p) => told.push([...p].sort()));
  await la.opened;
  assert.deepEqual(la.peers, []);
  const lb = b.client.openLog(site, 'presence', { lead: false });
  await lb.opened;
  await waitFor('a to hear b join', () => told.some((p) => p.includes(b.client.device!)));
  assert.deepEqual(la.peers, [b.client.device]);
  assert.deepEqual(lb.peers, [a.client.device], 'the lease reply names the peers');
  await lb.close();
  assert.deepEqual(lb.peers, [], 'a closed log holds no peers');
  await waitFor('a to hear b leave', () => told.at(-1)?.length === 0);
  assert.deepEqual(told, [[b.client.device!], []]);
  for (const c of [a, b]) await c.client.close();
});

test('openLog refuses options of the wrong kind at once, and append refuses a non-array with a rejection', async () => {
  const srv = await server();
  const a = await makeClient(srv);
  const site = await sharedSite(a, []);
  const bad: Array<[string, object]> = [
    ['from', { from: Number.NaN }],
    ['from', { from: '1' }],
    ['from', { from: null }],
    ['from', { from: -1 }],
    ['from', { from: 1.5 }],
    ['lead', { lead: 'yes' }],
    ['channelTimeoutMs', { channelTimeoutMs: Infinity }],
    ['retransmitMs', { retransmitMs: 0 }],
  ];
  for (const [field, opts] of bad) {
    assert.throws(() => a.client.openLog(site, 'opts', opts as never), (e: unknown) => e instanceof DgError && e.code === 'BAD_REQUEST' && e.message.startsWith(`${field}:`), JSON.stringify(opts));
  }
  const log = a.client.openLog(site, 'opts', { from: 'end' });
  await log.opened;
  for (const payloads of [undefined, 123, {}, 'text']) {
    let sync = false;
    let p: Promise<number[]> | undefined;
    try {
      p = log.append(payloads as never);
    } catch {
      sync = true;
    }
    assert.equal(sync, false, `append(${String(payloads)}) must not throw`);
    await assert.rejects(p!, (e: unknown) => e instanceof DgError && e.code === 'BAD_REQUEST' && e.message.startsWith('payloads:'));
  }
  assert.deepEqual(await log.append([enc('fine')]), [0]);
  await a.client.close();
});
