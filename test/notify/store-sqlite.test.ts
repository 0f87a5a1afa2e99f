import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { openSqliteNotifyStore } from '../../src/notify/index.js';
import { runNotifyStoreConformance } from '../conformance/notify-store.js';
import { tempDir } from '../helpers/server.js';
import { isBusyUnavailable } from '../helpers/sqlite-busy.js';

runNotifyStoreConformance('sqlite', async () => openSqliteNotifyStore(join(tempDir('dg-notify-store-'), 'notify.db')));

describe('sqlite notify store', () => {
  it('answers UNAVAILABLE and writes nothing while the file stays locked past the busy timeout', async () => {
    const path = join(tempDir('dg-notify-store-'), 'notify.db');
    const s = openSqliteNotifyStore(path, { busyTimeoutMs: 100 });
    const other = new BetterSqlite3(path);
    other.exec('BEGIN IMMEDIATE');
    const busy = isBusyUnavailable;
    await assert.rejects(s.applyChanges('u', 1, [{ op: 'join', device: 'd', site: 's' }]), busy);
    await assert.rejects(s.claimWindow('u', 'd', 's', Date.now(), 1000), busy);
    await assert.rejects(s.markPushed('u', 'd', 's', 'main', 3), busy);
    other.exec('ROLLBACK');
    other.close();
    assert.deepEqual(await s.userState('u'), { version: 0, subscriptions: [], push: [] }, 'the refused update left nothing behind');
    assert.deepEqual(await s.applyChanges('u', 1, [{ op: 'join', device: 'd', site: 's' }]), { ok: true, version: 1 });
    await s.close();
  });
});
