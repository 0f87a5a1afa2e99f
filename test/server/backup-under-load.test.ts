/**
 * `datagrove backup` and `restore` while the server is under steady write load (leaders
 * appending with write ids, devices signing up), in real child processes, and what happens
 * when either command is interrupted or overlapped: a restore still writing its files while
 * a server is started on its directory, a backup killed before its manifest.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, watch } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { EPOCH_LIFT } from '../../src/tail/log-store.js';
import { createSite, signupDevice, type SignedUpDevice } from '../helpers/auth-client.js';
import { tempDir } from '../helpers/server.js';
import { decodeEntry, entry, TailClient } from '../helpers/tail-client.js';
import { freePort, runCli, sleep, spawnCli, waitHttp, type Child, type Exit, serveDataDir, stopCleanly } from './child.js';

interface Served {
  child: Child;
  url: string;
  wsUrl: string;
}

interface Lease {
  handle: string;
  epoch: number;
  length: number;
  role: string;
}

/** A `serve` on `dataDir` that either answers /ready or exits: which one, and the output. */
async function tryServe(dataDir: string): Promise<{ ready: boolean; exit: Exit | null; child: Child }> {
  const port = await freePort();
  const child = spawnCli(['serve', '--port', String(port), '--host', '127.0.0.1', '--data', dataDir, '--log-level', 'warn']);
  try {
    await waitHttp(child, `http://127.0.0.1:${port}/ready`);
    return { ready: true, exit: null, child };
  } catch {
    return { ready: false, exit: await child.exited, child };
  }
}

const ENTRY_PAD = 'x'.repeat(2048);
const text = (log: string, i: number) => `${log}:${i}:${ENTRY_PAD}`;
const wid = (log: string, i: number) => `${log}-w${i}`;

/**
 * Steady load on a served monolith: one leader per log appending one entry per write with
 * a write id, and devices signing up, until `stop`. `acked(log)` is how many writes of the
 * log were acknowledged so far.
 */
async function startLoad(s: Served, owner: SignedUpDevice, site: string, logs: readonly string[]) {
  const c = await TailClient.connect(s.wsUrl, owner.access);
  const acked = new Map<string, number>();
  const epochs = new Map<string, number>();
  let running = true;
  let signups = 0;
  const loops = logs.map(async (log) => {
    const l = await c.call<Lease>('lease', { site, log });
    assert.equal(l.role, 'leader');
    epochs.set(log, l.epoch);
    let n = l.length;
    acked.set(log, n);
    while (running) {
      const r = await c.call<{ length: number }>('write', { handle: l.handle, at: n, entries: [entry(text(log, n))], wid: wid(log, n) });
      assert.equal(r.length, n + 1);
      acked.set(log, ++n);
    }
  });
  const signing = (async () => {
    while (running) {
      // Signups are rate limited per address: a refused one is tried again later.
      const ok = await signupDevice(s.url).then(
        () => true,
        (err: unknown) => {
          if (!/got 429/.test(String(err))) throw err;
          return false;
        },
      );
      if (ok) signups++;
      await sleep(ok ? 50 : 500);
    }
  })();
  // Some history before any backup starts.
  while (logs.some((log) => (acked.get(log) ?? 0) < 50)) await sleep(20);
  return {
    acked: (log: string) => acked.get(log) ?? 0,
    epoch: (log: string) => epochs.get(log) ?? 0,
    signups: () => signups,
    async stop() {
      running = false;
      await Promise.all([...loops, signing]);
      c.close();
    },
  };
}

/** Reads the whole log through `c`, decoded. */
async function readAll(c: TailClient, handle: string, length: number): Promise<string[]> {
  const got: string[] = [];
  while (got.length < length) {
    const r = await c.call<{ entries: string[] }>('read', { handle, from: got.length });
    got.push(...r.entries.map(decodeEntry));
  }
  return got;
}

/**
 * Runs `args` and stops (SIGSTOP) the process as soon as `name` appears in `dir`, then
 * calls `meanwhile` and lets the process go on (SIGCONT). Resolves with the exit, and
 * whether the process was caught before it ended.
 */
async function pauseWhen(args: string[], dir: string, name: string, meanwhile: (child: Child) => Promise<void>): Promise<{ caught: boolean; exit: Exit; output: string }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const child = spawnCli(args);
  let caught = false;
  let seen: () => void = () => undefined;
  const appeared = new Promise<void>((resolve) => (seen = resolve));
  const watcher = watch(dir, (_event, file) => {
    if (file === name && !caught && existsSync(join(dir, name)) && child.proc.pid !== undefined && child.proc.exitCode === null) {
      caught = true;
      process.kill(child.proc.pid, 'SIGSTOP');
      seen();
    }
  });
  await Promise.race([appeared, child.exited]);
  watcher.close();
  if (caught) {
    try {
      await meanwhile(child);
    } finally {
      if (child.proc.pid !== undefined && child.proc.exitCode === null && child.proc.signalCode === null) process.kill(child.proc.pid, 'SIGCONT');
    }
  }
  const exit = await child.exited;
  return { caught, exit, output: child.output() };
}

