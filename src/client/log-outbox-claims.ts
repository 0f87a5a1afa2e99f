/**
 * Which outbox records (log-outbox.ts) a Log holds: its own stream's, from its first append
 * until it closes, and those of streams left by Logs that are gone, each taken up once its
 * lock comes (never while another live Log holds it), kept while its entries are restored,
 * and removed once all of them have settled.
 */
import { sleep } from './backoff.js';
import type { KeyStorage } from './key-storage.js';
import { listIndex, OutboxRecord, outboxNames, updateIndex, type OutboxEntry } from './log-outbox.js';

export type LockingStorage = KeyStorage & Required<Pick<KeyStorage, 'lock'>>;

/**
 * Takes up a left stream's entries (their record is held meanwhile); resolves true once
 * every one has settled (the record is then removed), false when the Log closed first.
 */
export type TakeUp = (stream: string, entries: OutboxEntry[], record: OutboxRecord) => Promise<boolean>;

/** How long to wait before asking again for a stream whose lock could not be had, ms. */
const RETRY_MS = 1000;
/** How often an open Log reads the outbox index again for streams left since it opened, ms. */
export const RESCAN_MS = 5000;

export class OutboxClaims {
  private readonly names: ReturnType<typeof outboxNames>;
  private own: Promise<OutboxRecord> | null = null;
  private closed = false;
  private release!: () => void;
  private readonly closing = new Promise<void>((resolve) => (this.release = resolve));
  /** Aborted at `close`: ends the waits between reads of the index. */
  private readonly stop = new AbortController();
  /** Settles once the own stream's lock is released. */
  private ownHeld: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly storage: LockingStorage,
    where: { site: string; log: string; device: string },
    private readonly stream: string,
  ) {
    this.names = outboxNames(where.site, where.log, where.device);
  }

  /**
   * The record of this Log's own stream; the first call takes its lock (held until `close`)
   * and lists the stream in the index, so a Log opened later finds it once this one is gone.
   */
  ownRecord(): Promise<OutboxRecord> {
    if (this.own !== null) return this.own;
    const name = this.names.stream(this.stream);
    const own = new Promise<OutboxRecord>((resolve, reject) => {
      const run = this.storage.lock(name, async () => {
        const record = new OutboxRecord(this.storage, name);
        await updateIndex(this.storage, this.names.index, this.stream, true);
        resolve(record);
        await this.closing;
        // Entries still waiting stay for a later open; an empty record goes.
        await record.flush().catch(() => undefined);
        if (record.size === 0) {
          await this.storage.remove(name);
          await updateIndex(this.storage, this.names.index, this.stream, false);
        }
      });
      this.ownHeld = run.catch(reject);
    });
    this.own = own;
    own.catch(() => {
      if (this.own === own) this.own = null;
    });
    return own;
  }

  /**
   * Takes up every other stream of the index, each as its lock comes, until `close`; the
   * index is read again every RESCAN_MS, so a stream that a Log opened after this one left
   * (its Log closed, or its process died) is taken up too.
   */
  restore(take: TakeUp): void {
    const taking = new Set<string>();
    const scan = async () => {
      const streams = await listIndex(this.storage, this.names.index).catch(() => [] as string[]);
      for (const s of streams) {
        if (s === this.stream || taking.has(s) || this.closed) continue;
        taking.add(s);
        void this.takeUpStream(s, take).finally(() => taking.delete(s));
      }
    };
    void (async () => {
      while (!this.closed) {
        await scan();
        await sleep(RESCAN_MS, this.stop.signal);
      }
    })();
  }

  private async takeUpStream(stream: string, take: TakeUp): Promise<void> {
    const name = this.names.stream(stream);
    while (!this.closed) {
      try {
        await this.storage.lock(name, async () => {
          if (this.closed) return;
          // Read under the lock: what its last holder left, not what the index listed.
          const entries = await OutboxRecord.load(this.storage, name);
          const record = new OutboxRecord(this.storage, name);
          record.adopt(entries);
          const settled = entries.length === 0 || (await take(stream, entries, record));
          await record.flush().catch(() => undefined);
          if (settled && record.size === 0) {
            await this.storage.remove(name);
            await updateIndex(this.storage, this.names.index, stream, false);
          }
        }, { signal: this.stop.signal }); // a closed Log stops waiting for a live Log's lock
        return;
      } catch {
        // The lock is held by a live Log (FileKeyStorage gives up waiting after a minute),
        // or the storage failed: ask again.
        await sleep(RETRY_MS, this.stop.signal);
      }
    }
  }

  /**
   * Releases the own stream's lock once its last save is done (resolves then), and stops
   * taking up streams (a left stream being restored is released when the Log's `take` resolves).
   */
  async close(): Promise<void> {
    this.closed = true;
    this.stop.abort();
    this.release();
    await this.ownHeld;
  }
}
