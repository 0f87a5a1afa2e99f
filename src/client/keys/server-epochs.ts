/**
 * The sites' key epochs as the server counts them (GET /sites/:site `keyEpoch`), read at
 * most once a second per site however many callers ask.
 *
 * What a caller gets from `since(site, mark)` is the answer to a read that started after
 * `mark` (taken with `mark()`). That is what makes the answer usable to judge something
 * that happened before the mark: a rotation claims its epoch on the server (POST
 * /sites/:site/rotated) before the new key is sent, and before anything is sealed under it,
 * so a read started after a key or an entry arrived sees that epoch if it is legitimate.
 * Callers that need a read after one that is running (or after the last one, within the
 * second) wait for the next, which they share.
 */

/** The least time between the starts of two reads of one site's epoch, ms. */
export const EPOCH_READ_INTERVAL_MS = 1000;

/** A pause that does not keep a Node process alive. */
const sleep = (ms: number) =>
  new Promise<void>((r) => {
    const t = setTimeout(r, ms) as { unref?: () => void };
    t.unref?.();
  });

interface SiteState {
  /** The last epoch known, and the tick when the read that gave it started (or it was noted). */
  known?: { epoch: number; tick: number };
  /** When the last read started, ms (a failed one counts: the next waits all the same). */
  lastStart: number;
  running: { tick: number; result: Promise<number> } | null;
  /** The next read, which callers that need one newer than `running` share. */
  queued: Promise<number> | null;
}

export class ServerEpochs {
  private readonly sites = new Map<string, SiteState>();
  /** Orders marks and read starts (a clock's milliseconds cannot tell two events of one). */
  private tick = 0;

  constructor(
    /** Reads a site's key epoch from the server (rejects with a DgError). */
    private readonly read: (site: string) => Promise<number>,
    private readonly intervalMs = EPOCH_READ_INTERVAL_MS,
  ) {}

  private state(site: string): SiteState {
    let s = this.sites.get(site);
    if (s === undefined) {
      s = { lastStart: -Infinity, running: null, queued: null };
      this.sites.set(site, s);
    }
    return s;
  }

  /** A point in time for `since`: reads started after this call are after it. */
  mark(): number {
    return ++this.tick;
  }

  /** The last epoch read or noted for `site` (undefined: none yet). */
  known(site: string): number | undefined {
    return this.sites.get(site)?.known?.epoch;
  }

  /** Records an epoch learned otherwise (this device just claimed it), as of now. */
  note(site: string, epoch: number): void {
    this.state(site).known = { epoch, tick: this.mark() };
  }

  /** The site's key epoch from a read that started after `mark` (default: now). Rejects as that read did. */
  since(site: string, mark: number = this.mark()): Promise<number> {
    const s = this.state(site);
    if (s.known !== undefined && s.known.tick > mark) return Promise.resolve(s.known.epoch);
    if (s.running !== null && s.running.tick > mark) return s.running.result;
    // Every caller that joins the queued read asked before it starts: it serves them all.
    s.queued ??= (async () => {
      // Callers in this same turn (the entries of one batch) join before the read starts.
      await Promise.resolve();
      const before = s.running?.result;
      if (before !== undefined) await before.catch(() => undefined);
      const wait = s.lastStart + this.intervalMs - Date.now();
      if (wait > 0) await sleep(wait);
      s.queued = null;
      return this.start(site, s);
    })();
    return s.queued;
  }

  private start(site: string, s: SiteState): Promise<number> {
    const tick = this.mark();
    s.lastStart = Date.now();
    const result = this.read(site).then((epoch) => {
      if (s.known === undefined || s.known.tick < tick) s.known = { epoch, tick };
      return epoch;
    });
    const running = { tick, result };
    s.running = running;
    void result
      .catch(() => undefined)
      .finally(() => {
        if (s.running === running) s.running = null;
      });
    return result;
  }
}
