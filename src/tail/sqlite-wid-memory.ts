/**
 * The SQLite log store's in-memory copy of its stored write ids, so that deciding a write
 * needs no query: per (log, device), the wids the `wids` table holds and the last sequence
 * number, loaded from the table the first time a batch needs them.
 *
 * It is a cache of committed state only. The store keeps it true by (1) clearing it when a
 * batch transaction fails (its in-batch changes were rolled back), and (2) clearing it when
 * another connection committed to the file since this one last looked (`PRAGMA
 * data_version`, read inside the write transaction). Bounded: at most `maxPairs` (log,
 * device) pairs, each with at most the wids the table keeps for it; the least recently used
 * pair is dropped first (and reloaded if needed again).
 */

export interface WidRecord {
  seq: number;
  at: number;
  length: number;
}

export interface DeviceWids {
  /** Highest sequence number stored for this (log, device); 0 when none. */
  seq: number;
  /** By wid, in ascending `seq` order (insertion order). */
  readonly byWid: Map<string, WidRecord>;
}

export type WidLoader = (logId: number, device: string) => Iterable<{ seq: number; wid: string; at: number; length: number }>;

export class WidMemory {
  readonly #pairs = new Map<string, DeviceWids>();
  /** The most recently used pair (a leader's writes ask for the same one again and again). */
  #last: { logId: number; device: string; d: DeviceWids } | null = null;

  constructor(
    private readonly load: WidLoader,
    private readonly maxPairs: number,
  ) {}

  /** The wids of (log, device), loading them on first use. */
  get(logId: number, device: string): DeviceWids {
    const last = this.#last;
    if (last !== null && last.logId === logId && last.device === device) return last.d;
    const d = this.#get(logId, device);
    this.#last = { logId, device, d };
    return d;
  }

  #get(logId: number, device: string): DeviceWids {
    const key = `${logId}\u0000${device}`;
    let d = this.#pairs.get(key);
    if (d !== undefined) {
      // Most recently used last, so the first key is the one to drop.
      this.#pairs.delete(key);
      this.#pairs.set(key, d);
      return d;
    }
    d = { seq: 0, byWid: new Map() };
    for (const r of this.load(logId, device)) {
      d.byWid.set(r.wid, { seq: r.seq, at: r.at, length: r.length });
      if (r.seq > d.seq) d.seq = r.seq;
    }
    this.#pairs.set(key, d);
    if (this.#pairs.size > this.maxPairs) {
      const oldest = this.#pairs.keys().next();
      if (oldest.done !== true) this.#pairs.delete(oldest.value);
    }
    return d;
  }

  /** Forgets wids with `seq` <= `upto` (they were pruned from the table). */
  static prune(d: DeviceWids, upto: number): void {
    for (const [wid, r] of d.byWid) {
      if (r.seq > upto) break;
      d.byWid.delete(wid);
    }
  }

  clear(): void {
    this.#last = null;
    this.#pairs.clear();
  }
}
