/**
 * Notify's state over the bus: versioned updates from auth, the gap and its repair by a full
 * state, refused endpoints, malformed messages; and the VAPID key it serves.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadVapidKeys, VAPID_FILE } from '../../src/notify/vapid.js';
import { startPushReceiver } from '../helpers/push-receiver.js';
import { tempDir } from '../helpers/server.js';
import { newDevice, newSite, newUser, pushChange, sleep, startNotify } from './harness.js';

const receiver = await startPushReceiver();

describe('notify state and keys', () => {
  it('makes its VAPID keys on the first start (0600) and reuses them', async () => {
    const a = await startNotify({ receiver });
    const raw = Buffer.from(a.publicKey, 'base64url');
    assert.equal(raw.length, 65);
    assert.equal(raw[0], 4);
    const file = join(a.dataDir, 'vapid-keys.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const before = readFileSync(file, 'utf8');
    const res = await a.app.inject({ method: 'GET', url: '/notify/v1/vapid' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { publicKey: a.publicKey });
    await a.close();
    assert.equal(a.notify.ready(), false);
    const b = await startNotify({ receiver, dataDir: a.dataDir });
    assert.equal(b.publicKey, a.publicKey);
    assert.equal(readFileSync(file, 'utf8'), before);
    assert.equal(b.notify.ready(), true);
  });

  it('refuses to start on a key file whose halves are not one P-256 key pair', () => {
    const dir = tempDir('dg-vapid-');
    const mine = loadVapidKeys(dir);
    const other = loadVapidKeys(tempDir('dg-vapid-'));
    const file = join(dir, VAPID_FILE);
    const offCurve = Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]).toString('base64url');
    for (const damaged of [
      { publicKey: mine.publicKey, privateKey: other.privateKey },
      { publicKey: offCurve, privateKey: mine.privateKey },
    ]) {
      writeFileSync(file, JSON.stringify({ ...damaged, createdAt: 1 }));
      assert.throws(() => loadVapidKeys(dir), /does not hold a P-256 key pair/);
    }
    writeFileSync(file, JSON.stringify({ ...mine, createdAt: 1 }));
    assert.deepEqual(loadVapidKeys(dir), mine);
  });

  it('answers a version gap with ok:false and is repaired by the full state after losing its store', async () => {
    const first = await startNotify({ receiver });
    const user = newUser();
    const device = newDevice();
    const site = newSite();
    const sub = receiver.subscribe(first.publicKey);
    assert.deepEqual(await first.update({ user, version: 1, changes: [{ op: 'join', device, site }] }), { ok: true, version: 1 });
    assert.deepEqual(await first.update({ user, version: 3, changes: [pushChange(device, sub)] }), { ok: false, version: 1 });
    assert.deepEqual(await first.update({ user, version: 1, changes: [pushChange(device, sub)] }), { ok: false, version: 1 }, 'a replay is no gap fix');
    assert.deepEqual(await first.update({ user, version: 2, changes: [pushChange(device, sub), { op: 'set', key: 'theme', value: 'dark' }] }), {
      ok: true,
      version: 2,
    });
    await first.close();

    // The same data dir (same VAPID keys) with an empty store: notify lost its state.
    const second = await startNotify({ receiver, dataDir: first.dataDir });
    assert.equal(second.publicKey, first.publicKey);
    assert.deepEqual(await second.update({ user, version: 3, changes: [{ op: 'mute', device, site, until: 1 }] }), { ok: false, version: 0 });
    second.publish(site, 'main', 1);
    await sleep(250);
    assert.equal(receiver.received(sub.id).length, 0, 'nothing is known before the full state');
    const full = {
      subscriptions: [{ device, site, mutedUntil: 1 }],
      push: [{ device, endpoint: sub.endpoint, keys: sub.keys }],
    };
    assert.deepEqual(await second.update({ user, version: 3, full }), { ok: true, version: 3 });
    assert.deepEqual(await second.update({ user, version: 2, full: { subscriptions: [], push: [] } }), { ok: true, version: 3 }, 'a stale full state is ignored');
    second.publish(site, 'main', 2);
    const [got] = await receiver.waitFor(sub.id, 1);
    assert.deepEqual(got?.payload, { site, log: 'main', length: 2 });
    assert.deepEqual(await second.update({ user, version: 4, changes: [{ op: 'leave', device, site }] }), { ok: true, version: 4 });
    second.publish(site, 'main', 3);
    await sleep(250);
    assert.equal(receiver.received(sub.id).length, 1, 'no push after leave');
  });

  it('refuses to store endpoints that are not https or not on the allowlist, and logs why', async () => {
    const h = await startNotify({ receiver });
    const user = newUser();
    const device = newDevice();
    const site = newSite();
    const good = receiver.subscribe(h.publicKey);
    const plain = { endpoint: good.endpoint.replace('https:', 'http:'), keys: good.keys };
    const offList = { endpoint: 'https://push.evil.example/push/x', keys: good.keys };
    const badKeys = { endpoint: good.endpoint, keys: { p256dh: good.keys.p256dh.slice(2), auth: good.keys.auth } };
    // 65 bytes starting with 4, but not a point of P-256: nothing could ever be encrypted to it.
    const offCurve = { endpoint: good.endpoint, keys: { p256dh: Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]).toString('base64url'), auth: good.keys.auth } };
    assert.deepEqual(await h.update({ user, version: 1, changes: [{ op: 'join', device, site }, pushChange(device, good)] }), { ok: true, version: 1 });
    for (const [i, sub] of [offCurve, plain, offList, badKeys].entries()) {
      const r = await h.update({ user, version: 2 + i, changes: [pushChange(device, sub)] });
      assert.deepEqual(r, { ok: true, version: 2 + i }, 'the version moves on (auth committed it)');
      assert.deepEqual((await h.store.userState(user)).push, [], 'the device is left without an endpoint');
    }
    const refusals = h.logs.filter((l) => l.msg === 'push endpoint refused; not stored');
    assert.deepEqual(
      refusals.map((l) => l.reason),
      [
        'keys.p256dh must be an uncompressed P-256 public key in base64url',
        'push endpoint must be https:',
        "push endpoint host 'push.evil.example' is not on the push allowlist",
        'keys.p256dh must be an uncompressed P-256 public key in base64url',
      ],
    );
    // The same rule holds for a full state.
    await h.update({ user, version: 6, full: { subscriptions: [{ device, site }], push: [{ device, ...offList }] } });
    assert.deepEqual((await h.store.userState(user)).push, []);
    h.publish(site, 'main', 1);
    await sleep(250);
    assert.equal(receiver.received().filter((r) => r.id === good.id).length, 0);
  });

  it('does not send to a stored endpoint once its host leaves the allowlist', async () => {
    const h = await startNotify({ receiver });
    const user = newUser();
    const device = newDevice();
    const site = newSite();
    const sub = receiver.subscribe(h.publicKey);
    assert.equal((await h.update({ user, version: 1, changes: [{ op: 'join', device, site }, pushChange(device, sub)] })).ok, true);
    await h.close();
    // Restarted with a narrower allowlist, holding the endpoint stored under the old one.
    const narrowed = await startNotify({ receiver, dataDir: h.dataDir, pushHosts: ['fcm.googleapis.com'] });
    await narrowed.store.replaceState(user, 1, { subscriptions: [{ device, site, mutedUntil: null }], push: [{ device, endpoint: sub.endpoint, keys: sub.keys }] });
    narrowed.publish(site, 'main', 1);
    await sleep(250);
    assert.equal(receiver.received(sub.id).length, 0);
    assert.equal(await narrowed.metric('datagrove_notify_pushes_failed_total', { status: 'refused' }), 1);
    assert.ok(narrowed.logs.some((l) => l.msg === 'push endpoint refused; not sent'));
  });

  it('refuses malformed updates whole, and ignores malformed publishes and presence', async () => {
    const h = await startNotify({ receiver });
    const user = newUser();
    const device = newDevice();
    const bad: unknown[] = [
      null,
      { user, version: 1 },
      { user, version: 1, changes: [], full: { subscriptions: [], push: [] } },
      { user: 'no spaces', version: 1, changes: [] },
      { user, version: -1, changes: [] },
      { user, version: 1, changes: [{ op: 'join', device, site: 'bad site' }] },
      { user, version: 1, changes: [{ op: 'join', device: 'short', site: 's' }] },
      { user, version: 1, changes: ['join'] },
      { user, version: 1, full: { subscriptions: 'all' } },
    ];
    for (const message of bad) {
      const r = await h.update(message);
      assert.equal(r.ok, false, JSON.stringify(message));
      assert.equal(r.error?.code, 'BAD_REQUEST', JSON.stringify(message));
    }
    assert.equal((await h.store.userState(user)).version, 0, 'nothing applied');
    assert.equal(h.logs.filter((l) => l.msg === 'dg.notify.update refused').length, bad.length);
    h.publish('bad site', 'main', 1);
    h.bus.publish('dg.notify.publish', { site: 's', log: 'main', length: -1 });
    h.bus.publish('dg.notify.presence', { node: 'n', ttlMs: 0, full: true, online: [], offline: [] });
    await sleep(50);
    assert.equal(h.logs.filter((l) => l.msg === 'dg.notify.publish refused').length, 2);
    assert.equal(h.logs.filter((l) => l.msg === 'dg.notify.presence refused').length, 1);
    assert.equal(h.notify.ready(), true);
  });

  it('treats a push refused by the push service as failed (wrong VAPID key)', async () => {
    const h = await startNotify({ receiver });
    const user = newUser();
    const device = newDevice();
    const site = newSite();
    // Subscribed with another server's key: the receiver refuses the VAPID signature.
    const foreign = receiver.subscribe(Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 7)]).toString('base64url'));
    await h.update({ user, version: 1, changes: [{ op: 'join', device, site }, pushChange(device, foreign)] });
    h.publish(site, 'main', 1);
    const [got] = await receiver.waitFor(foreign.id, 1);
    assert.equal(got?.status, 403);
    assert.match(got?.error ?? '', /applicationServerKey/);
    await sleep(50);
    assert.equal(await h.metric('datagrove_notify_pushes_failed_total', { status: '403' }), 1);
    assert.equal(receiver.received(foreign.id).length, 1, '403 is not retried');
  });
});
