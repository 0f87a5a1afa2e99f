/**
 * OpenID Connect sign-in through the SDK (client.oidcStart / client.oidcComplete) at the
 * server's development provider, driven by a real HTTP browser: a device new to the server
 * becomes a new user's first device, a second device of the same email joins that user and
 * its live sessions hear of it, a wrong confirmation code can be tried again, and each
 * sign-in is one session.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DgError, MemoryKeyStorage } from '../../src/client/index.js';
import { confirmationCode, devIdpSignIn } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { makeClient, waitFor } from './harness.js';

async function browserCode(url: string, email: string): Promise<string> {
  const { callback, browser } = await devIdpSignIn(url, email);
  const cb = await browser.request(callback);
  assert.equal(cb.status, 200);
  return confirmationCode(cb);
}

test('signs devices in through OpenID Connect with the SDK alone', async () => {
  const srv = await startServer({ devIdp: true });
  const email = `ada-${Date.now()}@example.com`;

  const laptop = await makeClient(srv, { storage: new MemoryKeyStorage() });
  const started = await laptop.client.oidcStart('dev', { name: 'laptop' });
  assert.match(started.url, /^http:\/\/127\.0\.0\.1:\d+\/dev-idp\//);
  const code = await browserCode(started.url, email);
  // A mistyped code is refused and leaves the sign-in in place.
  const wrong = code.startsWith('0') ? `1${code.slice(1)}` : `0${code.slice(1)}`;
  await assert.rejects(laptop.client.oidcComplete(started.state, wrong), (e: unknown) => e instanceof DgError && e.code === 'UNAUTHORIZED');
  assert.equal(laptop.client.signedIn, false);
  const first = await laptop.client.oidcComplete(started.state, code.toLowerCase().replace('-', ''));
  assert.equal(first.device, laptop.client.device);
  assert.equal(first.newDevice, true);
  assert.equal(laptop.client.signedIn, true);
  assert.equal(laptop.client.user, first.user);
  const [, payload] = first.identity.split('.');
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')) as { sub: string; email: string };
  assert.deepEqual([claims.sub, claims.email], [laptop.client.device, email]);
  assert.equal((await laptop.client.sessions()).length, 1, 'the sign-in is the one session');
  assert.equal((await laptop.client.me()).identities[0]?.email, email);

  // A second device signing in with the same email joins the user; the first, connected
  // (a log open), hears of it.
  const added: string[] = [];
  laptop.client.on('event', (e) => {
    if (e.ev === 'device') added.push(e.device);
  });
  const { site } = await laptop.client.createSite('notes');
  await laptop.client.openLog(site, 'main').opened;
  const phone = await makeClient(srv, { storage: new MemoryKeyStorage() });
  const s2 = await phone.client.oidcStart('dev', { name: 'phone' });
  const second = await phone.client.oidcComplete(s2.state, await browserCode(s2.url, email));
  assert.deepEqual([second.user, second.newDevice], [first.user, true]);
  assert.deepEqual((await phone.client.me()).devices.map((d) => d.device).sort(), [laptop.client.device, phone.client.device].sort());
  await waitFor('the device event', () => added.includes(phone.client.device));

  // Signing in again: the same user, not a new device; a state is collected once.
  const s3 = await phone.client.oidcStart('dev');
  const again = await phone.client.oidcComplete(s3.state, await browserCode(s3.url, email));
  assert.deepEqual([again.user, again.newDevice], [first.user, false]);
  await assert.rejects(phone.client.oidcComplete(s3.state, 'AAAA-AAAA'), (e: unknown) => e instanceof DgError && e.code === 'UNAUTHORIZED');
  await assert.rejects(laptop.client.oidcStart('nope'), (e: unknown) => e instanceof DgError && e.code === 'NOT_FOUND');
  for (const c of [laptop, phone]) await c.client.close();
});
