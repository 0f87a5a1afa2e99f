import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * The control channel between the bench process and a measured child (the real server or
 * a peer): the child reports `ready` with its port, answers `usage` with its own
 * process.cpuUsage() and RSS, and exits on `stop`. Messages travel over the fork IPC
 * channel, so measuring costs the child one tiny JSON message per query.
 */

export interface Usage {
  /** CPU time in microseconds since the child started (user and system). */
  user: number;
  system: number;
  rss: number;
  /** V8 heap in use (bytes); after a `gc` request it counts live objects only. */
  heapUsed: number;
}

export type ToChild =
  | { type: 'usage'; seq: number }
  | { type: 'profile-start'; seq: number }
  | { type: 'profile-stop'; seq: number; path: string }
  | { type: 'gc'; seq: number }
  | { type: 'stop' };
export type FromChild =
  | { type: 'ready'; port: number }
  | { type: 'usage'; seq: number; usage: Usage }
  | { type: 'done'; seq: number }
  | { type: 'failed'; message: string };

/**
 * DG_BENCH_PERF=DIR (diagnosis, see child.ts): the bench records children with `perf`, and
 * a child writes the time of each CPU reading to DIR/<pid>.windows. Read by both sides.
 */
export const PERF_DIR = process.env.DG_BENCH_PERF ?? '';

function send(msg: FromChild): void {
  process.send?.(msg);
}

/** Run in the child once it listens: answers usage queries, runs `stop` then exits. */
export function serveControl(port: number, stop: () => Promise<void>): void {
  if (process.send === undefined) throw new Error('this script runs as a child of the bench (fork with IPC)');
  process.on('message', (raw: unknown) => {
    const msg = raw as ToChild;
    if (msg.type === 'usage') {
      const u = process.cpuUsage();
      if (PERF_DIR !== '') appendFileSync(join(PERF_DIR, `${process.pid}.windows`), `${process.hrtime.bigint()}\n`);
      const m = process.memoryUsage();
      send({ type: 'usage', seq: msg.seq, usage: { user: u.user, system: u.system, rss: m.rss, heapUsed: m.heapUsed } });
    } else if (msg.type === 'gc') {
      fullGc();
      send({ type: 'done', seq: msg.seq });
    } else if (msg.type === 'profile-start') {
      void profileStart().then(() => send({ type: 'done', seq: msg.seq }));
    } else if (msg.type === 'profile-stop') {
      void profileStop(msg.path).then(() => send({ type: 'done', seq: msg.seq }));
    } else if (msg.type === 'stop') {
      const force = setTimeout(() => process.exit(0), 5000);
      force.unref();
      stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    }
  });
  // The bench died: do not linger.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready', port });
}

let gcFn: (() => void) | null = null;

/**
 * A full garbage collection, so memory readings count live objects only (for memory per
 * session). The child is not started with --expose-gc: the flag is set at run time and
 * `gc` taken from a fresh context, which is where V8 puts it.
 */
function fullGc(): void {
  if (gcFn === null) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
  gcFn();
}

let inspector: Session | null = null;

async function profileStart(): Promise<void> {
  inspector = new Session();
  inspector.connect();
  await inspector.post('Profiler.enable');
  await inspector.post('Profiler.setSamplingInterval', { interval: 100 });
  await inspector.post('Profiler.start');
}

async function profileStop(path: string): Promise<void> {
  if (inspector === null) return;
  const { profile } = await inspector.post('Profiler.stop');
  writeFileSync(path, JSON.stringify(profile));
  inspector.disconnect();
  inspector = null;
}

export function reportFailure(err: unknown): void {
  send({ type: 'failed', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exitCode = 1;
}
