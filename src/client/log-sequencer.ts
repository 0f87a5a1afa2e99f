/**
 * The leader's write pipeline: it sequences this device's appends and the entries its
 * followers submit, and writes them with pipelined conditional writes (`at` = the length the
 * log will have after the earlier writes, a `wid` per write).
 *
 * Exactly-once rules (the Log runs them together with its feed):
 * - Within one epoch only this leader writes, so every entry committed in the epoch passes
 *   through `noteCommitted` (from write replies or reads) before anything is resent.
 * - Each follower stream is sequenced in seq order without gaps: an entry is queued only
 *   when its seq is the stream's next one; later seqs wait (bounded) for the gap to fill;
 *   earlier seqs are duplicates (acknowledged again if their index is known).
 * - On nack, fence or any failure the pipeline halts, and whenever the Log leases again it
 *   pauses; when every write in flight has settled the Log re-leases, reads to the end of
 *   the log, and `resume`s: items found in the log are dropped, the rest are queued again
 *   in their order. Nothing is written between the new lease and `resume` (a follower's
 *   entries sent in the old epoch would otherwise go out under the new lease, counted in
 *   the old epoch and forgotten by the new one). A new epoch drops the
 *   followers' items (they resubmit to the new leader after checking the log themselves).
 * - A follower stream's state may be pruned within the epoch once nothing of it waits to be
 *   written (log-follower-streams.ts); when the stream comes back, the seqs it had already
 *   written are learned again (from its follower's `seen`, or by reading the log) before
 *   anything of it is queued.
 */
import { DgError } from '../protocol/errors.js';
import { b64urlDecode, b64urlEncode } from './bytes.js';
import { decodeEntry, type EntryOrigin } from './entry-header.js';
import { FollowerStreams, type StreamState } from './log-follower-streams.js';
import type { LinkMessage, RefusalCode } from './link-messages.js';
import type { TailLimitsView, WriteReply } from './tail-types.js';

export interface SeqItem {
  bytes: Uint8Array;
  origin: EntryOrigin;
  /** This device's own append (tracked by the Log's pending set). */
  own: boolean;
}

interface Inflight {
  items: SeqItem[];
  done: Promise<void>;
}

export type WriteFn = (at: number, entries: string[], wid: string) => Promise<WriteReply>;

export interface SequencerHooks {
  write: WriteFn;
  /** A write committed `items` at `at…` (the log's length is now at least `length`). */
  written: (at: number, items: SeqItem[], length: number) => void;
  /** The pipeline halted (nack, fenced, error); the Log recovers. */
  failed: (err: DgError | null) => void;
  /** Own entries that can never be written (too large): reject them. */
  refused: (items: SeqItem[], err: DgError) => void;
  /** Whether the server says `device` may write on this log (so its entries may be taken). */
  mayWrite: (device: string) => boolean;
  /** [seq, index] of writer stream (device, stream)'s entries at `from` to `to` - 1, read from the log. */
  find: (device: string, stream: string, from: number, to: number) => Promise<[number, number][]>;
}

const MAX_INFLIGHT = 4;
const MAX_HELD = 10_000;
const MAX_COMMITTED = 10_000;
/** Reads of the log for returning streams at once, at most (a submit beyond is answered `stale`: it comes again shortly). */
const MAX_SEARCHES = 4;

export class Sequencer {
  private epoch = -1;
  /** The log's length when this device began writing in the epoch. */
  private epochStart = 0;
  private nextAt = 0;
  private active = false;
  private halted = false;
  private queue: SeqItem[] = [];
  private readonly inflight: Inflight[] = [];
  private failedItems: SeqItem[] = [];
  private readonly streams = new FollowerStreams();
  private searches = 0;
  private wids = 0;

  constructor(
    private readonly hooks: SequencerHooks,
    private readonly widPrefix: string,
    private limits: TailLimitsView,
  ) {}

