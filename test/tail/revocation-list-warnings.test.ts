/**
 * A tail node that cannot load the revocation list from auth (no auth on its bus) says so
 * once, then at most once a minute while it lasts, not at every retry.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { freePort, spawnCli, waitHttp } from '../server/child.js';
import { sleep } from './fixture.js';

describe('tail: a revocation list that cannot be loaded', () => {
  it('is logged once, not at every retry', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'dg-revoked-warn-'));
    const child = spawnCli(['serve', '--roles', 'tail', '--port', String(port), '--host', '127.0.0.1', '--data', dir, '--log-level', 'warn']);
    await waitHttp(child, `http://127.0.0.1:${port}/health`);
    // The node retries every second while it has never had the list.
    await sleep(4500);
    const lines = child.output().split('\n').filter((l) => l.includes('could not load the revocation list'));
    await child.stop();
    assert.equal(lines.length, 1, child.output());
  });
});
