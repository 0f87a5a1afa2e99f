/**
 * The leader's process dies (SIGKILL) while followers append: after the grace another
 * device leads, and every append any writer was told succeeded (including the dead
 * leader's own) is in the log exactly once; every subscriber saw the same sequence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { FileKeyStorage } from '../../src/client/node/index.js';
import { tempDir } from '../helpers/server.js';
import { assertExactlyOnce, enc, makeClient, record, server, sharedSite, waitFor } from './harness.js';

test('the leader process is killed mid-stream: nothing acknowledged is lost or duplicated', async () => {
  const srv = await server({ leaseGraceMs: 300 });
  const keyFile = join(tempDir(), 'leader.json');
  const owner = await makeClient(srv, { storage: new FileKeyStorage(keyFile) });
  const followers = await Promise.all([0, 1].map(() => makeClient(srv)));
  const site = await sharedSite(owner, followers);
  await owner.client.close(); // the child process takes over this device and its session

  const acked = new Map<string, number>();
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'leader-child.ts'), srv.url, srv.wsUrl, keyFile, site], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let ready = '';
  createInterface({ input: child.stdout }).on('line', (line) => {
    const [kind, a, b] = line.split(' ');
    if (kind === 'READY') ready = a!;
    if (kind === 'ACK') acked.set(a!, Number(b));
  });
  try {
    await waitFor('the child leads', () => ready !== '', 30_000);
    assert.equal(ready, 'leader');

    const logs = followers.map((f) => f.client.openLog(site, 'stream', { retransmitMs: 1500 }));
    const recs = logs.map((l) => record(l));
    await Promise.all(logs.map((l) => l.opened));
    for (const l of logs) assert.equal(l.role, 'follower');

    const appends: Promise<void>[] = [];
    let stop = false;
    const writers = logs.map(async (log, w) => {
      for (let i = 0; !stop; i++) {
        const payloads = [`f${w}-${i}a`, `f${w}-${i}b`];
        appends.push(log.append(payloads.map(enc)).then((idx) => payloads.forEach((p, k) => acked.set(p, idx[k]!))));
        await new Promise((r) => setTimeout(r, 10));
      }
    });
    await waitFor('appends flowing', () => acked.size > 60);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await waitFor('a new leader', () => logs.some((l) => l.role === 'leader'), 10_000);
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await Promise.all(writers);
    await Promise.all(appends);
    const total = (): number => Math.max(...logs.map((l) => l.length));
    await waitFor('subscribers caught up', () => recs.every((r) => r.seen.length === total()), 20_000);
    assert.ok(total() >= acked.size);
    assert.ok([...acked.keys()].some((k) => k.startsWith('child-')), "the dead leader's own acknowledged appends count too");
    assertExactlyOnce(acked, recs);
    // Whatever the child wrote without being told (in flight when it died) may or may not be
    // there, but never twice; everything else in the log was acknowledged.
    for (const e of recs[0]!.seen) {
      const p = new TextDecoder().decode(e.payload);
      if (!p.startsWith('child-')) assert.ok(acked.has(p), `${p} in the log was acknowledged`);
    }
    assert.equal(logs.filter((l) => l.role === 'leader').length, 1);
  } finally {
    child.kill('SIGKILL');
    for (const f of followers) await f.client.close();
  }
});
