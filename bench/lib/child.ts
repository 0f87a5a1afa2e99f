/**
 * Starts a measured child process (the real server or a peer) under tsx with an IPC
 * channel, and reads its CPU time. Both the project and its peers run this way, so the
 * same costs (a separate process, loopback sockets, the tsx loader at start-up only) sit
 * on both sides of every comparison.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PERF_DIR, type FromChild, type ToChild, type Usage } from './child-control.js';

export interface Child {
  pid: number;
  port: number;
  usage(): Promise<Usage>;
  /** Starts a V8 CPU profile in the child (diagnosis only: profiling itself costs CPU). */
  profileStart(): Promise<void>;
  /** Stops the profile and writes it (a .cpuprofile file, for bench/lib/profile-summary.ts). */
  profileStop(path: string): Promise<void>;
  /** Runs a full garbage collection in the child (before reading memory). */
  gc(): Promise<void>;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 60_000;

/** Time for `perf record` to attach before the child is used. */
const PERF_ATTACH_MS = 1000;

/**
 * Diagnosis: DG_BENCH_PERF=DIR records every measured child with `perf record` (kernel and
 * JavaScript symbols, clock CLOCK_MONOTONIC) into DIR/<script>-<pid>.perf.data, and the
 * child writes the time of each CPU reading into DIR/<pid>.windows, so that
 * bench/lib/perf-windows.ts can keep only the samples inside measured windows.
 */
async function startPerf(pid: number, script: string): Promise<ChildProcess> {
  const out = join(PERF_DIR, `${basename(script, '.ts')}-${pid}.perf.data`);
  const perf = spawn('perf', ['record', '-q', '-k', 'CLOCK_MONOTONIC', '-F', '2000', '-g', '-p', String(pid), '-o', out], { stdio: 'ignore' });
  await new Promise<void>((resolve, reject) => {
    perf.once('error', reject);
    setTimeout(resolve, PERF_ATTACH_MS);
  });
  return perf;
}

export function scriptPath(relativeToBench: string): string {
  return fileURLToPath(new URL(`../${relativeToBench}`, import.meta.url));
}

export async function startChild(script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Child> {
  const proc: ChildProcess = fork(script, args, {
    execArgv: PERF_DIR === '' ? ['--import', 'tsx'] : ['--perf-basic-prof', '--import', 'tsx'],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString('utf8')).slice(-4000);
  });
  const pending = new Map<number, (u: Usage) => void>();
  const acks = new Map<number, () => void>();
  let seq = 0;
  let exited = false;
  const exitedP = new Promise<void>((resolve) => proc.once('exit', () => ((exited = true), resolve())));

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start in time: ${stderr}`)), START_TIMEOUT_MS);
    proc.on('message', (raw: unknown) => {
      const msg = raw as FromChild;
      if (msg.type === 'ready') {
        clearTimeout(timer);
        resolve(msg.port);
      } else if (msg.type === 'failed') {
        clearTimeout(timer);
        reject(new Error(`${script} failed: ${msg.message}`));
      } else if (msg.type === 'usage') {
        pending.get(msg.seq)?.(msg.usage);
        pending.delete(msg.seq);
      } else if (msg.type === 'done') {
        acks.get(msg.seq)?.();
        acks.delete(msg.seq);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${String(code)} before it was ready: ${stderr}`));
    });
  });

  const pid = proc.pid ?? -1;
  const perf = PERF_DIR === '' ? null : await startPerf(pid, script).catch((err: unknown) => {
    proc.kill('SIGKILL');
    throw err;
  });
  const perfDone = perf === null ? Promise.resolve() : new Promise<void>((resolve) => perf.once('exit', () => resolve()));
  return {
    pid,
    port,
    usage() {
      if (exited) return Promise.reject(new Error(`${script} has exited: ${stderr}`));
      const s = ++seq;
      return new Promise<Usage>((resolve) => {
        pending.set(s, resolve);
        proc.send({ type: 'usage', seq: s } satisfies ToChild);
      });
    },
    profileStart() {
      const s = ++seq;
      return new Promise<void>((resolve) => {
        acks.set(s, resolve);
        proc.send({ type: 'profile-start', seq: s } satisfies ToChild);
      });
    },
    profileStop(path) {
      const s = ++seq;
      return new Promise<void>((resolve) => {
        acks.set(s, resolve);
        proc.send({ type: 'profile-stop', seq: s, path } satisfies ToChild);
      });
    },
    gc() {
      const s = ++seq;
      return new Promise<void>((resolve) => {
        acks.set(s, resolve);
        proc.send({ type: 'gc', seq: s } satisfies ToChild);
      });
    },
    async stop() {
      if (exited) return;
      proc.send({ type: 'stop' } satisfies ToChild);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 8000);
      await exitedP;
      clearTimeout(timer);
      await perfDone; // perf record ends by itself when the process it follows exits
    },
  };
}

/** CPU microseconds (user + system) spent between two usage readings. */
export function cpuBetween(a: Usage, b: Usage): number {
  return b.user - a.user + (b.system - a.system);
}
