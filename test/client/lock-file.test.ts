/**
 * Lock files shared by processes (FileKeyStorage.lock, its saves): a lock file left by a
 * process that died holding it is taken over by exactly one of the processes waiting for
 * it, however many find it stale at the same moment; a waiter that died while taking over
 * does not block the others for good; one whose holder process is gone (same machine) is
 * taken over at once, one whose holder runs or is elsewhere is not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { claimPath, withLockFile } from '../../src/client/node/lock-file.js';
import { tempDir } from '../helpers/server.js';

const PROCESSES = 6;
const ROUNDS = 25;

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A lock file as a process that died holding it leaves it: untouched for a minute. */
function leaveStale(path: string): void {
  writeFileSync(path, '');
  const old = new Date(Date.now() - 60_000);
  utimesSync(path, old, old);
}

test('processes that find one stale lock file at the same moment take it over one at a time', async () => {
  const dir = tempDir('lock-race-');
  const lockPath = join(dir, 'keys.json.refresh.lock');
  const journal = join(dir, 'journal');
  writeFileSync(journal, '');
  const children: ChildProcessWithoutNullStreams[] = [];
  const lines: string[][] = [];
  for (let i = 0; i < PROCESSES; i++) {
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'lock-child.ts'), lockPath, journal, `p${i}`]);
    child.stderr.pipe(process.stderr);
    const seen: string[] = [];
    createInterface({ input: child.stdout }).on('line', (line) => seen.push(line));
    children.push(child);
    lines.push(seen);
  }
  try {
    await waitFor('every process to start', () => lines.every((l) => l.includes('READY')), 60_000);
    for (let round = 0; round < ROUNDS; round++) {
      leaveStale(lockPath);
      for (const child of children) child.stdin.write(`GO ${round}\n`);
      await waitFor(`round ${round}`, () => lines.every((l) => l.includes(`DONE ${round}`)), 60_000);
    }
  } finally {
    for (const child of children) child.stdin.end();
  }
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode === null ? c.on('exit', r) : r(null)))));

  // The journal is in the order the holders wrote it: each enter must follow the previous exit.
  let inside: string | null = null;
  let turns = 0;
  for (const line of readFileSync(journal, 'utf8').trim().split('\n')) {
    const [what, id, round] = line.split(' ');
    if (what === 'enter') {
      assert.equal(inside, null, `${id} entered in round ${round} while ${inside} held the lock`);
      inside = id!;
      turns++;
    } else {
      assert.equal(inside, id, `${id} left a lock it did not hold`);
      inside = null;
    }
  }
  assert.equal(turns, PROCESSES * ROUNDS, 'every process held it once per round');
  assert.deepEqual(readdirSync(dir), ['journal'], 'no lock or claim file left');
});

test('a claim left by a process that died taking over is taken over once it is stale; a fresh one is waited for', async () => {
  const dir = tempDir('lock-claim-');
  const lockPath = join(dir, 'keys.json.refresh.lock');
  leaveStale(lockPath);
  const claim = claimPath(lockPath, statSync(lockPath, { bigint: true }));

  // Another process is taking it over right now (its claim is fresh): wait.
  writeFileSync(claim, '');
  await assert.rejects(withLockFile(lockPath, 300, async () => assert.fail('ran while another process took the lock over')), /another process holds the lock/);

  // It died doing so: once its claim is stale, the lock is taken over.
  const old = new Date(Date.now() - 60_000);
  utimesSync(claim, old, old);
  assert.equal(await withLockFile(lockPath, 1000, async () => 'taken over'), 'taken over');
  assert.deepEqual(readdirSync(dir), [], 'no lock or claim file left');
});

function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
}

/** A fresh lock file (just touched) naming a holder process. */
function heldBy(path: string, holder: { pid: number; host?: string; ns?: string }): void {
  writeFileSync(path, JSON.stringify({ host: hostname(), ns: pidNamespace(), ...holder }));
}

test('a lock whose holder process was killed is taken over at once, not after 30 s', async () => {
  const dir = tempDir('lock-dead-');
  const lockPath = join(dir, 'keys.json.refresh.lock');
  const journal = join(dir, 'journal');
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'lock-child.ts'), lockPath, journal, 'holder']);
  child.stderr.pipe(process.stderr);
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
  await waitFor('the child to start', () => lines.includes('READY'), 60_000);
  child.stdin.write('HOLD\n');
  await waitFor('the child to hold the lock', () => lines.includes('HELD'), 10_000);
  // While it lives, the lock is its own.
  await assert.rejects(withLockFile(lockPath, 300, async () => assert.fail('took a live holder\'s lock')), /another process holds the lock/);
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await exited;
  const started = performance.now();
  assert.equal(await withLockFile(lockPath, 5000, async () => 'taken over'), 'taken over');
  assert.ok(performance.now() - started < 2000, `taken over in ${Math.round(performance.now() - started)} ms`);
  assert.deepEqual(readdirSync(dir), [], 'no lock or claim file left');
});

test('a fresh lock naming a live process, a process of another host or nothing readable is waited for', async () => {
  const dir = tempDir('lock-alive-');
  const lockPath = join(dir, 'keys.json.refresh.lock');
  const sleeper = spawn('sleep', ['30']);
  try {
    heldBy(lockPath, { pid: sleeper.pid as number });
    await assert.rejects(withLockFile(lockPath, 300, async () => assert.fail('took a live process\'s lock')), /another process holds the lock/);
    // A pid that runs nowhere here, but written on another machine sharing the directory.
    const dead = spawn('true');
    await new Promise((r) => dead.on('exit', r));
    heldBy(lockPath, { pid: dead.pid as number, host: `not-${hostname()}` });
    await assert.rejects(withLockFile(lockPath, 300, async () => assert.fail('took another host\'s lock')), /another process holds the lock/);
    writeFileSync(lockPath, '{"pid":');
    await assert.rejects(withLockFile(lockPath, 300, async () => assert.fail('took an unreadable lock')), /another process holds the lock/);
    // The same dead pid on this host: taken over.
    heldBy(lockPath, { pid: dead.pid as number });
    assert.equal(await withLockFile(lockPath, 1000, async () => 'taken over'), 'taken over');
  } finally {
    sleeper.kill();
  }
});
