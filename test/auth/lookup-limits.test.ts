/**
 * The per-device limits of the reads that cost the server most or that could be used to
 * probe: member lists (each verifies up to 1000 grant chains), email look-ups, and grant
 * declarations and joins.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KEY_LIMITS } from '../../src/auth/rate-limits.js';
import { call, createSite, declareGrant, get, post, signupDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';

describe('per-device limits of costly reads', async () => {
  const { url } = await startServer();

  async function statuses(n: number, f: () => Promise<{ status: number; headers: Headers }>): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await f();
      if (r.status === 429) assert.ok(Number(r.headers.get('retry-after')) >= 1, 'retry-after');
      out.push(r.status);
    }
    return out;
  }

  it('limits member lists per device', async () => {
    const me = await signupDevice(url);
    const site = await createSite(url, me.access);
    const got = await statuses(KEY_LIMITS.members + 2, () => get(url, `/sites/${site}/members`, me.access));
    assert.deepEqual(got.slice(0, KEY_LIMITS.members), Array(KEY_LIMITS.members).fill(200));
    assert.deepEqual(got.slice(KEY_LIMITS.members), [429, 429]);
  });

  it('limits email look-ups per device', async () => {
    const me = await signupDevice(url);
    const got = await statuses(KEY_LIMITS.emailLookups + 1, () => get(url, '/keys?email=someone%40example.com', me.access));
    assert.equal(got.filter((s) => s === 200).length, KEY_LIMITS.emailLookups);
    assert.equal(got.at(-1), 429);
  });

  it('limits grant declarations and joins per device', async () => {
    const me = await signupDevice(url);
    const site = await createSite(url, me.access);
    const g = await declareGrant(url, me, { sub: 'email:friend@example.com', site, logs: ['*'], rights: ['read'] });
    const got = await statuses(KEY_LIMITS.grants, () => call(url, 'POST', '/declare', { body: { grant: g.jws }, token: me.access }));
    assert.equal(got.filter((s) => s === 201).length, KEY_LIMITS.grants - 1, 'one declaration was made above');
    assert.equal(got.at(-1), 429);
    assert.equal((await post(url, '/join', { site, grant: g.hash }, me.access)).status, 429, 'joins share the limit');
  });
});
