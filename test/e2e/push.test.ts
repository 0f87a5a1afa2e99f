/**
 * The whole push path, end to end through the monolith (auth + tail + notify in one
 * process, SQLite, in-process bus), as clients use it: devices sign up and get grants over
 * HTTP, register browser push subscriptions and join sites through their profile, a leader
 * writes over a real tail WebSocket session, and a real HTTPS push receiver verifies VAPID
 * and decrypts what notify sends.
 *
 * Every "no push" assertion has a control: another offline member of the same site (C)
 * who must get the push for the same write, so the write provably went through tail and
 * notify before B's silence is checked.
 */
import assert from 'node:assert/strict';
import { createECDH } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createSite, declareGrant, get, post, signupDevice, type SignedUpDevice } from '../helpers/auth-client.js';
import { startPushReceiver, type BrowserSubscription, type PushReceiver } from '../helpers/push-receiver.js';
import { tempDir, type TestServer } from '../helpers/server.js';
import { TailClient } from '../helpers/tail-client.js';
import {
  PUSH_INTERVAL_MS,
  SYNC_METRIC,
  VAPID_SUBJECT,
  Writer,
  changeProfile,
  changeProfileSynced,
  enablePush,
  getProfile,
  member,
  pushChange,
  pushWithLength,
  sleep,
  startPushServer,
  syncedAfter,
  tailSessions,
  topicOf,
  until,
  vapidKey,
} from './push-world.js';
import { metric } from '../helpers/metrics.js';

/** Long enough for a held push to have gone out after the control's push arrived. */
const QUIET_MS = PUSH_INTERVAL_MS * 3;

interface Scene {
  /** A: owns the site and writes to `log` through `writer`. */
  owner: SignedUpDevice;
  site: string;
  log: string;
  writer: Writer;
  /** B: the member under test. */
  b: SignedUpDevice;
  bSub: BrowserSubscription;
  /** C: the control, an offline member with push, joined to the same site. */
  c: SignedUpDevice;
  cSub: BrowserSubscription;
}

async function scene(srv: TestServer, receiver: PushReceiver, vapid: string): Promise<Scene> {
  const owner = await signupDevice(srv.url, { name: 'A laptop' });
  const site = await createSite(srv.url, owner.access, 'shared notes');
  const b = await member(srv.url, owner, site);
  const c = await member(srv.url, owner, site);
  const bSub = await enablePush(srv.url, b, receiver, vapid, site);
  const cSub = await enablePush(srv.url, c, receiver, vapid, site);
  const log = 'notes';
  const writer = await Writer.open(srv.wsUrl, owner, site, log);
  return { owner, site, log, writer, b, bSub, c, cSub };
}

/** A writes; C (the control) gets the push for it; then B must still have `bPushes` pushes. */
async function writeWithoutPushToB(s: Scene, receiver: PushReceiver, bPushes: number): Promise<number> {
  const length = await s.writer.write(1);
  await pushWithLength(receiver, s.cSub, length);
  await sleep(QUIET_MS);
  assert.equal(receiver.received(s.bSub.id).length, bPushes, `B was pushed at length ${length}`);
  return length;
}

function assertPayload(push: { payload: unknown }, site: string, log: string, length: number): void {
  assert.deepEqual(push.payload, { site, log, length });
}

