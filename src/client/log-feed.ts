/**
 * The reading side of a log: a cursor that hands every entry to the Log exactly once and
 * in index order, from wherever entries come (tail events, write replies, reads).
 *
 * Guarantees: `onEntries(at, entries)` is called with consecutive, non-overlapping ranges
 * starting at `from`; an entry offered twice (a read overlapping an event) is handed over
 * once; a gap (an event beyond the cursor, or a length heard without entries) is filled by
 * reading before anything after it is handed over. A catch-up started in the background
 * (a gap, a length heard without entries) that fails is reported to `failed`, so that the
 * owner tries again: nothing else may come to start another one (a quiet log).
 */
import { DgError } from '../protocol/errors.js';

export interface FeedRead {
  from: number;
  entries: Uint8Array[];
  length: number;
}

/** Reads refused RATE_LIMITED in a row before a catch-up gives up (backing off up to 1 s each). */
const MAX_READ_WAITS = 12;

export class LogFeed {
  private pos: number;
  private known: number;
  private catching: Promise<void> | null = null;

  constructor(
    from: number,
    private readonly read: (from: number) => Promise<FeedRead>,
    private readonly onEntries: (at: number, entries: Uint8Array[]) => void,
    private readonly failed: (err: unknown) => void = () => undefined,
  ) {
    this.pos = from;
    this.known = from;
  }

  /** Before anything was handed over: start at `at` instead (the log's end when it opened). */
  startAt(at: number): void {
    this.pos = at;
    if (at > this.known) this.known = at;
  }

  /** The index of the next entry to hand over (= how many were handed over, from 0). */
  get position(): number {
    return this.pos;
  }

  /** The largest log length heard of. */
  get length(): number {
    return Math.max(this.known, this.pos);
  }

  /** A log length was heard of (lease reply, event, write reply). */
  observe(length: number): void {
    if (length > this.known) this.known = length;
  }

  /** Entries `at…` arrived; hands over the part after the cursor, or reads to fill a gap. */
  offer(at: number, entries: Uint8Array[]): void {
    this.observe(at + entries.length);
    if (at > this.pos) {
      this.catchUpInBackground();
      return;
    }
    const skip = this.pos - at;
    if (skip >= entries.length) return;
    const fresh = skip === 0 ? entries : entries.slice(skip);
    const start = this.pos;
    this.pos += fresh.length;
    this.onEntries(start, fresh);
  }

  /** Starts a catch-up without waiting; a failure goes to `failed`. */
  catchUpInBackground(target?: number): void {
    this.catchUp(target).catch((err: unknown) => this.failed(err));
  }

  /** Reads until the cursor reaches `target` (default: the largest length heard of). */
  catchUp(target?: number): Promise<void> {
    if (target !== undefined) this.observe(target);
    if (this.catching === null) {
      this.catching = this.loop().finally(() => (this.catching = null));
    }
    return this.catching;
  }

  private async loop(): Promise<void> {
    let waits = 0;
    while (this.pos < this.known) {
      const from = this.pos;
      let r: FeedRead;
      try {
        r = await this.read(from);
      } catch (err) {
        // The server refuses reads while earlier replies to this client are still queued:
        // give them time to arrive, then read on.
        if (!(err instanceof DgError && err.code === 'RATE_LIMITED') || waits >= MAX_READ_WAITS) throw err;
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 20 * 2 ** waits++)));
        continue;
      }
      waits = 0;
      this.observe(r.length);
      if (r.from !== from) throw new DgError('INTERNAL', 'read answered another position');
      if (r.entries.length === 0) {
        if (r.length <= this.pos) {
          // The server knows less than we heard (a reset store?): trust it, stop reading.
          this.known = this.pos;
          return;
        }
        throw new DgError('UNAVAILABLE', 'read returned no entries before the log end');
      }
      this.offer(r.from, r.entries);
    }
  }
}
