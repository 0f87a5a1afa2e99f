/**
 * The log store: tail's own store interface (SQLite now, PostgreSQL for clusters), run by
 * one conformance suite (test/conformance/log-store.ts).
 *
 * The store is the fence. Guarantees every implementation gives:
 * - A log (site, log) starts at length 0, epoch 0. Entries are append-only: entry i, once
 *   committed, never changes.
 * - `bumpEpoch` atomically increments and persists the epoch; epochs never go back.
 * - `appendBatch` decides the requests in array order inside ONE transaction. Each request
 *   commits only if the log's length (after the earlier requests of the batch) equals `at`
 *   and its epoch equals `epoch`; otherwise it writes nothing and reports the current
 *   length and epoch. A request whose (site, log, device, wid) was already committed is
 *   answered `dup` with its original position, and writes nothing.
 * - The write ids (at least the last 64 per (site, log, device)) are stored in the same
 *   transaction as the entries.
 * - When `appendBatch` resolves, every `ok` result is durable (synchronous=FULL for SQLite,
 *   a committed transaction for PostgreSQL). If it rejects, nothing of the batch is stored.
 */
export interface LogState {
  length: number;
  epoch: number;
}

export interface AppendRequest {
  site: string;
  log: string;
  at: number;
  epoch: number;
  device: string;
  wid?: string;
  entries: Buffer[];
}

export type AppendResult =
  | { status: 'ok'; at: number; length: number }
  | { status: 'dup'; at: number; length: number }
  | { status: 'nack'; length: number; epoch: number }
  | { status: 'fenced'; length: number; epoch: number };

export interface ReadResult {
  entries: Buffer[];
  length: number;
}

/** How many write ids per (site, log, device) a store keeps at least. */
export const WID_MEMORY = 64;

export interface LogStore {
  state(site: string, log: string): Promise<LogState>;
  bumpEpoch(site: string, log: string): Promise<number>;
  appendBatch(requests: AppendRequest[]): Promise<AppendResult[]>;
  /** Entries from `from`, at most `limit` of them and about `maxBytes` (always ≥ 1 entry if any). */
  read(site: string, log: string, from: number, limit: number, maxBytes: number): Promise<ReadResult>;
  /** True while the store answers (for /ready). */
  healthy(): boolean;
  close(): Promise<void>;
}
