import { join } from 'node:path';
import { openSqliteLogStore } from '../../src/tail/sqlite-log-store.js';
import { runLogStoreConformance } from '../conformance/log-store.js';
import { tempDir } from '../helpers/server.js';

const dir = tempDir('dg-logstore-');
runLogStoreConformance('sqlite', async () => openSqliteLogStore(join(dir, 'tail.db')));