describe('datagrove backup and restore under write load', () => {
  it('a server started on a directory while a restore writes into it is refused, and the restore serves every write acked before the backup', { timeout: 240_000 }, async () => {
    const root = tempDir('dg-backup-load-');
    const data = join(root, 'data');
    const copy = join(root, 'copy');
    const logs = ['a', 'b', 'c'];
    const first = await serveDataDir(data);
    const owner = await signupDevice(first.url);
    const site = await createSite(first.url, owner.access);
    const load = await startLoad(first, owner, site, logs);
    const before = new Map(logs.map((log) => [log, load.acked(log)]));
    const b = await runCli(['backup', '--data', data, '--to', copy], undefined, 120_000);
    const after = new Map(logs.map((log) => [log, load.acked(log)]));
    await load.stop();
    assert.equal(b.code, 0, b.output);
    assert.ok(load.signups() > 0, 'devices signed up meanwhile');
    assert.ok(logs.every((log) => (after.get(log) ?? 0) > (before.get(log) ?? 0)), 'writes went on during the backup');
    await stopCleanly(first.child);

    // The restore is caught while its files are being written (SIGSTOP, as a slow disk
    // would hold it), and a server is started on the directory meanwhile. Were it to start,
    // the restore would rename its files over the ones the server holds open: the server
    // would serve fresh, empty stores (and acknowledge writes into files no longer in the
    // directory), and lose them all at its next start.
    let restored = '';
    let attempt: Awaited<ReturnType<typeof pauseWhen>> | undefined;
    let overlapped: Awaited<ReturnType<typeof tryServe>> | undefined;
    for (let i = 0; i < 5 && overlapped === undefined; i++) {
      restored = join(root, `restored-${i}`);
      attempt = await pauseWhen(['restore', '--from', copy, '--data', restored], restored, 'auth.db.partial', async () => {
        overlapped = await tryServe(restored);
        if (overlapped.ready) await overlapped.child.stop('SIGKILL');
      });
    }
    assert.ok(attempt !== undefined && overlapped !== undefined, 'the restore was caught writing its files');
    assert.equal(overlapped.ready, false, `a server started on ${restored} while the restore wrote into it:\n${overlapped.child.output()}`);
    assert.equal(overlapped.exit?.code, 2, overlapped.child.output());
    assert.match(overlapped.child.output(), /is in use by another datagrove process/);
    assert.equal(attempt.exit.code, 0, attempt.output);

    // The restored directory: every write acked before the backup began, in order, none
    // twice; the write ids of the copied writes are remembered (a resend is a dup, not a
    // second append); epochs above any handed out before.
    const second = await serveDataDir(restored);
    const c = await TailClient.connect(second.wsUrl, owner.access);
    for (const log of logs) {
      const l = await c.call<Lease>('lease', { site, log });
      assert.equal(l.role, 'leader');
      assert.ok(l.epoch > load.epoch(log) + EPOCH_LIFT, `epoch ${l.epoch} of ${log} is lifted`);
      const lo = before.get(log) ?? 0;
      const hi = (after.get(log) ?? 0) + 1;
      assert.ok(l.length >= lo && l.length <= hi, `length ${l.length} of ${log} within [${lo}, ${hi}]`);
      assert.deepEqual(await readAll(c, l.handle, l.length), Array.from({ length: l.length }, (_, i) => text(log, i)));
      const last = l.length - 1;
      const resent = await c.call<{ length: number; at: number; dup?: boolean }>('write', { handle: l.handle, at: last, entries: [entry(text(log, last))], wid: wid(log, last) });
      assert.deepEqual([resent.dup, resent.at, resent.length], [true, last, l.length], `the resend of ${wid(log, last)} is a dup`);
    }
    c.close();
    await stopCleanly(second.child);
  });

  it('a backup killed before its manifest is not served as a data directory', { timeout: 240_000 }, async () => {
    const root = tempDir('dg-backup-kill-');
    const data = join(root, 'data');
    const first = await serveDataDir(data);
    const owner = await signupDevice(first.url);
    const site = await createSite(first.url, owner.access);
    const load = await startLoad(first, owner, site, ['a']);

    // Killed (as kill -9, an OOM kill or a power cut would) once it copied every database
    // and key file, before its manifest: what is left holds a data directory's files.
    let killed: Awaited<ReturnType<typeof pauseWhen>> | undefined;
    let partial = '';
    for (let i = 0; i < 5 && killed?.caught !== true; i++) {
      partial = join(root, `partial-${i}`);
      killed = await pauseWhen(['backup', '--data', data, '--to', partial], partial, 'vapid-keys.json', async (child) => {
        await child.stop('SIGKILL');
      });
    }
    await load.stop();
    await stopCleanly(first.child);
    assert.ok(killed?.caught === true, 'the backup was caught before its manifest');
    assert.equal(killed.exit.signal, 'SIGKILL');
    const left = readdirSync(partial);
    assert.ok(left.includes('tail.db') && left.includes('auth.db') && left.includes('hmac-keys.json'), left.join(', '));
    assert.equal(existsSync(join(partial, 'datagrove-backup.json')), false);

    // It is not a backup: restore refuses it.
    const r = await runCli(['restore', '--from', partial, '--data', join(root, 'restored')]);
    assert.equal(r.code, 2, r.output);
    assert.match(r.output, /not a complete backup/);
    // Nor is it a data directory: served as it is, its logs would hand out again the epochs
    // the original server handed out after the copy (no lift), so a leader of that lost
    // history could write under a new leader's epoch.
    const s = await tryServe(partial);
    if (s.ready) await s.child.stop('SIGKILL');
    assert.equal(s.ready, false, `a server started on the unfinished backup ${partial}:\n${s.child.output()}`);
    assert.equal(s.exit?.code, 2, s.child.output());
    assert.match(s.child.output(), /unfinished backup/);
  });
});
