/** Claims over HTTP: first come first served, stable ids, TAKEN, validation, concurrency. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { post, signupDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';

type Reply = { id?: number; error?: { code: string; message: string } };

describe('claims', async () => {
  const { url } = await startServer({ roles: ['auth'] });
  const ns = () => `app-${randomBytes(3).toString('hex')}`;

  it('gives the first claimer a stable id, the same id again, and TAKEN to others', async () => {
    const [alice, bob] = [await signupDevice(url), await signupDevice(url)];
    const space = ns();
    const a = await post<Reply>(url, '/claim', { namespace: space, name: 'Alice' }, alice.access);
    assert.deepEqual([a.status, a.body], [200, { id: 1 }]);
    const again = await post<Reply>(url, '/claim', { namespace: space, name: 'alice' }, alice.access);
    assert.deepEqual(again.body, { id: 1 }, 'names compare case-insensitively; idempotent for the owner');
    const taken = await post<Reply>(url, '/claim', { namespace: space, name: 'ALICE' }, bob.access);
    assert.deepEqual([taken.status, taken.body.error?.code], [409, 'TAKEN']);
    assert.deepEqual((await post<Reply>(url, '/claim', { namespace: space, name: 'bob' }, bob.access)).body, { id: 2 });
    assert.deepEqual((await post<Reply>(url, '/claim', { namespace: ns(), name: 'alice' }, bob.access)).body, { id: 1 }, 'ids are per namespace');
  });

  it('hands one name to exactly one of 50 concurrent claimers', async () => {
    const users = await Promise.all(Array.from({ length: 50 }, () => signupDevice(url)));
    const space = ns();
    const replies = await Promise.all(users.map((u) => post<Reply>(url, '/claim', { namespace: space, name: 'prize' }, u.access)));
    const won = replies.filter((r) => r.status === 200);
    assert.equal(won.length, 1);
    assert.deepEqual(won[0]?.body, { id: 1 });
    assert.ok(replies.every((r) => r.status === 200 || (r.status === 409 && r.body.error?.code === 'TAKEN')));
    const winner = users[replies.findIndex((r) => r.status === 200)];
    assert.deepEqual((await post<Reply>(url, '/claim', { namespace: space, name: 'prize' }, winner?.access)).body, { id: 1 });
    assert.deepEqual((await post<Reply>(url, '/claim', { namespace: space, name: 'next' }, users[0]?.access)).body, { id: 2 }, 'no id was spent on the losers');
  });

  it('validates namespace and name, and needs a Bearer token', async () => {
    const me = await signupDevice(url);
    const bad = [
      { namespace: '.lead', name: 'x' },
      { namespace: 'ok', name: '' },
      { namespace: 'ok', name: '-lead' },
      { namespace: 'ok', name: 'x'.repeat(129) },
      { namespace: 'ok', name: 'аlice' },
      { namespace: 'ok', name: 'has space' },
      { namespace: 'x'.repeat(65), name: 'ok' },
      { namespace: 'ok' },
      { namespace: 'ok', name: 5 },
    ];
    for (const body of bad) {
      const r = await post<Reply>(url, '/claim', body, me.access);
      assert.deepEqual([r.status, r.body.error?.code], [400, 'BAD_REQUEST'], JSON.stringify(body));
    }
    assert.equal((await post(url, '/claim', { namespace: 'ok', name: 'x' })).status, 401);
  });

  it('folds namespaces to lower case too, and takes an email address as a name', async () => {
    const me = await signupDevice(url);
    const space = ns();
    const first = await post<Reply>(url, '/claim', { namespace: space.toUpperCase(), name: 'Ada@Example.com' }, me.access);
    assert.equal(first.status, 200, first.text);
    assert.deepEqual((await post<Reply>(url, '/claim', { namespace: space, name: 'ada@example.com' }, me.access)).body, first.body);
    assert.equal((await post<Reply>(url, '/claim', { namespace: `${space}:v2`, name: `ada+${'x'.repeat(100)}` }, me.access)).status, 200);
  });
});
