/**
 * The persistent outbox (`openLog(site, log, { outbox })`): appends whose promises had not
 * resolved when their process was SIGKILLed are written exactly once, in the writer's
 * order, by the next process of the device that opens the log with the same outbox.
 *
 * Real server, writers in child processes (outbox-child.ts) that reach the server through
 * a TCP proxy the test cuts or mutes. A restored stream is taken up as soon as the next
 * process finds the dead writer's lock file naming a process that no longer runs (not
 * after the 30 s that make an untouched lock file stale).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { FileKeyStorage } from '../../src/client/node/index.js';
import { tempDir, type TestServer } from '../helpers/server.js';
import { startProxy } from '../helpers/tcp-proxy.js';
import { makeClient, record, server, sharedSite, waitFor, type TestClient } from './harness.js';
import type { Log, LogEntry } from '../../src/client/index.js';

const N = 20;
/** Well under the lock file's staleness (30 s): the dead writer's lock is taken over at once. */
const RESTORE_MS = 15_000;

interface Child {
  proc: ChildProcess;
  lines: string[];
  has: (prefix: string) => boolean;
}

function runChild(args: string[]): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'outbox-child.ts'), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => lines.push(l));
  return { proc, lines, has: (p) => lines.some((l) => l.startsWith(p)) };
}

async function kill(c: Child): Promise<void> {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  const exited = new Promise((r) => c.proc.once('exit', r));
  c.proc.kill('SIGKILL');
  await exited;
}

interface World {
  srv: TestServer;
  keyFile: string;
  outboxFile: string;
  site: string;
  reader: TestClient;
}

/** A site; the device of `keyFile` (the children's) owns it; a reader of another device watches. */
async function world(): Promise<World> {
  const srv = await server({ leaseGraceMs: 300 });
  const dir = tempDir();
  const keyFile = join(dir, 'device.json');
  const owner = await makeClient(srv, { storage: new FileKeyStorage(keyFile) });
  const reader = await makeClient(srv);
  const site = await sharedSite(owner, [reader]);
  await owner.client.close(); // the children take over this device and its session
  return { srv, keyFile, outboxFile: join(dir, 'outbox.json'), site, reader };
}

function watch(w: World): { log: Log; seen: LogEntry[]; payloads: () => string[] } {
  const log = w.reader.client.openLog(w.site, 'outbox', { lead: false });
  const { seen } = record(log);
  return { log, seen, payloads: () => seen.map((e) => new TextDecoder().decode(e.payload)) };
}

const expected = Array.from({ length: N }, (_, i) => `e-${i}`);
const count = (cs: Child[], prefix: string): number => cs.reduce((n, c) => n + c.lines.filter((l) => l.startsWith(prefix)).length, 0);
const landed = (cs: Child[]): number => count(cs, 'LANDED ');
/** Restored appends settled (landed or failed), in every child. */
const settled = (cs: Child[]): number => landed(cs) + count(cs, 'FAILED ');

/** Writes e-0… through the proxy after `cut` (run once the child leads), then kills the child. */
async function writeAndDie(w: World, tailUrl: string, cut: () => void | Promise<void>, dead: () => boolean): Promise<void> {
  const c = runChild(['write', w.srv.url, tailUrl, w.keyFile, w.outboxFile, w.site, String(N)]);
  try {
    await waitFor('the writer leads', () => c.has('READY'), 30_000);
    assert.ok(c.has('READY leader'));
    await cut();
    c.proc.stdin!.write('GO\n');
    await waitFor('the appends kept in the outbox', () => c.has('KEPT') && dead(), 20_000);
    assert.ok(!c.has('ACK'), 'no append resolved: each was pending when the process died');
  } finally {
    await kill(c);
  }
}