describe('push end to end (monolith)', async () => {
  const receiver = await startPushReceiver();
  const srv = await startPushServer(receiver);
  const vapid = await vapidKey(srv.url);

  it('GET /notify/v1/vapid gives the P-256 key the receiver sees as k= in the VAPID header', async () => {
    const raw = Buffer.from(vapid, 'base64url');
    assert.equal(raw.length, 65);
    assert.equal(raw[0], 4);
    // The receiver answers 403 unless k= is the applicationServerKey of the subscription: a
    // subscription made with another key shows that the check is live.
    const owner = await signupDevice(srv.url);
    const site = await createSite(srv.url, owner.access);
    const e = await member(srv.url, owner, site);
    const foreign = createECDH('prime256v1').generateKeys().toString('base64url');
    const eSub = await enablePush(srv.url, e, receiver, foreign, site);
    const writer = await Writer.open(srv.wsUrl, owner, site, 'log');
    await writer.write(1);
    const [refused] = await receiver.waitFor(eSub.id, 1);
    assert.equal(refused?.status, 403);
    assert.match(refused?.error ?? '', /k is not the applicationServerKey/);
    writer.close();
  });

  it('an offline member gets an encrypted push {site, log, length} with TTL, Urgency and Topic', async () => {
    const s = await scene(srv, receiver, vapid);
    await s.writer.write(3);
    const length = await s.writer.write(2);
    assert.equal(length, 5);
    const last = await pushWithLength(receiver, s.bSub, 5);
    assertPayload(last, s.site, s.log, 5);

    const all = receiver.received(s.bSub.id);
    // Coalesced: the first write goes at once, the second at most one interval later.
    assert.ok(all.length >= 1 && all.length <= 2, `${all.length} pushes`);
    let previous = 0;
    for (const p of all) {
      assert.equal(p.error, null, 'VAPID verified (k= is the /notify/v1/vapid key) and the body decrypted');
      assert.equal(p.status, 201);
      const len = (p.payload as { length: number }).length;
      assertPayload(p, s.site, s.log, len);
      assert.ok(len > previous && len <= 5, `lengths grow: ${previous} then ${len}`);
      previous = len;
      assert.equal(p.headers.ttl, '86400');
      assert.equal(p.headers.urgency, 'normal');
      assert.equal(p.headers.topic, topicOf(s.b.device, s.site));
      assert.equal(p.headers.contentEncoding, 'aes128gcm');
      assert.equal(p.jwt.aud, receiver.origin);
      assert.equal(p.jwt.sub, VAPID_SUBJECT);
      assert.ok(typeof p.jwt.exp === 'number' && p.jwt.exp > Date.now() / 1000);
    }
    // Each device has its own topic for the site.
    const cPush = await pushWithLength(receiver, s.cSub, 5);
    assert.equal(cPush.headers.topic, topicOf(s.c.device, s.site));
    assert.notEqual(cPush.headers.topic, last.headers.topic);
    s.writer.close();
  });

  it('no push while the member has a live tail session (connect only, or a lease elsewhere); pushes again once it is gone', async () => {
    const s = await scene(srv, receiver, vapid);
    const open = await metric(srv.url, 'datagrove_tail_sessions');

    // Connected, no handle at all.
    const bare = await TailClient.connect(srv.wsUrl, s.b.access);
    await writeWithoutPushToB(s, receiver, 0);
    bare.close();
    await tailSessions(srv.url, open);
    let length = await s.writer.write(1);
    assertPayload(await pushWithLength(receiver, s.bSub, length), s.site, s.log, length);
    let pushed = receiver.received(s.bSub.id).length;

    // A lease on a site of its own, not the written one.
    const own = await createSite(srv.url, s.b.access, "B's own site");
    const busy = await TailClient.connect(srv.wsUrl, s.b.access);
    const lease = await busy.call<{ role: string }>('lease', { site: own, log: 'drafts' });
    assert.equal(lease.role, 'leader');
    await writeWithoutPushToB(s, receiver, pushed);
    await writeWithoutPushToB(s, receiver, pushed);
    busy.close();
    await tailSessions(srv.url, open);
    length = await s.writer.write(1);
    // The push carries the latest length, covering the writes made while B was online.
    assertPayload(await pushWithLength(receiver, s.bSub, length), s.site, s.log, length);
    pushed = receiver.received(s.bSub.id).length;
    assert.equal(pushed, 2);
    s.writer.close();
  });

  it('a member is pushed only for logs it may read, and not at all once its grant is revoked', async () => {
    const owner = await signupDevice(srv.url, { name: 'A laptop' });
    const site = await createSite(srv.url, owner.access, 'partly shared');
    const b = await signupDevice(srv.url, { name: 'B phone' });
    const grant = await declareGrant(srv.url, owner, { sub: `user:${b.user}`, site, logs: ['public'], rights: ['read'] });
    assert.equal((await post(srv.url, '/join', { site, grant: grant.hash }, b.access)).status, 200);
    const c = await member(srv.url, owner, site);
    const bSub = await enablePush(srv.url, b, receiver, vapid, site);
    const cSub = await enablePush(srv.url, c, receiver, vapid, site);
    const secret = await Writer.open(srv.wsUrl, owner, site, 'payroll');
    await pushWithLength(receiver, cSub, await secret.write(1));
    await sleep(QUIET_MS);
    assert.equal(receiver.received(bSub.id).length, 0, 'B may not read payroll: no push names it');
    const open = await Writer.open(srv.wsUrl, owner, site, 'public');
    const length = await open.write(1);
    assertPayload(await pushWithLength(receiver, bSub, length), site, 'public', length);
    assert.equal((await post(srv.url, '/revoke', { grant: grant.hash }, owner.access)).status, 200);
    await sleep(QUIET_MS);
    await pushWithLength(receiver, cSub, await open.write(1));
    await sleep(QUIET_MS);
    assert.equal(receiver.received(bSub.id).length, 1, 'nothing after the grant was revoked');
    secret.close();
    open.close();
  });

  it('mute (until now + 1 h) stops pushes; unmute brings them back', async () => {
    const s = await scene(srv, receiver, vapid);
    let length = await s.writer.write(1);
    await pushWithLength(receiver, s.bSub, length);

    const until1h = Date.now() + 3_600_000;
    await changeProfileSynced(srv.url, s.b, [{ op: 'mute', device: s.b.device, site: s.site, until: until1h }]);
    assert.deepEqual((await getProfile(srv.url, s.b)).subscriptions, [{ device: s.b.device, site: s.site, mutedUntil: until1h }]);
    await writeWithoutPushToB(s, receiver, 1);
    await writeWithoutPushToB(s, receiver, 1);

    await changeProfileSynced(srv.url, s.b, [{ op: 'unmute', device: s.b.device, site: s.site }]);
    assert.deepEqual((await getProfile(srv.url, s.b)).subscriptions, [{ device: s.b.device, site: s.site, mutedUntil: null }]);
    length = await s.writer.write(1);
    assertPayload(await pushWithLength(receiver, s.bSub, length), s.site, s.log, length);
    assert.equal(receiver.received(s.bSub.id).length, 2);
    s.writer.close();
  });

  it('an http: or off-allowlist push endpoint is refused with a comment, and nothing changes', async () => {
    const s = await scene(srv, receiver, vapid);
    const before = await getProfile(srv.url, s.b);
    const syncs = await metric(srv.url, SYNC_METRIC);
    const port = new URL(receiver.origin).port;
    const decoy = receiver.subscribe(vapid);
    const path = `/push/${decoy.id}`;
    const bad = [
      { endpoint: `http://127.0.0.1:${port}${path}`, why: /https/ },
      { endpoint: `https://push.example.com${path}`, why: /allow/i },
      { endpoint: `https://127.0.0.1:${Number(port) === 65535 ? 1 : Number(port) + 1}${path}`, why: /allow/i },
    ];
    for (const { endpoint, why } of bad) {
      const r = await changeProfile(srv.url, s.b, [
        { op: 'set', key: 'theme', value: 'dark' },
        pushChange(s.b.device, { ...decoy, endpoint }),
      ]);
      assert.equal(r.ok, false, endpoint);
      if (r.ok) continue;
      assert.equal(r.version, before.version);
      assert.deepEqual(r.profile, before);
      assert.equal(r.comments.length, 1, JSON.stringify(r.comments));
      assert.equal(r.comments[0]?.change, 1);
      assert.match(r.comments[0]?.message ?? '', /endpoint/);
      assert.match(r.comments[0]?.message ?? '', why);
    }
    assert.deepEqual(await getProfile(srv.url, s.b), before, 'nothing applied, not even the valid change');
    await sleep(QUIET_MS);
    assert.equal(await metric(srv.url, SYNC_METRIC), syncs, 'nothing was sent to notify');

    // B is still pushed at its registered endpoint, never at the refused ones.
    const length = await s.writer.write(1);
    assertPayload(await pushWithLength(receiver, s.bSub, length), s.site, s.log, length);
    assert.deepEqual(receiver.received(decoy.id), []);
    s.writer.close();
  });

  it('a 410 from the push service removes the endpoint in notify and in auth\'s profile', async () => {
    const s = await scene(srv, receiver, vapid);
    const removed = await metric(srv.url, 'datagrove_notify_endpoints_removed_total');
    receiver.script(s.bSub.id, { status: 410 });
    const first = await s.writer.write(1);
    const [gone] = await receiver.waitFor(s.bSub.id, 1);
    assert.ok(gone !== undefined);
    assert.equal(gone.status, 410);
    assertPayload(gone, s.site, s.log, first);
    await until('notify to remove the endpoint', async () => (await metric(srv.url, 'datagrove_notify_endpoints_removed_total')) === removed + 1);

    // Nothing more is sent to it, although writes go on (C is still pushed).
    await writeWithoutPushToB(s, receiver, 1);
    await writeWithoutPushToB(s, receiver, 1);

    // Notify tells auth (dg.auth.push-gone): the profile drops the endpoint in a new version,
    // so a later full-state resend cannot hand it back to notify; the subscription stays.
    type Profile = { version: number; push: { device: string; endpoint: string }[]; subscriptions: { device: string; site: string }[] };
    await until('auth to drop the endpoint', async () => (await get<Profile>(srv.url, '/profile', s.b.access)).body.push.length === 0);
    const profile = await get<Profile>(srv.url, '/profile', s.b.access);
    assert.deepEqual(profile.body.push, []);
    assert.ok(profile.body.subscriptions.some((x) => x.device === s.b.device && x.site === s.site), 'still joined to the site');

    // The browser's new subscription (as after `pushsubscriptionchange`) is pushed to again.
    const renewed = receiver.subscribe(vapid);
    await changeProfileSynced(srv.url, s.b, [pushChange(s.b.device, renewed)]);
    const length = await s.writer.write(1);
    assertPayload(await pushWithLength(receiver, renewed, length), s.site, s.log, length);
    assert.equal(receiver.received(s.bSub.id).length, 1);
    s.writer.close();
  });
});

