/**
 * The PostgreSQL auth store: the conformance suite in a schema of its own (dropped at the
 * end), plus what only PostgreSQL has: two nodes (two pools) racing the same compare-and-set,
 * data that outlives the process's pool, and schema versions shared by nodes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { openPgAuthStore } from '../../src/auth/index.js';
import { PG_AUTH_SCHEMA_VERSION } from '../../src/auth/pg/migrations.js';
import type { AuthStore } from '../../src/auth/store.js';
import { DgError } from '../../src/protocol/errors.js';
import { runAuthStoreConformance } from '../conformance/auth-store.js';
import { PG_URL, pgSkip } from '../helpers/services.js';
import { startProxy } from '../helpers/tcp-proxy.js';

const skip = await pgSkip();
const prefix = `test_auth_${randomBytes(5).toString('hex')}`;
const schemas: string[] = [];
/** A fresh schema name, dropped when the file ends. */
function newSchema(): string {
  const s = `${prefix}_${schemas.length}`;
  schemas.push(s);
  return s;
}

async function withClient<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

after(async () => {
  if (skip) return;
  await withClient(async (c) => {
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  });
});

const shared = newSchema();
runAuthStoreConformance('postgres', () => openPgAuthStore(PG_URL, { schema: shared }), { skip });

const id = (n = 16) => randomBytes(n).toString('base64url');

