/**
 * Fan-out of commits to followers, and slow consumers.
 *
 * Guarantees:
 * - Contiguous commits of a log settled in the same turn (one group commit) go out as one
 *   `tail` event, or as few as keep each event's entries within `inlineBatchBytes`;
 *   each event is serialized once and sent as the same bytes to every follower.
 * - Entries ride along only when the event's commits are at most `inlineBatchBytes` and
 *   the follower keeps up (its socket has at most `softBuffer` queued).
 * - A follower over `softBuffer` gets no further events until it drains; then one
 *   length-only event per handle covers everything it missed (`at` = first missed entry).
 *   Over `hardBuffer` (checked on every send) or lagging for `lagCloseMs`: close 4408.
 *   So nothing is buffered without bound.
 */
import { TAIL_CLOSE } from '../protocol/tail-schemas.js';
import type { TailContext } from './context.js';
import type { Committed, LiveLog } from './live-log.js';
import type { Session } from './session.js';

const CHECK_MS = 50;

function tailEvent(hid: string, at: number, length: number): string {
  return `{"ev":"tail","handle":"${hid}","at":${at},"length":${length}}`;
}

export class Fanout {
  readonly #slow = new Set<Session>();
  #timer: NodeJS.Timeout | null = null;

  constructor(private readonly ctx: TailContext) {}

  /** A write of `log` committed; delivered once the current turn's commits are in. */
  committed(log: LiveLog, c: Committed): void {
    log.fan.push(c);
    if (log.fanScheduled) return;
    log.fanScheduled = true;
    queueMicrotask(() => this.#flush(log));
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    for (const s of [...this.#slow]) this.#unslow(s);
  }

  /**
   * Merges contiguous commits into as few events as keep entries inline: commits of at most
   * `inlineBatchBytes` merge while the sum stays within it; larger ones merge into
   * length-only events. So pipelined small writes still reach followers with their entries.
   */
  #flush(log: LiveLog): void {
    log.fanScheduled = false;
    const items = log.fan.splice(0);
    const inline = this.ctx.limits.inlineBatchBytes;
    let cur: { at: number; length: number; bytes: number; parts: string[][]; fits: boolean } | null = null;
    const emit = () => {
      if (cur === null) return;
      this.ctx.metrics.commitBatch.observe(cur.parts.length);
      this.#deliver(log, cur.at, cur.length, cur.fits ? cur.parts : null);
    };
    for (const c of items) {
      const fits = c.bytes <= inline;
      if (cur !== null && c.at === cur.length && fits === cur.fits && (!fits || cur.bytes + c.bytes <= inline)) {
        cur.length = c.length;
        cur.bytes += c.bytes;
        cur.parts.push(c.b64);
      } else {
        emit();
        cur = { at: c.at, length: c.length, bytes: c.bytes, parts: [c.b64], fits };
      }
    }
    emit();
    this.ctx.logs.maybeEvict(log);
  }

  #deliver(log: LiveLog, at: number, length: number, parts: string[][] | null): void {
    const soft = this.ctx.limits.softBuffer;
    let full: Buffer | null = null;
    let short: Buffer | null = null;
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
      if (parts !== null) {
        full ??= Buffer.from(`{"ev":"tail","handle":"${log.hid}","at":${at},"length":${length},"entries":["${parts.map((p) => p.join('","')).join('","')}"]}`);
        s.send(full);
        inline++;
      } else {
        short ??= Buffer.from(tailEvent(log.hid, at, length));
        s.send(short);
        bare++;
      }
    }
    if (inline > 0) this.ctx.metrics.fanout.inc({ kind: 'entries' }, inline);
    if (bare > 0) this.ctx.metrics.fanout.inc({ kind: 'length' }, bare);
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
        if (n > 0) this.ctx.metrics.fanout.inc({ kind: 'length' }, n);
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
