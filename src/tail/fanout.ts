/**
 * Fan-out of commits to followers, and slow consumers.
 *
 * Guarantees:
 * - The entries of a log committed in the same turn (one group commit) are packed into as
 *   few `tail` events as keep each event's entries within `inlineBatchBytes`: commits
 *   merge, and a commit may be split across consecutive events. Events go out in log
 *   order with no gap, each with `at`/`length` describing exactly its entries; each is
 *   serialized and framed once (ws-frame.ts) and written as the same bytes to every
 *   follower that keeps up.
 * - Entries ride along only when they fit in `inlineBatchBytes` and the follower keeps up
 *   (its socket has at most `softBuffer` queued). An entry larger than the limit goes out
 *   in a length-only event (with any such entries next to it), to be read.
 * - A follower over `softBuffer` gets no further events until it drains; then one
 *   length-only event per handle covers everything it missed (`at` = first missed entry).
 *   Over `hardBuffer` (checked on every send) or lagging for `lagCloseMs`: close 4408. A
 *   session that others find over `softBuffer` (reads refused, signals to it refused) is
 *   watched the same way (`watchBacklog`).
 *   So nothing is buffered without bound.
 * - Entries the store holds beyond what this node announced (`caughtUp`) go out in order,
 *   in a length-only event, so a follower's events still have no gap.
 * - `flushNow` sends what waits at once: a `leader` event is sent after it, so followers
 *   have every entry a leadership committed before they hear that it ended.
 */
import { TAIL_CLOSE } from '../protocol/tail-schemas.js';
import type { TailContext } from './context.js';
import type { Committed, LiveLog } from './live-log.js';
import type { Session } from './session.js';
import { textFrame, type TextFrame } from './ws-frame.js';

const CHECK_MS = 50;
/** Longest a flush is held for the next commit of its log (see #hold). */
const HOLD_MS = 5;

function tailEvent(hid: string, at: number, length: number): string {
  return `{"ev":"tail","handle":"${hid}","at":${at},"length":${length}}`;
}

/** The JSON array body of base64url strings (validated: nothing to escape), without brackets. */
function joinParts(parts: string[][]): string {
  if (parts.length === 1) return `"${(parts[0] as string[]).join('","')}"`;
  let out = '';
  for (const p of parts) {
    if (p.length === 0) continue;
    out += out === '' ? `"${p.join('","')}"` : `,"${p.join('","')}"`;
  }
  return out;
}

export class Fanout {
  readonly #slow = new Set<Session>();
  #timer: NodeJS.Timeout | null = null;

  constructor(private readonly ctx: TailContext) {}

  /** A write of `log` committed: its entries go out with the next flush of the log. */
  committed(log: LiveLog, c: Committed): void {
    log.fan.push(c);
    this.#schedule(log);
  }

  /**
   * The store holds `log` up to `length`, beyond what this node committed and announced:
   * a commit whose outcome was lost with its connection to the store, or writes made by
   * another node while it served the site. Followers hear of the entries in between in log
   * order, in an event without entries (to be read), so their events go on with no gap.
   * Callers hold no write of the log between `committed` and `length` that is still to
   * settle here.
   */
  caughtUp(log: LiveLog, length: number): void {
    if (length <= log.committed) return;
    log.fan.push({ batch: this.ctx.committer.batchNumber, at: log.committed, length, b64: [], bytes: 0 });
    log.committed = length;
    // Writes decided against a shorter log are stale: decisions go on from here.
    if (log.decided < length) {
      log.decided = length;
      log.gen++;
    }
    this.#schedule(log);
  }

  /**
   * Sends what waits for `log` now, not held for a later commit: an event that must come
   * after the entries committed so far (a change of leader) follows this.
   */
  flushNow(log: LiveLog): void {
    if (log.fan.length === 0) return;
    log.fanHeld = true; // so that #hold lets it go
    this.#flush(log);
  }

  /** A write of `log` settled, whatever the outcome: a flush held for it may go. */
  settled(log: LiveLog): void {
    if (log.fanHeld) this.#schedule(log);
  }