describe('push end to end: notify loses its state', async () => {
  const receiver = await startPushReceiver();

  it('after a restart without notify.db, the next profile change (app data only, or a subscription) makes auth send the full state and pushes resume', async () => {
    const dataDir = tempDir('dg-e2e-push-');
    const first = await startPushServer(receiver, { dataDir });
    const vapid = await vapidKey(first.url);
    const s = await scene(first, receiver, vapid);
    const before = await s.writer.write(2);
    await pushWithLength(receiver, s.bSub, before);
    assert.ok((await getProfile(first.url, s.b)).version >= 1, 'B is past version 0, so a fresh notify sees a gap');
    s.writer.close();
    await first.stop();

    const files = ['notify.db', 'notify.db-wal', 'notify.db-shm'].map((f) => join(dataDir, f));
    assert.ok(existsSync(files[0] ?? ''), 'the monolith keeps notify in notify.db');
    for (const f of files) rmSync(f, { force: true });

    const second = await startPushServer(receiver, { dataDir });
    assert.equal(await vapidKey(second.url), vapid, 'the VAPID keys live beside it and survive');
    const writer = await Writer.open(second.wsUrl, s.owner, s.site, s.log);
    assert.equal(writer.length, before);
    const s2: Scene = { ...s, writer };
    const bPushes = receiver.received(s.bSub.id).length;
    const cPushes = receiver.received(s.cSub.id).length;

    // C repairs first (the control), with an update of app data only: it moves the version
    // too, so notify sees the gap. B's state is still lost, so B hears nothing.
    const rc = await changeProfile(second.url, s.c, [{ op: 'set', key: 'theme', value: 'dark' }]);
    assert.equal(rc.ok, true);
    await syncedAfter(second.url, 'gap', 0);
    await syncedAfter(second.url, 'full', 0);
    assert.equal(receiver.received(s.cSub.id).length, cPushes);
    await writeWithoutPushToB(s2, receiver, bPushes);

    // B makes a change that touches subscriptions: notify answers {ok:false}, auth sends it all.
    const r = await changeProfile(second.url, s.b, [{ op: 'unmute', device: s.b.device, site: s.site }]);
    assert.equal(r.ok, true);
    await syncedAfter(second.url, 'gap', 1);
    await syncedAfter(second.url, 'full', 1);
    assert.equal(await metric(second.url, SYNC_METRIC, 'outcome="changes"'), 0, 'no change set was accepted by the fresh notify');

    const length = await writer.write(1);
    const push = await pushWithLength(receiver, s.bSub, length);
    assertPayload(push, s.site, s.log, length);
    assert.equal(push.headers.topic, topicOf(s.b.device, s.site));
    assert.equal(receiver.received(s.bSub.id).length, bPushes + 1);
    writer.close();
  });
});
