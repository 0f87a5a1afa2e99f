import { join } from 'node:path';
import { openSqliteNotifyStore } from '../../src/notify/index.js';
import { runNotifyStoreConformance } from '../conformance/notify-store.js';
import { tempDir } from '../helpers/server.js';

runNotifyStoreConformance('sqlite', async () => openSqliteNotifyStore(join(tempDir('dg-notify-store-'), 'notify.db')));
