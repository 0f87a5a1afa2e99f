/**
 * Device ids and login states are public: requests anyone can make without the device's
 * key must not spend what the device itself needs to sign in. Challenges are counted per
 * device and client address, logins and OIDC starts per device only once the device proved
 * its key, and the tries at a login's confirmation code only once the device that started
 * it proved its key.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { challenge, confirmationCode, devIdpSignIn, loginDevice, newDeviceKeys, oidcComplete, oidcStart, post, signupDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';

const junkNonce = 'A'.repeat(43);
const junkSig = `${'A'.repeat(85)}A`;

describe('no lockout by strangers', async () => {
  // Behind a trusted proxy (loopback), so the test can speak from several client addresses.
  const { url } = await startServer({ devIdp: true, trustProxy: ['loopback'] });
  const from = (address: string, path: string, body: unknown) =>
    fetch(`${url}/auth/v1${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': address }, body: JSON.stringify(body) });

  it('challenges: a stranger spending a device\'s 20 a minute from its address leaves the device its own', async () => {
    const victim = await signupDevice(url);
    const statuses: number[] = [];
    for (let i = 0; i < 22; i++) statuses.push((await from('203.0.113.7', '/challenge', { device: victim.device })).status);
    assert.deepEqual(statuses.slice(20), [429, 429], 'the stranger is limited');
    const own = await from('198.51.100.1', '/challenge', { device: victim.device });
    assert.equal(own.status, 200, 'the device, from its own address, is not');
  });

  it('logins: bad signatures do not count against the device', async () => {
    const victim = await signupDevice(url);
    for (let i = 0; i < 12; i++) assert.equal((await post(url, '/login', { device: victim.device, nonce: junkNonce, sig: junkSig })).status, 401);
    const r = await loginDevice(url, victim);
    assert.equal(r.status, 200, r.text);
  });

  it('OIDC starts: bad signatures do not count against the device', async () => {
    const keys = newDeviceKeys();
    for (let i = 0; i < 12; i++) {
      const r = await post(url, '/oidc/start', { provider: 'dev', device: keys.device, boxKey: keys.boxKey, nonce: junkNonce, sig: junkSig });
      assert.equal(r.status, 401);
    }
    const r = await oidcStart(url, keys);
    assert.equal(r.status, 200, r.text);
  });

  it('OIDC completes: tries without the device\'s key do not spend the login\'s tries at its code', async () => {
    const keys = newDeviceKeys();
    const started = await oidcStart(url, keys);
    const { callback, browser } = await devIdpSignIn(started.body.url, `x-${Date.now()}@example.com`);
    const code = await confirmationCode(await browser.request(callback));
    for (let i = 0; i < 12; i++) {
      const r = await post(url, '/oidc/complete', { state: started.body.state, code: 'ZZZZ-ZZZZ', nonce: await challenge(url, newDeviceKeys().device), sig: junkSig });
      assert.equal(r.status, 401);
    }
    const done = await oidcComplete(url, keys, started.body.state, code);
    assert.equal(done.status, 200, done.text);
  });
});
