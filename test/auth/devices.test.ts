/** Device names (POST /devices/:device/name), box key signatures (POST /devices/:device/box-sig), and what /me shows. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MeReply } from '../../src/protocol/auth-schemas.js';
import { get, loginDevice, newDeviceKeys, post, signBoxKey, signupDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { addDevice } from './db.js';

type Err = { error?: { code: string; message?: string } };

describe('device names', async () => {
  const { url, dataDir } = await startServer({ roles: ['auth'] });

  it('renames a device of the caller’s user, and only that', async () => {
    const me = await signupDevice(url, { name: 'old' });
    const keys = addDevice(dataDir, me.user, 'tablet');
    const r = await post(url, `/devices/${keys.device}/name`, { name: 'kitchen tablet' }, me.access);
    assert.deepEqual([r.status, r.body], [200, { device: keys.device, name: 'kitchen tablet' }]);
    const me2 = await get<MeReply>(url, '/me', me.access);
    assert.deepEqual(me2.body.devices.map((d) => d.name), ['old', 'kitchen tablet']);

    const other = await signupDevice(url);
    assert.equal((await post<Err>(url, `/devices/${other.device}/name`, { name: 'mine now' }, me.access)).body.error?.code, 'FORBIDDEN');
    assert.equal((await post<Err>(url, `/devices/${newDeviceKeys().device}/name`, { name: 'x' }, me.access)).body.error?.code, 'NOT_FOUND');
    assert.equal((await post(url, `/devices/${keys.device}/name`, { name: 'x'.repeat(129) }, me.access)).status, 400);
    assert.equal((await post(url, '/devices/short/name', { name: 'x' }, me.access)).status, 400);
    // A name is shown in other devices' approval prompts: no control or bidirectional characters.
    for (const name of ['pho\u202Ene', 'a\nb', 'tab\tbed', 'x\u0085', 'y\u2067z']) {
      assert.equal((await post<Err>(url, `/devices/${keys.device}/name`, { name }, me.access)).body.error?.code, 'BAD_REQUEST', JSON.stringify(name));
    }
    assert.equal((await post(url, `/devices/${keys.device}/name`, { name: 'Ada’s 日本 tablet 🙂' }, me.access)).status, 200);
    assert.equal((await post(url, `/devices/${keys.device}/name`, { name: 'x' })).status, 401);

    const tablet = await loginDevice(url, keys);
    await post(url, '/revoke', { device: keys.device }, tablet.body.access);
    assert.equal((await post<Err>(url, `/devices/${keys.device}/name`, { name: 'gone' }, me.access)).body.error?.code, 'FORBIDDEN');
    // The key holder is told why it cannot log in: revoked, or never signed up.
    const again = (await loginDevice(url, keys)) as unknown as { status: number; body: Err };
    assert.equal(again.status, 401);
    assert.match(again.body.error?.message ?? '', /^device: revoked; /);
    const fresh = (await loginDevice(url, newDeviceKeys())) as unknown as { status: number; body: Err };
    assert.equal(fresh.status, 401);
    assert.match(fresh.body.error?.message ?? '', /^device: not signed up; sign up with this key first/);
  });

  it('lets a device registered without one add the signature of its box key: only the device itself, only one that verifies', async () => {
    const d = await signupDevice(url, { boxSig: false });
    const path = `/devices/${d.device}/box-sig`;
    const sibling = await loginDevice(url, addDevice(dataDir, d.user, 'tablet'));
    const stranger = await signupDevice(url);
    assert.equal((await post<Err>(url, path, { boxSig: signBoxKey(d) }, sibling.body.access)).body.error?.code, 'FORBIDDEN', 'another device of the user');
    assert.equal((await post<Err>(url, path, { boxSig: signBoxKey(d) }, stranger.access)).body.error?.code, 'FORBIDDEN');
    assert.equal((await post(url, path, { boxSig: signBoxKey(d) })).status, 401);
    const bad = await post<Err>(url, path, { boxSig: signBoxKey(d, stranger.boxKey) }, d.access);
    assert.equal(bad.body.error?.code, 'BAD_REQUEST', 'signed over another box key');
    assert.equal((await post(url, path, { boxSig: 'x' }, d.access)).status, 400);
    const listed = async () => (await get<MeReply>(url, '/me', d.access)).body.devices.find((x) => x.device === d.device)?.boxSig;
    assert.equal(await listed(), undefined);

    const ok = await post(url, path, { boxSig: signBoxKey(d) }, d.access);
    assert.deepEqual([ok.status, ok.body], [200, { device: d.device, boxKey: d.boxKey, boxSig: signBoxKey(d) }]);
    assert.equal(await listed(), signBoxKey(d));
  });
});