  get isActive(): boolean {
    return this.active;
  }

  setLimits(limits: TailLimitsView): void {
    this.limits = limits;
  }

  /** How many follower writer streams have state (bounded: log-follower-streams.ts). */
  get followerStreams(): number {
    return this.streams.size;
  }

  /** Resolves when no write is in flight. */
  async idle(): Promise<void> {
    while (this.inflight.length > 0) await Promise.all(this.inflight.map((w) => w.done));
  }

  /**
   * Sends nothing more until `resume`: the Log is leasing again, and a write sent now would
   * go out under the new lease while this pipeline still counts positions (and the followers'
   * entries it took) in the old epoch. Items keep arriving and wait; what is in flight settles.
   */
  pause(): void {
    this.halted = true;
  }

  /**
   * Starts (or continues) leading at `epoch`, writing from `at` (the caught-up length).
   * Own items are dropped from the carried queue: the Log enqueues its pending appends again.
   */
  resume(epoch: number, at: number): void {
    const carried = [...this.failedItems, ...this.queue];
    this.failedItems = [];
    if (epoch !== this.epoch) {
      this.streams.reset(at);
      this.epoch = epoch;
      this.epochStart = at;
    }
    this.queue = carried.filter((it) => !it.own && this.isRemoteWanted(it));
    this.nextAt = at;
    this.active = true;
    this.halted = false;
  }

  /** Whether a follower's item carried over a failure is still to be written (not found in the log). */
  private isRemoteWanted(it: SeqItem): boolean {
    const st = this.streams.get(streamKey(it.origin));
    if (st === undefined) return false;
    if (!st.committed.has(it.origin.seq)) return true;
    st.outstanding--;
    return false;
  }

  /** Leadership ended: nothing more is written; followers' items are dropped. */
  stop(): void {
    this.active = false;
    this.halted = false;
    this.queue = [];
    this.failedItems = [];
    this.streams.reset(0);
    this.epoch = -1;
  }

  enqueueOwn(items: SeqItem[]): void {
    this.queue.push(...items);
    this.pump();
  }

  /** A follower's `submit`: validated, deduplicated, put in its stream's order. */
  submitRemote(from: string, msg: Extract<LinkMessage, { t: 'submit' }>, reply: (m: LinkMessage) => void): void {
    if (!this.active || msg.epoch !== this.epoch) {
      reply({ t: 'stale', epoch: this.epoch });
      return;
    }
    if (!this.hooks.mayWrite(from)) {
      reply({ t: 'denied', epoch: this.epoch });
      return;
    }
    const items: SeqItem[] = [];
    let signed = true;
    for (const e of msg.entries) {
      const bytes = b64urlDecode(e);
      if (bytes === null || bytes.length > this.limits.maxEntryBytes) return;
      const { origin, signature } = decodeEntry(bytes);
      if (origin === null || origin.device !== from || origin.stream !== msg.stream) return;
      if (signature === null) signed = false;
      // Taken as they are: the leader writes the follower's bytes (and signature) unchanged.
      items.push({ bytes, origin, own: false });
    }
    const key = `${from}/${msg.stream}`;
    const now = Date.now();
    let st = this.streams.get(key);
    if (st === undefined) {
      // The stream may have had a state pruned earlier in the epoch: its entries are all
      // below `forgottenBelow`, and none of the entries its follower sends is below `seen`
      // (older SDKs do not say: then none is before the epoch). Between the two, look.
      const searchFrom = Math.max(this.epochStart, msg.seen ?? 0);
      const search = searchFrom < this.streams.forgottenBelow;
      if (search && this.searches >= MAX_SEARCHES) {
        // Not ready for this stream yet: the follower sends again shortly (as after `stale`
        // of its own epoch), rather than after two unanswered resends and a new link.
        reply({ t: 'stale', epoch: this.epoch });
        return;
      }
      const next = Math.max(1, msg.floor);
      st = this.streams.add(key, { signed, next, held: new Map(), committed: new Map(), reply, acks: [], outstanding: 0, lastIndex: -1, activeAt: now, searching: false }, now);
      if (search) this.search(key, from, msg.stream, st, searchFrom, next);
    } else {
      this.streams.touch(key, st, now);
    }
    st.reply = reply;
    if (msg.floor > st.next) {
      // Everything below the floor is in the log already (the follower checked).
      st.next = msg.floor;
      for (const s of st.held.keys()) if (s < st.next) st.held.delete(s);
    }
    for (const s of st.committed.keys()) if (s < msg.floor) st.committed.delete(s);
    for (const it of items.sort((a, b) => a.origin.seq - b.origin.seq)) {
      const seq = it.origin.seq;
      if (seq < st.next) {
        const index = st.committed.get(seq);
        if (index !== undefined) st.acks.push([seq, index]);
      } else if (st.held.size < MAX_HELD) st.held.set(seq, it);
    }
    this.takeHeld(st);
    this.flushAcks();
    this.pump();
  }