test('appends made while the server is unreachable are written once, in order, by the next process', async () => {
  const w = await world();
  const proxy = await startProxy(w.srv.wsUrl);
  const children: Child[] = [];
  try {
    await writeAndDie(w, proxy.url, () => proxy.stop(), () => true);
    const r = watch(w);
    await r.log.opened;
    assert.deepEqual(r.payloads(), [], 'nothing reached the server');

    const next = runChild(['open', w.srv.url, w.srv.wsUrl, w.keyFile, w.outboxFile, w.site, '0']);
    children.push(next);
    await waitFor('every restored append settled', () => settled(children) >= N, RESTORE_MS);
    assert.equal(count(children, 'FAILED '), 0, 'none failed');
    await waitFor('the reader caught up', () => r.seen.length >= N);
    assert.deepEqual(r.payloads(), expected, 'all of them, once each, in the order they were made');
    assert.ok(next.has('RESTORED '), 'the app is told what was restored');
    assert.ok(r.seen.every((e) => e.signed && e.error === undefined));
    await new Promise((res) => setTimeout(res, 1000));
    assert.equal(r.seen.length, N, 'nothing more is written');
  } finally {
    for (const c of children) await kill(c);
    await proxy.stop();
    await w.reader.client.close();
  }
});

test('appends committed whose acknowledgements never arrived are not written again', async () => {
  const w = await world();
  const proxy = await startProxy(w.srv.wsUrl);
  const children: Child[] = [];
  let r: ReturnType<typeof watch> | null = null;
  try {
    // The writer leads; the reader follows. Muted, the writer's requests reach the server,
    // which commits them, but no answer reaches the writer: it dies with them all pending.
    await writeAndDie(
      w,
      proxy.url,
      async () => {
        r = watch(w);
        await r.log.opened;
        proxy.mute();
      },
      () => r !== null && r.seen.length === N,
    );
    const rr = r!;
    assert.deepEqual(rr.payloads(), expected);

    const next = runChild(['open', w.srv.url, w.srv.wsUrl, w.keyFile, w.outboxFile, w.site, '0']);
    children.push(next);
    await waitFor('every restored append settled', () => settled(children) >= N || rr.seen.length > N, RESTORE_MS);
    assert.deepEqual(rr.payloads(), expected, 'none written again');
    assert.equal(count(children, 'FAILED '), 0, 'none failed (an entry written again is refused as a replay)');
    const landedAt = next.lines.filter((l) => l.startsWith('LANDED ')).map((l) => Number(l.split(' ')[2]));
    assert.deepEqual([...landedAt].sort((a, b) => a - b), expected.map((_, i) => i), 'each found where it was committed');
    await new Promise((res) => setTimeout(res, 1500));
    assert.deepEqual(rr.payloads(), expected, 'none written twice');
  } finally {
    for (const c of children) await kill(c);
    await proxy.stop();
    await w.reader.client.close();
  }
});

test('two processes opening the same outbox at once write its appends once', async () => {
  const w = await world();
  const proxy = await startProxy(w.srv.wsUrl);
  const children: Child[] = [];
  try {
    await writeAndDie(w, proxy.url, () => proxy.stop(), () => true);
    const r = watch(w);
    await r.log.opened;

    for (let i = 0; i < 2; i++) children.push(runChild(['open', w.srv.url, w.srv.wsUrl, w.keyFile, w.outboxFile, w.site, '0']));
    await waitFor('every restored append settled', () => settled(children) >= N, RESTORE_MS);
    await waitFor('the reader caught up', () => r.seen.length >= N);
    // Time for the other process to take the stream up too, if it wrongly could.
    await new Promise((res) => setTimeout(res, 3000));
    assert.deepEqual(r.payloads(), expected, 'all of them, once each, in order');
    assert.equal(settled(children), N, 'one process restored them');
    assert.equal(landed(children), N);
    assert.equal(children.filter((c) => c.has('RESTORED ')).length, 1, 'the other found nothing left to restore');
  } finally {
    for (const c of children) await kill(c);
    await proxy.stop();
    await w.reader.client.close();
  }
});
