/**
 * This writer's appends that are not yet known to be durable, by origin sequence number.
 * Each settles exactly once: resolved with its index when it is seen in the log (a
 * leader's acknowledgement is not enough: log-forwarder.ts), or rejected when it can never
 * land or the log closes.
 *
 * While `hold` is set (the Log is opening or recovering), an entry seen in the log leaves
 * the set at once (it is not sent again) but its promise resolves only at `release`: an
 * append resolves when the Log is ready again, never while it still says it waits.
 */
import type { DgError } from '../protocol/errors.js';

export interface PendingEntry {
  seq: number;
  /** The full entry: SDK header + payload. */
  bytes: Uint8Array;
  /** Term in which it was last queued (leader) or sent (follower); -1 when never. */
  term: number;
  /** Leader epoch it was last sent to (follower). */
  sentEpoch: number;
  sentAt: number;
  resolve: (index: number) => void;
  reject: (err: DgError) => void;
}

export class PendingAppends {
  private readonly map = new Map<number, PendingEntry>();
  /** Resolutions kept while `hold` is set (see the class comment). */
  private readonly held: (() => void)[] = [];

  constructor(
    /** Whether resolutions wait for `release` (the Log starts opening: true). */
    public hold = false,
    /** Called when an entry leaves for good: seen in the log, or never to be written (not at close). */
    private readonly gone?: (seq: number) => void,
  ) {}

  get size(): number {
    return this.map.size;
  }

  add(seq: number, bytes: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      this.map.set(seq, { seq, bytes, term: -1, sentEpoch: -1, sentAt: 0, resolve, reject });
    });
  }

  has(seq: number): boolean {
    return this.map.has(seq);
  }

  /** The bytes of pending entry `seq`. */
  bytesOf(seq: number): Uint8Array | undefined {
    return this.map.get(seq)?.bytes;
  }

  /** The entry is durable at `index`; false when it was not pending. */
  resolve(seq: number, index: number): boolean {
    const p = this.map.get(seq);
    if (p === undefined) return false;
    this.map.delete(seq);
    this.gone?.(seq);
    if (this.hold) this.held.push(() => p.resolve(index));
    else p.resolve(index);
    return true;
  }

  /** Clears `hold` and resolves what it kept, in the order the entries were seen. */
  release(): void {
    this.hold = false;
    for (const settle of this.held.splice(0)) settle();
  }

  /** The entry can never be written; false when it was not pending. */
  reject(seq: number, err: DgError): boolean {
    const p = this.map.get(seq);
    if (p === undefined) return false;
    this.map.delete(seq);
    this.gone?.(seq);
    p.reject(err);
    return true;
  }

  /** Every pending entry, in sequence order. */
  all(): PendingEntry[] {
    return [...this.map.values()];
  }

  /** The lowest pending seq, or `next` when nothing is pending. */
  floor(next: number): number {
    for (const seq of this.map.keys()) return seq;
    return next;
  }

  /**
   * Rejects every pending entry (those already seen in the log resolve: they are durable).
   * `forGood`: they can never be written (else the Log closes, and `gone` is not called).
   */
  rejectAll(err: DgError, forGood: boolean): void {
    this.release();
    const all = [...this.map.values()];
    this.map.clear();
    for (const p of all) {
      if (forGood) this.gone?.(p.seq);
      p.reject(err);
    }
  }
}
