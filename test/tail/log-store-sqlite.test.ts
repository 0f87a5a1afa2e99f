/**
 * The SQLite log store: the conformance suite on a real file, what is specific to SQLite
 * (pragmas, schema version), and a crash test: a writer process is SIGKILLed mid-stream and
 * every write it acknowledged must be in the file, exactly once and in order.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { SQLITE_LOG_SCHEMA_VERSION, SqliteLogStore, openSqliteLogStore } from '../../src/tail/sqlite-log-store.js';
import { SQLITE_LOG_SCHEMA_V1 } from '../../src/tail/sqlite-log-schema.js';
import { DgError } from '../../src/protocol/errors.js';
import { WID_MEMORY } from '../../src/tail/log-store.js';
import { deviceId, runLogStoreConformance } from '../conformance/log-store.js';
import { tempDir } from '../helpers/server.js';
import { CRASH_LOG, CRASH_SITE, crashEntry } from './log-store-crash-writer.js';
import { damageTablePage } from '../helpers/damage-page.js';

const dir = tempDir('dg-logstore-');
runLogStoreConformance('sqlite', async () => openSqliteLogStore(join(dir, 'tail.db')));

describe('SQLite log store', () => {
  it('runs in WAL mode with synchronous=FULL and a versioned schema', async () => {
    const path = join(tempDir('dg-logstore-pragma-'), 'tail.db');
    const store = new SqliteLogStore(path);
    assert.deepEqual(store.settings(), { journalMode: 'wal', synchronous: 2 }, 'synchronous=FULL is 2');
    await store.close();
    const db = new Database(path);
    assert.equal(db.pragma('user_version', { simple: true }), SQLITE_LOG_SCHEMA_VERSION);
    const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all();
    assert.deepEqual(tables, ['chunks', 'epoch_floor', 'logs', 'wids']);
    db.pragma('user_version = 99');
    db.close();
    assert.throws(() => openSqliteLogStore(path), /newer than this server/, 'a newer schema is refused, not misread');
  });

  it('prunes old write ids in the appending transaction', async () => {
    const path = join(tempDir('dg-logstore-wids-'), 'tail.db');
    const store = openSqliteLogStore(path);
    const device = deviceId(5);
    for (let i = 0; i < 200; i += 20) {
      const batch = Array.from({ length: 20 }, (_, k) => ({ site: 'w', log: 'main', at: i + k, epoch: 0, device, wid: `w${i + k}`, entries: [Buffer.from('x')] }));
      await store.appendBatch(batch);
    }
    await store.close();
    const db = new Database(path, { readonly: true });
    const kept = db.prepare('SELECT COUNT(*) FROM wids').pluck().get() as number;
    db.close();
    assert.ok(kept >= WID_MEMORY && kept <= 2 * WID_MEMORY, `kept ${kept} write ids`);
  });

  it('migrates a version-1 file (one row per entry) without losing entries or write ids', async () => {
    const path = join(tempDir('dg-logstore-v1-'), 'tail.db');
    const db = new Database(path);
    db.exec(SQLITE_LOG_SCHEMA_V1);
    db.pragma('user_version = 1');
    db.prepare("INSERT INTO logs (id, site, log, length, epoch) VALUES (1, 'm', 'a', 2500, 3), (2, 'm', 'b', 2, 0), (3, 'm', 'empty', 0, 1)").run();
    const entry = (log: number, i: number) => Buffer.from(`${log}:${i}:${'x'.repeat(i % 7 === 0 ? 2000 : i % 5)}`);
    const insert = db.prepare('INSERT INTO entries (log_id, idx, data) VALUES (?, ?, ?)');
    db.transaction(() => {
      for (let i = 0; i < 2500; i++) insert.run(1, i, entry(1, i));
      for (let i = 0; i < 2; i++) insert.run(2, i, entry(2, i));
    })();
    db.prepare("INSERT INTO wids (log_id, device, seq, wid, at, length) VALUES (1, ?, 1, 'old', 2000, 2500)").run(deviceId(1));
    db.close();

    const store = openSqliteLogStore(path);
    assert.deepEqual(await store.state('m', 'a'), { length: 2500, epoch: 3 });
    for (const from of [0, 1, 1023, 1024, 1500, 2499]) {
      const r = await store.read('m', 'a', from, 1000, 1 << 30);
      assert.equal(r.entries.length, Math.min(1000, 2500 - from));
      r.entries.forEach((e, k) => assert.ok(e.equals(entry(1, from + k)), `entry ${from + k}`));
    }
    assert.deepEqual((await store.read('m', 'b', 0, 10, 1 << 20)).entries.map(String), [entry(2, 0).toString(), entry(2, 1).toString()]);
    assert.deepEqual(await store.read('m', 'empty', 0, 10, 100), { entries: [], length: 0 });
    const dev = deviceId(1);
    assert.deepEqual(await store.appendBatch([{ site: 'm', log: 'a', at: 0, epoch: 3, device: dev, wid: 'old', entries: [] }]), [{ status: 'dup', at: 2000, length: 2500 }]);
    assert.deepEqual(await store.appendBatch([{ site: 'm', log: 'a', at: 2500, epoch: 3, device: dev, wid: 'new', entries: [Buffer.from('z')] }]), [{ status: 'ok', at: 2500, length: 2501 }]);
    assert.deepEqual((await store.read('m', 'a', 2499, 10, 1 << 20)).entries.map(String), [entry(1, 2499).toString(), 'z']);
    await store.close();
    const after = new Database(path, { readonly: true });
    assert.equal(after.pragma('user_version', { simple: true }), SQLITE_LOG_SCHEMA_VERSION);
    assert.equal(after.prepare("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'entries'").pluck().get(), 0, 'the per-entry table is gone');
    after.close();
  });

  it('stores one row per write and reads from inside a write', async () => {
    const path = join(tempDir('dg-logstore-chunks-'), 'tail.db');
    const store = openSqliteLogStore(path);
    const dev = deviceId(2);
    const writes = [5, 1, 0, 3, 100];
    let at = 0;
    for (const n of writes) {
      const entries = Array.from({ length: n }, (_, k) => Buffer.from(`e${at + k}`));
      assert.deepEqual(await store.appendBatch([{ site: 'c', log: 'l', at, epoch: 0, device: dev, entries }]), [{ status: 'ok', at, length: at + n }]);
      at += n;
    }
    for (let from = 0; from <= at; from++) {
      const r = await store.read('c', 'l', from, 4, 1 << 20);
      assert.deepEqual(r.entries.map(String), Array.from({ length: Math.min(4, at - from) }, (_, k) => `e${from + k}`), `from ${from}`);
    }
    await store.close();
    const db = new Database(path, { readonly: true });
    assert.equal(db.prepare('SELECT COUNT(*) FROM chunks').pluck().get(), writes.filter((n) => n > 0).length);
    db.close();
  });

  it('answers UNAVAILABLE and turns unhealthy while another process locks the file', async () => {
    const path = join(tempDir('dg-logstore-busy-'), 'tail.db');
    const store = openSqliteLogStore(path, { busyTimeoutMs: 50 });
    const site = 'busy';
    const write = (at: number) => store.appendBatch([{ site, log: 'main', at, epoch: 0, device: deviceId(1), entries: [Buffer.from('x')] }]);
    assert.equal((await write(0))[0]?.status, 'ok');
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    try {
      await assert.rejects(write(1), (e: unknown) => e instanceof DgError && e.code === 'UNAVAILABLE');
      assert.equal(store.healthy(), false);
      assert.deepEqual(await store.read(site, 'main', 0, 10, 100).then((r) => r.length), 1, 'reads still work in WAL mode');
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    assert.equal((await write(1))[0]?.status, 'ok');
    assert.equal(store.healthy(), true);
    await store.close();
  });

  it('reports a damaged page as damage: UNAVAILABLE, unhealthy until reopened, the rest still served', async () => {
    const path = join(tempDir('dg-logstore-damaged-'), 'tail.db');
    const dev = deviceId(7);
    const entry = (i: number) => Buffer.from(`${i}:${'d'.repeat(200)}`);
    let store = openSqliteLogStore(path);
    await store.appendBatch([{ site: 'd', log: 'other', at: 0, epoch: 0, device: dev, entries: [Buffer.from('kept')] }]);
    for (let i = 0; i < 300; i++) await store.appendBatch([{ site: 'd', log: 'main', at: i, epoch: 0, device: dev, entries: [entry(i)] }]);
    await store.close();
    damageTablePage(path, 'chunks');

    store = openSqliteLogStore(path);
    assert.equal(store.healthy(), true, 'nothing is known to be damaged before a call reaches the page');
    assert.equal(store.damage(), null);
    for (let k = 1; k <= 2; k++) {
      await assert.rejects(store.read('d', 'main', 0, 1000, 1 << 20), (err: unknown) => {
        assert.ok(err instanceof DgError, String(err));
        assert.equal(err.code, 'UNAVAILABLE');
        assert.equal(err.message, 'log store is damaged');
        return true;
      });
      assert.deepEqual(store.damage(), { reason: 'SQLITE_CORRUPT', failures: k });
    }
    assert.equal(store.healthy(), false);
    // What the damaged page does not hold is still served, and the store stays unhealthy:
    // damage does not heal by itself.
    assert.deepEqual((await store.read('d', 'other', 0, 10, 1 << 20)).entries.map(String), ['kept']);
    assert.deepEqual(await store.state('d', 'main'), { length: 300, epoch: 0 });
    assert.equal(store.healthy(), false);
    assert.deepEqual(store.damage(), { reason: 'SQLITE_CORRUPT', failures: 2 });
    await store.close();
  });

  it('fails to open a file that is not a database', async () => {
    const path = join(tempDir('dg-logstore-junk-'), 'tail.db');
    writeFileSync(path, 'this is not a database, just text that is long enough to look like a header...');
    assert.throws(() => openSqliteLogStore(path));
  });

  it('keeps every acknowledged write across a SIGKILL, exactly once and in order', { timeout: 60_000 }, async () => {
    const path = join(tempDir('dg-logstore-crash-'), 'tail.db');
    const child = fileURLToPath(new URL('./log-store-crash-writer.ts', import.meta.url));
    let acked = 0;
    for (let round = 0; round < 2; round++) {
      // Each round continues the log the previous one left, then dies at a random point.
      const killAfter = 100 + Math.floor(Math.random() * 300);
      const { maxAck, stderr, signal } = await new Promise<{ maxAck: number; stderr: string; signal: NodeJS.Signals | null }>((resolve, reject) => {
        const p = spawn(process.execPath, ['--import', 'tsx', child, path], { stdio: ['ignore', 'pipe', 'pipe'] });
        let maxAck = 0;
        let acks = 0;
        let buf = '';
        let err = '';
        p.stderr.on('data', (d: Buffer) => void (err += d.toString()));
        p.stdout.on('data', (d: Buffer) => {
          buf += d.toString();
          const lines = buf.split('\n');
          buf = lines.pop() ?? '';
          for (const line of lines) {
            const m = /^ack (\d+)$/.exec(line);
            if (!m) continue;
            const len = Number(m[1]);
            assert.ok(len > maxAck, 'acks come in increasing order');
            maxAck = len;
            if (++acks === killAfter) p.kill('SIGKILL');
          }
        });
        p.on('error', reject);
        p.on('close', (_code, signal) => resolve({ maxAck, stderr: err, signal }));
      });
      assert.equal(signal, 'SIGKILL', `the writer died on its own: ${stderr}`);
      assert.ok(maxAck > acked, `round ${round} acknowledged writes`);
      acked = maxAck;

      const store = openSqliteLogStore(path);
      const { length } = await store.state(CRASH_SITE, CRASH_LOG);
      assert.ok(length >= acked, `acknowledged ${acked} entries but only ${length} survived`);
      let i = 0;
      while (i < length) {
        const { entries } = await store.read(CRASH_SITE, CRASH_LOG, i, 1000, 1 << 20);
        for (const e of entries) {
          assert.ok(e.equals(crashEntry(i)), `entry ${i} is not the ${i}th written`);
          i++;
        }
      }
      await store.close();
      const db = new Database(path, { readonly: true });
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      db.close();
    }
  });
});
