/**
 * Once `client.close()` resolved, nothing of the SDK keeps a Node process alive: the
 * process ends by itself, at once, whatever the client was waiting for when it closed (a
 * write the store kept refusing, another process's outbox lock, a socket whose peer no
 * longer answers). The clients run in child processes (exit-child.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import BetterSqlite3 from 'better-sqlite3';
import { FileKeyStorage } from '../../src/client/node/index.js';
import { tempDir, type TestServer } from '../helpers/server.js';
import { startProxy } from '../helpers/tcp-proxy.js';
import { makeClient, server, sharedSite, waitFor } from './harness.js';

/** How long a closed client's process may take to end. */
const EXIT_MS = 1500;

interface Child {
  proc: ChildProcess;
  has: (line: string) => boolean;
  /** ms from the line "CLOSED" to the process's exit, once it exited. */
  exitAfterClose: () => Promise<number>;
}

function runChild(args: string[]): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'exit-child.ts'), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let closedAt = 0;
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    lines.push(l);
    if (l === 'CLOSED') closedAt = Date.now();
  });
  const exited = new Promise<number>((resolve) => proc.once('exit', () => resolve(Date.now())));
  return {
    proc,
    has: (line) => lines.includes(line),
    exitAfterClose: async () => {
      const at = await exited;
      assert.ok(closedAt > 0, 'the child closed its client');
      return at - closedAt;
    },
  };
}

/** Waits for the child's exit, up to a minute (killing it then), and checks it came in time. */
async function assertExitsAfterClose(c: Child, what: string): Promise<void> {
  const killer = setTimeout(() => c.proc.kill('SIGKILL'), 60_000);
  await waitFor('the child to close its client', () => c.has('CLOSED'), 30_000);
  const ms = await c.exitAfterClose();
  clearTimeout(killer);
  assert.ok(ms < EXIT_MS, `${what}: the process ended ${ms} ms after client.close() resolved`);
}

/** A site owned by the device of a key file the children use. */
async function world(): Promise<{ srv: TestServer; keyFile: string; dir: string; site: string; device: string }> {
  const srv = await server();
  const dir = tempDir();
  const keyFile = join(dir, 'device.json');
  const owner = await makeClient(srv, { storage: new FileKeyStorage(keyFile) });
  const site = await sharedSite(owner, []);
  const device = owner.client.device;
  await owner.client.close();
  return { srv, keyFile, dir, site, device };
}

test('closed while waiting to write again to a store that refused its writes', async () => {
  const w = await world();
  const c = runChild(['write-retry', w.srv.url, w.srv.wsUrl, w.keyFile, w.site]);
  await waitFor('the child leads the log', () => c.has('READY'), 30_000);
  // The way a full disk fails SQLite: every write is refused.
  const db = new BetterSqlite3(join(w.srv.dataDir, 'tail.db'), { fileMustExist: true });
  db.exec(`CREATE TRIGGER full BEFORE INSERT ON chunks BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END`);
  try {
    c.proc.stdin!.end('GO\n');
    await assertExitsAfterClose(c, 'closed between write retries');
  } finally {
    db.exec('DROP TRIGGER full');
    db.close();
  }
});

test("closed while another live process holds the lock of an outbox stream it would restore", async () => {
  const w = await world();
  const outboxFile = join(w.dir, 'outbox.json');
  const outbox = new FileKeyStorage(outboxFile);
  // This process is a live Log of the same device: its stream is listed, its lock held.
  const index = `outbox:${w.site}/outbox/${w.device}`;
  await outbox.save(index, ['livestream']);
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let holding = false;
  const lock = outbox.lock(`${index}:livestream`, async () => {
    holding = true;
    await held;
  });
  await waitFor('the stream lock to be held', () => holding);
  const c = runChild(['outbox', w.srv.url, w.srv.wsUrl, w.keyFile, w.site, outboxFile]);
  try {
    await waitFor('the child opens the log', () => c.has('READY'), 30_000);
    // The child now waits for the lock of the stream this process holds.
    await new Promise((r) => setTimeout(r, 500));
    c.proc.stdin!.end('CLOSE\n');
    await assertExitsAfterClose(c, 'closed while waiting for an outbox lock');
  } finally {
    release();
    await lock;
  }
});

test('closed while its socket carries nothing either way (the peer no longer answers)', async () => {
  const w = await world();
  const proxy = await startProxy(w.srv.url);
  const tail = `${proxy.url.replace(/^http/, 'ws')}/tail`;
  const c = runChild(['connection', w.srv.url, tail, w.keyFile, w.site]);
  try {
    await waitFor('the child connects', () => c.has('READY'), 30_000);
    proxy.stall();
    c.proc.stdin!.end('CLOSE\n');
    await assertExitsAfterClose(c, 'closed on a dead socket');
  } finally {
    await proxy.stop();
  }
});
