/**
 * Reassembly of fragmented link messages (`{t:"frag", id, i, n, d}`, link-messages.ts),
 * within bounds. A receiver holds the pieces of a message until its last one comes, so any
 * peer it keeps a link with could make it hold memory; what it holds is capped:
 *
 * - per link, `linkChars` characters of unfinished messages, and at most 8 of them: a
 *   message declared longer than that is refused from its first piece, and one that does
 *   not fit pushes out the link's oldest unfinished messages (an honest sender has one at a
 *   time on an ordered channel; one cut by a change of path is never finished);
 * - per hub, `totalChars` over all its links: a piece that does not fit is refused (and its
 *   message dropped), so one peer's messages never push out another's;
 * - in time: an unfinished message is dropped `maxAgeMs` after its first piece.
 *
 * Which peers may have anything held at all is the hub's decision (peer-link.ts). Refused
 * pieces are counted per link, for the hub to close a link that keeps sending them.
 */
import { FRAGMENT_CHARS, MAX_PARTS, parseMessage, type LinkMessage } from './link-messages.js';

export interface ReassemblyLimits {
  /** Characters of unfinished messages one link may hold. */
  linkChars: number;
  /** Characters of unfinished messages all links of a hub may hold together. */
  totalChars: number;
  /** An unfinished message is dropped this long after its first piece, ms. */
  maxAgeMs: number;
}

const MiB = 1024 * 1024;
const MAX_PARTIAL = 8;

/**
 * The bounds for a server whose frames are at most `maxFrame` bytes. The largest message an
 * SDK sends is a submit of 512 KiB of entries, or of one entry that fits a write frame, in
 * base64: a link may hold twice that unfinished (4 MiB at least, the relay's burst of
 * signal bytes), and a hub 8 links' worth.
 */
export function reassemblyLimits(maxFrame: number): ReassemblyLimits {
  const linkChars = Math.max(4 * MiB, 2 * maxFrame);
  return { linkChars, totalChars: 8 * linkChars, maxAgeMs: 30_000 };
}

/** What the unfinished messages of every link of one hub hold, against `totalChars`. */
export class FragmentPool {
  used = 0;

  constructor(readonly limits: () => ReassemblyLimits) {}
}

interface Partial {
  n: number;
  parts: (string | undefined)[];
  got: number;
  chars: number;
  /** When its first piece came (ms). */
  at: number;
}

/** Reassembles the fragments one peer sends over one link. */
export class Reassembler {
  private readonly partial = new Map<string, Partial>();
  private chars = 0;
  /** Pieces refused (malformed, repeated, over a bound) since the link was made. */
  refused = 0;

  constructor(private readonly pool: FragmentPool) {}

  /** Whether an unfinished message is held. */
  get holding(): boolean {
    return this.partial.size > 0;
  }

  /** A complete message, or null (a piece was stored or refused, or the frame was invalid). */
  push(frame: unknown, now = Date.now()): LinkMessage | null {
    if (frame === null || typeof frame !== 'object') return null;
    const f = frame as Record<string, unknown>;
    if (f.t !== 'frag') return parseMessage(frame);
    this.expire(now);
    if (typeof f.id !== 'string' || !isIndex(f.i) || !isIndex(f.n) || typeof f.d !== 'string') return this.refuse();
    const { id, i, n, d } = f as { id: string; i: number; n: number; d: string };
    if (n < 1 || n > MAX_PARTS || i >= n || d.length > FRAGMENT_CHARS) return this.refuse();
    const limits = this.pool.limits();
    let p = this.partial.get(id);
    if (p === undefined) {
      // Every piece but the last is full: a message of n pieces is longer than this.
      if ((n - 1) * FRAGMENT_CHARS + 1 > limits.linkChars) return this.refuse();
      if (this.partial.size >= MAX_PARTIAL) this.dropOldest();
      p = { n, parts: new Array<string | undefined>(n), got: 0, chars: 0, at: now };
      this.partial.set(id, p);
    }
    if (p.n !== n || p.parts[i] !== undefined) return this.refuse();
    while (this.chars + d.length > limits.linkChars) if (!this.dropOldest(p)) break;
    if (this.chars + d.length > limits.linkChars || this.pool.used + d.length > limits.totalChars) {
      this.drop(id, p);
      return this.refuse();
    }
    p.parts[i] = d;
    p.got++;
    p.chars += d.length;
    this.chars += d.length;
    this.pool.used += d.length;
    if (p.got < p.n) return null;
    this.drop(id, p);
    try {
      return parseMessage(JSON.parse(p.parts.join('')));
    } catch {
      return null;
    }
  }

  /** Drops the unfinished messages whose first piece came `maxAgeMs` or more ago. */
  expire(now = Date.now()): void {
    const oldest = now - this.pool.limits().maxAgeMs;
    for (const [id, p] of this.partial) if (p.at <= oldest) this.drop(id, p);
  }

  /** Drops everything held (the link is gone). */
  clear(): void {
    for (const [id, p] of this.partial) this.drop(id, p);
  }

  private refuse(): null {
    this.refused++;
    return null;
  }

  /** Drops the oldest unfinished message other than `keep`; false when there is none. */
  private dropOldest(keep?: Partial): boolean {
    for (const [id, p] of this.partial) {
      if (p === keep) continue;
      this.drop(id, p);
      return true;
    }
    return false;
  }

  private drop(id: string, p: Partial): void {
    if (this.partial.get(id) !== p) return;
    this.partial.delete(id);
    this.chars -= p.chars;
    this.pool.used -= p.chars;
  }
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