describe('PostgreSQL auth store', { skip }, () => {
  const stores: AuthStore[] = [];
  const open = async (schema = shared) => {
    const s = await openPgAuthStore(PG_URL, { schema });
    stores.push(s);
    return s;
  };
  after(async () => {
    for (const s of stores) await s.close();
  });

  async function newUser(s: AuthStore): Promise<{ user: string; device: string }> {
    const [user, device] = [id(), id(32)];
    assert.equal(await s.createUser({ id: user, createdAt: 1 }, { id: device, boxKey: id(32), name: 'd', createdAt: 1 }), true);
    return { user, device };
  }

  it('lets exactly one of two nodes consume a nonce', async () => {
    const [a, b] = [await open(), await open()];
    const device = id(32);
    const nonces = Array.from({ length: 20 }, () => id(32));
    for (const n of nonces) await a.putNonce(n, device, Date.now() + 60_000);
    const wins = await Promise.all(nonces.map(async (n) => (await Promise.all([a.takeNonce(n, device, Date.now()), b.takeNonce(n, device, Date.now())])).filter(Boolean).length));
    assert.deepEqual(wins, nonces.map(() => 1));
  });

  it('lets exactly one of two nodes rotate a refresh token, along a chain of rotations', async () => {
    const [a, b] = [await open(), await open()];
    const { user, device } = await newUser(a);
    const family = id();
    let live = id(32);
    await a.createFamily({ id: family, user, device, createdAt: 1 }, { hash: live, expiresAt: Date.now() + 60_000 });
    for (let i = 0; i < 10; i++) {
      const [na, nb] = [id(32), id(32)];
      const now = Date.now();
      const wins = await Promise.all([
        a.rotateRefresh(live, { guid: `a${i}`, answer: 'x', now, next: { hash: na, expiresAt: now + 60_000 } }),
        b.rotateRefresh(live, { guid: `b${i}`, answer: 'x', now, next: { hash: nb, expiresAt: now + 60_000 } }),
      ]);
      assert.equal(wins.filter(Boolean).length, 1, `rotation ${i}`);
      const [won, lost] = wins[0] ? [na, nb] : [nb, na];
      assert.equal((await b.getRefresh(live))?.guid, wins[0] ? `a${i}` : `b${i}`);
      assert.equal(await a.getRefresh(lost), null, 'the loser wrote nothing');
      live = won;
    }
    const c = await withClient((cl) => cl.query(`SELECT count(*)::int AS n FROM "${shared}".auth_refresh_tokens WHERE family = $1 AND state = 'live'`, [family]));
    assert.deepEqual(c.rows, [{ n: 1 }], 'one live token per family');
  });

  it('lets exactly one of two nodes create a user for one device id, and advance a key epoch', async () => {
    const [a, b] = [await open(), await open()];
    const device = id(32);
    const [ua, ub] = [id(), id()];
    const created = await Promise.all([
      a.createUser({ id: ua, createdAt: 1 }, { id: device, boxKey: id(32), name: 'a', createdAt: 1 }),
      b.createUser({ id: ub, createdAt: 1 }, { id: device, boxKey: id(32), name: 'b', createdAt: 1 }),
    ]);
    assert.equal(created.filter(Boolean).length, 1);
    const winner = created[0] ? ua : ub;
    assert.equal((await a.getDevice(device))?.user, winner);
    const users = await withClient((cl) => cl.query(`SELECT id FROM "${shared}".auth_users WHERE id = ANY($1::text[])`, [[ua, ub]]));
    assert.deepEqual(users.rows, [{ id: winner }], 'the loser left no user row');

    const site = id();
    await a.createSite({ id: site, owner: winner, name: 's', createdAt: 1 });
    for (let epoch = 2; epoch <= 6; epoch++) {
      const wins = await Promise.all([a.advanceKeyEpoch(site, epoch), b.advanceKeyEpoch(site, epoch)]);
      assert.equal(wins.filter(Boolean).length, 1, `epoch ${epoch}`);
    }
    assert.equal((await b.getSite(site))?.keyEpoch, 6);
  });

  it('never leaves an access row through a grant that one node revoked while another joined it', async () => {
    const [a, b] = [await open(), await open()];
    const issuer = id(32);
    const site = id();
    for (let i = 0; i < 15; i++) {
      const root = { hash: id(32), jws: 'h.p.s', issuer, subject: 'user:x', site, logs: ['*'], rights: ['admin' as const], iat: 1, exp: null, prf: null, declaredAt: 1 };
      const leaf = { ...root, hash: id(32), rights: ['read' as const], prf: root.hash };
      await a.putGrant(root);
      await a.putGrant(leaf);
      const user = id();
      const row = { user, site, grant: leaf.hash, logs: ['*'], rights: ['read' as const], expiresAt: null, createdAt: 1 };
      const [put, rev] = await Promise.all([a.putAccess(row, { grants: [leaf.hash, root.hash], devices: [issuer], anyOf: [] }), b.revokeGrant(root.hash, 5)]);
      assert.equal(rev.revoked, true);
      // Either the join committed first (and the revocation swept it) or the guard saw the revocation.
      assert.equal(rev.dropped.length, put ? 1 : 0, `round ${i}`);
      assert.deepEqual(await a.accessFor(user, site), [], `round ${i}`);
    }
  });

  it('never leaves an access row behind the revocation of a device its guard names, made by another node while it was written', async () => {
    const [a, b] = [await open(), await open()];
    const site = id();
    for (let i = 0; i < 20; i++) {
      const { device } = await newUser(a);
      const [user, g] = [id(), id(32)];
      const row = { user, site, grant: g, logs: ['*'], rights: ['read' as const], expiresAt: null, createdAt: 1 };
      // A device the chain rests on by itself, or the only device attesting an email of it.
      const guard = i % 2 === 0 ? { grants: [g], devices: [device], anyOf: [] } : { grants: [g], devices: [], anyOf: [[device]] };
      const [put, seen] = await Promise.all([a.putAccess(row, guard), b.revokeDevice(device, 5).then(() => b.accessFor(user, site))]);
      // Either the row was written first (and a read after the revocation finds it to sweep) or it was refused.
      assert.equal(seen.length, put ? 1 : 0, `round ${i}`);
      assert.equal((await a.accessFor(user, site)).length, put ? 1 : 0, `round ${i}`);
    }
  });

  it('answers UNAVAILABLE when connections are cut in the middle of transactions, and goes on after', async () => {
    // A connection that ends while its client is checked out for a transaction makes the
    // client emit 'error': this must not end the process.
    const proxy = await startProxy(PG_URL);
    const s = await openPgAuthStore(proxy.url, { schema: shared, connectTimeoutMs: 1000 });
    stores.push(s);
    try {
      let failed = 0;
      const worker = async () => {
        for (let i = 0; i < 200; i++) {
          try {
            await newUser(s);
          } catch (err) {
            assert.ok(err instanceof DgError && err.code === 'UNAVAILABLE', String(err));
            failed++;
            return;
          }
        }
      };
      const running = Promise.all(Array.from({ length: 8 }, worker));
      await new Promise((r) => setTimeout(r, 30));
      await proxy.stop();
      await running;
      assert.ok(failed > 0, 'some transactions were cut');
      await proxy.restart();
      const { device } = await newUser(s);
      assert.ok((await s.getDevice(device)) !== null);
    } finally {
      await proxy.stop();
    }
  });

  it('keeps what it stored across a reopen', async () => {
    const schema = newSchema();
    const first = await openPgAuthStore(PG_URL, { schema });
    const { user, device } = await newUser(first);
    const hash = id(32);
    await first.createFamily({ id: 'f1', user, device, createdAt: 1 }, { hash, expiresAt: Date.now() + 60_000 });
    await first.putGrant({ hash: 'g1', jws: 'h.p.s', issuer: device, subject: 'user:x', site: 's1', logs: ['a', 'b'], rights: ['read', 'write'], iat: 1, exp: 9, prf: null, declaredAt: 1 });
    await first.close();
    assert.equal(await first.healthy(), false, 'a closed store is not healthy');
    await assert.rejects(first.getDevice(device), (err: unknown) => err instanceof DgError && err.code === 'UNAVAILABLE');

    const second = await open(schema);
    assert.equal((await second.getDevice(device))?.user, user);
    assert.equal((await second.getRefresh(hash))?.family, 'f1');
    assert.deepEqual((await second.getGrant('g1'))?.logs, ['a', 'b']);
  });

  it('applies migrations once, when nodes open the same schema together or again', async () => {
    const schema = newSchema();
    const opened = await Promise.all([open(schema), open(schema), open(schema)]);
    for (const s of opened) assert.equal(await s.healthy(), true);
    await open(schema);
    await withClient(async (c) => {
      const { rows } = await c.query(`SELECT version FROM "${schema}".auth_migrations ORDER BY version`);
      assert.deepEqual(
        rows,
        Array.from({ length: PG_AUTH_SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })),
      );
      // A schema migrated by a newer server is refused, not misread.
      await c.query(`INSERT INTO "${schema}".auth_migrations (version, applied_at) VALUES ($1, 0)`, [PG_AUTH_SCHEMA_VERSION + 1]);
      await assert.rejects(openPgAuthStore(PG_URL, { schema }), /newer than this server/);
      await c.query(`DELETE FROM "${schema}".auth_migrations WHERE version = $1`, [PG_AUTH_SCHEMA_VERSION + 1]);
    });
  });

  it('refuses a schema name that is not a plain identifier', async () => {
    await assert.rejects(openPgAuthStore(PG_URL, { schema: 'x"; DROP TABLE y; --' }), (err: unknown) => err instanceof DgError && err.code === 'BAD_REQUEST');
  });

  it('rejects with UNAVAILABLE when the database cannot be reached', async () => {
    const url = new URL(PG_URL);
    url.port = '1';
    await assert.rejects(openPgAuthStore(url.toString(), { schema: newSchema(), connectTimeoutMs: 2000 }), (err: unknown) => err instanceof DgError && err.code === 'UNAVAILABLE');
  });
});
