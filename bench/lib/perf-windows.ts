/**
 * Where a serving process spends its CPU inside the measured windows of a benchmark, kernel
 * included: reads a `perf record` of the process (made with DG_BENCH_PERF=DIR, see
 * child.ts) and the times of its CPU readings, keeps the samples that fall between a
 * window's two readings, and sums them by what the stack was doing. A V8 profile
 * (DG_BENCH_PROF) sees only JavaScript and counts a blocking fsync as busy time; this
 * counts CPU only, in the kernel as well (socket writes, the loopback receive they
 * trigger, fsync), which is where most of a fan-out server's time goes.
 *
 * Usage: node --import tsx bench/lib/perf-windows.ts DIR/<script>-<pid>.perf.data [first] [count]
 * Windows are consecutive pairs of readings (how the fan-out and write-ack benchmarks take
 * them): for each scenario in turn, its warm-up round and then one window per repetition
 * (window 0 is the first warm-up). `first` and `count` pick
 * windows (default: all). Prints CPU milliseconds per category, and per window.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';

/** Categories: a main-thread sample takes the first rule whose pattern occurs anywhere in its stack. */
const RULES: [string, RegExp][] = [
  ['fsync', /\b(do_fsync|__x64_sys_fdatasync)\b/],
  ['SQLite (statements, WAL writes, checkpoints)', /sqlite3|better_sqlite3|Statement::/],
  ['socket writes (kernel TCP, loopback receive included)', /\b(tcp_sendmsg|sock_write_iter)\b/],
  ['socket reads', /\b(tcp_recvmsg|sock_read_iter)\b/],
  ['waiting for events (epoll)', /\b(ep_poll|do_epoll_wait)\b/],
  ['JSON.parse', /JsonParser/],
  ['JSON.stringify', /JsonStringifier/],
  ['garbage collection (main thread)', /v8::internal::(Heap|Scavenger|MarkCompactCollector)::/],
];
const OTHER_THREADS = 'other threads (GC helpers, compiler, libuv pool)';
const KERNEL_OTHER = 'other kernel work (interrupts, scheduling, timers)';
const REST = 'JavaScript and the runtime';

function pidOf(dataPath: string): string {
  const pid = /-(\d+)\.perf\.data$/.exec(basename(dataPath))?.[1];
  if (pid === undefined) throw new Error(`${dataPath}: expected a name <script>-<pid>.perf.data`);
  return pid;
}

function windowsOf(dataPath: string, pid: string, first: number, count: number): [bigint, bigint][] {
  const times = readFileSync(join(dirname(dataPath), `${pid}.windows`), 'utf8').trim().split('\n').map(BigInt);
  const all: [bigint, bigint][] = [];
  for (let i = 0; i + 1 < times.length; i += 2) all.push([times[i] as bigint, times[i + 1] as bigint]);
  return all.slice(first, first + count);
}

function categorize(stack: string[], mainThread: boolean): string {
  if (!mainThread) return OTHER_THREADS;
  const joined = stack.join('\n');
  for (const [name, re] of RULES) if (re.test(joined)) return name;
  return stack[0]?.includes('[kernel.kallsyms]') === true ? KERNEL_OTHER : REST;
}

async function main(): Promise<void> {
  const [dataPath, firstArg, countArg] = process.argv.slice(2);
  if (dataPath === undefined) throw new Error('usage: perf-windows.ts DIR/<script>-<pid>.perf.data [first] [count]');
  const pid = pidOf(dataPath);
  const windows = windowsOf(dataPath, pid, Number(firstArg ?? 0), Number(countArg ?? Number.MAX_SAFE_INTEGER));
  if (windows.length === 0) throw new Error('no measured window in range');
  const perf = spawn('perf', ['script', '-i', dataPath, '-F', 'tid,time,period,ip,sym,dso'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const byCategory = new Map<string, number>();
  const byWindow = windows.map(() => 0);
  let sample: { period: number; window: number; main: boolean } | null = null;
  let stack: string[] = [];
  const flush = () => {
    if (sample !== null && sample.window >= 0) {
      const c = categorize(stack, sample.main);
      byCategory.set(c, (byCategory.get(c) ?? 0) + sample.period);
      byWindow[sample.window] = (byWindow[sample.window] ?? 0) + sample.period;
    }
    sample = null;
    stack = [];
  };
  for await (const line of createInterface({ input: perf.stdout })) {
    if (line.trim() === '') {
      flush();
    } else if (!line.startsWith('\t')) {
      // "<tid> <seconds>.<micros>: <period>" (perf's clock: CLOCK_MONOTONIC, as recorded)
      flush();
      const [tid, time, period] = line.trim().split(/\s+/);
      const [sec, frac] = (time ?? '0.0').replace(':', '').split('.');
      const ns = BigInt(sec ?? '0') * 1_000_000_000n + BigInt((frac ?? '').padEnd(9, '0').slice(0, 9));
      const window = windows.findIndex(([a, b]) => ns >= a && ns <= b);
      sample = { period: Number(period), window, main: tid === pid };
    } else {
      stack.push(line.trim());
    }
  }
  flush();
  const total = [...byCategory.values()].reduce((a, b) => a + b, 0);
  if (total === 0) throw new Error('no sample inside the windows (was perf attached before them?)');
  const ms = (ns: number) => (ns / 1e6).toFixed(1);
  process.stdout.write(`CPU inside ${windows.length} window(s): ${ms(total)} ms (per window: ${byWindow.map(ms).join(', ')})\n`);
  for (const [name, ns] of [...byCategory].sort((a, b) => b[1] - a[1])) {
    process.stdout.write(`${ms(ns).padStart(9)} ms ${((100 * ns) / total).toFixed(1).padStart(5)}%  ${name}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
