/**
 * A revocation made by one auth process reaches the others that share its store even when
 * its bus message never arrives: each process reads recent revocations from the store every
 * few seconds. Here two processes share one store (a SQLite file, or a PostgreSQL schema)
 * and each has its own in-process bus, so no message crosses between them at all.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { get, loginDevice, post, signupDevice } from '../helpers/auth-client.js';
import { sameStoreDir, startServer, type TestServer } from '../helpers/server.js';
import { PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';
import { REVOCATION_SYNC_MS } from '../../src/auth/index.js';

const pgSkipped = await pgSkip();
const schema = `test_revsync_${randomBytes(4).toString('hex')}`;

after(async () => {
  if (pgSkipped) return;
  await dropPgSchemas(schema);
});

/** Polls `f` until it gives `want`, for at most `ms`; resolves with the last answer. */
async function eventually(f: () => Promise<number>, want: number, ms: number): Promise<number> {
  const until = Date.now() + ms;
  let got = await f();
  while (got !== want && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 250));
    got = await f();
  }
  return got;
}

const stores: { name: string; skip: string | false; start: () => Promise<[TestServer, TestServer]> }[] = [
  {
    name: 'SQLite',
    skip: false,
    start: async () => {
      const one = await startServer({ roles: ['auth'] });
      return [one, await startServer({ roles: ['auth'], dataDir: sameStoreDir(one.dataDir) })];
    },
  },
  {
    name: 'PostgreSQL',
    skip: pgSkipped,
    start: async () => {
      const one = await startServer({ roles: ['auth'], db: PG_URL, dbSchema: schema });
      // The same key files too, so that each process takes the other's tokens.
      return [one, await startServer({ roles: ['auth'], db: PG_URL, dbSchema: schema, dataDir: sameStoreDir(one.dataDir) })];
    },
  },
];

for (const store of stores) {
  describe(`revocations across auth processes sharing a store (${store.name})`, { skip: store.skip }, async () => {
    const [one, two] = await store.start();
    const bound = REVOCATION_SYNC_MS * 3;

    it('refuses the access tokens of a device revoked through the other process', { timeout: 60_000 }, async () => {
      const d = await signupDevice(one.url);
      assert.equal((await get(two.url, '/me', d.access)).status, 200);
      assert.equal((await post(one.url, '/revoke', { device: d.device }, d.access)).status, 200);
      assert.equal((await get(one.url, '/me', d.access)).status, 401);
      assert.equal(await eventually(async () => (await get(two.url, '/me', d.access)).status, 401, bound), 401, 'the other process still takes the token');
    });

    it('refuses the access tokens of a session signed out through the other process, and only those', { timeout: 60_000 }, async () => {
      const d = await signupDevice(one.url);
      const other = await loginDevice(one.url, d);
      assert.equal(other.status, 200);
      assert.equal((await post(one.url, '/logout', {}, d.access)).status, 204);
      assert.equal(await eventually(async () => (await get(two.url, '/me', d.access)).status, 401, bound), 401, 'the other process still takes the token');
      assert.equal((await get(two.url, '/me', other.body.access)).status, 200, 'another sign-in of the device goes on');
    });
  });
}
