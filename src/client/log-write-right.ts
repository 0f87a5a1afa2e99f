/**
 * Whether this device may write on a log, as the auth service says (the rights of a lease
 * token for the log, POST /auth/v1/lease), asked when a follower's appends have nowhere to
 * go: no device leads the log (a device that may write and asks to lead is made leader, so
 * a follower with appends and no leader has likely been refused the lead), or the leader
 * refuses its entries (`denied`). Without it such appends would wait for a leader that may
 * never come, or for the leader's refusals to last.
 *
 * The answer is kept for `ttlMs` (a right granted meanwhile is seen at the next ask); one
 * ask at a time; an ask that fails says nothing (the appends wait, as they would without).
 */
export const WRITE_RIGHT_TTL_MS = 5000;

export class WriteRight {
  private answer: { ok: boolean; at: number } | null = null;
  private asking: Promise<void> | null = null;

  constructor(
    /** Whether the device may write on the log now; rejects when that cannot be learned. */
    private readonly ask: () => Promise<boolean>,
    private readonly ttlMs = WRITE_RIGHT_TTL_MS,
  ) {}

  /** True when the last answer, still fresh, was no. */
  get refused(): boolean {
    return this.answer !== null && !this.answer.ok && Date.now() - this.answer.at < this.ttlMs;
  }

  /** Learns the right (asking unless a fresh answer is known); calls `refuse` when it is missing. */
  check(refuse: () => void): void {
    if (this.answer !== null && Date.now() - this.answer.at < this.ttlMs) {
      if (!this.answer.ok) refuse();
      return;
    }
    if (this.asking !== null) return;
    this.asking = this.ask()
      .then(
        (ok) => {
          this.answer = { ok, at: Date.now() };
          if (!ok) refuse();
        },
        () => undefined,
      )
      .finally(() => (this.asking = null));
  }
}