  /**
   * The flush waits for the end of the turn (setImmediate), not just for the end of this
   * batch (a microtask), so every commit that settles in this turn joins it.
   */
  #schedule(log: LiveLog): void {
    if (log.fanScheduled) return;
    log.fanScheduled = true;
    setImmediate(() => this.#flush(log));
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    for (const s of [...this.#slow]) this.#unslow(s);
  }

  /**
   * Packs the commits waiting for `log` into events: inline events of at most
   * `inlineBatchBytes` of entries (filled up, splitting a commit where one ends), and
   * length-only events for runs of entries that are each over the limit.
   */
  #flush(log: LiveLog): void {
    log.fanScheduled = false;
    const limit = this.ctx.limits.inlineBatchBytes;
    if (this.#hold(log, limit)) return;
    const items = log.fan.splice(0);
    // Writes of this log committed together, per batch (a flush may cover several batches).
    let n = 0;
    for (let i = 0; i < items.length; i++) {
      n++;
      if (i + 1 === items.length || (items[i + 1] as Committed).batch !== (items[i] as Committed).batch) {
        this.ctx.metrics.commitBatch.observe(n);
        n = 0;
      }
    }
    // The event being filled: entries [at, length), as slices of the commits' base64 arrays.
    let at = -1;
    let length = -1;
    let bytes = 0;
    let parts: string[][] = [];
    let inline = true;
    const emit = () => {
      if (length > at) this.#deliver(log, at, length, inline ? parts : null);
      parts = [];
      bytes = 0;
      at = length;
    };
    for (const c of items) {
      if (c.at !== length) {
        // Not contiguous with the event being filled (cannot happen while commits settle in
        // order; kept safe anyway): close it and start at this commit.
        emit();
        at = length = c.at;
      }
      if (c.b64.length === 0) {
        // Entries this node learned of from the store (`caughtUp`): announced without them.
        if (inline) {
          emit();
          inline = false;
        }
        length = c.length;
        continue;
      }
      if (inline && bytes + c.bytes <= limit) {
        // The common case: the whole commit fits in the event.
        parts.push(c.b64);
        bytes += c.bytes;
        length = c.length;
        continue;
      }
      // Entry by entry: fill the event to the limit, then start the next.
      const b64 = c.b64;
      let from = 0;
      for (let i = 0; i < b64.length; i++) {
        const size = ((b64[i] as string).length * 3) >>> 2;
        const fits = size <= limit;
        if (fits !== inline || (fits && bytes + size > limit)) {
          if (inline && i > from) parts.push(b64.slice(from, i));
          length = c.at + i;
          emit();
          inline = fits;
          from = i;
        }
        if (fits) bytes += size;
      }
      if (inline && b64.length > from) parts.push(from === 0 ? b64 : b64.slice(from));
      length = c.length;
    }
    emit();
    this.ctx.logs.maybeEvict(log);
  }

  /**
   * Holds a flush once while more writes of the log are on their way to the store and what
   * waits does not fill an event yet: the next settle (or HOLD_MS) releases it, and the
   * commits merge into fuller events (a pipelining leader's writes reach followers in
   * fewer frames). A flush is never held twice in a row, so an entry waits for at most one
   * more commit of its log, and never longer than HOLD_MS for it.
   */
  #hold(log: LiveLog, limit: number): boolean {
    if (log.fanHeld) {
      log.fanHeld = false;
      if (log.fanTimer !== null) clearTimeout(log.fanTimer);
      log.fanTimer = null;
      return false;
    }
    // Nothing to gain without followers, or without more writes coming.
    if (log.inflight === 0 || log.handles.size < 2 || this.ctx.committer.waiting) return false;
    let bytes = 0;
    for (const c of log.fan) bytes += c.bytes;
    if (bytes >= limit) return false;
    log.fanHeld = true;
    log.fanTimer = setTimeout(() => {
      log.fanTimer = null;
      this.#schedule(log);
    }, HOLD_MS);
    log.fanTimer.unref();
    return true;
  }

  #deliver(log: LiveLog, at: number, length: number, parts: string[][] | null): void {
    const soft = this.ctx.limits.softBuffer;
    let full: TextFrame | null = null;
    let short: TextFrame | null = null;
    let inline = 0;
    let bare = 0;
    for (const h of log.handles) {
      if (h === log.leader) continue;
      if (h.lagAt >= 0) {
        h.lagLength = length;
        continue;
      }
      const s = h.session;
      if (s.closing) continue;
      if (s.buffered > soft) {
        h.lagAt = at;
        h.lagLength = length;
        this.#markSlow(s);
        continue;
      }
      // Each event is framed once and the same frame written to every follower.
      if (parts !== null) {
        full ??= textFrame(`{"ev":"tail","handle":"${log.hid}","at":${at},"length":${length},"entries":[${joinParts(parts)}]}`);
        s.sendFrame(full);
        inline++;
      } else {
        short ??= textFrame(tailEvent(log.hid, at, length));
        s.sendFrame(short);
        bare++;
      }
    }
    if (inline > 0) this.ctx.metrics.fannedOut('entries', inline);
    if (bare > 0) this.ctx.metrics.fannedOut('length', bare);
  }

  /**
   * A session over `softBuffer` for another reason than `tail` events (read replies or
   * signals it does not take): watched like a lagging follower, so it is closed 4408 if it
   * stays over the limit for `lagCloseMs`.
   */
  watchBacklog(s: Session): void {
    if (!s.closing && s.buffered > this.ctx.limits.softBuffer) this.#markSlow(s);
  }

  #markSlow(s: Session): void {
    if (s.slowSince !== 0) return;
    s.slowSince = Date.now();
    this.#slow.add(s);
    this.ctx.metrics.lagging.inc();
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.#check(), CHECK_MS);
      this.#timer.unref();
    }
  }

  #unslow(s: Session): void {
    this.#slow.delete(s);
    s.slowSince = 0;
    this.ctx.metrics.lagging.dec();
  }

  /** Slow sessions: catch up the ones that drained, close the ones lagging too long. */
  #check(): void {
    const now = Date.now();
    const { softBuffer, lagCloseMs } = this.ctx.limits;
    for (const s of this.#slow) {
      if (s.closing) {
        this.#unslow(s);
      } else if (s.buffered <= softBuffer) {
        this.#unslow(s);
        let n = 0;
        for (const h of s.handles.values()) {
          if (h.lagAt < 0) continue;
          const at = h.lagAt;
          h.lagAt = -1;
          s.send(tailEvent(h.id, at, h.lagLength));
          n++;
        }
        if (n > 0) this.ctx.metrics.fannedOut('length', n);
      } else if (now - s.slowSince > lagCloseMs) {
        this.#unslow(s);
        s.close(TAIL_CLOSE.slow, 'slow consumer');
      }
    }
    if (this.#slow.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }
}
