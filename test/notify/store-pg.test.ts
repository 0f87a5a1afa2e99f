import { after } from 'node:test';
import { openPgNotifyStore } from '../../src/notify/index.js';
import { runNotifyStoreConformance } from '../conformance/notify-store.js';
import { PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';

// Each run gets its own schema, dropped afterwards, so runs never see each other's rows.
const schema = `notify_test_${process.pid}_${Date.now()}`;

after(async () => {
  if (skip !== false) return;
  await dropPgSchemas(schema);
});

const skip = await pgSkip();
runNotifyStoreConformance('postgres', () => openPgNotifyStore(PG_URL, { schema }), { skip });
