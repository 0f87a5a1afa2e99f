/**
 * The persistent outbox of a Log (`openLog(site, log, { outbox })`): this device's appends
 * kept in a KeyStorage from before they are sent until they are seen in the log (or refused
 * for good), so that those pending when the app or process dies are written on a later open.
 *
 * Layout in the storage, per (site, log, device):
 * - `outbox:<site>/<log>/<device>`: the index, the writer streams that have a record;
 * - `outbox:<site>/<log>/<device>:<stream>`: one stream's record, its entries as
 *   `[seq, from, bytes]` (`bytes`: the full entry as sent, header, signature and sealed
 *   payload, base64url; `from`: an index of the log below which the entry cannot be).
 *
 * Ownership: a stream's record is written only by the holder of the storage lock of the same
 * name. A Log holds its own stream's lock from its first append until it closes; a Log that
 * opens takes up the other streams of the index one by one as it gets their locks, which it
 * can only while no live Log holds them (the storage's lock is released when its holder
 * dies: for FileKeyStorage once its lock file is stale, 30 s). So two clients never send the
 * same restored entries, and a live writer's entries are never taken from it.
 */
import { DgError } from '../protocol/errors.js';
import { b64urlDecode, b64urlEncode } from './bytes.js';
import type { JsonValue, KeyStorage } from './key-storage.js';

/** Entries one stream's record holds at most; over it `append` rejects with RATE_LIMITED. */
export const OUTBOX_MAX_ENTRIES = 10_000;
/** Entry bytes one stream's record holds at most; over it `append` rejects with RATE_LIMITED. */
export const OUTBOX_MAX_BYTES = 16 * 1024 * 1024;

export interface OutboxEntry {
  seq: number;
  bytes: Uint8Array;
  /** No copy of the entry is in the log below this index (the log's position when it was made). */
  from: number;
}

/** The names of (site, log, device)'s index and of its streams' records and locks. */
export function outboxNames(site: string, log: string, device: string): { index: string; stream: (s: string) => string } {
  const index = `outbox:${site}/${log}/${device}`;
  return { index, stream: (s) => `${index}:${s}` };
}

/**
 * One stream's record, held by the holder of its lock. Saves are coalesced: `add` resolves
 * once a save that holds the new entries is done; `remove` saves later (an entry removed but
 * still stored is found in the log on the next open, and not written again).
 */
export class OutboxRecord {
  private readonly entries = new Map<number, { from: number; b64: string; size: number }>();
  private bytes = 0;
  private version = 0;
  private savedVersion = 0;
  private saving: Promise<void> | null = null;

  constructor(
    private readonly storage: KeyStorage,
    readonly name: string,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The record as stored (null when there is none or it is not one). */
  static async load(storage: KeyStorage, name: string): Promise<OutboxEntry[]> {
    const v = await storage.load(name);
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !Array.isArray(v.entries)) return [];
    const out: OutboxEntry[] = [];
    for (const e of v.entries) {
      if (!Array.isArray(e) || typeof e[0] !== 'number' || typeof e[1] !== 'number' || typeof e[2] !== 'string') continue;
      const bytes = b64urlDecode(e[2]);
      if (bytes !== null) out.push({ seq: e[0], from: e[1], bytes });
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  /** Keeps `entries` (replacing any of the same seq); resolves once they are stored. */
  async add(entries: OutboxEntry[]): Promise<void> {
    let bytes = this.bytes;
    let count = this.entries.size;
    for (const e of entries) {
      const old = this.entries.get(e.seq);
      bytes += e.bytes.length - (old?.size ?? 0);
      if (old === undefined) count++;
    }
    if (count > OUTBOX_MAX_ENTRIES || bytes > OUTBOX_MAX_BYTES) {
      throw new DgError('RATE_LIMITED', `outbox full: at most ${OUTBOX_MAX_ENTRIES} entries and ${OUTBOX_MAX_BYTES} bytes wait per writer`);
    }
    for (const e of entries) this.put(e);
    try {
      await this.flush();
    } catch (err) {
      // Not stored: forget them, so the next save does not store entries never sent.
      for (const e of entries) this.remove(e.seq);
      throw new DgError('UNAVAILABLE', 'the outbox could not store the entries', { cause: err });
    }
  }

  /** Takes entries already stored (a restored record): no save. */
  adopt(entries: OutboxEntry[]): void {
    for (const e of entries) this.put(e);
    this.savedVersion = this.version;
  }

  remove(seq: number): void {
    const old = this.entries.get(seq);
    if (old === undefined) return;
    this.entries.delete(seq);
    this.bytes -= old.size;
    this.version++;
    void this.flush().catch(() => undefined);
  }

  /** Resolves once what the record holds now is stored. */
  async flush(): Promise<void> {
    while (this.savedVersion < this.version) {
      if (this.saving === null) {
        const v = this.version;
        const value: JsonValue = { entries: [...this.entries].map(([seq, e]) => [seq, e.from, e.b64]) };
        this.saving = this.storage.save(this.name, value).then(
          () => {
            this.savedVersion = Math.max(this.savedVersion, v);
            this.saving = null;
          },
          (err: unknown) => {
            this.saving = null;
            throw err;
          },
        );
      }
      await this.saving;
    }
  }

  private put(e: OutboxEntry): void {
    const old = this.entries.get(e.seq);
    this.bytes += e.bytes.length - (old?.size ?? 0);
    this.entries.set(e.seq, { from: e.from, b64: b64urlEncode(e.bytes), size: e.bytes.length });
    this.version++;
  }
}

/** Adds (`add`: true) or removes `stream` in the index, under the index's lock. */
export async function updateIndex(storage: KeyStorage & Required<Pick<KeyStorage, 'lock'>>, index: string, stream: string, add: boolean): Promise<void> {
  await storage.lock(index, async () => {
    const streams = await listIndex(storage, index);
    const has = streams.includes(stream);
    if (has === add) return;
    const next = add ? [...streams, stream] : streams.filter((s) => s !== stream);
    if (next.length === 0) await storage.remove(index);
    else await storage.save(index, next);
  });
}

export async function listIndex(storage: KeyStorage, index: string): Promise<string[]> {
  const v = await storage.load(index);
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : [];
}
