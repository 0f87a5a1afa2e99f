/**
 * Exponential backoff with jitter for reconnects and retries.
 *
 * The delay of attempt n (0-based) is drawn uniformly from [d/2, d] where
 * d = min(maxMs, baseMs * factor^n): half the delay is guaranteed (so a crowd of clients
 * never hammers a recovering server in lockstep) and half is random (so they spread out).
 */
export interface BackoffOptions {
  /** First delay, ms (default 250). */
  baseMs?: number;
  /** Upper bound of any delay, ms (default 30000). */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
}

/**
 * The delay before retry number `attempt`.
 *
 * @example
 * ```ts
 * import { backoffDelay } from 'datagrove/client';
 * const ms = backoffDelay(3, { baseMs: 100 }); // between 400 and 800
 * ```
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const base = opts.baseMs ?? 250;
  const max = opts.maxMs ?? 30_000;
  const factor = opts.factor ?? 2;
  const capped = Math.min(max, base * Math.pow(factor, Math.max(0, Math.min(attempt, 64))));
  return Math.round(capped / 2 + random() * (capped / 2));
}

/**
 * A counter of consecutive failures that yields the next delay and resets on success.
 *
 * @example
 * ```ts
 * import { Backoff } from 'datagrove/client';
 * const b = new Backoff({ baseMs: 100 });
 * await new Promise((r) => setTimeout(r, b.next())); // 50..100 ms, then 100..200 ms, ...
 * b.reset();
 * ```
 */
export class Backoff {
  private attempt = 0;
  constructor(private readonly opts: BackoffOptions = {}) {}

  /** The delay to wait now; each call counts one more failure. */
  next(): number {
    return backoffDelay(this.attempt++, this.opts);
  }

  reset(): void {
    this.attempt = 0;
  }

  get failures(): number {
    return this.attempt;
  }
}

/** Resolves after `ms` (or at once when the signal aborts). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
