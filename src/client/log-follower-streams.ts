/**
 * What a leader keeps per follower writer stream (device, stream) within its epoch, and how
 * that stays bounded while followers come and go.
 *
 * A state is pruned once nothing of its stream is in the write pipeline (no item queued,
 * in flight or failed, no search of the log running) and either it has been inactive for
 * STREAM_IDLE_MS, or more than MAX_STREAMS streams have state (the least recently active
 * first). Out-of-order entries it held for a gap go with it (they were not written: the
 * follower sends them again). So the map holds at most MAX_STREAMS states plus those of
 * streams with entries in the pipeline or a search running.
 *
 * Pruning keeps "no entry twice": `forgottenBelow` is an index above every entry a pruned
 * stream had written in the epoch. A stream that comes back without state is taken as new
 * only if its follower has read past that index (`seen` in its submit: none of the entries
 * it sends is below `seen`); otherwise the leader first reads the log between the two
 * (`findStreamEntries`) to learn which of its seqs are already there.
 */
import type { FeedRead } from './log-feed.js';
import { decodeEntry } from './entry-header.js';
import type { LinkMessage } from './link-messages.js';
import type { SeqItem } from './log-sequencer.js';

/** A stream untouched this long (no submit, no commit) is pruned, ms. */
export const STREAM_IDLE_MS = 60_000;
/** Beyond this many states, the least recently active ones are pruned (if not in the pipeline). */
export const MAX_STREAMS = 1024;
/** How often states are looked over for idleness, at most, ms. */
const SWEEP_MS = 5_000;

export interface StreamState {
  /** The follower writes signed entries (header version 2): only verified ones count as its. */
  signed: boolean;
  next: number;
  held: Map<number, SeqItem>;
  committed: Map<number, number>;
  reply: ((m: LinkMessage) => void) | null;
  acks: [number, number][];
  /** Items taken from `held` and not yet written or dropped (queued, in flight, failed). */
  outstanding: number;
  /** The highest index at which this state's stream wrote in the epoch; -1 when none. */
  lastIndex: number;
  /** When the stream last submitted or had an entry committed (Date.now()). */
  activeAt: number;
  /** While the log is searched for the stream's entries: nothing of it is sequenced. */
  searching: boolean;
}

export class FollowerStreams {
  /** By `device/stream`, least recently active first. */
  private map = new Map<string, StreamState>();
  private forgotten = 0;
  private sweptAt = 0;

  get size(): number {
    return this.map.size;
  }

  /** Every entry a pruned stream wrote in this epoch is below this index. */
  get forgottenBelow(): number {
    return this.forgotten;
  }

  /** A new epoch starts writing at `at` (or leadership ended): every state is dropped. */
  reset(at: number): void {
    this.map = new Map();
    this.forgotten = at;
  }

  get(key: string): StreamState | undefined {
    return this.map.get(key);
  }

  entries(): IterableIterator<[string, StreamState]> {
    return this.map.entries();
  }

  /** Adds a state (pruning others first, to make room or when due). */
  add(key: string, st: StreamState, now: number): StreamState {
    if (this.map.size >= MAX_STREAMS || now - this.sweptAt >= SWEEP_MS) this.sweep(now, MAX_STREAMS - 1);
    this.map.set(key, st);
    return st;
  }

  /** The stream was active: it moves to the back of the pruning order (idle ones are pruned when due, never it). */
  touch(key: string, st: StreamState, now: number): void {
    st.activeAt = now;
    this.map.delete(key);
    this.map.set(key, st);
    if (now - this.sweptAt >= SWEEP_MS) this.sweep(now, Infinity);
  }

  /** Prunes `st` now (its search of the log failed: its follower's next submit starts over). */
  drop(key: string, st: StreamState): void {
    if (this.map.get(key) === st) this.forget(key, st);
  }

  /** Prunes the idle states, and more (least recently active first) while over `room`. */
  private sweep(now: number, room: number): void {
    this.sweptAt = now;
    for (const [key, st] of this.map) {
      const idle = now - st.activeAt >= STREAM_IDLE_MS;
      if (!idle && this.map.size <= room) break; // the rest are more recent
      if (st.outstanding > 0 || st.searching) continue;
      this.forget(key, st);
    }
  }

  private forget(key: string, st: StreamState): void {
    this.forgotten = Math.max(this.forgotten, st.lastIndex + 1);
    this.map.delete(key);
  }
}

/**
 * The [seq, index] pairs of writer stream (device, stream)'s entries at indexes `from` to
 * `to` - 1, read from the log. Every entry there was written by this epoch's leader, which
 * takes a stream's entries only from its device, so none needs its signature checked here.
 */
export async function findStreamEntries(
  read: (from: number) => Promise<FeedRead>,
  device: string,
  stream: string,
  from: number,
  to: number,
): Promise<[number, number][]> {
  const found: [number, number][] = [];
  for (let at = from; at < to; ) {
    const r = await read(at);
    if (r.from !== at || r.entries.length === 0) throw new Error(`log read at ${at} returned nothing before ${to}`);
    for (let i = 0; i < r.entries.length && at + i < to; i++) {
      const o = decodeEntry(r.entries[i]!).origin;
      if (o !== null && o.device === device && o.stream === stream) found.push([o.seq, at + i]);
    }
    at += r.entries.length;
  }
  return found;
}
