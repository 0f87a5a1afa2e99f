/**
 * A tail.db with a damaged page (bit rot, a torn write), served by a real `datagrove serve`:
 * reads that reach the page are answered UNAVAILABLE "log store is damaged", the rest of
 * the store is still served, and the operator is told: /ready turns 503 naming the
 * damage, /metrics shows it, and the log says it at error level, once per interval rather
 * than once per failed read.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { metric } from '../helpers/metrics.js';
import { tempDir } from '../helpers/server.js';
import { TailClient, entry } from '../helpers/tail-client.js';
import { freePort, spawnCli, until, waitHttp } from '../server/child.js';
import { damageTablePage } from '../helpers/damage-page.js';
import { connect, lease, sleep, world } from './fixture.js';

/** The server's log lines at error level (pino JSON, level 50) that say the store is damaged. */
function damageLines(output: string): string[] {
  return output.split('\n').filter((l) => l.includes('"level":50') && l.includes('"msg":"log store is damaged'));
}

describe('tail: a damaged tail.db', async () => {
  const dataDir = join(tempDir(), 'data');
  const w = await world({ dataDir });
  const owner = await connect(w, w.owner);
  const other = await lease(owner, w.site, 'other');
  await owner.call('write', { handle: other.handle, at: 0, entries: [entry('kept')] });
  const main = await lease(owner, w.site, 'main');
  for (let i = 0; i < 300; i++) await owner.call('write', { handle: main.handle, at: i, entries: [entry(`${i}:${'d'.repeat(200)}`)] });
  owner.close();
  await w.srv.stop();
  damageTablePage(join(dataDir, 'tail.db'), 'chunks');

  const port = await freePort();
  const child = spawnCli(['serve', '--port', String(port), '--host', '127.0.0.1', '--data', dataDir, '--demo=false', '--log-level', 'warn']);
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(child, `${url}/ready`);

  it('answers reads of the damaged page UNAVAILABLE, serves the rest, and tells the operator once per interval', async () => {
    const c = await TailClient.connect(`ws://127.0.0.1:${port}/tail`, w.owner.access);
    const m = await lease(c, w.site, 'main');
    assert.equal(m.length, 300);
    for (let i = 0; i < 5; i++) {
      const err = await c.failure('read', { handle: m.handle, from: 0 });
      assert.deepEqual(err, { code: 'UNAVAILABLE', message: 'log store is damaged' });
    }
    const o = await lease(c, w.site, 'other');
    const kept = await c.call<{ entries: string[] }>('read', { handle: o.handle, from: 0 });
    assert.deepEqual(kept.entries, [entry('kept')]);

    const ready = await fetch(`${url}/ready`);
    assert.equal(ready.status, 503);
    const body = (await ready.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'UNAVAILABLE');
    assert.match(body.error.message, /tail store damaged \(SQLITE_CORRUPT\)/);

    assert.equal(await metric(url, 'datagrove_tail_store_damaged'), 1);
    assert.equal(await metric(url, 'datagrove_tail_store_damage_failures_total'), 5);

    await until('the error line', async () => (damageLines(child.output()).length > 0 ? true : undefined), 5000);
    for (let i = 0; i < 5; i++) await c.failure('read', { handle: m.handle, from: 0 });
    await sleep(1500);
    const lines = damageLines(child.output());
    assert.equal(lines.length, 1, child.output());
    assert.match(lines[0] as string, /"reason":"SQLITE_CORRUPT"/);
    // The failed reads are not each logged on their own.
    assert.doesNotMatch(child.output(), /tail op failed/);
    assert.equal(await metric(url, 'datagrove_tail_store_damage_failures_total'), 10);
    // Damage does not heal by itself: still not ready.
    assert.equal((await fetch(`${url}/ready`)).status, 503);
    c.close();
  });
});
