/**
 * A notify store found damaged (a page of notify.db overwritten, as bit rot or a torn
 * write leaves it) makes /ready 503, naming the store and the error, until the process
 * restarts (docs/protocol.md "Service endpoints and configuration"): every look-up of the
 * damaged subscriptions fails, so notify does not work, and retrying does not heal it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openSqliteNotifyStore } from '../../src/notify/index.js';
import { SUBJECTS, type NotifyPublish } from '../../src/protocol/bus-messages.js';
import { damageTablePage } from '../helpers/damage-page.js';
import { startServer, tempDir } from '../helpers/server.js';
import { newDevice, sleep } from './harness.js';

const SITE = 'site_damaged';

/** Subscriptions enough for notify_subs to span several pages. */
async function fill(path: string): Promise<void> {
  const store = openSqliteNotifyStore(path);
  try {
    for (let i = 0; i < 300; i++) {
      const r = await store.applyChanges(`user${i}`, 1, [{ op: 'join', device: newDevice(), site: SITE }]);
      assert.equal(r.ok, true);
    }
  } finally {
    await store.close();
  }
}

describe('a damaged notify store', () => {
  it('the SQLite store names the damage once a call found it, and keeps it', async () => {
    const path = join(tempDir('dg-notify-damage-'), 'notify.db');
    await fill(path);
    damageTablePage(path, 'notify_subs');
    const store = openSqliteNotifyStore(path);
    try {
      assert.equal(store.damage(), null, 'nothing found yet');
      await assert.rejects(store.targets(SITE, 'main', Date.now()), (err: unknown) => (err as { code?: string }).code === 'UNAVAILABLE');
      assert.match(store.damage() ?? '', /^SQLITE_CORRUPT/);
      // A call that does not touch the damaged page succeeds; the damage is still named.
      assert.equal((await store.userState('nobody')).version, 0);
      assert.match(store.damage() ?? '', /^SQLITE_CORRUPT/);
    } finally {
      await store.close();
    }
  });

  it('turns /ready 503 with the store and the error named, once a publish found it', async () => {
    const first = await startServer();
    await first.stop();
    const path = join(first.dataDir, 'notify.db');
    await fill(path);
    damageTablePage(path, 'notify_subs');
    const { url, server } = await startServer({ dataDir: first.dataDir });
    assert.equal((await fetch(`${url}/ready`)).status, 200, 'nothing found yet');
    server.bus.publish(SUBJECTS.notifyPublish, { site: SITE, log: 'main', length: 1 } satisfies NotifyPublish);
    let res = await fetch(`${url}/ready`);
    for (let i = 0; i < 50 && res.status === 200; i++) {
      await sleep(20);
      res = await fetch(`${url}/ready`);
    }
    assert.equal(res.status, 503);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'UNAVAILABLE');
    assert.match(body.error.message, /notify store damaged \(SQLITE_CORRUPT/);
    await sleep(100);
    assert.equal((await fetch(`${url}/ready`)).status, 503, 'damage does not heal by itself');
  });
});