  /**
   * A message of a device that may not have its messages held (it may not write: its
   * fragments were not kept, peer-link.ts) was not taken: answered as its submit would be,
   * so that its follower fails its appends in time rather than resend them forever.
   */
  declined(reply: (m: LinkMessage) => void): void {
    reply(this.active ? { t: 'denied', epoch: this.epoch } : { t: 'stale', epoch: this.epoch });
  }

  /** Queues the stream's held items that are next in its order. */
  private takeHeld(st: StreamState): void {
    if (st.searching) return;
    for (let it = st.held.get(st.next); it !== undefined; it = st.held.get(st.next)) {
      st.held.delete(st.next);
      st.next++;
      st.outstanding++;
      this.queue.push(it);
    }
  }

  /**
   * Reads the log at `from`…forgottenBelow for the entries of a stream that comes back
   * without state, then takes its items from after the last one there. Those found at or
   * above the follower's floor are acknowledged. If the read fails, the state is dropped:
   * the follower's next resend searches again.
   */
  private search(key: string, device: string, stream: string, st: StreamState, from: number, floor: number): void {
    st.searching = true;
    this.searches++;
    this.hooks.find(device, stream, from, this.streams.forgottenBelow).then(
      (found) => {
        this.searches--;
        if (this.streams.get(key) !== st) return; // a new epoch, or leadership ended
        st.searching = false;
        for (const [seq, index] of found) this.recordCommitted(st, seq, index, seq >= floor);
        this.takeHeld(st);
        this.flushAcks();
        this.pump();
      },
      () => {
        this.searches--;
        st.held.clear();
        this.streams.drop(key, st);
      },
    );
  }

  private recordCommitted(st: StreamState, seq: number, index: number, ack: boolean): void {
    st.committed.set(seq, index);
    if (st.committed.size > MAX_COMMITTED) st.committed.delete(st.committed.keys().next().value as number);
    st.lastIndex = Math.max(st.lastIndex, index);
    if (seq >= st.next) {
      st.next = seq + 1;
      for (const s of st.held.keys()) if (s < st.next) st.held.delete(s);
    }
    if (ack) st.acks.push([seq, index]);
  }

  /**
   * An entry is in the log at `index` (seen by the feed while this device leads; `signed`:
   * its writer's signature verified). An unsigned entry naming a follower that signs is
   * someone else's: it does not count (nor is it acknowledged to the follower).
   */
  noteCommitted(origin: EntryOrigin, index: number, signed: boolean): void {
    if (!this.active) return;
    const key = streamKey(origin);
    const st = this.streams.get(key);
    if (st === undefined || (st.signed && !signed)) return;
    this.recordCommitted(st, origin.seq, index, true);
    this.streams.touch(key, st, Date.now());
  }

