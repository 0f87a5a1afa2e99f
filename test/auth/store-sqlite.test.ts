import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { SqliteAuthStore } from '../../src/auth/sqlite/store.js';
import { MIGRATIONS } from '../../src/auth/sqlite/migrations.js';
import { runAuthStoreConformance } from '../conformance/auth-store.js';
import { damageTablePage } from '../helpers/damage-page.js';
import { tempDir } from '../helpers/server.js';
import { isBusyUnavailable } from '../helpers/sqlite-busy.js';

runAuthStoreConformance('sqlite', async () => new SqliteAuthStore(join(tempDir(), 'auth.db')));

describe('sqlite auth store', () => {
  it('uses WAL with synchronous=FULL and records its schema version', async () => {
    const path = join(tempDir(), 'auth.db');
    const s = new SqliteAuthStore(path);
    await s.close();
    const db = new BetterSqlite3(path, { readonly: true });
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
    } finally {
      db.close();
    }
  });

  it('keeps what it stored across a reopen', async () => {
    const path = join(tempDir(), 'auth.db');
    const a = new SqliteAuthStore(path);
    await a.createUser({ id: 'u1', createdAt: 1 }, { id: 'D'.repeat(43), boxKey: 'B'.repeat(43), name: 'n', createdAt: 1 });
    await a.createFamily({ id: 'f1', user: 'u1', device: 'D'.repeat(43), createdAt: 1 }, { hash: 'H'.repeat(43), expiresAt: Date.now() + 1000 });
    await a.close();
    const b = new SqliteAuthStore(path);
    assert.equal((await b.getDevice('D'.repeat(43)))?.user, 'u1');
    assert.equal((await b.getRefresh('H'.repeat(43)))?.family, 'f1');
    await b.close();
  });

  it('refuses a file written by a newer schema', async () => {
    const path = join(tempDir(), 'auth.db');
    const db = new BetterSqlite3(path);
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    assert.throws(() => new SqliteAuthStore(path), /newer than this server/);
  });

  it('answers UNAVAILABLE and writes nothing while the file stays locked past the busy timeout', async () => {
    const path = join(tempDir(), 'auth.db');
    const s = new SqliteAuthStore(path, { busyTimeoutMs: 100 });
    const device = { id: 'D'.repeat(43), boxKey: 'B'.repeat(43), name: 'n', createdAt: 1 };
    // Another process (a backup, an operator's shell) holding the write lock.
    const other = new BetterSqlite3(path);
    other.exec('BEGIN IMMEDIATE');
    const busy = isBusyUnavailable;
    await assert.rejects(s.putNonce('n'.repeat(43), device.id, Date.now() + 60_000), busy);
    await assert.rejects(s.createUser({ id: 'u1', createdAt: 1 }, device), busy);
    await assert.rejects(s.keys.addUserKey({ user: 'u1', version: 1, publicKey: 'K'.repeat(43), sig: 's', prevSig: null, createdAt: 1 }), busy);
    await assert.rejects(s.prune(Date.now()), busy);
    other.exec('ROLLBACK');
    other.close();
    assert.equal(await s.getDevice(device.id), null, 'the refused signup left nothing behind');
    assert.equal(await s.createUser({ id: 'u1', createdAt: 1 }, device), true);
    await s.close();
  });

  it('is unhealthy from the first call that met a damaged page on, though SELECT 1 still answers', async () => {
    const path = join(tempDir(), 'auth.db');
    const a = new SqliteAuthStore(path);
    const id = (i: number) => `D${String(i).padStart(42, '0')}`;
    for (let i = 0; i < 400; i++) await a.createUser({ id: `u${i}`, createdAt: 1 }, { id: id(i), boxKey: 'B'.repeat(43), name: `device ${i}`, createdAt: 1 });
    await a.close();
    damageTablePage(path, 'devices');
    const s = new SqliteAuthStore(path);
    try {
      assert.equal(await s.healthy(), true, 'nothing found yet');
      let refused = 0;
      for (let i = 0; i < 400; i++) {
        await s.getDevice(id(i)).catch((err: unknown) => {
          assert.equal((err as { code?: string }).code, 'UNAVAILABLE');
          refused++;
        });
      }
      assert.ok(refused > 0, 'some device sits on the damaged page');
      assert.equal(await s.healthy(), false, 'damage does not heal: /ready stays 503');
    } finally {
      await s.close();
    }
  });
});
