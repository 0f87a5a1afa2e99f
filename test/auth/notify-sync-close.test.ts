/**
 * Auth's sync of profiles to notify at shutdown: the sends queued while notify does not
 * answer hold the process for a bounded time, not one request timeout per queued update.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { NotifySync } from '../../src/auth/notify-sync.js';
import { SqliteAuthStore } from '../../src/auth/sqlite/store.js';
import { InProcessBus } from '../../src/bus/inproc.js';
import { SUBJECTS } from '../../src/protocol/bus-messages.js';

describe('auth: notify sync at shutdown', () => {
  it('stops within its wait plus one request timeout when notify takes requests and never answers', async () => {
    const bus = new InProcessBus();
    let asked = 0;
    // A notify that takes each update and never answers: every request runs to its 3 s timeout.
    bus.subscribe(SUBJECTS.notifyUpdate, () => {
      asked++;
      return new Promise(() => {});
    });
    const store = new SqliteAuthStore(join(mkdtempSync(join(tmpdir(), 'dg-notify-sync-')), 'auth.db'));
    const sync = new NotifySync({ bus, store, log: pino({ level: 'silent' }), count: () => {} });
    // Five updates of one user queue behind each other: unbounded, they would take 15 s.
    for (let v = 1; v <= 5; v++) sync.updated('user-1', v, [{ op: 'mute', device: 'd', site: 's', until: Date.now() + 60_000 }]);
    await new Promise((r) => setTimeout(r, 50));
    const started = performance.now();
    await sync.close(1000);
    const took = performance.now() - started;
    assert.ok(took < 4500, `close took ${Math.round(took)} ms`);
    assert.ok(took > 2500, 'the send in flight was given its timeout');
    assert.equal(asked, 1, 'the queued sends were dropped, not sent after close');
    await store.close();
  });
});
