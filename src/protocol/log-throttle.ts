/**
 * Keeps a repeated failure from flooding the log: a failure that repeats for as long as a
 * dependency stays down (a full disk, a database that went away) is logged once per
 * interval, with the count of those left out since the last line.
 */
export class LogThrottle {
  #last = Number.NEGATIVE_INFINITY;
  #missed = 0;

  constructor(
    private readonly everyMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Counts one occurrence. Returns null when it is to be left out, or the number of
   * occurrences left out since the last line when this one is to be logged.
   */
  take(): number | null {
    const t = this.now();
    if (t - this.#last < this.everyMs) {
      this.#missed++;
      return null;
    }
    this.#last = t;
    const missed = this.#missed;
    this.#missed = 0;
    return missed;
  }
}
