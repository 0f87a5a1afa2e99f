/**
 * End to end: notify driven over the bus as auth and tail drive it, pushing to a real push
 * receiver that checks VAPID and decrypts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startPushReceiver, type BrowserSubscription } from '../helpers/push-receiver.js';
import { tempDir } from '../helpers/server.js';
import { member, newDevice, newSite, newUser, pushChange, sleep, startNotify, SUBJECT } from './harness.js';

/** One user with one device joined to one site, with a push endpoint. */
// Shared by the tests that need no special settings; torn down after the file.
const receiver = await startPushReceiver();
const h = await startNotify({ receiver, pushIntervalMs: 100 });

describe('notify delivery', () => {

  it('pushes to an offline member with the payload, headers and VAPID of the protocol', async () => {
    const { device, site, sub } = await member(h, receiver);
    const other = await member(h, receiver);
    h.publish(site, 'main', 3);
    const [got] = await receiver.waitFor(sub.id, 1);
    assert.ok(got);
    assert.equal(got.error, null);
    assert.equal(got.status, 201);
    assert.deepEqual(got.payload, { site, log: 'main', length: 3 });
    assert.equal(got.headers.ttl, '86400');
    assert.equal(got.headers.urgency, 'normal');
    assert.equal(got.headers.contentEncoding, 'aes128gcm');
    assert.equal(got.headers.topic, createHash('sha256').update(`${device}/${site}`).digest('base64url').slice(0, 32));
    assert.equal(got.jwt.sub, SUBJECT);
    assert.equal(got.jwt.aud, receiver.origin);
    assert.ok(typeof got.jwt.exp === 'number' && got.jwt.exp > Date.now() / 1000);
    // Another site's member hears nothing; the same length again pushes nothing.
    await sleep(200);
    h.publish(site, 'main', 3);
    await sleep(250);
    assert.equal(receiver.received(sub.id).length, 1);
    assert.equal(receiver.received(other.sub.id).length, 0);
    assert.equal(await h.metric('datagrove_notify_pushes_sent_total'), 1);
    h.publish(site, 'main', 4);
    const later = await receiver.waitFor(sub.id, 2);
    assert.deepEqual(later[1]?.payload, { site, log: 'main', length: 4 });
  });

  it('pads every push to one size, whatever the site, the log and the length', async () => {
    const short = await member(h, receiver, 's');
    const long = await member(h, receiver, 'S'.repeat(64));
    const logName = 'l'.repeat(128);
    h.publish(short.site, 'm', 1);
    h.publish(long.site, logName, Number.MAX_SAFE_INTEGER);
    const [a] = await receiver.waitFor(short.sub.id, 1);
    const [b] = await receiver.waitFor(long.sub.id, 1);
    assert.ok(a && b);
    assert.deepEqual(a.payload, { site: 's', log: 'm', length: 1 });
    assert.deepEqual(b.payload, { site: 'S'.repeat(64), log: logName, length: Number.MAX_SAFE_INTEGER });
    assert.equal(a.plainBytes, 256);
    assert.equal(b.plainBytes, 256);
    assert.equal(a.bodyBytes, b.bodyBytes, 'the encrypted bodies are the same size');
  });

  it('signs the VAPID aud with the endpoint\'s origin however the endpoint spells its port', async () => {
    // `https://host:08443/…` and `https://HOST:443/…` are the origins https://host:8443 and
    // https://host; a push service checks `aud` against its own origin.
    const user = newUser();
    const device = newDevice();
    const site = newSite();
    const sub = receiver.subscribe(h.publicKey);
    const endpoint = sub.endpoint.replace(/:(\d+)\//, ':0$1/');
    assert.notEqual(endpoint, sub.endpoint);
    assert.equal((await h.update({ user, version: 1, changes: [{ op: 'join', device, site }, pushChange(device, { endpoint, keys: sub.keys })] })).ok, true);
    h.publish(site, 'main', 1);
    const [got] = await receiver.waitFor(sub.id, 1);
    assert.equal(got?.error, null);
    assert.equal(got?.jwt.aud, receiver.origin);
    assert.deepEqual(got?.payload, { site, log: 'main', length: 1 });
  });

  it('pushes nothing while the user has a live session on any node', async () => {
    const { user, site, sub } = await member(h, receiver);
    h.presence({ node: 'tail-a', ttlMs: 10_000, full: false, online: [user], offline: [] });
    h.presence({ node: 'tail-b', ttlMs: 10_000, full: false, online: [user], offline: [] });
    await sleep(20);
    h.publish(site, 'main', 1);
    await sleep(250);
    h.presence({ node: 'tail-a', ttlMs: 10_000, full: false, online: [], offline: [user] });
    await sleep(20);
    h.publish(site, 'main', 2);
    await sleep(250);
    assert.equal(receiver.received(sub.id).length, 0, 'still online on tail-b');
    h.presence({ node: 'tail-b', ttlMs: 10_000, full: true, online: ['someone-else'], offline: [] });
    await sleep(20);
    h.publish(site, 'main', 3);
    const [got] = await receiver.waitFor(sub.id, 1);
    assert.deepEqual(got?.payload, { site, log: 'main', length: 3 });
  });

  it('forgets a node that went silent for its TTL', async () => {
    const { user, site, sub } = await member(h, receiver);
    h.presence({ node: 'tail-dying', ttlMs: 300, full: true, online: [user], offline: [] });
    await sleep(20);
    h.publish(site, 'main', 1);
    await sleep(150);
    assert.equal(receiver.received(sub.id).length, 0);
    await sleep(250);
    h.publish(site, 'main', 2);
    const [got] = await receiver.waitFor(sub.id, 1);
    assert.deepEqual(got?.payload, { site, log: 'main', length: 2 });
  });

  it('pushes only logs auth says the device may read, and nothing after its access was revoked', async () => {
    const { user, site, sub } = await member(h, receiver);
    h.denied.add(`${user}/${site}/payroll`);
    h.publish(site, 'payroll', 5);
    await sleep(250);
    assert.equal(receiver.received(sub.id).length, 0, 'a log the member may not read is not named in a push');
    assert.equal(await h.metric('datagrove_notify_pushes_dropped_total', { reason: 'no-access' }), 1);
    h.publish(site, 'public', 2);
    const [got] = await receiver.waitFor(sub.id, 1);
    assert.deepEqual(got?.payload, { site, log: 'public', length: 2 });
    // The whole site revoked: the subscription is still there, but nothing more is pushed.
    h.denied.add(`${user}/${site}/*`);
    await sleep(150);
    h.publish(site, 'public', 3);
    await sleep(250);
    assert.equal(receiver.received(sub.id).length, 1);
  });

  it('pushes nothing when auth cannot say whether the device may read', async () => {
    const r3 = await startPushReceiver();
    const lone = await startNotify({ receiver: r3, pushIntervalMs: 100, limits: { requestTimeoutMs: 200 } });
    const { site, sub } = await member(lone, r3);
    // Take auth's side away: nobody answers dg.auth.access.
    lone.muteAuth();
    lone.publish(site, 'main', 1);
    await sleep(600);
    assert.equal(r3.received(sub.id).length, 0);
    assert.ok(lone.logs.some((l) => l.msg === 'could not ask auth whether a device may read a log; push not sent'));
  });

  it('pushes nothing while muted, and again after unmute', async () => {
    const { user, device, site, sub } = await member(h, receiver);
    assert.equal((await h.update({ user, version: 2, changes: [{ op: 'mute', device, site, until: Date.now() + 60_000 }] })).ok, true);
    h.publish(site, 'main', 1);
    await sleep(250);
    assert.equal(receiver.received(sub.id).length, 0);
    assert.equal((await h.update({ user, version: 3, changes: [{ op: 'unmute', device, site }] })).ok, true);
    h.publish(site, 'main', 2);
    await receiver.waitFor(sub.id, 1);
    // A mute whose time has passed mutes nothing (checked when read).
    assert.equal((await h.update({ user, version: 4, changes: [{ op: 'mute', device, site, until: Date.now() - 1 }] })).ok, true);
    await sleep(150);
    h.publish(site, 'main', 3);
    const all = await receiver.waitFor(sub.id, 2);
    assert.deepEqual(all.map((r) => (r.payload as { length: number }).length), [2, 3]);
  });

  it('coalesces a burst into one push per interval carrying the latest length', async () => {
    const r2 = await startPushReceiver();
    const slow = await startNotify({ receiver: r2, pushIntervalMs: 500 });
    const { site, sub } = await member(slow, r2);
    const t0 = Date.now();
    slow.publish(site, 'main', 1);
    const [first] = await r2.waitFor(sub.id, 1);
    assert.ok(first !== undefined && first.at - t0 < 490, 'the first push goes at once, before the interval ends');
    for (let n = 2; n <= 6; n++) {
      slow.publish(site, 'main', n);
      await sleep(10);
    }
    await sleep(250);
    assert.equal(r2.received(sub.id).length, 1, 'later publishes are held for the interval');
    const all = await r2.waitFor(sub.id, 2, 2000);
    // The window opened after t0 (when the first push was claimed), so the held push cannot
    // start before t0 + 500 ms, however long the first one took to arrive.
    assert.ok((all[1]?.at ?? 0) - t0 >= 495, 'the held push waits for the end of the interval');
    assert.deepEqual(all[1]?.payload, { site, log: 'main', length: 6 });
    await sleep(700);
    assert.equal(r2.received(sub.id).length, 2, 'exactly one push for the burst');
    assert.equal(await slow.metric('datagrove_notify_pushes_coalesced_total'), 4);
  });

  it('two notify processes on one store push once per interval between them', async () => {
    const r3 = await startPushReceiver();
    const storePath = join(tempDir('dg-notify-shared-'), 'notify.db');
    const one = await startNotify({ receiver: r3, pushIntervalMs: 1500, storePath });
    const two = await startNotify({ receiver: r3, pushIntervalMs: 1500, storePath, dataDir: one.dataDir });
    assert.equal(two.publicKey, one.publicKey, 'one VAPID key for the cluster');
    const { site, sub } = await member(one, r3);
    // Publishes go to whichever process the bus picks: the first to one, the next to two.
    const t0 = Date.now();
    one.publish(site, 'main', 1);
    const [first] = await r3.waitFor(sub.id, 1);
    assert.ok(first !== undefined);
    assert.deepEqual(first.payload, { site, log: 'main', length: 1 });
    two.publish(site, 'main', 2);
    await sleep(250);
    assert.equal(r3.received(sub.id).length, 1, 'the other process waits for the window');
    const all = await r3.waitFor(sub.id, 2, 4000);
    assert.ok((all[1]?.at ?? 0) - t0 >= 1495, 'the second push waits for the end of the interval');
    assert.deepEqual(all[1]?.payload, { site, log: 'main', length: 2 });
    await sleep(1700);
    assert.equal(r3.received(sub.id).length, 2, 'exactly two pushes: the first length, then the latest');
    assert.equal((await one.metric('datagrove_notify_pushes_coalesced_total')) + (await two.metric('datagrove_notify_pushes_coalesced_total')) >= 1, true);
  });

  it('checks again when a held push is due: nothing goes to a user who came online', async () => {
    const r5 = await startPushReceiver();
    const n = await startNotify({ receiver: r5, pushIntervalMs: 400 });
    const { user, site, sub } = await member(n, r5);
    n.publish(site, 'main', 1);
    await r5.waitFor(sub.id, 1);
    n.publish(site, 'main', 2);
    await sleep(50);
    n.presence({ node: 'tail-x', ttlMs: 10_000, full: true, online: [user], offline: [] });
    await sleep(600);
    assert.equal(r5.received(sub.id).length, 1, 'the held push was dropped');
    n.presence({ node: 'tail-x', ttlMs: 10_000, full: true, online: [], offline: [] });
    await sleep(20);
    n.publish(site, 'main', 3);
    const all = await r5.waitFor(sub.id, 2);
    assert.deepEqual(all[1]?.payload, { site, log: 'main', length: 3 });
  });

  it('deletes an endpoint answered 410, but not one renewed meanwhile', async () => {
    const { user, device, site, sub } = await member(h, receiver);
    receiver.script(sub.id, { status: 410 });
    h.publish(site, 'main', 1);
    await receiver.waitFor(sub.id, 1);
    await sleep(100);
    assert.deepEqual((await h.store.userState(user)).push, []);
    assert.equal(await h.metric('datagrove_notify_endpoints_removed_total'), 1);
    assert.equal(await h.metric('datagrove_notify_pushes_failed_total', { status: '410' }), 1);
    // Renewed while the push to the old endpoint is in flight: the renewed one survives.
    const old = receiver.subscribe(h.publicKey);
    assert.equal((await h.update({ user, version: 2, changes: [pushChange(device, old)] })).ok, true);
    receiver.script(old.id, { status: 410, delayMs: 300 });
    h.publish(site, 'main', 2);
    await sleep(100);
    const renewed = receiver.subscribe(h.publicKey);
    assert.equal((await h.update({ user, version: 3, changes: [pushChange(device, renewed)] })).ok, true);
    await receiver.waitFor(old.id, 1);
    await sleep(100);
    assert.deepEqual((await h.store.userState(user)).push.map((p) => p.endpoint), [renewed.endpoint]);
    h.publish(site, 'main', 3);
    const [got] = await receiver.waitFor(renewed.id, 1);
    assert.deepEqual(got?.payload, { site, log: 'main', length: 3 });
  });

  it('retries a 429 after its retry-after', async () => {
    const { site, sub } = await member(h, receiver);
    receiver.script(sub.id, { status: 429, retryAfter: '1' });
    h.publish(site, 'main', 1);
    const [first, second] = await receiver.waitFor(sub.id, 2, 4000);
    assert.equal(first?.status, 429);
    assert.equal(second?.status, 201);
    assert.ok((second?.at ?? 0) - (first?.at ?? 0) >= 950, `retried after ${(second?.at ?? 0) - (first?.at ?? 0)} ms`);
    assert.deepEqual(second?.payload, { site, log: 'main', length: 1 });
    assert.ok((await h.metric('datagrove_notify_pushes_retried_total')) >= 1);
  });

  it('retries 5xx with backoff a bounded number of times', async () => {
    const r3 = await startPushReceiver();
    const n = await startNotify({ receiver: r3, limits: { retryBaseMs: 50, maxAttempts: 3 } });
    const { site, sub } = await member(n, r3);
    r3.script(sub.id, { status: 500 }, { status: 503 }, { status: 500 });
    n.publish(site, 'main', 1);
    await r3.waitFor(sub.id, 3);
    await sleep(400);
    assert.deepEqual(r3.received(sub.id).map((r) => r.status), [500, 503, 500], 'gave up after maxAttempts');
    assert.equal(await n.metric('datagrove_notify_pushes_failed_total', { status: '500' }), 2);
    assert.equal(await n.metric('datagrove_notify_pushes_retried_total'), 2);
    n.publish(site, 'main', 2);
    const all = await r3.waitFor(sub.id, 4);
    assert.deepEqual(all[3]?.payload, { site, log: 'main', length: 2 });
  });

  it('keeps many requests in flight without a listener leak warning', async () => {
    const r6 = await startPushReceiver();
    const n = await startNotify({ receiver: r6 });
    const site = newSite();
    for (let i = 0; i < 16; i++) {
      const m = await member(n, r6, site);
      // Answers slow enough that all 16 overlap even when a loaded machine starts them slowly.
      r6.script(m.sub.id, { status: 201, delayMs: 1500 });
    }
    const warnings: string[] = [];
    const onWarning = (w: Error) => void warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      n.publish(site, 'main', 1);
      const deadline = Date.now() + 10_000;
      while (r6.received().length < 16 && Date.now() < deadline) await sleep(50);
      assert.equal(r6.received().length, 16);
    } finally {
      process.off('warning', onWarning);
    }
    assert.ok(r6.maxInFlight() > 10, `only ${r6.maxInFlight()} in flight`);
    assert.deepEqual(warnings, []);
  });

  it('bounds the requests in flight and the queue when the push service is slow', async () => {
    const r4 = await startPushReceiver();
    const n = await startNotify({ receiver: r4, limits: { maxConcurrent: 2, maxQueue: 2 } });
    const site = newSite();
    const subs: BrowserSubscription[] = [];
    for (let i = 0; i < 8; i++) {
      const m = await member(n, r4, site);
      r4.script(m.sub.id, { status: 201, delayMs: 200 });
      subs.push(m.sub);
    }
    n.publish(site, 'main', 1);
    await sleep(1200);
    assert.equal(r4.received().length, 4);
    assert.equal(r4.maxInFlight(), 2);
    assert.equal(await n.metric('datagrove_notify_pushes_dropped_total', { reason: 'queue' }), 4);
    assert.equal(await n.metric('datagrove_notify_pushes_sent_total'), 4);
  });
});
