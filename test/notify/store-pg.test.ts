import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { openPgNotifyStore } from '../../src/notify/index.js';
import { DgError } from '../../src/protocol/errors.js';
import { runNotifyStoreConformance } from '../conformance/notify-store.js';
import { PG_URL, dropPgSchemas, killPgConnections, pgSkip } from '../helpers/services.js';
import { startProxy } from '../helpers/tcp-proxy.js';

const unavailable = (err: unknown) => err instanceof DgError && err.code === 'UNAVAILABLE';

// Each run gets its own schema, dropped afterwards, so runs never see each other's rows.
const schema = `notify_test_${process.pid}_${Date.now()}`;

after(async () => {
  if (skip !== false) return;
  await dropPgSchemas(schema);
});

const skip = await pgSkip();
runNotifyStoreConformance('postgres', () => openPgNotifyStore(PG_URL, { schema }), { skip });

describe('notify store (postgres): connections', { skip }, () => {
  it('survives its connections being killed: unhealthy at once, then reconnects', async () => {
    const store = await openPgNotifyStore(PG_URL, { schema });
    try {
      const user = `u-${Date.now()}`;
      await store.applyChanges(user, 1, [{ op: 'unpush', device: 'd1' }]);
      assert.ok((await killPgConnections(`datagrove-notify:${schema}`)) > 0, 'the store has connections to kill, under its own name');
      for (let i = 0; i < 100 && store.healthy(); i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(store.healthy(), false);
      assert.equal((await store.userState(user)).version, 1);
      assert.equal(store.healthy(), true);
    } finally {
      await store.close();
    }
  });

  it('answers UNAVAILABLE while the database cannot be reached, and again after it came back', async () => {
    const proxy = await startProxy(PG_URL);
    const store = await openPgNotifyStore(proxy.url, { schema, connectTimeoutMs: 1000 });
    try {
      const user = `u-away-${Date.now()}`;
      await store.applyChanges(user, 1, [{ op: 'join', device: 'd1', site: 's1' }]);
      await proxy.stop();
      await assert.rejects(store.applyChanges(user, 2, [{ op: 'leave', device: 'd1', site: 's1' }]), unavailable);
      await assert.rejects(store.userState(user), unavailable);
      await assert.rejects(store.targets('s1', 'log', Date.now()), unavailable);
      await assert.rejects(store.claimWindow(user, 'd1', 's1', Date.now(), 1000), unavailable);
      assert.equal(store.healthy(), false);
      await proxy.restart();
      assert.equal((await store.applyChanges(user, 2, [{ op: 'leave', device: 'd1', site: 's1' }])).ok, true);
      assert.equal((await store.userState(user)).version, 2);
    } finally {
      await store.close();
      await proxy.stop();
    }
    await assert.rejects(store.userState('anyone'), unavailable, 'a closed store answers UNAVAILABLE');
  });
});
