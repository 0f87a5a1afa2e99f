/**
 * Access through grants to an email: it stands while a live device of the user is attested
 * for the email, and goes when the last such device is revoked, however the grant spelled it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSite, declareGrant, loginDevice, newDeviceKeys, oidcLogin, post, signupDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { addDevice, rotationRequired } from './db.js';

describe('grants to an email', async () => {
  const { url, dataDir } = await startServer({ devIdp: true });

  for (const [email, spelled] of [['erin@example.com', 'erin@example.com'], ['fred@example.com', 'Fred@Example.COM']] as const) {
    it(`drops the access when the device attested for the email is revoked (subject email:${spelled})`, async () => {
      const owner = await signupDevice(url);
      const site = await createSite(url, owner.access);
      const g = await declareGrant(url, owner, { sub: `email:${spelled}`, site, logs: ['*'], rights: ['read'] });
      // The email's user signs in with it on one device, and has another device without it.
      const attestedKeys = newDeviceKeys();
      const attested = await oidcLogin(url, attestedKeys, email);
      const otherKeys = addDevice(dataDir, attested.user);
      const other = await loginDevice(url, otherKeys);
      assert.equal(other.status, 200, other.text);
      const join = await post(url, '/join', { site, grant: g.hash }, other.body.access);
      assert.equal(join.status, 200, join.text);
      assert.equal((await post(url, '/lease', { site, log: 'chat' }, other.body.access)).status, 200);

      const r = await post(url, '/revoke', { device: attestedKeys.device }, other.body.access);
      assert.equal(r.status, 200, r.text);
      const lease = await post(url, '/lease', { site, log: 'chat' }, other.body.access);
      assert.equal(lease.status, 403, 'no live device of the user is attested for the email any more');
    });
  }

  it('marks for rotation the site of a grant to the email in another case when a device of its user is revoked, joined or not', async () => {
    const owner = await signupDevice(url);
    const site = await createSite(url, owner.access);
    await declareGrant(url, owner, { sub: 'email:Gina@Example.COM', site, logs: ['*'], rights: ['read'] });
    const attestedKeys = newDeviceKeys();
    const attested = await oidcLogin(url, attestedKeys, 'gina@example.com');
    const other = await loginDevice(url, addDevice(dataDir, attested.user));
    assert.equal(other.status, 200, other.text);
    const r = await post<{ rotate: string[] }>(url, '/revoke', { device: attestedKeys.device }, other.body.access);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.rotate, [site], 'the grant names the user: the revoked device may hold the site key');
    assert.equal(rotationRequired(dataDir, site), true);
  });
});
