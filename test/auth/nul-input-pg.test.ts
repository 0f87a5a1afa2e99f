/**
 * Text that PostgreSQL cannot hold (U+0000) is refused as BAD_REQUEST on the way in, by
 * every store: a name, an email to look up, a grant subject, a push endpoint, an OIDC state
 * or a provider's email with a NUL in it never reaches a query (it answered 500 INTERNAL there).
 */
import assert from 'node:assert/strict';
import { createECDH, randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { call, challenge, createSite, devIdpSignIn, newDeviceKeys, oidcStart, post, signBoxKey, signChallenge, signGrant, signupDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';

const skip = await pgSkip();
const schema = `test_nul_${randomBytes(4).toString('hex')}`;

after(async () => {
  if (skip) return;
  await dropPgSchemas(schema);
});

type ErrorBody = { error: { code: string; message: string } };

for (const store of ['sqlite', 'postgres'] as const) {
  describe(`text with U+0000 (${store})`, { skip: store === 'postgres' ? skip : false }, async () => {
    const { url } = await startServer(store === 'postgres' ? { db: PG_URL, dbSchema: schema, devIdp: true } : { devIdp: true });
    const bad = (r: { status: number; body: unknown; text: string }, field: RegExp) => {
      assert.equal(r.status, 400, r.text);
      assert.equal((r.body as ErrorBody).error.code, 'BAD_REQUEST');
      assert.match((r.body as ErrorBody).error.message, field);
    };

    it('refuses it in names', async () => {
      const keys = newDeviceKeys();
      const nonce = await challenge(url, keys.device);
      const signup = await post(url, '/signup', { device: keys.device, boxKey: keys.boxKey, boxSig: signBoxKey(keys), nonce, sig: signChallenge(keys.privateKey, nonce), name: 'a\u0000b' });
      bad(signup, /name/);
      const me = await signupDevice(url);
      bad(await post(url, `/devices/${me.device}/name`, { name: 'a\u0000b' }, me.access), /name/);
      bad(await post(url, '/sites', { name: 'a\u0000b' }, me.access), /name/);
      bad(await oidcStart(url, newDeviceKeys(), { name: 'a\u0000b' }), /name/);
      // Other control characters are refused too (devices.test.ts); ordinary text is kept.
      assert.equal((await post(url, `/devices/${me.device}/name`, { name: 'tab here' }, me.access)).status, 200);
    });

    it('refuses it in emails, grant subjects and push endpoints', async () => {
      const me = await signupDevice(url);
      bad(await call(url, 'GET', '/keys?email=a%00@example.com', { token: me.access }), /email/);
      bad(await call(url, 'GET', '/certificates?email=a%00@example.com', { token: me.access }), /email/);
      const site = await createSite(url, me.access);
      const g = signGrant(me.privateKey, { iss: me.device, sub: 'email:a\u0000@example.com', site, logs: ['*'], rights: ['read'] });
      bad(await post(url, '/declare', { grant: g.jws }, me.access), /sub/);
      const keys = { p256dh: createECDH('prime256v1').generateKeys().toString('base64url'), auth: randomBytes(16).toString('base64url') };
      const r = await post<{ ok: boolean; comments: { message: string }[] }>(url, '/profile', {
        version: 0,
        changes: [{ op: 'push', device: me.device, subscription: { endpoint: 'https://fcm.googleapis.com/fcm/send/a\u0000b', keys } }],
      }, me.access);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.ok, false);
      assert.match(r.body.comments[0]?.message ?? '', /endpoint/);
    });

    it('answers an OIDC callback whose state has one as an unknown state, and refuses such an email from the provider', async () => {
      const r = await call<ErrorBody>(url, 'GET', '/oidc/callback?state=a%00b&code=x');
      assert.equal(r.status, 401, r.text);
      assert.equal(r.body.error.code, 'UNAUTHORIZED');
      const started = await oidcStart(url, newDeviceKeys());
      assert.equal(started.status, 200, started.text);
      const { callback, browser } = await devIdpSignIn((started.body as { url: string }).url, 'a\u0000b@example.com');
      const cb = await browser.request(callback);
      assert.equal(cb.status, 403, await cb.text());
    });
  });
}
