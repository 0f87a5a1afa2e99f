/**
 * Crash safety of the whole server: a real `datagrove serve` child process is SIGKILLed in
 * the middle of a stream of pipelined writes. After a restart on the same data dir, every
 * acknowledged entry is there exactly once and in order, the log is a prefix of what was
 * sent (no hole, no reordering), resent write ids are answered dup, and the next leader
 * gets a higher epoch.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { createSite, signupDevice } from '../helpers/auth-client.js';
import { tempDir } from '../helpers/server.js';
import { decodeEntry, entry, TailClient, type TailReply } from '../helpers/tail-client.js';
import { lease, sleep } from './fixture.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function serve(dataDir: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server/cli.ts', 'serve', '--port', String(port), '--host', '127.0.0.1', '--data', dataDir, '--log-level', 'error'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited: ${stderr}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/ready`)).ok) return child;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`server did not start: ${stderr}`);
    await sleep(100);
  }
}

function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

async function readAll(c: TailClient, handle: string): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const r = await c.call<{ entries: string[]; length: number }>('read', { handle, from: out.length });
    out.push(...r.entries.map(decodeEntry));
    if (out.length >= r.length) return out;
  }
}

describe('tail: crash safety', () => {
  it('keeps every acknowledged write through a SIGKILL, once and in order', { timeout: 120_000 }, async () => {
    const dataDir = tempDir();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const wsUrl = `ws://127.0.0.1:${port}/tail`;
    let child = await serve(dataDir, port);
    try {
      const dev = await signupDevice(url);
      const site = await createSite(url, dev.access);
      const c = await TailClient.connect(wsUrl, dev.access);
      const first = await lease(c, site, 'crash');
      assert.equal(first.role, 'leader');

      // Writes i = 0, 1, 2…: write i holds 1 + i % 3 entries "i.k", pipelined 32 deep.
      const sent: { at: number; entries: string[]; wid: string }[] = [];
      const acked = new Map<number, number>();
      let at = 0;
      let inFlight = 0;
      let stop = false;
      const pump = async () => {
        for (let i = 0; !stop && i < 100_000; i++) {
          while (inFlight >= 32 && !stop) await sleep(1);
          if (stop || !c.open) break;
          const entries = Array.from({ length: 1 + (i % 3) }, (_, k) => `${i}.${k}`);
          const w = { at, entries, wid: `w${i}` };
          sent.push(w);
          at += entries.length;
          inFlight++;
          c.request('write', { handle: first.handle, at: w.at, entries: entries.map(entry), wid: w.wid }).then(
            (r: TailReply) => {
              inFlight--;
              if (r.error === undefined && r.nack === undefined) acked.set(i, r.length as number);
            },
            () => {
              inFlight--;
            },
          );
        }
      };
      const pumping = pump();
      while (acked.size < 300) await sleep(5);
      await killed(child);
      stop = true;
      await pumping;
      await c.closedWith(5000).catch(() => null);
      assert.ok(acked.size >= 300);

      child = await serve(dataDir, port);
      const c2 = await TailClient.connect(wsUrl, dev.access);
      const again = await lease(c2, site, 'crash');
      assert.equal(again.role, 'leader');
      assert.ok(again.epoch > first.epoch, `epoch ${again.epoch} > ${first.epoch}`);

      const log = await readAll(c2, again.handle);
      assert.equal(log.length, again.length);
      const expected = sent.flatMap((w) => w.entries);
      assert.deepEqual(log, expected.slice(0, log.length), 'the log is a prefix of the writes, in order, without duplicates');
      const maxAcked = Math.max(...acked.values());
      assert.ok(log.length >= maxAcked, `every acknowledged entry is there (${log.length} ≥ ${maxAcked})`);
      for (const [i, length] of acked) assert.equal(length, (sent[i] as { at: number; entries: string[] }).at + (sent[i] as { entries: string[] }).entries.length);

      // The last write that made it is answered dup when resent: its wid was stored with it.
      const lastIn = sent.findLastIndex((w) => w.at + w.entries.length <= log.length);
      const w = sent[lastIn] as { at: number; entries: string[]; wid: string };
      const dup = await c2.call('write', { handle: again.handle, at: w.at, entries: w.entries.map(entry), wid: w.wid });
      assert.deepEqual({ dup: dup.dup, at: dup.at, length: dup.length }, { dup: true, at: w.at, length: w.at + w.entries.length });
      // And the log goes on from where it is.
      assert.equal((await c2.call('write', { handle: again.handle, at: log.length, entries: [entry('after')] })).length, log.length + 1);
      c2.close();
    } finally {
      await killed(child);
    }
  });
});
