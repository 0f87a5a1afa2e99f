/**
 * A closed-loop load generator: `concurrency` workers each run one operation at a time,
 * back to back, until `durationMs` has passed or `maxOps` operations have started. The
 * project and its peer are driven by the same loop, so the rate it reports is what each
 * server sustains for that many clients waiting on their answers. Any failed operation
 * fails the whole run: a benchmark that silently counts errors as work measures nothing.
 */
import { Samples } from './stats.js';

export interface LoopOptions {
  concurrency: number;
  durationMs: number;
  /** Upper bound on operations (e.g. a budget of single-use credentials); default unbounded. */
  maxOps?: number;
  /** Runs operation number `i` (0-based, in start order) on worker `worker`. */
  op: (i: number, worker: number) => Promise<void>;
}

export interface LoopResult {
  ops: number;
  seconds: number;
  /** Operations per second. */
  rate: number;
  /** Per-operation latency, ms. */
  latency: Samples;
}

export async function closedLoop(o: LoopOptions): Promise<LoopResult> {
  const latency = new Samples();
  const max = o.maxOps ?? Number.POSITIVE_INFINITY;
  const t0 = performance.now();
  const end = t0 + o.durationMs;
  let started = 0;
  let done = 0;
  const worker = async (w: number): Promise<void> => {
    while (started < max && performance.now() < end) {
      const i = started++;
      const s = performance.now();
      await o.op(i, w);
      latency.add(performance.now() - s);
      done++;
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, w) => worker(w)));
  const seconds = (performance.now() - t0) / 1000;
  return { ops: done, seconds, rate: done / seconds, latency };
}

/** Runs `f` for 0..n-1 with at most `limit` at once; results in index order. */
export async function inParallel<T>(n: number, limit: number, f: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await f(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  return out;
}
