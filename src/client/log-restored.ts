/**
 * Appends restored from the outbox (log-outbox.ts): entries of this device's earlier writer
 * streams, left pending by a Log that is gone. Each keeps its bytes (its stream, seq and
 * signature): it is the same append, so it is matched in the log exactly as it was written,
 * and written at most once more.
 *
 * Exactly-once rules (with the Log):
 * - A stream is taken up at a moment when every entry below the Log's admitted position
 *   has counted: entries from there on are matched as they are admitted (`committed`), and
 *   those below are looked for by a scan of the log from the lowest recorded `from` (no copy
 *   of an entry is below its `from`). Only a byte-identical copy counts (it carries the
 *   device's signature). Nothing of the stream is sent before its scan is done.
 * - Then the stream's entries are sent like the Log's own: queued by the leader (as its own
 *   items, in seq order), or sent by a follower through a Forwarder of that stream, under the
 *   same rules (resent only after the Log has read the log to its end again).
 */
import type { DgError } from '../protocol/errors.js';
import { bytesEqual } from './bytes.js';
import { decodeEntry } from './entry-header.js';
import type { FeedRead } from './log-feed.js';
import type { Forwarder } from './log-forwarder.js';
import type { OutboxEntry, OutboxRecord } from './log-outbox.js';
import { PendingAppends, type PendingEntry } from './log-pending.js';

export interface RestoredHooks {
  /** A Forwarder sending `pending` (entries of `stream`) to the leader the Log follows. */
  forwarder: (pending: PendingAppends, stream: string, nextSeq: () => number) => Forwarder;
  /** A restored entry is in the log at `index`. */
  landed: (stream: string, seq: number, index: number) => void;
  /** A restored entry can never be written. */
  failed: (stream: string, seq: number, err: DgError) => void;
}

interface RestoredStream {
  stream: string;
  pending: PendingAppends;
  forwarder: Forwarder;
  record: OutboxRecord;
  /** The log is scanned at scanFrom…scanTo - 1 before anything is sent (null: done). */
  scan: { from: number; to: number } | null;
  done: (settled: boolean) => void;
}

export class RestoredStreams {
  private readonly map = new Map<string, RestoredStream>();

  constructor(private readonly hooks: RestoredHooks) {}

  /** Entries pending, of every stream. */
  get size(): number {
    let n = 0;
    for (const s of this.map.values()) n += s.pending.size;
    return n;
  }

  has(stream: string): boolean {
    return this.map.has(stream);
  }

  /**
   * Takes up `entries` of `stream` (every entry below `admitted` has counted); resolves true
   * once all have settled, false if `close` came first.
   */
  add(stream: string, entries: OutboxEntry[], record: OutboxRecord, admitted: number): Promise<boolean> {
    return new Promise((done) => {
      const pending = new PendingAppends();
      const maxSeq = entries.reduce((m, e) => Math.max(m, e.seq), 0);
      const from = entries.reduce((m, e) => Math.min(m, e.from), admitted);
      const st: RestoredStream = {
        stream,
        pending,
        record,
        forwarder: this.hooks.forwarder(pending, stream, () => maxSeq + 1),
        scan: from < admitted ? { from, to: admitted } : null,
        done,
      };
      this.map.set(stream, st);
      for (const e of entries) {
        pending.add(e.seq, e.bytes).then(
          (index) => {
            record.remove(e.seq);
            this.hooks.landed(stream, e.seq, index);
            this.finishIfDone(st);
          },
          (err: DgError) => {
            if (this.map.get(stream) !== st) return; // closed: the entry stays in the outbox
            record.remove(e.seq);
            this.hooks.failed(stream, e.seq, err);
            this.finishIfDone(st);
          },
        );
      }
    });
  }

  /** The entry `seq` of `stream` is in the log at `index` (its signature verified). */
  resolve(stream: string, seq: number, index: number): void {
    this.map.get(stream)?.pending.resolve(seq, index);
  }

  reject(stream: string, seq: number, err: DgError): void {
    this.map.get(stream)?.pending.reject(seq, err);
  }

  rejectAll(err: DgError): void {
    for (const s of [...this.map.values()]) for (const p of s.pending.all()) s.pending.reject(p.seq, err);
  }

  /** Looks for the streams' entries below the position each was taken up at (see the file comment). */
  async scan(read: (from: number) => Promise<FeedRead>): Promise<void> {
    const todo = [...this.map.values()].filter((s) => s.scan !== null);
    if (todo.length === 0) return;
    const from = Math.min(...todo.map((s) => s.scan!.from));
    const to = Math.max(...todo.map((s) => s.scan!.to));
    for (let at = from; at < to; ) {
      const r = await read(at);
      if (r.from !== at || r.entries.length === 0) throw new Error(`log read at ${at} returned nothing before ${to}`);
      for (let i = 0; i < r.entries.length && at + i < to; i++) {
        const bytes = r.entries[i]!;
        const o = decodeEntry(bytes).origin;
        const st = o === null ? undefined : this.map.get(o.stream);
        if (st === undefined || st.scan === null || at + i >= st.scan.to || !todo.includes(st)) continue;
        const mine = st.pending.bytesOf(o!.seq);
        if (mine !== undefined && bytesEqual(mine, bytes)) st.pending.resolve(o!.seq, at + i);
      }
      at += r.entries.length;
    }
    for (const s of todo) s.scan = null;
  }

  /** Entries of the scanned streams, to be sent (in stream, then seq order). */
  sendable(): { stream: string; entry: PendingEntry }[] {
    const out: { stream: string; entry: PendingEntry }[] = [];
    for (const s of this.map.values()) if (s.scan === null) for (const entry of s.pending.all()) out.push({ stream: s.stream, entry });
    return out;
  }

  /** Every pending entry (to reset their send state). */
  all(): PendingEntry[] {
    return [...this.map.values()].flatMap((s) => s.pending.all());
  }

  /** The Forwarders of the scanned streams. */
  forwarders(): Forwarder[] {
    return [...this.map.values()].filter((s) => s.scan === null).map((s) => s.forwarder);
  }

  /** The Forwarder of `stream`, once scanned. */
  forwarderOf(stream: string): Forwarder | undefined {
    const s = this.map.get(stream);
    return s?.scan === null ? s.forwarder : undefined;
  }

  /** The Log closes: entries still pending stay in the outbox. */
  close(): void {
    const all = [...this.map.values()];
    this.map.clear();
    for (const s of all) {
      s.forwarder.stop();
      s.done(false);
    }
  }

  private finishIfDone(st: RestoredStream): void {
    if (st.pending.size > 0 || this.map.get(st.stream) !== st) return;
    this.map.delete(st.stream);
    st.forwarder.stop();
    st.done(true);
  }
}
