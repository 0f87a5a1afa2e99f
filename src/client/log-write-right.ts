/**
 * Whether this device may write on a log, as the auth service says (the rights of a lease
 * token for the log, POST /auth/v1/lease), asked when a follower's appends have nowhere to
 * go: no device leads the log (a device that may write and asks to lead is made leader, so
 * a follower with appends and no leader has likely been refused the lead), or the leader
 * refuses its entries (`denied`). Without it such appends would wait for a leader that may
 * never come, or for the leader's refusals to last.
 *
 * The answer is kept for `ttlMs` (a right granted meanwhile is seen at the next ask), and
 * only while `access()` stays the same: when this client gains access to the site (it joins
 * a grant) the next check asks again, so a right it just joined is seen at once. One ask
 * at a time; an ask that fails says nothing (the appends wait, as they would without).
 */
export const WRITE_RIGHT_TTL_MS = 5000;

export class WriteRight {
  private answer: { ok: boolean; at: number; access: number } | null = null;
  private asking: { done: Promise<void>; access: number } | null = null;

  constructor(
    /** Whether the device may write on the log now; rejects when that cannot be learned. */
    private readonly ask: () => Promise<boolean>,
    /** How many times this client's access to the site has grown (an answer from before the last is stale). */
    private readonly access: () => number = () => 0,
    private readonly ttlMs = WRITE_RIGHT_TTL_MS,
  ) {}

  /** True when the last answer, still fresh, was no. */
  get refused(): boolean {
    const a = this.fresh();
    return a !== null && !a.ok;
  }

  /** Learns the right (asking unless a fresh answer is known); calls `refuse` when it is missing. */
  check(refuse: () => void): void {
    const a = this.fresh();
    if (a !== null) {
      if (!a.ok) refuse();
      return;
    }
    const access = this.access();
    // An ask sent before access last grew may answer from before it: ask again after it.
    if (this.asking !== null && this.asking.access === access) return;
    const asking = {
      access,
      done: this.ask().then(
        (ok) => {
          if (this.asking !== asking) return;
          this.answer = { ok, at: Date.now(), access };
          if (!ok) refuse();
        },
        () => undefined,
      ),
    };
    this.asking = asking;
    void asking.done.finally(() => {
      if (this.asking === asking) this.asking = null;
    });
  }

  private fresh(): { ok: boolean } | null {
    const a = this.answer;
    return a !== null && a.access === this.access() && Date.now() - a.at < this.ttlMs ? a : null;
  }
}