  /** Sends the acknowledgements gathered since the last flush. */
  flushAcks(): void {
    for (const [key, st] of this.streams.entries()) {
      if (st.acks.length === 0 || st.reply === null) continue;
      const acks = st.acks;
      st.acks = [];
      st.reply({ t: 'ack', epoch: this.epoch, stream: key.slice(key.indexOf('/') + 1), acks });
    }
  }

  private pump(): void {
    while (this.active && !this.halted && this.queue.length > 0 && this.inflight.length < MAX_INFLIGHT) {
      const batch = this.takeBatch();
      const at = this.nextAt;
      this.nextAt += batch.length;
      const wid = `${this.widPrefix}.${(this.wids++).toString(36)}`;
      const entry: Inflight = { items: batch, done: Promise.resolve() };
      entry.done = this.hooks
        .write(at, batch.map((b) => b64urlEncode(b.bytes)), wid)
        .then(
          (r) => this.settled(entry, at, r, null),
          (err: unknown) => this.settled(entry, at, null, err instanceof DgError ? err : new DgError('UNAVAILABLE', 'write failed')),
        );
      this.inflight.push(entry);
    }
  }

  private takeBatch(): SeqItem[] {
    // Base64 grows 4/3; keep a write frame well under the server's frame limit.
    const budget = Math.floor((this.limits.maxFrame * 3) / 4) - 4096;
    const max = Math.max(1, this.limits.maxEntries);
    const batch: SeqItem[] = [];
    let bytes = 0;
    while (this.queue.length > 0 && batch.length < max) {
      const next = this.queue[0]!;
      if (batch.length > 0 && bytes + next.bytes.length + 4 > budget) break;
      bytes += next.bytes.length + 4;
      batch.push(this.queue.shift()!);
    }
    return batch;
  }

  private settled(entry: Inflight, at: number, r: WriteReply | null, err: DgError | null): void {
    const i = this.inflight.indexOf(entry);
    if (i >= 0) this.inflight.splice(i, 1);
    if (r !== null && !('nack' in r)) {
      const committedAt = 'dup' in r ? r.at : at;
      this.settleRemote(entry.items, committedAt);
      this.hooks.written(committedAt, entry.items, r.length);
      this.flushAcks();
      // After a failure nothing more is sent (replies of later writes are not trusted to be in order).
      if (!this.halted) this.pump();
      return;
    }
    if (err?.code === 'TOO_LARGE' || err?.code === 'BAD_REQUEST') {
      this.settleRemote(entry.items, null);
      this.refuseRemote(entry.items, err.code);
      this.hooks.refused(entry.items.filter((it) => it.own), err);
    } else {
      this.failedItems.push(...entry.items);
    }
    if (!this.halted) {
      this.halted = true;
      this.hooks.failed(err);
    }
  }

  /** Tells the followers whose items the server refused that those will never be written. */
  private refuseRemote(items: SeqItem[], code: RefusalCode): void {
    const byStream = new Map<string, { stream: string; seqs: number[] }>();
    for (const it of items) {
      if (it.own) continue;
      const key = streamKey(it.origin);
      const g = byStream.get(key) ?? { stream: it.origin.stream, seqs: [] };
      g.seqs.push(it.origin.seq);
      byStream.set(key, g);
    }
    for (const [key, g] of byStream) this.streams.get(key)?.reply?.({ t: 'refused', epoch: this.epoch, stream: g.stream, seqs: g.seqs, code });
  }

  /** Followers' items written at `at`… (or, with null, never to be written) leave the pipeline. */
  private settleRemote(items: SeqItem[], at: number | null): void {
    items.forEach((it, i) => {
      if (it.own) return;
      const st = this.streams.get(streamKey(it.origin));
      if (st === undefined) return;
      st.outstanding--;
      if (at !== null) st.lastIndex = Math.max(st.lastIndex, at + i);
    });
  }
}

function streamKey(o: EntryOrigin): string {
  return `${o.device}/${o.stream}`;
}
