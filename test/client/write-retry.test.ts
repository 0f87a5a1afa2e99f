/**
 * A server that cannot commit (its store refuses every write, as a full disk does) answers
 * each write UNAVAILABLE. The SDK retries with a growing delay instead of at once, and the
 * append lands exactly once when the store takes writes again.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { metric } from '../helpers/metrics.js';
import { enc, makeClient, record, server, sharedSite, waitFor } from './harness.js';

const FAILED = 'datagrove_tail_writes_total';

test('writes the store refuses are retried with backoff, and land once when it takes them again', async () => {
  const srv = await server();
  const a = await makeClient(srv);
  const site = await sharedSite(a, []);
  const log = a.client.openLog(site, 'full');
  const seen = record(log);
  await log.opened;
  await log.append([enc('before')]);

  // From outside the server, the way a full disk fails SQLite: every new chunk is refused.
  const db = new BetterSqlite3(join(srv.dataDir, 'tail.db'), { fileMustExist: true });
  db.exec(`CREATE TRIGGER full BEFORE INSERT ON chunks BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END`);
  let full = true;
  const empty = () => {
    if (!full) return;
    full = false;
    db.exec('DROP TRIGGER full');
    db.close();
  };
  after(async () => {
    empty();
    await a.client.close();
  });
  const failedBefore = await metric(srv.url, FAILED, 'result="failed"');
  let settled = false;
  const pending = log.append([enc('during')]).finally(() => (settled = true));
  await new Promise((r) => setTimeout(r, 3000));
  const failed = (await metric(srv.url, FAILED, 'result="failed"')) - failedBefore;
  assert.equal(settled, false, 'the append waits while the store is full');
  assert.ok(failed >= 2, `the SDK tried again (${failed} failed writes)`);
  // 100 ms doubling to 15 s: about 6 tries in 3 s. Without backoff, hundreds.
  assert.ok(failed <= 12, `${failed} failed writes in 3 s: the SDK retries without backing off`);

  empty();
  const [index] = await pending;
  assert.equal(index, 1);
  await waitFor('the entry is delivered', () => seen.text().length === 2);
  assert.deepEqual(seen.text(), ['0:before', '1:during']);
});
