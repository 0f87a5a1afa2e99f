/**
 * Profiles over HTTP: versioned all-or-nothing updates, comments for refused changes,
 * concurrency (exactly one winner per version), and the notification part sent to notify
 * over dg.notify.update (answered here by a stand-in on the bus: this server runs no notify).
 */
import assert from 'node:assert/strict';
import { createECDH, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { ProfileReply, ProfileUpdateReply } from '../../src/protocol/auth-schemas.js';
import { SUBJECTS, type NotifyUpdate } from '../../src/protocol/bus-messages.js';
import { DgError } from '../../src/protocol/errors.js';
import type { Subscription } from '../../src/bus/bus.js';
import { call, createSite, get, loginDevice, post, signupDevice, type SignedUpDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { addDevice } from './db.js';

const pushKeys = () => ({ p256dh: createECDH('prime256v1').generateKeys().toString('base64url'), auth: randomBytes(16).toString('base64url') });
const endpoint = () => `https://fcm.googleapis.com/fcm/send/${randomBytes(8).toString('hex')}`;

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('profile', async () => {
  const { url, server, dataDir } = await startServer({ roles: ['auth'] });
  const sent: NotifyUpdate[] = [];
  let answer: (m: NotifyUpdate) => { ok: boolean } = () => ({ ok: true });
  let notify: Subscription | null = null;
  const standIn = () => server.bus.subscribe(SUBJECTS.notifyUpdate, (m) => {
    sent.push(m as NotifyUpdate);
    return answer(m as NotifyUpdate);
  }, { queue: 'notify' });
  notify = standIn();

  const getProfile = async (d: SignedUpDevice) => {
    const r = await get<ProfileReply>(url, '/profile', d.access);
    assert.equal(r.status, 200);
    assert.ok(Value.Check(ProfileReply, r.body), r.text);
    return r.body;
  };
  const update = async (d: SignedUpDevice, version: number, changes: unknown[]) => {
    const r = await post<ProfileUpdateReply>(url, '/profile', { version, changes }, d.access);
    assert.equal(r.status, 200, r.text);
    assert.ok(Value.Check(ProfileUpdateReply, r.body), r.text);
    return r.body;
  };

  it('applies changes at once, bumps the version, and sends the notification part to notify', async () => {
    const me = await signupDevice(url);
    const later = Date.now() + 3_600_000;
    const site = await createSite(url, me.access);
    assert.deepEqual(await getProfile(me), { version: 0, data: {}, subscriptions: [], push: [] });
    const sub = { endpoint: endpoint(), keys: pushKeys() };
    const n = sent.length;
    const r = await update(me, 0, [
      { op: 'set', key: 'theme', value: { dark: true } },
      { op: 'join', device: me.device, site },
      { op: 'mute', device: me.device, site, until: later },
      { op: 'push', device: me.device, subscription: sub },
    ]);
    assert.deepEqual(r, { ok: true, version: 1 });
    assert.deepEqual(await getProfile(me), {
      version: 1,
      data: { theme: { dark: true } },
      subscriptions: [{ device: me.device, site, mutedUntil: later }],
      push: [{ device: me.device, endpoint: sub.endpoint }],
    });
    await until('the update to reach notify', () => sent.length > n);
    assert.deepEqual(sent.slice(n), [{
      user: me.user,
      version: 1,
      changes: [
        { op: 'join', device: me.device, site },
        { op: 'mute', device: me.device, site, until: later },
        { op: 'push', device: me.device, subscription: sub },
      ],
    }]);

    const unmuted = await update(me, 1, [{ op: 'unmute', device: me.device, site }, { op: 'set', key: 'theme', value: null }]);
    assert.deepEqual(unmuted, { ok: true, version: 2 });
    const p = await getProfile(me);
    assert.deepEqual([p.data, p.subscriptions[0]?.mutedUntil], [{}, null]);

    // An update of app data only moves the version: notify hears of it, with no changes and
    // none of the data.
    await until('the unmute to reach notify', () => sent.some((m) => (m as { version?: number }).version === 2 && (m as { user?: string }).user === me.user));
    const before = sent.length;
    assert.deepEqual(await update(me, 2, [{ op: 'set', key: 'k', value: 1 }]), { ok: true, version: 3 });
    await until('the set-only update to reach notify', () => sent.length > before);
    assert.deepEqual(sent.slice(before), [{ user: me.user, version: 3, changes: [] }]);
  });

  it('a mute that has ended reads as null; a number JSON cannot give back is refused, not stored as null', async () => {
    const me = await signupDevice(url);
    const site = await createSite(url, me.access);
    const soon = Date.now() + 300;
    assert.deepEqual(await update(me, 0, [{ op: 'join', device: me.device, site }, { op: 'mute', device: me.device, site, until: soon }]), { ok: true, version: 1 });
    assert.equal((await getProfile(me)).subscriptions[0]?.mutedUntil, soon);
    await new Promise((r) => setTimeout(r, 400));
    const p = await getProfile(me);
    assert.deepEqual([p.version, p.subscriptions[0]?.mutedUntil], [1, null]);
    // A mute set in the past is over at once.
    assert.deepEqual(await update(me, 1, [{ op: 'mute', device: me.device, site, until: 12345 }]), { ok: true, version: 2 });
    assert.equal((await getProfile(me)).subscriptions[0]?.mutedUntil, null);

    for (const value of ['1e400', '[-1e400]', '{"a": {"b": [1, 2e308]}}']) {
      const r = await fetch(`${url}/auth/v1/profile`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${me.access}` },
        body: `{"version": 2, "changes": [{"op": "set", "key": "n", "value": ${value}}]}`,
      });
      assert.equal(r.status, 200);
      const body = (await r.json()) as { ok: boolean; comments?: { change: number | null; message: string }[] };
      assert.equal(body.ok, false, value);
      assert.deepEqual(body.comments?.map((c) => c.change), [0]);
      assert.match(body.comments?.[0]?.message ?? '', /^value: a number is out of range/);
    }
    const after = await getProfile(me);
    assert.deepEqual([after.version, after.data], [2, {}]);
    assert.deepEqual(await update(me, 2, [{ op: 'set', key: 'n', value: 1.7976931348623157e308 }]), { ok: true, version: 3 });
  });

  it('lets exactly one of concurrent updates from one version win', async () => {
    const me = await signupDevice(url);
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => update(me, 0, [{ op: 'set', key: 'who', value: i }])));
    const won = replies.filter((r) => r.ok);
    assert.equal(won.length, 1, JSON.stringify(replies));
    const winner = replies.findIndex((r) => r.ok);
    for (const r of replies) {
      if (r.ok) continue;
      assert.equal(r.version, 1);
      assert.deepEqual(r.profile.data, { who: winner });
      assert.equal(r.comments[0]?.change, null);
    }
    assert.deepEqual((await getProfile(me)).data, { who: winner });
  });

  it('answers a stale version with the current profile and applies nothing', async () => {
    const me = await signupDevice(url);
    await update(me, 0, [{ op: 'set', key: 'a', value: 1 }]);
    const r = await update(me, 0, [{ op: 'set', key: 'a', value: 2 }]);
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.deepEqual([r.version, r.profile.data, r.comments], [1, { a: 1 }, [{ change: null, message: 'version: 0 is not the current version 1' }]]);
  });

  it('refuses all changes when one is bad, with a comment per refused change', async () => {
    const me = await signupDevice(url);
    const mine = await createSite(url, me.access);
    const stranger = await signupDevice(url);
    const theirs = await createSite(url, stranger.access);
    const pad = 'y'.repeat(8 * 1024);
    await update(me, 0, [{ op: 'set', key: 'keep', value: true }, { op: 'set', key: 'pad', value: pad }]);
    const r = await update(me, 1, [
      { op: 'set', key: 'fine', value: 1 },
      { op: 'join', device: me.device, site: theirs },
      { op: 'join', device: stranger.device, site: mine },
      { op: 'push', device: me.device, subscription: { endpoint: 'http://fcm.googleapis.com/x', keys: pushKeys() } },
      { op: 'push', device: me.device, subscription: { endpoint: 'https://evil.example/x', keys: pushKeys() } },
      { op: 'push', device: me.device, subscription: { endpoint: endpoint(), keys: { p256dh: 'AAAA', auth: 'AAAA' } } },
      // 65 bytes starting with 4, but not a point of P-256: no push could be encrypted to it.
      { op: 'push', device: me.device, subscription: { endpoint: endpoint(), keys: { p256dh: Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]).toString('base64url'), auth: randomBytes(16).toString('base64url') } } },
      { op: 'mute', device: me.device, site: mine, until: 5 },
      { op: 'explode' },
      { op: 'join', device: me.device },
      { op: 'set', key: 'big', value: 'x'.repeat(60 * 1024) },
      { op: 'join', device: me.device, site: mine },
    ]);
    assert.ok(!r.ok);
    assert.deepEqual(r.comments.map((c) => c.change), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.match(r.comments[0]?.message ?? '', /no access/);
    assert.match(r.comments[1]?.message ?? '', /not a live device of this user/);
    assert.match(r.comments[2]?.message ?? '', /https:/);
    assert.match(r.comments[3]?.message ?? '', /allowlist/);
    assert.match(r.comments[4]?.message ?? '', /p256dh/);
    assert.match(r.comments[5]?.message ?? '', /p256dh/);
    assert.match(r.comments[6]?.message ?? '', /not joined/);
    assert.match(r.comments[7]?.message ?? '', /op: must be one of/);
    assert.match(r.comments[8]?.message ?? '', /site/);
    assert.match(r.comments[9]?.message ?? '', /over 65536 in all/);
    assert.deepEqual([r.version, r.profile.data, r.profile.subscriptions], [1, { keep: true, pad }, []]);
    assert.deepEqual(await getProfile(me), { version: 1, data: { keep: true, pad }, subscriptions: [], push: [] });
  });

  it('accepts leave and unmute of a site the device has not joined as no-ops, and refuses mute of it', async () => {
    const me = await signupDevice(url);
    const site = await createSite(url, me.access);
    assert.deepEqual(await update(me, 0, [{ op: 'leave', device: me.device, site }]), { ok: true, version: 1 });
    assert.deepEqual(await update(me, 1, [{ op: 'unmute', device: me.device, site }]), { ok: true, version: 2 });
    const r = await update(me, 2, [{ op: 'mute', device: me.device, site, until: Date.now() + 60_000 }]);
    assert.ok(!r.ok);
    assert.match(r.comments[0]?.message ?? '', /not joined/);
    assert.deepEqual((await getProfile(me)).subscriptions, []);
  });

  it('bounds app data to 64 KiB in all', async () => {
    const me = await signupDevice(url);
    const big = 'x'.repeat(40 * 1024);
    assert.deepEqual(await update(me, 0, [{ op: 'set', key: 'a', value: big }]), { ok: true, version: 1 });
    const r = await update(me, 1, [{ op: 'set', key: 'b', value: big }]);
    assert.ok(!r.ok);
    assert.match(r.comments[0]?.message ?? '', /over 65536 in all/);
    assert.deepEqual(await update(me, 1, [{ op: 'set', key: 'a', value: null }, { op: 'set', key: 'b', value: big }]), { ok: true, version: 2 });
    // The bound is on the result of all changes, in any order: a new value may come first.
    assert.deepEqual(await update(me, 2, [{ op: 'set', key: 'c', value: big }, { op: 'set', key: 'b', value: null }]), { ok: true, version: 3 });
    const both = await update(me, 3, [{ op: 'set', key: 'd', value: 'y' }, { op: 'set', key: 'e', value: big }, { op: 'set', key: 'd', value: null }]);
    assert.ok(!both.ok);
    assert.deepEqual(both.comments.map((c) => c.change), [1], 'the last set that leaves a value is refused');
    assert.deepEqual(Object.keys((await getProfile(me)).data), ['c']);
    const bad = await post<{ error: { code: string } }>(url, '/profile', { version: 'x', changes: [] }, me.access);
    assert.equal(bad.status, 400);
    assert.equal((await post(url, '/profile', { version: 0, changes: Array(101).fill({ op: 'set', key: 'k', value: 1 }) }, me.access)).status, 400);
    const over = await post<{ error: { code: string } }>(url, '/profile', { version: 3, changes: [{ op: 'set', key: 'c', value: 'z'.repeat(64 * 1024) }] }, me.access);
    assert.deepEqual([over.status, over.body.error.code], [413, 'TOO_LARGE'], 'a body over 64 KiB, as for every route');
  });

  it('stores app data under any key, __proto__ included, and removes it again', async () => {
    const me = await signupDevice(url);
    const r = await update(me, 0, [
      { op: 'set', key: '__proto__', value: { x: 1 } },
      { op: 'set', key: 'constructor', value: 2 },
    ]);
    assert.deepEqual(r, { ok: true, version: 1 });
    const p = await getProfile(me);
    assert.deepEqual(Object.keys(p.data).sort(), ['__proto__', 'constructor']);
    assert.deepEqual(Object.getOwnPropertyDescriptor(p.data, '__proto__')?.value, { x: 1 });
    assert.deepEqual(await update(me, 1, [{ op: 'set', key: '__proto__', value: 5 }]), { ok: true, version: 2 });
    assert.equal(Object.getOwnPropertyDescriptor((await getProfile(me)).data, '__proto__')?.value, 5);
    assert.deepEqual(await update(me, 2, [{ op: 'set', key: '__proto__', value: null }]), { ok: true, version: 3 });
    assert.deepEqual(Object.keys((await getProfile(me)).data), ['constructor']);
  });

  it('refuses app data nested deeper than 64 levels before parsing it, and the profile stays usable', async () => {
    const me = await signupDevice(url);
    const deep = (n: number): unknown => (n === 0 ? 1 : [deep(n - 1)]);
    // The body adds two levels ({...} and changes: [...]) and the change object a third.
    assert.deepEqual(await update(me, 0, [{ op: 'set', key: 'ok', value: deep(61) }]), { ok: true, version: 1 });
    for (const depth of [62, 4000]) {
      const r = await call<{ error: { code: string; message: string } }>(url, 'POST', '/profile', {
        token: me.access,
        raw: `{"version":1,"changes":[{"op":"set","key":"k","value":${'['.repeat(depth)}1${']'.repeat(depth)}}]}`,
      });
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(r.body.error, { code: 'BAD_REQUEST', message: 'body: nests deeper than 64 levels' });
    }
    assert.deepEqual(await update(me, 1, [{ op: 'set', key: 'k', value: 2 }]), { ok: true, version: 2 });
  });

  it('sends the full state when notify missed a version', async () => {
    const me = await signupDevice(url);
    const site = await createSite(url, me.access);
    const sub = { endpoint: endpoint(), keys: pushKeys() };
    answer = (m) => ({ ok: m.full !== undefined });
    try {
      const n = sent.length;
      await update(me, 0, [{ op: 'join', device: me.device, site }, { op: 'push', device: me.device, subscription: sub }]);
      await until('the full state', () => sent.slice(n).some((m) => m.full !== undefined));
      assert.deepEqual(sent.slice(n), [
        { user: me.user, version: 1, changes: [{ op: 'join', device: me.device, site }, { op: 'push', device: me.device, subscription: sub }] },
        { user: me.user, version: 1, full: { subscriptions: [{ device: me.device, site, mutedUntil: null }], push: [{ device: me.device, endpoint: sub.endpoint, keys: sub.keys }] } },
      ]);
    } finally {
      answer = () => ({ ok: true });
    }
  });

  it('still updates the profile when notify is unreachable, and re-sends the full state later', async () => {
    const me = await signupDevice(url);
    const site = await createSite(url, me.access);
    notify?.unsubscribe();
    notify = null;
    assert.deepEqual(await update(me, 0, [{ op: 'join', device: me.device, site }]), { ok: true, version: 1 });
    await new Promise((r) => setTimeout(r, 50));
    const n = sent.length;
    notify = standIn();
    // The next update of this user carries the full state instead of its changes.
    assert.deepEqual(await update(me, 1, [{ op: 'leave', device: me.device, site }]), { ok: true, version: 2 });
    await until('the full state', () => sent.slice(n).some((m) => m.user === me.user && m.version === 2));
    const mine = sent.slice(n).filter((m) => m.user === me.user);
    // Only full states (the retry timer may also have sent version 1 first), ending at version 2.
    assert.ok(mine.every((m) => m.full !== undefined && m.changes === undefined), JSON.stringify(mine));
    assert.deepEqual(mine.find((m) => m.version === 2), { user: me.user, version: 2, full: { subscriptions: [], push: [] } });
  });

  it('takes notify answering UNAVAILABLE (its store is down) as unreachable, and re-sends the full state once it answers', async () => {
    const me = await signupDevice(url);
    const site = await createSite(url, me.access);
    let down = true;
    answer = () => {
      // What notify answers while its disk is full.
      if (down) throw new DgError('UNAVAILABLE', 'notify store is unavailable', { cause: new Error('database or disk is full') });
      return { ok: true };
    };
    try {
      const n = sent.length;
      assert.deepEqual(await update(me, 0, [{ op: 'join', device: me.device, site }]), { ok: true, version: 1 });
      await until('the refused update', () => sent.slice(n).some((m) => m.user === me.user));
      await new Promise((r) => setTimeout(r, 100));
      const during = sent.length;
      down = false;
      await until('the full state, re-sent by itself', () => sent.slice(during).some((m) => m.user === me.user), 10_000);
      assert.deepEqual(sent.slice(during).find((m) => m.user === me.user), { user: me.user, version: 1, full: { subscriptions: [{ device: me.device, site, mutedUntil: null }], push: [] } });
    } finally {
      answer = () => ({ ok: true });
    }
  });

  it('re-sends the full state by itself once notify is back', async () => {
    const me = await signupDevice(url);
    const site = await createSite(url, me.access);
    notify?.unsubscribe();
    notify = null;
    assert.deepEqual(await update(me, 0, [{ op: 'join', device: me.device, site }]), { ok: true, version: 1 });
    await new Promise((r) => setTimeout(r, 50));
    const n = sent.length;
    notify = standIn();
    await until('the retried full state', () => sent.slice(n).some((m) => m.user === me.user), 10_000);
    assert.deepEqual(sent.slice(n).find((m) => m.user === me.user), { user: me.user, version: 1, full: { subscriptions: [{ device: me.device, site, mutedUntil: null }], push: [] } });
  });

  it('drops a revoked device from the profile and tells notify', async () => {
    const me = await signupDevice(url);
    const site = await createSite(url, me.access);
    const keys = addDevice(dataDir, me.user, 'tablet');
    const login = await loginDevice(url, keys);
    const tablet = { ...keys, ...login.body } as SignedUpDevice;
    const sub = { endpoint: endpoint(), keys: pushKeys() };
    await update(me, 0, [
      { op: 'join', device: me.device, site },
      { op: 'join', device: tablet.device, site },
      { op: 'push', device: tablet.device, subscription: sub },
    ]);
    const n = sent.length;
    assert.equal((await post(url, '/revoke', { device: tablet.device }, me.access)).status, 200);
    const p = await getProfile(me);
    assert.deepEqual([p.version, p.subscriptions.map((s) => s.device), p.push], [2, [me.device], []]);
    await until('the full state', () => sent.slice(n).some((m) => m.user === me.user && m.full !== undefined));
    assert.deepEqual(sent.slice(n).find((m) => m.user === me.user), { user: me.user, version: 2, full: { subscriptions: [{ device: me.device, site, mutedUntil: null }], push: [] } });
    const r = await update(me, 2, [{ op: 'join', device: tablet.device, site }]);
    assert.ok(!r.ok, 'a revoked device cannot join');
  });
});
