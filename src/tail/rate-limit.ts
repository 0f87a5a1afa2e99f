/** Per-session rate limiting: O(1) per call, no timers. */

/** A token bucket: `rate` tokens per second, at most `burst` saved up. */
export class TokenBucket {
  #tokens: number;
  #last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now = performance.now(),
  ) {
    this.#tokens = burst;
    this.#last = now;
  }

  /** Takes `cost` tokens when there are enough; false (and nothing taken) otherwise. */
  take(cost = 1, now = performance.now()): boolean {
    const elapsed = now - this.#last;
    if (elapsed > 0) {
      this.#tokens = Math.min(this.burst, this.#tokens + (elapsed * this.rate) / 1000);
      this.#last = now;
    }
    if (this.#tokens < cost) return false;
    this.#tokens -= cost;
    return true;
  }

  /** Gives back `cost` tokens taken for something that was then refused (never above `burst`). */
  refund(cost = 1): void {
    this.#tokens = Math.min(this.burst, this.#tokens + cost);
  }
}

/**
 * Counts events in a fixed window of `windowMs`; `hit()` says whether the count within the
 * current window reached `max`.
 */
export class WindowCounter {
  #start = 0;
  #count = 0;

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
  ) {}

  hit(now = Date.now()): boolean {
    if (now - this.#start >= this.windowMs) {
      this.#start = now;
      this.#count = 0;
    }
    this.#count++;
    return this.#count >= this.max;
  }
}
