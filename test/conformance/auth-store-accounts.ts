/**
 * The second half of the auth store conformance suite: OIDC logins and identity links,
 * profiles, claims and envelopes. `runAuthStoreConformance` runs it on every store.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { it } from 'node:test';
import type { AuthStore, EnvelopeLimits, IdentityLink, NewOidcLogin, ProfileState } from '../../src/auth/store.js';

const id = (n = 16) => randomBytes(n).toString('base64url');
const dev = () => id(32);
/** Envelope limits where only the mailbox's size binds. */
const box = (perDevice: number): EnvelopeLimits => ({ perDevice, perSender: Number.MAX_SAFE_INTEGER, fromOtherUsers: Number.MAX_SAFE_INTEGER });

export function accountConformance(store: () => AuthStore): void {
  const s = () => store();

  async function newUser(now = 1000): Promise<{ user: string; device: string }> {
    const user = id();
    const device = dev();
    assert.equal(await s().createUser({ id: user, createdAt: now }, { id: device, boxKey: dev(), name: 'd', createdAt: now }), true);
    return { user, device };
  }

  function link(email: string, device: string, over: Partial<IdentityLink> = {}): IdentityLink {
    return { email, provider: 'dev', device: { id: device, boxKey: dev(), name: 'phone' }, newUser: id(), attestation: `att.${id()}.sig`, now: 5000, ...over };
  }

  it('links a new email to a new user and device, then adds other devices to that user', async () => {
    const email = `${id(6).toLowerCase()}@example.com`;
    const [d1, d2, u] = [dev(), dev(), id()];
    const first = await s().linkIdentity(link(email, d1, { newUser: u }));
    assert.deepEqual(first, { ok: true, user: u, newUser: true, newDevice: true });
    assert.equal((await s().getDevice(d1))?.name, 'phone');
    const second = await s().linkIdentity(link(email, d2, { device: { id: d2, boxKey: dev(), name: 'laptop' }, now: 6000 }));
    assert.deepEqual(second, { ok: true, user: u, newUser: false, newDevice: true });
    assert.deepEqual((await s().listDevices(u)).map((d) => [d.id, d.name]), [[d1, 'phone'], [d2, 'laptop']]);
    const again = await s().linkIdentity(link(email, d1, { device: { id: d1, boxKey: null, name: 'x' }, now: 7000 }));
    assert.deepEqual(again, { ok: true, user: u, newUser: false, newDevice: false });
    assert.deepEqual((await s().identitiesOf(u)).map((i) => [i.email, i.device]).sort(), [[email, d1], [email, d2]].sort());
  });

  it('gives a device it adds the signature of its box key, if the login had one', async () => {
    const email = `${id(6).toLowerCase()}@sig.org`;
    const [d1, d2, d3] = [dev(), dev(), dev()];
    assert.ok((await s().linkIdentity(link(email, d1, { device: { id: d1, boxKey: dev(), boxSig: 'sig-1', name: 'phone' } }))).ok);
    assert.ok((await s().linkIdentity(link(email, d2))).ok);
    assert.deepEqual([(await s().getDevice(d1))?.boxSig, (await s().getDevice(d2))?.boxSig], ['sig-1', null]);
    // A known device keeps what it has: the login's box key and signature are for new devices.
    assert.ok((await s().linkIdentity(link(email, d2, { device: { id: d2, boxKey: dev(), boxSig: 'sig-2', name: 'x' } }))).ok);
    assert.equal((await s().getDevice(d2))?.boxSig, null);
    assert.ok((await s().linkIdentity(link(`${id(6).toLowerCase()}@sig.org`, d3, { device: { id: d3, boxKey: dev(), boxSig: 'sig-3', name: 'new user' } }))).ok);
    assert.equal((await s().getDevice(d3))?.boxSig, 'sig-3', 'a new user’s first device too');
  });

  it('links a new email to the existing user of a known device, and refuses what does not fit', async () => {
    const { user, device } = await newUser();
    const email = `${id(6).toLowerCase()}@example.org`;
    assert.deepEqual(await s().linkIdentity(link(email, device, { device: { id: device, boxKey: null, name: 'x' } })), { ok: true, user, newUser: false, newDevice: false });
    const other = await newUser();
    assert.deepEqual(await s().linkIdentity(link(email, other.device)), { ok: false, reason: 'device-of-another-user' });
    assert.deepEqual(await s().linkIdentity(link(`${id(6).toLowerCase()}@x.org`, dev(), { device: { id: dev(), boxKey: null, name: 'x' } })), { ok: false, reason: 'box-key-required' });
    await s().revokeDevice(other.device, 6000);
    assert.deepEqual(await s().linkIdentity(link(`${id(6).toLowerCase()}@y.org`, other.device)), { ok: false, reason: 'device-revoked' });
    assert.equal((await s().identitiesOf(other.user)).length, 0, 'refusals write nothing');
  });

  it('gives one user to concurrent first logins with one email', async () => {
    const email = `${id(6).toLowerCase()}@race.org`;
    const results = await Promise.all(Array.from({ length: 8 }, () => s().linkIdentity(link(email, dev()))));
    const users = new Set(results.map((r) => (r.ok ? r.user : 'refused')));
    assert.equal(users.size, 1, JSON.stringify(results));
    assert.equal(results.filter((r) => r.ok && r.newUser).length, 1);
    const [user] = users;
    assert.equal((await s().listDevices(user ?? '')).length, 8);
  });

  it('lists attestations of live devices only, oldest first, up to the limit', async () => {
    const email = `${id(6).toLowerCase()}@keys.org`;
    const [d1, d2, d3] = [dev(), dev(), dev()];
    for (const [i, d] of [d1, d2, d3].entries()) assert.ok((await s().linkIdentity(link(email, d, { attestation: `a${i}`, now: 100 + i }))).ok);
    assert.deepEqual((await s().attestationsOf(email, 10)).map((a) => [a.device, a.attestation, a.provider]), [[d1, 'a0', 'dev'], [d2, 'a1', 'dev'], [d3, 'a2', 'dev']]);
    assert.equal((await s().attestationsOf(email, 2)).length, 2);
    await s().revokeDevice(d2, 200);
    assert.deepEqual((await s().attestationsOf(email, 10)).map((a) => a.device), [d1, d3]);
    assert.deepEqual(await s().attestationsOf('nobody@keys.org', 10), []);
  });

  it('renames live devices of the user only', async () => {
    const { user, device } = await newUser();
    assert.equal(await s().renameDevice(user, device, 'kitchen'), true);
    assert.equal((await s().getDevice(device))?.name, 'kitchen');
    assert.equal(await s().renameDevice(id(), device, 'stolen'), false);
    await s().revokeDevice(device, 10);
    assert.equal(await s().renameDevice(user, device, 'late'), false);
    assert.equal((await s().getDevice(device))?.name, 'kitchen');
  });

  it('steps an OIDC login through callback and collection, each exactly once', async () => {
    const device = dev();
    const login: NewOidcLogin = {
      state: id(32),
      provider: 'dev',
      device,
      boxKey: dev(),
      boxSig: 'sig',
      name: 'n',
      verifier: id(32),
      oidcNonce: id(16),
      redirect: 'http://app/x',
      createdAt: 1,
      expiresAt: 10_000,
    };
    await s().putOidcLogin(login);
    assert.deepEqual(await s().getOidcLogin(login.state), { ...login, phase: 'started', outcome: null });
    const { boxSig: _, ...unsigned } = { ...login, state: id(32) };
    await s().putOidcLogin(unsigned);
    assert.equal((await s().getOidcLogin(unsigned.state))?.boxSig, null, 'a login without a signature');
    assert.equal(await s().takeOidcCallback(login.state, 10_000), null, 'expired at its expiry time');
    const taken = await Promise.all([s().takeOidcCallback(login.state, 50), s().takeOidcCallback(login.state, 50)]);
    assert.equal(taken.filter((t) => t !== null).length, 1, 'one callback');
    assert.equal(taken.find((t) => t !== null)?.verifier, login.verifier);
    assert.equal(await s().takeOidcOutcome(login.state, device, 60), null, 'not done yet');
    const outcome = { ok: true as const, email: 'e@x', confirmation: 'h' };
    await s().finishOidcLogin(login.state, outcome, 20_000);
    const done = await s().getOidcLogin(login.state);
    assert.deepEqual([done?.phase, done?.verifier, done?.expiresAt, done?.outcome], ['done', '', 20_000, outcome]);
    assert.equal(await s().takeOidcOutcome(login.state, dev(), 60), null, 'another device');
    const collected = await Promise.all([s().takeOidcOutcome(login.state, device, 60), s().takeOidcOutcome(login.state, device, 60)]);
    assert.deepEqual(collected.filter((c) => c !== null), [outcome]);
    assert.equal(await s().getOidcLogin(login.state), null);

    const stale = { ...login, state: id(32), expiresAt: 100 };
    await s().putOidcLogin(stale);
    await s().prune(100);
    assert.equal(await s().getOidcLogin(stale.state), null, 'pruned');
  });

  it('keeps profiles with compare-and-set versions', async () => {
    const { user, device } = await newUser();
    assert.deepEqual(await s().getProfile(user), { version: 0, data: {}, subscriptions: [], push: [] });
    const state: ProfileState = {
      data: { theme: 'dark', n: [1, { a: null }] },
      subscriptions: [{ device, site: 's2', mutedUntil: null }, { device, site: 's1', mutedUntil: 99 }],
      push: [{ device, endpoint: 'https://push.example/x', keys: { p256dh: 'P', auth: 'A' } }],
    };
    assert.equal(await s().putProfile(user, 1, state, 1), false, 'no version 1 yet');
    const first = await Promise.all([s().putProfile(user, 0, state, 1), s().putProfile(user, 0, { ...state, data: {} }, 1)]);
    assert.deepEqual([...first].sort(), [false, true], 'one of two version-0 writes');
    const got = await s().getProfile(user);
    assert.equal(got.version, 1);
    assert.deepEqual(got.subscriptions, [{ device, site: 's1', mutedUntil: 99 }, { device, site: 's2', mutedUntil: null }]);
    assert.deepEqual(got.push, state.push);
    const wins = await Promise.all(Array.from({ length: 5 }, (_, i) => s().putProfile(user, 1, { ...state, data: { i } }, 2)));
    assert.equal(wins.filter(Boolean).length, 1, 'one of five version-1 writes');
    const after = await s().getProfile(user);
    assert.deepEqual(after.data, { i: wins.indexOf(true) });
    assert.equal(after.version, 2);
    assert.equal(await s().putProfile(user, 1, state, 3), false, 'stale');
  });

  it('purges a device: its envelopes, subscriptions and push endpoint; the profile version moves only then', async () => {
    const { user, device } = await newUser();
    const other = dev();
    assert.equal(await s().addDevice(user, { id: other, boxKey: dev(), name: 'o', createdAt: 2 }), true);
    await s().putProfile(user, 0, {
      data: { k: 1 },
      subscriptions: [{ device, site: 's', mutedUntil: null }, { device: other, site: 's', mutedUntil: null }],
      push: [{ device, endpoint: 'https://p/x', keys: { p256dh: 'P', auth: 'A' } }],
    }, 1);
    assert.equal(await s().putEnvelope({ id: id(), to: device, from: other, data: 'AA', at: 1, expiresAt: 99_999 }, box(10), 1), 'ok');
    assert.deepEqual(await s().purgeDevice(user, device, 5), { profileVersion: 2 });
    const p = await s().getProfile(user);
    assert.deepEqual([p.version, p.subscriptions.map((x) => x.device), p.push, p.data], [2, [other], [], { k: 1 }]);
    assert.deepEqual(await s().listEnvelopes(device, 2, 10), []);
    assert.deepEqual(await s().purgeDevice(user, device, 6), { profileVersion: null }, 'nothing left to remove');
  });

  it('claims names: dense ids per namespace, idempotent for the owner, taken for others, a per-user limit', async () => {
    const ns = `ns-${id(4)}`;
    const [a, b] = [id(), id()];
    assert.deepEqual(await s().claim({ namespace: ns, name: 'alice', user: a, now: 1, maxPerUser: 3 }), { ok: true, id: 1, created: true });
    assert.deepEqual(await s().claim({ namespace: ns, name: 'bob', user: b, now: 1, maxPerUser: 3 }), { ok: true, id: 2, created: true });
    assert.deepEqual(await s().claim({ namespace: ns, name: 'alice', user: a, now: 2, maxPerUser: 3 }), { ok: true, id: 1, created: false });
    assert.deepEqual(await s().claim({ namespace: ns, name: 'alice', user: b, now: 2, maxPerUser: 3 }), { ok: false, reason: 'taken' });
    assert.deepEqual(await s().claim({ namespace: `${ns}-2`, name: 'alice', user: b, now: 2, maxPerUser: 3 }), { ok: true, id: 1, created: true });
    assert.deepEqual(await s().claim({ namespace: ns, name: 'c', user: b, now: 2, maxPerUser: 3 }), { ok: true, id: 3, created: true });
    assert.deepEqual(await s().claim({ namespace: ns, name: 'd', user: b, now: 2, maxPerUser: 3 }), { ok: false, reason: 'limit' });
    assert.deepEqual(await s().claim({ namespace: ns, name: 'bob', user: b, now: 2, maxPerUser: 3 }), { ok: true, id: 2, created: false }, 'own names still answer at the limit');
  });

  it('hands one name to exactly one of many concurrent claimers', async () => {
    const ns = `race-${id(4)}`;
    const users = Array.from({ length: 20 }, () => id());
    const results = await Promise.all(users.map((user) => s().claim({ namespace: ns, name: 'prize', user, now: 1, maxPerUser: 10 })));
    const won = results.filter((r) => r.ok);
    assert.equal(won.length, 1);
    assert.deepEqual(won[0], { ok: true, id: 1, created: true });
    assert.equal(results.filter((r) => !r.ok && r.reason === 'taken').length, 19);
  });

  it('keeps a bounded mailbox per live device, oldest first, until deleted or expired', async () => {
    const { device } = await newUser();
    const from = dev();
    const env = (n: number, over: { expiresAt?: number } = {}) => ({ id: `e${n}-${id(4)}`, to: device, from, data: `ZGF0YQ${n}`, at: 100 + n, expiresAt: over.expiresAt ?? 10_000 });
    const e1 = env(1);
    const e2 = env(2, { expiresAt: 500 });
    const e3 = env(3);
    for (const e of [e3, e1, e2]) assert.equal(await s().putEnvelope(e, box(3), 200), 'ok');
    assert.equal(await s().putEnvelope(env(4), box(3), 200), 'full');
    assert.deepEqual((await s().listEnvelopes(device, 200, 10)).map((e) => e.id), [e1.id, e2.id, e3.id]);
    assert.deepEqual(await s().listEnvelopes(device, 200, 1), [e1]);
    assert.equal(await s().putEnvelope(env(5), box(3), 500), 'ok', 'an expired envelope does not count');
    assert.equal(await s().deleteEnvelope(e1.id, from), false, 'only its recipient deletes it');
    assert.equal(await s().deleteEnvelope(e1.id, device), true);
    assert.equal(await s().deleteEnvelope(e1.id, device), false);
    await s().prune(600);
    assert.deepEqual((await s().listEnvelopes(device, 0, 10)).map((e) => e.id).includes(e2.id), false, 'pruned');
    assert.equal(await s().putEnvelope(env(6), box(3), 600), 'ok');
    assert.equal(await s().putEnvelope({ ...env(7), to: dev() }, box(3), 600), 'no-device');
    await s().revokeDevice(device, 700);
    assert.equal(await s().putEnvelope(env(8), box(3), 800), 'no-device', 'revoked');
  });

  it('bounds what one sender leaves at a device, and keeps a share of the mailbox for the recipient’s own user', async () => {
    const { user, device } = await newUser();
    const [own, own2] = [dev(), dev()];
    for (const d of [own, own2]) assert.equal(await s().addDevice(user, { id: d, boxKey: dev(), name: 'own', createdAt: 2 }), true);
    const stranger = (await newUser()).device;
    const [unknown1, unknown2] = [dev(), dev()];
    const limits: EnvelopeLimits = { perDevice: 6, perSender: 2, fromOtherUsers: 3 };
    let n = 0;
    const put = (from: string, now = 200, expiresAt = 10_000) => s().putEnvelope({ id: `s${n++}-${id(4)}`, to: device, from, data: 'AA', at: now, expiresAt }, limits, now);

    assert.equal(await put(unknown1, 100, 150), 'ok');
    assert.deepEqual([await put(unknown1), await put(unknown1)], ['ok', 'ok'], 'an expired envelope does not count for its sender');
    assert.equal(await put(unknown1), 'sender-full');
    assert.equal(await put(stranger), 'ok');
    assert.equal(await put(stranger), 'full', 'other users hold their share');
    assert.equal(await put(unknown2), 'full', 'an unknown sender counts as another user');
    assert.deepEqual([await put(own), await put(own), await put(own)], ['ok', 'ok', 'sender-full'], 'the user’s own devices still deliver, each within its own bound');
    assert.equal(await put(own2), 'ok');
    assert.equal(await put(own2), 'full', 'the mailbox is full');

    const first = (await s().listEnvelopes(device, 200, 10)).find((e) => e.from === unknown1);
    assert.ok(first !== undefined && (await s().deleteEnvelope(first.id, device)));
    assert.equal(await put(unknown1), 'ok', 'room again for the sender whose envelope was read');
    assert.equal(await put(own2), 'full');
  });

  it('decides concurrent envelopes to one device as one at a time', async () => {
    const { user, device } = await newUser();
    const own = dev();
    assert.equal(await s().addDevice(user, { id: own, boxKey: dev(), name: 'own', createdAt: 2 }), true);
    const limits: EnvelopeLimits = { perDevice: 8, perSender: 3, fromOtherUsers: 5 };
    const put = (from: string) => s().putEnvelope({ id: id(), to: device, from, data: 'AA', at: 1, expiresAt: 10_000 }, limits, 1);
    const one = dev();
    const fromOne = await Promise.all(Array.from({ length: 10 }, () => put(one)));
    assert.deepEqual([fromOne.filter((r) => r === 'ok').length, fromOne.filter((r) => r === 'sender-full').length], [3, 7]);
    const many = await Promise.all(Array.from({ length: 10 }, () => put(dev())));
    assert.deepEqual([many.filter((r) => r === 'ok').length, many.filter((r) => r === 'full').length], [2, 8], 'other users fill their share and no more');
    const mine = await Promise.all(Array.from({ length: 5 }, () => put(own)));
    assert.deepEqual([...mine].sort(), ['ok', 'ok', 'ok', 'sender-full', 'sender-full']);
    assert.equal((await s().listEnvelopes(device, 1, 100)).length, 8);
  });
}
