import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { openPgNotifyStore } from '../../src/notify/index.js';
import { runNotifyStoreConformance } from '../conformance/notify-store.js';
import { PG_URL, dropPgSchemas, killPgConnections, pgSkip } from '../helpers/services.js';

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
});
