/**
 * The notify store conformance suite: every NotifyStore implementation runs it (see
 * src/notify/store.ts for the guarantees it checks). `open` gives a fresh, empty store.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { NotifyStore, PushKeys, StoreChange } from '../../src/notify/store.js';

const device = () => randomBytes(32).toString('base64url');
const keys = (): PushKeys => ({ p256dh: Buffer.concat([Buffer.from([4]), randomBytes(64)]).toString('base64url'), auth: randomBytes(16).toString('base64url') });
let userSeq = 0;
const newUser = () => `u${process.pid}_${Date.now()}_${userSeq++}`;
const NOW = 1_700_000_000_000;

export function runNotifyStoreConformance(name: string, open: () => Promise<NotifyStore>, opts: { skip?: string | false } = {}): void {
  describe(`notify store conformance: ${name}`, { skip: opts.skip ?? false }, () => {
    let store: NotifyStore;
    before(async () => {
      store = await open();
    });
    after(async () => {
      await store?.close();
    });

    it('knows an unseen user at version 0 with no state', async () => {
      assert.deepEqual(await store.userState(newUser()), { version: 0, subscriptions: [], push: [] });
      assert.equal(store.healthy(), true);
    });

    it('applies changes only at the stored version + 1, all or nothing', async () => {
      const u = newUser();
      const d = device();
      assert.deepEqual(await store.applyChanges(u, 2, [{ op: 'join', device: d, site: 's1' }]), { ok: false, version: 0 });
      assert.deepEqual(await store.applyChanges(u, 0, [{ op: 'join', device: d, site: 's1' }]), { ok: false, version: 0 });
      assert.deepEqual((await store.userState(u)).subscriptions, []);
      assert.deepEqual(await store.applyChanges(u, 1, [{ op: 'join', device: d, site: 's1' }]), { ok: true, version: 1 });
      assert.deepEqual(await store.applyChanges(u, 1, [{ op: 'join', device: d, site: 's2' }]), { ok: false, version: 1 });
      assert.deepEqual(await store.applyChanges(u, 3, [{ op: 'join', device: d, site: 's3' }]), { ok: false, version: 1 });
      const st = await store.userState(u);
      assert.equal(st.version, 1);
      assert.deepEqual(st.subscriptions, [{ device: d, site: 's1', mutedUntil: null }]);
    });

    it('applies the ops in order', async () => {
      const u = newUser();
      const [a, b] = [device(), device()].sort();
      const ka = keys();
      const kb = keys();
      const changes: StoreChange[] = [
        { op: 'join', device: a!, site: 's1' },
        { op: 'join', device: a!, site: 's2' },
        { op: 'join', device: b!, site: 's1' },
        { op: 'leave', device: a!, site: 's2' },
        { op: 'mute', device: b!, site: 's1', until: NOW + 1000 },
        { op: 'mute', device: a!, site: 'not-joined', until: NOW + 1000 },
        { op: 'push', device: a!, endpoint: 'https://push.example/old', keys: ka },
        { op: 'push', device: a!, endpoint: 'https://push.example/a', keys: ka },
        { op: 'push', device: b!, endpoint: 'https://push.example/b', keys: kb },
        { op: 'unpush', device: b! },
      ];
      assert.equal((await store.applyChanges(u, 1, changes)).ok, true);
      const st = await store.userState(u);
      assert.deepEqual(st.subscriptions, [
        { device: a, site: 's1', mutedUntil: null },
        { device: b, site: 's1', mutedUntil: NOW + 1000 },
      ]);
      assert.deepEqual(st.push, [{ device: a, endpoint: 'https://push.example/a', keys: ka }]);
      // join keeps an existing mute; unmute clears it.
      assert.equal((await store.applyChanges(u, 2, [{ op: 'join', device: b!, site: 's1' }])).ok, true);
      assert.equal((await store.userState(u)).subscriptions[1]?.mutedUntil, NOW + 1000);
      assert.equal((await store.applyChanges(u, 3, [{ op: 'unmute', device: b!, site: 's1' }])).ok, true);
      assert.equal((await store.userState(u)).subscriptions[1]?.mutedUntil, null);
    });

    it('lets exactly one of concurrent updates at one version win', async () => {
      const u = newUser();
      const results = await Promise.all(
        Array.from({ length: 5 }, (_, i) => store.applyChanges(u, 1, [{ op: 'join', device: device(), site: `c${i}` }])),
      );
      assert.equal(results.filter((r) => r.ok).length, 1);
      const st = await store.userState(u);
      assert.equal(st.version, 1);
      assert.equal(st.subscriptions.length, 1);
    });

    it('replaces the whole state at a version not older than the stored one', async () => {
      const u = newUser();
      const d = device();
      const k = keys();
      await store.applyChanges(u, 1, [
        { op: 'join', device: d, site: 'old' },
        { op: 'push', device: d, endpoint: 'https://push.example/old', keys: k },
      ]);
      const full = { subscriptions: [{ device: d, site: 'new', mutedUntil: NOW }], push: [{ device: d, endpoint: 'https://push.example/new', keys: k }] };
      assert.deepEqual(await store.replaceState(u, 7, full), { ok: true, version: 7 });
      assert.deepEqual(await store.userState(u), { version: 7, ...full });
      assert.deepEqual(await store.replaceState(u, 7, full), { ok: true, version: 7 }, 'the same version again is accepted');
      assert.deepEqual(await store.replaceState(u, 6, { subscriptions: [], push: [] }), { ok: false, version: 7 });
      assert.equal((await store.userState(u)).subscriptions.length, 1, 'a stale full state changes nothing');
      assert.equal((await store.applyChanges(u, 8, [{ op: 'leave', device: d, site: 'new' }])).ok, true);
      assert.deepEqual(await store.replaceState(u, 9, { subscriptions: [], push: [] }), { ok: true, version: 9 });
      assert.deepEqual(await store.userState(u), { version: 9, subscriptions: [], push: [] });
    });

    it('lists the push targets of a site: joined, with an endpoint, not muted now', async () => {
      const site = `t${userSeq++}`;
      const u1 = newUser();
      const u2 = newUser();
      const [plain, muted, expired, noEndpoint, other] = [device(), device(), device(), device(), device()];
      const k = keys();
      await store.applyChanges(u1, 1, [
        { op: 'join', device: plain!, site },
        { op: 'push', device: plain!, endpoint: 'https://push.example/plain', keys: k },
        { op: 'join', device: muted!, site },
        { op: 'mute', device: muted!, site, until: NOW + 1 },
        { op: 'push', device: muted!, endpoint: 'https://push.example/muted', keys: k },
        { op: 'join', device: noEndpoint!, site },
      ]);
      await store.applyChanges(u2, 1, [
        { op: 'join', device: expired!, site },
        { op: 'mute', device: expired!, site, until: NOW },
        { op: 'push', device: expired!, endpoint: 'https://push.example/expired', keys: k },
        { op: 'join', device: other!, site: `${site}x` },
        { op: 'push', device: other!, endpoint: 'https://push.example/other', keys: k },
      ]);
      const got = await store.targets(site, 'main', NOW);
      assert.deepEqual(
        got.map((t) => t.endpoint).sort(),
        ['https://push.example/expired', 'https://push.example/plain'],
      );
      const p = got.find((t) => t.device === plain);
      assert.deepEqual(p, { user: u1, device: plain, endpoint: 'https://push.example/plain', keys: k, pushedLength: 0 });
      assert.equal((await store.targets(site, 'main', NOW + 1)).length, 3, 'the mute ends at mutedUntil');
      assert.deepEqual(await store.target(u1, plain!, site, 'main', NOW), p);
      assert.equal(await store.target(u1, muted!, site, 'main', NOW), null);
      assert.equal(await store.target(u1, noEndpoint!, site, 'main', NOW), null);
      assert.equal(await store.target(u2, plain!, site, 'main', NOW), null, 'a device is found only under its user');
    });

    it('keeps the pushed length per (device, site, log), only raising it, only while joined', async () => {
      const u = newUser();
      const d = device();
      const k = keys();
      await store.applyChanges(u, 1, [
        { op: 'join', device: d, site: 'p' },
        { op: 'push', device: d, endpoint: 'https://push.example/p', keys: k },
      ]);
      await store.markPushed(u, d, 'p', 'a', 5);
      await store.markPushed(u, d, 'p', 'a', 3);
      await store.markPushed(u, d, 'p', 'b', 2);
      assert.equal((await store.target(u, d, 'p', 'a', NOW))?.pushedLength, 5);
      assert.equal((await store.target(u, d, 'p', 'b', NOW))?.pushedLength, 2);
      assert.equal((await store.target(u, d, 'p', 'c', NOW))?.pushedLength, 0);
      await store.markPushed(u, d, 'q', 'a', 9);
      await store.applyChanges(u, 2, [{ op: 'join', device: d, site: 'q' }]);
      assert.equal((await store.target(u, d, 'q', 'a', NOW))?.pushedLength, 0, 'no length is kept for a site the device had not joined');
      // leave forgets the lengths; a full state keeps those of surviving subscriptions.
      await store.markPushed(u, d, 'q', 'a', 4);
      await store.applyChanges(u, 3, [
        { op: 'leave', device: d, site: 'q' },
        { op: 'join', device: d, site: 'q' },
      ]);
      assert.equal((await store.target(u, d, 'q', 'a', NOW))?.pushedLength, 0);
      await store.markPushed(u, d, 'q', 'a', 4);
      await store.replaceState(u, 4, { subscriptions: [{ device: d, site: 'p', mutedUntil: null }], push: [{ device: d, endpoint: 'https://push.example/p', keys: k }] });
      assert.equal((await store.target(u, d, 'p', 'a', NOW))?.pushedLength, 5);
      await store.replaceState(u, 5, {
        subscriptions: [
          { device: d, site: 'p', mutedUntil: null },
          { device: d, site: 'q', mutedUntil: null },
        ],
        push: [{ device: d, endpoint: 'https://push.example/p', keys: k }],
      });
      assert.equal((await store.target(u, d, 'q', 'a', NOW))?.pushedLength, 0, 'lengths of a removed subscription are gone');
    });

    it('removes an endpoint only while it is still the device endpoint', async () => {
      const u = newUser();
      const d = device();
      const k = keys();
      await store.applyChanges(u, 1, [{ op: 'push', device: d, endpoint: 'https://push.example/v1', keys: k }]);
      await store.applyChanges(u, 2, [{ op: 'push', device: d, endpoint: 'https://push.example/v2', keys: k }]);
      assert.equal(await store.removeEndpoint(u, d, 'https://push.example/v1'), false);
      assert.deepEqual((await store.userState(u)).push.map((p) => p.endpoint), ['https://push.example/v2']);
      assert.equal(await store.removeEndpoint(u, d, 'https://push.example/v2'), true);
      assert.deepEqual((await store.userState(u)).push, []);
      assert.equal((await store.userState(u)).version, 2, 'removing an endpoint keeps the version');
    });

    it('opens a push window once per interval, whoever claims it, and drops it with its subscription', async () => {
      const u = newUser();
      const d = device();
      assert.deepEqual(await store.applyChanges(u, 1, [{ op: 'join', device: d, site: 's1' }, { op: 'join', device: d, site: 's2' }]), { ok: true, version: 1 });
      // Concurrent claims (the PostgreSQL pool runs them at once): exactly one opens it.
      const claims = await Promise.all(Array.from({ length: 8 }, () => store.claimWindow(u, d, 's1', NOW, 10_000)));
      assert.equal(claims.filter((c) => c === 0).length, 1, `claims: ${claims.join(',')}`);
      for (const c of claims) if (c !== 0) assert.equal(c, NOW + 10_000);
      assert.equal(await store.claimWindow(u, d, 's1', NOW + 9_999, 10_000), NOW + 10_000, 'still open');
      assert.equal(await store.claimWindow(u, d, 's2', NOW + 5, 10_000), 0, 'another site has its own window');
      assert.equal(await store.claimWindow(u, d, 's1', NOW + 10_000, 10_000), 0, 'the next window, at its end');
      assert.equal(await store.claimWindow(u, d, 's1', NOW + 10_001, 10_000), NOW + 20_000);
      // Leaving drops the window: joining again starts afresh.
      assert.deepEqual(await store.applyChanges(u, 2, [{ op: 'leave', device: d, site: 's1' }, { op: 'join', device: d, site: 's1' }]), { ok: true, version: 2 });
      assert.equal(await store.claimWindow(u, d, 's1', NOW + 10_002, 10_000), 0);
      // A full state without the subscription drops it too.
      assert.equal((await store.replaceState(u, 3, { subscriptions: [{ device: d, site: 's1', mutedUntil: null }], push: [] })).ok, true);
      assert.equal(await store.claimWindow(u, d, 's2', NOW + 6, 10_000), 0, 's2 left with the full state, and its window with it');
    });

    it('keeps users apart', async () => {
      const u1 = newUser();
      const u2 = newUser();
      const d = device();
      await store.applyChanges(u1, 1, [{ op: 'join', device: d, site: 'iso' }]);
      await store.replaceState(u2, 3, { subscriptions: [], push: [] });
      assert.deepEqual((await store.userState(u1)).subscriptions, [{ device: d, site: 'iso', mutedUntil: null }]);
      assert.equal((await store.userState(u2)).version, 3);
    });
  });
}
