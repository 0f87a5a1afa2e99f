/**
 * OpenID Connect login end to end, against a real oidc-provider (the dev IdP, mounted in the
 * same server): the sign-in form is driven over HTTP with a cookie jar, redirects followed by
 * hand. Two devices sign in with one email: the first makes the user, the second joins it and
 * the first device's live sessions hear of it. Attestations verify against /server-keys.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { KeysReply, MeReply, OidcCompleteReply, ServerKeysReply } from '../../src/protocol/auth-schemas.js';
import { SUBJECTS, type UserEvent } from '../../src/protocol/bus-messages.js';
import { confirmationCode, devIdpSignIn, get, loginDevice, newDeviceKeys, oidcComplete, oidcLogin, oidcStart, post, signBoxKey, signupDevice, TestBrowser } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { TailClient } from '../helpers/tail-client.js';

type ErrorBody = { error: { code: string; message: string } };
const newEmail = () => `user-${randomBytes(4).toString('hex')}@example.com`;

describe('OIDC login through the dev identity provider', async () => {
  const { url, wsUrl, server } = await startServer({ devIdp: true });
  const userEvents: UserEvent[] = [];
  server.bus.subscribe(SUBJECTS.tailUser, (m) => void userEvents.push(m as UserEvent));

  async function verifyAttestation(jws: string) {
    const keys = await get<ServerKeysReply>(url, '/server-keys');
    assert.ok(Value.Check(ServerKeysReply, keys.body));
    const { kid, typ, alg } = decodeProtectedHeader(jws);
    assert.deepEqual([typ, alg], ['dg-identity+jwt', 'EdDSA']);
    const k = keys.body.keys.find((x) => x.kid === kid);
    assert.equal(k?.status, 'active');
    const key = await importJWK({ kty: 'OKP', crv: 'Ed25519', x: k?.publicKey ?? '' }, 'EdDSA');
    return (await jwtVerify(jws, key, { typ: 'dg-identity+jwt', issuer: url })).payload;
  }

  it('creates a user on the first login, joins the second device to it, and tells the first device', async () => {
    const email = newEmail();
    const phone = newDeviceKeys();
    const first = await oidcLogin(url, phone, `  ${email.toUpperCase()} `, { name: 'phone' });
    assert.ok(Value.Check(OidcCompleteReply, first), JSON.stringify(first));
    assert.equal(first.newDevice, true);
    assert.equal(first.device, phone.device);
    const p1 = await verifyAttestation(first.identity);
    assert.deepEqual([p1.sub, p1.email, p1.provider], [phone.device, email, 'dev']);

    const me1 = await get<MeReply>(url, '/me', first.access);
    assert.deepEqual(me1.body.identities, [{ email, provider: 'dev' }]);
    assert.deepEqual(me1.body.devices.map((d) => [d.device, d.name]), [[phone.device, 'phone']]);

    const session = await TailClient.connect(wsUrl, first.access);
    const seen = userEvents.length;
    const laptop = newDeviceKeys();
    const second = await oidcLogin(url, laptop, email, { name: 'laptop' });
    assert.equal(second.user, first.user, 'the second device joins the email’s user');
    assert.equal(second.newDevice, true);
    const p2 = await verifyAttestation(second.identity);
    assert.deepEqual([p2.sub, p2.email], [laptop.device, email]);

    const ev = await session.nextEvent('device');
    assert.deepEqual(ev, { ev: 'device', device: laptop.device, name: 'laptop', identity: second.identity });
    assert.deepEqual(userEvents.slice(seen), [{ user: first.user, event: { ev: 'device', device: laptop.device, name: 'laptop', identity: second.identity } }]);
    session.close();

    const me2 = await get<MeReply>(url, '/me', second.access);
    assert.deepEqual(me2.body.devices.map((d) => d.device), [phone.device, laptop.device]);

    // Signing in again with a known device: not new, no event.
    const again = await oidcLogin(url, phone, email);
    assert.deepEqual([again.user, again.newDevice], [first.user, false]);

    const keys = await get<KeysReply>(url, `/keys?email=${encodeURIComponent(email.toUpperCase())}`, first.access);
    assert.equal(keys.status, 200);
    assert.ok(Value.Check(KeysReply, keys.body));
    assert.deepEqual(new Set((await Promise.all(keys.body.attestations.map(verifyAttestation))).map((p) => p.sub)), new Set([phone.device, laptop.device]));
    assert.equal((await get(url, `/keys?email=${encodeURIComponent(email)}`)).status, 401, 'Bearer required');

    assert.equal((await post(url, '/revoke', { device: laptop.device }, first.access)).status, 200);
    const after = await get<KeysReply>(url, `/keys?email=${encodeURIComponent(email)}`, first.access);
    assert.deepEqual((await Promise.all(after.body.attestations.map(verifyAttestation))).map((p) => p.sub), [phone.device]);
    assert.deepEqual((await get<KeysReply>(url, '/keys?email=nobody@example.com', first.access)).body, { attestations: [] });
  });

  it('refuses an email the provider did not verify', async () => {
    const keys = newDeviceKeys();
    const started = await oidcStart(url, keys);
    assert.equal(started.status, 200, started.text);
    const { callback, browser } = await devIdpSignIn(started.body.url, newEmail(), false);
    const cb = await browser.request(callback);
    assert.equal(cb.status, 403);
    assert.equal(((await cb.json()) as ErrorBody).error.code, 'FORBIDDEN');
    const done = await oidcComplete(url, keys, started.body.state, 'AAAA-AAAA');
    assert.equal(done.status, 403);
    assert.equal((done.body as unknown as ErrorBody).error.code, 'FORBIDDEN');
    assert.equal((await oidcComplete(url, keys, started.body.state, 'AAAA-AAAA')).status, 401, 'collected once');
  });

  it('refuses a wrong state, a replayed callback and a replayed code', async () => {
    const wrong = await new TestBrowser().request(`${url}/auth/v1/oidc/callback?code=abc&state=${randomBytes(32).toString('base64url')}`);
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as ErrorBody).error.code, 'UNAUTHORIZED');

    const keys = newDeviceKeys();
    const a = await oidcStart(url, keys);
    const { callback, browser } = await devIdpSignIn(a.body.url, newEmail());
    // A HEAD (a link preview, a prefetch) is not a callback: it uses up neither state nor code.
    assert.equal((await fetch(callback, { method: 'HEAD', redirect: 'manual' })).status, 404);
    const first = await browser.request(callback);
    assert.equal(first.status, 200);
    const code = await confirmationCode(first);
    assert.equal((await browser.request(callback)).status, 401, 'the state is single use');

    // The same code under a fresh login's state: the provider refuses it (used, and not this PKCE verifier).
    const b = await oidcStart(url, keys);
    const replay = new URL(callback);
    replay.searchParams.set('state', b.body.state);
    const r = await browser.request(replay.href);
    assert.equal(r.status, 401);
    assert.equal(((await r.json()) as ErrorBody).error.code, 'UNAUTHORIZED');
    assert.equal((await oidcComplete(url, keys, b.body.state, code)).status, 401);
    const ok = await oidcComplete(url, keys, a.body.state, code);
    assert.equal(ok.status, 200, 'the first login still completes');
    assert.equal((await oidcComplete(url, keys, a.body.state, code)).status, 401, 'once');
  });

  it('records a sign-in the provider refused, for the device to learn', async () => {
    const keys = newDeviceKeys();
    const started = await oidcStart(url, keys);
    const refused = new URL(`${url}/auth/v1/oidc/callback`);
    refused.search = new URLSearchParams({ error: 'access_denied', state: started.body.state, iss: `${url}/dev-idp` }).toString();
    const r = await new TestBrowser().request(refused.href);
    assert.equal(r.status, 403);
    assert.match(((await r.json()) as ErrorBody).error.message, /access_denied/);
    const done = await oidcComplete(url, keys, started.body.state, 'AAAA-AAAA');
    assert.equal((done.body as unknown as ErrorBody).error.code, 'FORBIDDEN');
  });

  it('binds the login to the device that started it', async () => {
    const keys = newDeviceKeys();
    const started = await oidcStart(url, keys);
    const early = await oidcComplete(url, keys, started.body.state, 'AAAA-AAAA');
    assert.equal(early.status, 409, 'not signed in at the provider yet');
    const { callback, browser } = await devIdpSignIn(started.body.url, newEmail());
    const cb = await browser.request(callback);
    assert.equal(cb.status, 200);
    const code = await confirmationCode(cb);
    const thief = newDeviceKeys();
    const stolen = await oidcComplete(url, thief, started.body.state, code);
    assert.equal(stolen.status, 401, 'another device cannot collect it, even with the code');
    assert.equal((await oidcComplete(url, keys, started.body.state, code)).status, 200);
  });

  it('gives whoever started a login nothing when someone else signs in at its URL (login CSRF)', async () => {
    // The victim has an account and a site.
    const email = newEmail();
    const victimKeys = newDeviceKeys();
    const victim = await oidcLogin(url, victimKeys, email, { name: 'victim' });
    const site = (await post<{ site: string }>(url, '/sites', {}, victim.access)).body.site;
    // The attacker starts a login with its own device and sends the URL to the victim, who signs in.
    const attacker = newDeviceKeys();
    const started = await oidcStart(url, attacker, { name: 'attacker' });
    const { callback, browser } = await devIdpSignIn(started.body.url, email);
    const page = await browser.request(callback);
    assert.equal(page.status, 200);
    const html = await page.clone().text();
    assert.match(html, /enter this code in the app where you started signing in/);
    assert.match(html, /Enter it only into an app you opened yourself/);
    const code = await confirmationCode(page);
    assert.match(code, /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/);
    // Without the code that only the victim's browser saw, the attacker gets nothing ...
    for (const guess of ['AAAA-AAAA', code.replace(/.$/, (c) => (c === '0' ? '1' : '0'))]) {
      const r = await oidcComplete(url, attacker, started.body.state, guess);
      assert.equal(r.status, 401, r.text);
      assert.match((r.body as unknown as ErrorBody).error.message, /^code:/);
    }
    // ... and nothing was linked: its device is unknown, the victim's account unchanged.
    assert.equal((await loginDevice(url, attacker)).status, 401, 'the attacker device is not a device of the victim');
    const me = await get<MeReply>(url, '/me', victim.access);
    assert.deepEqual(me.body.devices.map((d) => d.device), [victimKeys.device]);
    assert.equal((await get(url, `/sites/${site}`, victim.access)).status, 200);
    // The code is what the app on the victim's own device would type: case and dash do not matter.
    const ok = await oidcComplete(url, attacker, started.body.state, code.replace('-', '').toLowerCase());
    assert.equal(ok.status, 200, ok.text);
  });

  it('limits the tries at a login confirmation code', async () => {
    const keys = newDeviceKeys();
    const started = await oidcStart(url, keys);
    const { callback, browser } = await devIdpSignIn(started.body.url, newEmail());
    const code = await confirmationCode(await browser.request(callback));
    let limited = 0;
    for (let i = 0; i < 12; i++) {
      const r = await oidcComplete(url, keys, started.body.state, 'ZZZZ-ZZZZ');
      if (r.status === 429) limited++;
      else assert.equal(r.status, 401);
    }
    assert.ok(limited >= 2, `${limited} tries refused with 429`);
    const r = await oidcComplete(url, keys, started.body.state, code);
    assert.equal(r.status, 429, 'the right code waits for the limit too');
  });

  it('redirects the browser to an allowed app URL with dg_state, and refuses other redirects', async () => {
    const keys = newDeviceKeys();
    const started = await oidcStart(url, keys, { redirect: `${url}/app/signed-in?x=1` });
    assert.equal(started.status, 200, started.text);
    const { callback, browser } = await devIdpSignIn(started.body.url, newEmail());
    const cb = await browser.request(callback);
    assert.equal(cb.status, 303);
    const to = new URL(cb.headers.get('location') ?? '');
    assert.equal(`${to.origin}${to.pathname}`, `${url}/app/signed-in`);
    assert.deepEqual([to.searchParams.get('x'), to.searchParams.get('dg_state')], ['1', started.body.state]);
    assert.equal(cb.headers.get('referrer-policy'), 'no-referrer');
    assert.equal((await oidcComplete(url, keys, started.body.state, 'AAAA-AAAA')).status, 401, 'the code is required');
    assert.equal((await oidcComplete(url, keys, started.body.state, await confirmationCode(cb))).status, 200);

    const evil = await oidcStart(url, newDeviceKeys(), { redirect: 'https://evil.example/steal' });
    assert.equal(evil.status, 400);
  });

  it('gives a new device the signature of its box key it started with, and refuses one that does not verify', async () => {
    const phone = newDeviceKeys();
    const done = await oidcLogin(url, phone, newEmail());
    const me = await get<MeReply>(url, '/me', done.access);
    assert.ok(Value.Check(MeReply, me.body), me.text);
    assert.deepEqual(me.body.devices.map((d) => [d.device, d.boxKey, d.boxSig]), [[phone.device, phone.boxKey, signBoxKey(phone)]]);

    const keys = newDeviceKeys();
    const bad = await oidcStart(url, keys, { boxSig: signBoxKey(keys, newDeviceKeys().boxKey) });
    assert.deepEqual([bad.status, (bad.body as unknown as { error: { code: string; message: string } }).error.code], [400, 'BAD_REQUEST']);
    assert.match(bad.text, /boxSig: does not verify/);
    const alone = await oidcStart(url, keys, { boxKey: false, boxSig: signBoxKey(keys) });
    assert.equal(alone.status, 400, 'a signature without its box key');
  });

  it('refuses unknown providers, unknown devices without a box key, and revoked devices', async () => {
    assert.equal((await oidcStart(url, newDeviceKeys(), { provider: 'nope' })).status, 404);
    const noBox = await oidcStart(url, newDeviceKeys(), { boxKey: false });
    assert.equal(noBox.status, 400);
    const d = await signupDevice(url);
    assert.equal((await oidcStart(url, d, { boxKey: false })).status, 200, 'a known device needs no box key');
    await post(url, '/revoke', { device: d.device }, d.access);
    assert.equal((await oidcStart(url, d)).status, 401);
  });
});

describe('OIDC login with an unreachable provider', async () => {
  const { url } = await startServer({ oidc: [{ id: 'down', issuer: 'http://127.0.0.1:1', clientId: 'c', clientSecret: 's' }] });

  it('answers 503 UNAVAILABLE with retry-after', async () => {
    const r = await oidcStart(url, newDeviceKeys(), { provider: 'down' });
    assert.equal(r.status, 503);
    assert.equal((r.body as unknown as ErrorBody).error.code, 'UNAVAILABLE');
    assert.ok(Number(r.headers.get('retry-after')) > 0);
  });
});
