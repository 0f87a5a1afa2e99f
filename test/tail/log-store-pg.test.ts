/**
 * The PostgreSQL log store: the conformance suite in a schema of its own (dropped at the
 * end), plus what only PostgreSQL has: schema versions shared by nodes, real concurrency.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { openPgLogStore } from '../../src/tail/pg-log-store.js';
import { PG_LOG_SCHEMA_VERSION } from '../../src/tail/pg-log-store-sql.js';
import { DgError } from '../../src/protocol/errors.js';
import { WID_MEMORY, type AppendRequest, type LogStore } from '../../src/tail/log-store.js';
import { deviceId, freshSite, runLogStoreConformance } from '../conformance/log-store.js';
import { PG_URL, dropPgSchemas, killPgConnections, pgSkip } from '../helpers/services.js';
import { startProxy } from '../helpers/tcp-proxy.js';

const skip = await pgSkip();
const schema = `test_tail_${randomBytes(5).toString('hex')}`;

after(async () => {
  if (skip) return;
  await dropPgSchemas(schema);
});

runLogStoreConformance('postgresql', () => openPgLogStore(PG_URL, { schema }), { skip });

describe('PostgreSQL log store', { skip }, () => {
  const D = deviceId(3);
  const req = (site: string, log: string, at: number, epoch: number): AppendRequest => ({
    site,
    log,
    at,
    epoch,
    device: D,
    entries: [Buffer.from(`${log}@${at}`)],
  });
  const stores: LogStore[] = [];
  const open = async () => {
    const s = await openPgLogStore(PG_URL, { schema });
    stores.push(s);
    return s;
  };
  after(async () => {
    for (const s of stores) await s.close();
  });

  it('lets nodes open the same schema at the same time', async () => {
    const opened = await Promise.all([open(), open(), open()]);
    assert.ok(opened.every((s) => s.healthy()));
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      const { rows } = await c.query(`SELECT version FROM "${schema}".tail_schema`);
      assert.deepEqual(rows, [{ version: PG_LOG_SCHEMA_VERSION }]);
      // A database migrated by a newer server is refused, not misread.
      await c.query(`UPDATE "${schema}".tail_schema SET version = 99`);
      await assert.rejects(openPgLogStore(PG_URL, { schema }), /newer than this server/);
      await c.query(`UPDATE "${schema}".tail_schema SET version = $1`, [PG_LOG_SCHEMA_VERSION]);
    } finally {
      await c.end();
    }
  });

  it('prunes old write ids in the appending transaction', async () => {
    const s = await open();
    const site = freshSite();
    for (let i = 0; i < 150; i += 25) {
      await s.appendBatch(Array.from({ length: 25 }, (_, k) => ({ ...req(site, 'main', i + k, 0), wid: `w${i + k}` })));
    }
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      const { rows } = await c.query(
        `SELECT COUNT(*)::int AS n FROM "${schema}".tail_wids w JOIN "${schema}".tail_logs l ON l.id = w.log_id WHERE l.site = $1`,
        [site],
      );
      assert.deepEqual(rows, [{ n: WID_MEMORY }]);
    } finally {
      await c.end();
    }
  });

  it('refuses a schema name that is not a plain identifier', async () => {
    await assert.rejects(openPgLogStore(PG_URL, { schema: 'x"; DROP TABLE y; --' }), /schema/);
  });

  it('keeps a log contiguous while two nodes hammer it at the same epoch', async () => {
    const [a, b] = await Promise.all([open(), open()]);
    const site = freshSite();
    const epoch = await a.bumpEpoch(site, 'hot');
    // Each node appends at the length it last saw, as a leader that missed a takeover would.
    const writer = async (s: LogStore, name: string) => {
      let at = 0;
      let wins = 0;
      for (let i = 0; i < 40; i++) {
        const [r] = await s.appendBatch([{ ...req(site, 'hot', at, epoch), entries: [Buffer.from(`${name}${at}`)] }]);
        if (r?.status === 'ok') {
          at = r.length;
          wins++;
        } else if (r?.status === 'nack') at = r.length;
        else assert.fail(JSON.stringify(r));
      }
      return wins;
    };
    const [wa, wb] = await Promise.all([writer(a, 'a'), writer(b, 'b')]);
    const { entries, length } = await a.read(site, 'hot', 0, 1000, 1 << 20);
    assert.equal(length, wa + wb);
    entries.forEach((e, i) => assert.match(e.toString(), new RegExp(`^[ab]${i}$`), `entry ${i} was written at its own index`));
  });

  it('serializes batches that touch the same logs in opposite orders', async () => {
    const [a, b] = await Promise.all([open(), open()]);
    // Rounds 0-4: the logs exist; later rounds: both batches create them. Either way both
    // batches take the rows in one sorted order, so they queue instead of deadlocking
    // (and a deadlock PostgreSQL did detect would be retried, not failed).
    for (let round = 0; round < 8; round++) {
      const site = freshSite();
      const existing = round < 5;
      let e = 0;
      if (existing) {
        // The first epoch of a log (1, or above the floor a lift left in this schema).
        const [ex, ey] = await Promise.all([a.bumpEpoch(site, 'x'), a.bumpEpoch(site, 'y')]);
        assert.equal(ex, ey);
        e = ex;
      }
      const [ra, rb] = await Promise.all([
        a.appendBatch([req(site, 'x', 0, e), req(site, 'y', 0, e)]),
        b.appendBatch([req(site, 'y', 0, e), req(site, 'x', 0, e)]),
      ]);
      const oks = [...ra, ...rb].filter((r) => r.status === 'ok').length;
      assert.equal(oks, 2, 'each log is written once');
      assert.deepEqual(await a.state(site, 'x'), { length: 1, epoch: e });
      assert.deepEqual(await a.state(site, 'y'), { length: 1, epoch: e });
    }
  });

  it('survives its connections being killed: unhealthy at once, then reconnects', async () => {
    const s = await open();
    const site = freshSite();
    await s.appendBatch([req(site, 'main', 0, 0)]);
    assert.ok((await killPgConnections(`datagrove-tail:${schema}`)) > 0, 'the store has connections to kill');
    // The idle connections' deaths reach the pool as 'error' events, which must not take
    // the process down, and mark the store unhealthy.
    for (let i = 0; i < 100 && s.healthy(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(s.healthy(), false);
    assert.deepEqual(await s.appendBatch([req(site, 'main', 1, 0)]), [{ status: 'ok', at: 1, length: 2 }]);
    assert.equal(s.healthy(), true);
  });

  it('answers UNAVAILABLE when connections are cut in the middle of transactions, and goes on after', async () => {
    // A connection that ends while its client is checked out for a transaction makes the
    // client emit 'error' with nobody listening but the store: this must not end the process.
    const proxy = await startProxy(PG_URL);
    const s = await openPgLogStore(proxy.url, { schema, connectTimeoutMs: 1000 });
    stores.push(s);
    try {
      const site = freshSite();
      const logs = Array.from({ length: 8 }, (_, i) => `cut${i}`);
      const lengths = new Map(logs.map((l) => [l, 0]));
      let unavailable = 0;
      const writer = async (log: string) => {
        for (let i = 0; i < 200; i++) {
          const at = lengths.get(log) as number;
          try {
            const [r] = await s.appendBatch([req(site, log, at, 0)]);
            if (r?.status === 'ok') lengths.set(log, r.length);
          } catch (err) {
            assert.ok(err instanceof DgError && err.code === 'UNAVAILABLE', String(err));
            unavailable++;
            return;
          }
        }
      };
      const running = Promise.all(logs.map(writer));
      await new Promise((r) => setTimeout(r, 30));
      await proxy.stop();
      await running;
      assert.ok(unavailable > 0, 'some transactions were cut');
      await proxy.restart();
      // Every log goes on from its stored length (a cut commit may have landed or not).
      for (const log of logs) {
        const { length } = await s.state(site, log);
        assert.deepEqual(await s.appendBatch([req(site, log, length, 0)]), [{ status: 'ok', at: length, length: length + 1 }]);
      }
    } finally {
      await proxy.stop();
    }
  });

  it('reports data PostgreSQL finds corrupt as damage: UNAVAILABLE, unhealthy until closed', async () => {
    const marker = Buffer.from('a page PostgreSQL finds corrupt');
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      // PostgreSQL's own error for a corrupt page (data_corrupted, XX001), raised where the
      // store writes this one entry.
      await c.query(`CREATE FUNCTION "${schema}".test_corrupt() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'invalid page in block 7 of relation base/1/2' USING ERRCODE = 'data_corrupted'; END $$`);
      await c.query(`CREATE TRIGGER test_corrupt BEFORE INSERT ON "${schema}".tail_entries FOR EACH ROW
        WHEN (NEW.data = '\\x${marker.toString('hex')}'::bytea) EXECUTE FUNCTION "${schema}".test_corrupt()`);
      const s = await open();
      const site = freshSite();
      assert.equal(s.damage(), null);
      await assert.rejects(s.appendBatch([{ ...req(site, 'main', 0, 0), entries: [marker] }]), (err: unknown) => {
        assert.ok(err instanceof DgError, String(err));
        assert.equal(err.code, 'UNAVAILABLE');
        assert.equal(err.message, 'log store is damaged');
        return true;
      });
      assert.deepEqual(s.damage(), { reason: 'XX001', failures: 1 });
      assert.equal(s.healthy(), false);
      // The rest is still served; the store stays unhealthy.
      assert.deepEqual(await s.appendBatch([req(site, 'main', 0, 0)]), [{ status: 'ok', at: 0, length: 1 }]);
      assert.equal(s.healthy(), false);
      assert.deepEqual(s.damage(), { reason: 'XX001', failures: 1 });
    } finally {
      await c.query(`DROP TRIGGER IF EXISTS test_corrupt ON "${schema}".tail_entries`);
      await c.query(`DROP FUNCTION IF EXISTS "${schema}".test_corrupt()`);
      await c.end();
    }
  });

  it('reports UNAVAILABLE and unhealthy when the database cannot be reached', async () => {
    await assert.rejects(openPgLogStore('postgres://postgres@127.0.0.1:1/none', { schema, connectTimeoutMs: 1000 }), (e: unknown) => {
      assert.equal((e as { code?: string }).code, 'UNAVAILABLE');
      return true;
    });
  });
});
