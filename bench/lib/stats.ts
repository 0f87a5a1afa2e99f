/**
 * Small statistics for benchmarks. Every figure the benchmarks report is a median of
 * repetitions, or a percentile of samples gathered in one run; never a single timing.
 */

/** The q-quantile (0..1) by nearest rank over a copy of `xs`; NaN for an empty list. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const hi = sorted[mid] ?? Number.NaN;
  if (sorted.length % 2 === 1) return hi;
  const lo = sorted[mid - 1] ?? Number.NaN;
  return (lo + hi) / 2;
}

/** Relative spread of repetitions: (max - min) / median, to show how noisy a figure was. */
export function spread(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = median(xs);
  return m === 0 ? 0 : (Math.max(...xs) - Math.min(...xs)) / Math.abs(m);
}

/**
 * A latency recorder with a fixed sample cap: beyond `cap` samples it keeps a uniform
 * reservoir, so memory stays bounded however long a run is.
 */
export class Samples {
  private readonly xs: number[] = [];
  private seen = 0;
  constructor(private readonly cap = 200_000) {}

  add(x: number): void {
    this.seen++;
    if (this.xs.length < this.cap) this.xs.push(x);
    else {
      const j = Math.floor(Math.random() * this.seen);
      if (j < this.cap) this.xs[j] = x;
    }
  }

  get count(): number {
    return this.seen;
  }

  values(): readonly number[] {
    return this.xs;
  }

  q(p: number): number {
    return quantile(this.xs, p);
  }
}

/** Formats a number with 3 significant digits and thousands separators for big values. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}
