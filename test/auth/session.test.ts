import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { MeReply, RefreshReply, SessionReply } from '../../src/protocol/auth-schemas.js';
import { signToken, verifyToken, type AccessClaims } from '../../src/protocol/token.js';
import { call, challenge, get, loginDevice, newDeviceKeys, post, signBoxKey, signChallenge, signupDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';

type ErrorBody = { error: { code: string; message: string } };

describe('auth sessions', async () => {
  const { url, server, dataDir } = await startServer();
  const ring = server.secrets.ring;

  it('signs up a device: 201 with a valid access token naming user, device and family', async () => {
    const keys = newDeviceKeys();
    const nonce = await challenge(url, keys.device);
    const r = await post<SessionReply>(url, '/signup', { device: keys.device, boxKey: keys.boxKey, nonce, sig: signChallenge(keys.privateKey, nonce), name: 'laptop' });
    assert.equal(r.status, 201);
    assert.ok(Value.Check(SessionReply, r.body), r.text);
    assert.equal(r.body.device, keys.device);
    assert.equal(r.body.expiresIn, 900);
    const v = verifyToken<AccessClaims>(ring, r.body.access, 'access');
    assert.ok(v.ok);
    assert.equal(v.claims.sub, r.body.user);
    assert.equal(v.claims.dev, keys.device);
    assert.equal(v.claims.exp - v.claims.iat, 900);
    assert.equal(typeof v.claims.fam, 'string');
    assert.equal(typeof v.claims.jti, 'string');

    // One spelling per token: a signature with a character slipped in, or with the unused
    // bits of its last character set, decodes leniently to the same bytes and is refused.
    const [h, p, sig] = r.body.access.split('.') as [string, string, string];
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = `${sig.slice(0, -1)}${alphabet[alphabet.indexOf(sig.slice(-1)) ^ 1]}`;
    for (const bad of [`${h}.${p}.${twin}`, `${h}.${p}.${sig.slice(0, 10)}!${sig.slice(10)}`]) {
      assert.equal(verifyToken(ring, bad, 'access').ok, false, bad);
      assert.equal((await get(url, '/me', bad)).status, 401);
    }

    const me = await get<MeReply>(url, '/me', r.body.access);
    assert.equal(me.status, 200);
    assert.ok(Value.Check(MeReply, me.body), me.text);
    assert.deepEqual(me.body.devices.map((d) => [d.device, d.boxKey, d.name, d.revoked]), [[keys.device, keys.boxKey, 'laptop', false]]);
    assert.deepEqual(me.body.identities, []);
  });

  it('keeps the signature of its box key a signup sends, and refuses one that does not verify (400, nothing registered)', async () => {
    const d = await signupDevice(url);
    const me = await get<MeReply>(url, '/me', d.access);
    assert.ok(Value.Check(MeReply, me.body), me.text);
    assert.deepEqual(me.body.devices.map((x) => [x.device, x.boxKey, x.boxSig]), [[d.device, d.boxKey, signBoxKey(d)]]);
    const unsigned = await signupDevice(url, { boxSig: false });
    assert.deepEqual((await get<MeReply>(url, '/me', unsigned.access)).body.devices.map((x) => 'boxSig' in x), [false], 'optional');

    const keys = newDeviceKeys();
    const other = newDeviceKeys();
    const forged = {
      'another box key': signBoxKey(keys, other.boxKey),
      'another device’s key': signBoxKey({ ...keys, privateKey: other.privateKey }),
      'a challenge signature': signChallenge(keys.privateKey, keys.boxKey),
    };
    for (const [what, boxSig] of Object.entries(forged)) {
      const nonce = await challenge(url, keys.device);
      const r = await post<ErrorBody>(url, '/signup', { device: keys.device, boxKey: keys.boxKey, boxSig, nonce, sig: signChallenge(keys.privateKey, nonce) });
      assert.deepEqual([r.status, r.body.error.code], [400, 'BAD_REQUEST'], what);
      assert.match(r.body.error.message, /^boxSig: /, what);
    }
    assert.equal((await loginDevice(url, keys)).status, 401, 'nothing was registered');
  });

  it('refuses a second signup of the same device with 409 CONFLICT, and logs it in instead', async () => {
    const first = await signupDevice(url);
    const nonce = await challenge(url, first.device);
    const again = await post<ErrorBody>(url, '/signup', { device: first.device, boxKey: first.boxKey, nonce, sig: signChallenge(first.privateKey, nonce) });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'CONFLICT');
    const login = await loginDevice(url, first);
    assert.equal(login.status, 200);
    assert.equal(login.body.user, first.user);
    assert.equal(login.body.device, first.device);
    assert.notEqual(login.body.refresh, first.refresh);
  });

  it('refuses login of an unknown device, a bad signature, and a reused or foreign nonce', async () => {
    const unknown = newDeviceKeys();
    const r1 = await loginDevice(url, unknown);
    assert.equal(r1.status, 401);

    const d = await signupDevice(url);
    const other = newDeviceKeys();
    const nonce = await challenge(url, d.device);
    const forged = await post<ErrorBody>(url, '/login', { device: d.device, nonce, sig: signChallenge(other.privateKey, nonce) });
    assert.equal(forged.status, 401);
    assert.equal(forged.body.error.code, 'UNAUTHORIZED');

    const good = { device: d.device, nonce, sig: signChallenge(d.privateKey, nonce) };
    assert.equal((await post(url, '/login', good)).status, 200);
    const reused = await post<ErrorBody>(url, '/login', good);
    assert.equal(reused.status, 401, 'a nonce is single use');

    // A nonce issued to another device cannot be used by this one.
    const foreign = await challenge(url, other.device);
    const r4 = await post(url, '/login', { device: d.device, nonce: foreign, sig: signChallenge(d.privateKey, foreign) });
    assert.equal(r4.status, 401);
  });

  it('refuses a small-order device key, under which anyone could sign as the device', async () => {
    // The identity point (y = 1): with R = identity and S = 0 every message "verifies".
    const raw = Buffer.alloc(32);
    raw[0] = 1;
    const device = raw.toString('base64url');
    const sig = Buffer.alloc(64);
    sig[0] = 1;
    const keys = newDeviceKeys();
    for (let i = 0; i < 2; i++) {
      const nonce = await challenge(url, device);
      const r = await post<ErrorBody>(url, '/signup', { device, boxKey: keys.boxKey, nonce, sig: sig.toString('base64url') });
      assert.equal(r.status, 401, 'no account for a key anyone can sign with');
      assert.equal(r.body.error.code, 'UNAUTHORIZED');
    }
  });

  it('lets exactly one of two concurrent uses of a nonce succeed', async () => {
    const d = await signupDevice(url);
    const nonce = await challenge(url, d.device);
    const body = { device: d.device, nonce, sig: signChallenge(d.privateKey, nonce) };
    const results = await Promise.all([post(url, '/login', body), post(url, '/login', body), post(url, '/login', body)]);
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 401, 401]);
  });

  it('rotates refresh tokens, replays the same answer for the same guid, and revokes the family on reuse', async () => {
    const d = await signupDevice(url);
    const r1 = await post<RefreshReply>(url, '/refresh', { refresh: d.refresh, guid: 'guid-0001' });
    assert.equal(r1.status, 200, r1.text);
    assert.ok(Value.Check(RefreshReply, r1.body));
    assert.notEqual(r1.body.refresh, d.refresh);
    const fam1 = verifyToken<AccessClaims>(ring, r1.body.access, 'access');
    const fam0 = verifyToken<AccessClaims>(ring, d.access, 'access');
    assert.ok(fam1.ok && fam0.ok);
    assert.equal(fam1.claims.fam, fam0.claims.fam, 'rotation stays in the family');

    const retry = await post<RefreshReply>(url, '/refresh', { refresh: d.refresh, guid: 'guid-0001' });
    assert.equal(retry.status, 200);
    assert.equal(retry.text, r1.text, 'the same (refresh, guid) gives the same answer, byte for byte');

    const r2 = await post<RefreshReply>(url, '/refresh', { refresh: r1.body.refresh, guid: 'guid-0002' });
    assert.equal(r2.status, 200);
    assert.equal((await get(url, '/me', r2.body.access)).status, 200);

    const reuse = await post<ErrorBody>(url, '/refresh', { refresh: d.refresh, guid: 'guid-9999' });
    assert.equal(reuse.status, 401);
    assert.equal(reuse.body.error.code, 'REFRESH_REUSED');

    // The whole family is dead: its newest refresh token and its access tokens.
    const newest = await post<ErrorBody>(url, '/refresh', { refresh: r2.body.refresh, guid: 'guid-0003' });
    assert.equal(newest.status, 401);
    assert.equal(newest.body.error.code, 'UNAUTHORIZED');
    assert.equal((await get(url, '/me', r2.body.access)).status, 401);
    assert.equal((await post(url, '/refresh', { refresh: d.refresh, guid: 'guid-0001' })).status, 401, 'no replay from a revoked family');
    const replayAfter = await post<ErrorBody>(url, '/refresh', { refresh: d.refresh, guid: 'guid-0001' });
    assert.equal(replayAfter.body.error.code, 'UNAUTHORIZED', 'a replay of a revoked family is not a reuse');
    for (const guid of ['guid-9999', 'another-one']) {
      const again = await post<ErrorBody>(url, '/refresh', { refresh: d.refresh, guid });
      assert.equal(again.status, 401);
      assert.equal(again.body.error.code, 'REFRESH_REUSED', `a rotated token with another guid (${guid}) stays a reuse`);
    }

    // The device itself is not revoked: it can log in again.
    const again = await loginDevice(url, d);
    assert.equal(again.status, 200);
    assert.equal((await get(url, '/me', again.body.access)).status, 200);
  });

  it('never stores a refresh token in the clear', async () => {
    const d = await signupDevice(url);
    const r = await post<RefreshReply>(url, '/refresh', { refresh: d.refresh, guid: 'guid-0001' });
    assert.equal(r.status, 200);
    const files = readdirSync(dataDir).filter((f) => f.startsWith('auth.db'));
    assert.ok(files.length > 0);
    for (const f of files) {
      const bytes = readFileSync(join(dataDir, f));
      for (const token of [d.refresh, r.body.refresh]) assert.equal(bytes.indexOf(token), -1, `${f} holds a raw refresh token`);
    }
  });

  it('gives one rotation to concurrent refreshes with one guid (same answer to all)', async () => {
    const d = await signupDevice(url);
    const rs = await Promise.all([1, 2, 3].map(() => post(url, '/refresh', { refresh: d.refresh, guid: 'same-guid-1' })));
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200]);
    assert.equal(new Set(rs.map((r) => r.text)).size, 1);
  });

  it('refuses unknown refresh tokens, also of a shape it never makes, as a credential (401), not as bad input', async () => {
    for (const refresh of ['A'.repeat(43), 'nope', 'a b c', '!'.repeat(1024)]) {
      const r = await post<ErrorBody>(url, '/refresh', { refresh, guid: 'guid-0001' });
      assert.equal(r.status, 401, refresh);
      assert.equal(r.body.error.code, 'UNAUTHORIZED', refresh);
    }
    for (const body of [{ refresh: '', guid: 'g' }, { refresh: 'x'.repeat(1025), guid: 'g' }, { refresh: 'a\u0000b', guid: 'g' }, { refresh: 'x', guid: '' }, { refresh: 'x', guid: 'g'.repeat(129) }]) {
      const r = await post<ErrorBody>(url, '/refresh', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, 'BAD_REQUEST');
    }
  });

  it('takes any short printable guid as the idempotency key', async () => {
    const d = await signupDevice(url);
    const first = await post<RefreshReply>(url, '/refresh', { refresh: d.refresh, guid: '1' });
    assert.equal(first.status, 200);
    const retry = await post<RefreshReply>(url, '/refresh', { refresh: d.refresh, guid: '1' });
    assert.equal(retry.text, first.text);
    const spaced = await post<RefreshReply>(url, '/refresh', { refresh: first.body.refresh, guid: 'attempt #2 (retry)' });
    assert.equal(spaced.status, 200);
  });

  it('refuses expired tokens, tokens of an unknown kid, forged tokens and lease tokens as Bearer', async () => {
    const d = await signupDevice(url);
    const claims = verifyToken<AccessClaims>(ring, d.access, 'access');
    assert.ok(claims.ok);
    const now = Math.floor(Date.now() / 1000);
    const expired = signToken(ring, { ...claims.claims, iat: now - 1000, exp: now - 10 });
    const unknownKid = signToken({ active: 'nope', keys: new Map([['nope', Buffer.alloc(32, 7)]]) }, claims.claims);
    const [h, p] = d.access.split('.');
    const forged = `${h}.${p}.${Buffer.alloc(32).toString('base64url')}`;
    const lease = signToken(ring, { typ: 'lease', sub: d.user, dev: d.device, site: 's', log: 'l', rights: ['read'], iat: now, exp: now + 60, jti: 'x' });
    for (const [what, token] of [['expired', expired], ['unknown kid', unknownKid], ['forged', forged], ['lease', lease], ['garbage', 'a.b']] as const) {
      const r = await get<ErrorBody>(url, '/me', token);
      assert.equal(r.status, 401, what);
      assert.equal(r.body.error.code, 'UNAUTHORIZED', what);
    }
    assert.equal((await call(url, 'GET', '/me')).status, 401, 'no authorization header');
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /datagrove_auth_token_checks_total\{outcome="expired"\} [1-9]/);
    assert.match(metrics, /datagrove_auth_token_checks_total\{outcome="unknown-kid"\} [1-9]/);
    assert.match(metrics, /datagrove_auth_signups_total\{outcome="ok"\} [1-9]/);
    assert.match(metrics, /datagrove_auth_refreshes_total\{outcome="reused"\} [1-9]/);
  });

  it('limits challenges per device with 429 RATE_LIMITED and retry-after', async () => {
    const keys = newDeviceKeys();
    const statuses: number[] = [];
    let last: Awaited<ReturnType<typeof post<ErrorBody>>> | undefined;
    for (let i = 0; i < 22; i++) {
      last = await post<ErrorBody>(url, '/challenge', { device: keys.device });
      statuses.push(last.status);
    }
    assert.equal(statuses.filter((s) => s === 200).length, 20);
    assert.equal(last?.status, 429);
    assert.equal(last?.body.error.code, 'RATE_LIMITED');
    assert.ok(Number(last?.headers.get('retry-after')) >= 1);
    // Another device is not affected; the per-address limit is announced on every reply.
    const other = await post(url, '/challenge', { device: newDeviceKeys().device });
    assert.equal(other.status, 200);
    assert.equal(other.headers.get('x-ratelimit-limit'), '300');
  });
});
