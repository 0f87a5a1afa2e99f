/**
 * The SQLite log store (the monolith's store): one file, WAL, `synchronous=FULL`, so a
 * resolved `appendBatch` has reached the disk. better-sqlite3 is synchronous: each call
 * runs to completion on the event loop, which makes every batch one serial transaction
 * and leaves the group committer to amortize the fsync over many writes.
 *
 * Schema (versioned with `PRAGMA user_version`, migrated on open):
 * - logs(id, site, log, length, epoch): one row per log that was ever written or leased;
 *   `id` is a small integer so the entries and write ids are keyed by it, not by two
 *   strings repeated in every row.
 * - entries(log_id, idx, data) WITHOUT ROWID: a log's entries are one contiguous key range,
 *   so reads are a single range scan and appends go to the end of that range.
 * - wids(log_id, device, seq, wid, at, length): the last WID_MEMORY write ids per
 *   (log, device), numbered by `seq`; older ones are pruned in the appending transaction.
 */
import Database from 'better-sqlite3';
import { DgError } from '../protocol/errors.js';
import {
  WID_MEMORY,
  beyondEnd,
  checkAppendBatch,
  checkLogName,
  checkReadArgs,
  storeClosed,
  type AppendRequest,
  type AppendResult,
  type LogState,
  type LogStore,
  type ReadResult,
} from './log-store.js';

/** Migrations, in order; entry i brings the schema from version i to i + 1. Never edit one. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE logs (
    id     INTEGER PRIMARY KEY,
    site   TEXT    NOT NULL,
    log    TEXT    NOT NULL,
    length INTEGER NOT NULL DEFAULT 0 CHECK (length >= 0),
    epoch  INTEGER NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    UNIQUE (site, log)
  );
  CREATE TABLE entries (
    log_id INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    data   BLOB    NOT NULL,
    PRIMARY KEY (log_id, idx)
  ) WITHOUT ROWID;
  CREATE TABLE wids (
    log_id INTEGER NOT NULL,
    device TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    wid    TEXT    NOT NULL,
    at     INTEGER NOT NULL,
    length INTEGER NOT NULL,
    PRIMARY KEY (log_id, device, seq)
  ) WITHOUT ROWID;
  CREATE UNIQUE INDEX wids_by_wid ON wids (log_id, device, wid);
  `,
];

/** Old write ids are pruned every this many writes of a (log, device). */
const PRUNE_EVERY = 16;

/** The schema version this code writes. */
export const SQLITE_LOG_SCHEMA_VERSION = MIGRATIONS.length;

export interface SqliteLogStoreOptions {
  /**
   * How long a write waits for another connection's lock on the file before it fails with
   * UNAVAILABLE (default 5 000 ms). Only another process (a backup, an operator's shell)
   * ever holds one: the store itself uses one connection.
   */
  busyTimeoutMs?: number;
}

interface LogRow {
  id: number;
  length: number;
  epoch: number;
}

/** SQLite result codes that mean "the storage is not usable right now", not a bug. */
const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|READONLY|NOMEM|PROTOCOL)/;

function isUnavailable(err: unknown): boolean {
  return err instanceof Database.SqliteError && UNAVAILABLE_CODES.test(err.code);
}

function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true });
  if (typeof version !== 'number' || version > MIGRATIONS.length) {
    throw new Error(`log store schema version ${String(version)} is newer than this server (${MIGRATIONS.length})`);
  }
  if (version === MIGRATIONS.length) return;
  db.transaction(() => {
    for (let v = version; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v] as string);
      db.pragma(`user_version = ${v + 1}`);
    }
  }).immediate();
}

export class SqliteLogStore implements LogStore {
  private readonly db: Database.Database;
  private closed = false;
  /** False after a storage failure, true again after the next success (for /ready). */
  private ok = true;

  private readonly getLog: Database.Statement<[string, string], LogRow>;
  private readonly createLog: Database.Statement<[string, string], LogRow>;
  private readonly findWid: Database.Statement<[number, string, string], { at: number; length: number }>;
  private readonly insertEntry: Database.Statement<[number, number, Buffer]>;
  private readonly setLength: Database.Statement<[number, number]>;
  private readonly maxSeq: Database.Statement<[number, string], number>;
  private readonly insertWid: Database.Statement<[number, string, number, string, number, number]>;
  private readonly pruneWids: Database.Statement<[number, string, number]>;
  private readonly bump: Database.Statement<[string, string], number>;
  private readonly readEntries: Database.Statement<[number, number, number], Buffer>;

  private readonly appendTx: (requests: AppendRequest[]) => AppendResult[];
  private readonly bumpTx: (site: string, log: string) => number;

  constructor(path: string, options: SqliteLogStoreOptions = {}) {
    const db = new Database(path, { timeout: options.busyTimeoutMs ?? 5000 });
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      migrate(db);
    } catch (err) {
      db.close();
      throw err;
    }
    this.db = db;

    this.getLog = db.prepare('SELECT id, length, epoch FROM logs WHERE site = ? AND log = ?');
    this.createLog = db.prepare('INSERT INTO logs (site, log) VALUES (?, ?) RETURNING id, length, epoch');
    this.findWid = db.prepare('SELECT at, length FROM wids WHERE log_id = ? AND device = ? AND wid = ?');
    this.insertEntry = db.prepare('INSERT INTO entries (log_id, idx, data) VALUES (?, ?, ?)');
    this.setLength = db.prepare('UPDATE logs SET length = ? WHERE id = ?');
    this.maxSeq = db.prepare<[number, string], number>('SELECT COALESCE(MAX(seq), 0) FROM wids WHERE log_id = ? AND device = ?').pluck();
    this.insertWid = db.prepare('INSERT INTO wids (log_id, device, seq, wid, at, length) VALUES (?, ?, ?, ?, ?, ?)');
    this.pruneWids = db.prepare('DELETE FROM wids WHERE log_id = ? AND device = ? AND seq <= ?');
    this.bump = db
      .prepare<[string, string], number>(
        `INSERT INTO logs (site, log, epoch) VALUES (?, ?, 1)
         ON CONFLICT (site, log) DO UPDATE SET epoch = epoch + 1 RETURNING epoch`,
      )
      .pluck();
    this.readEntries = db
      .prepare<[number, number, number], Buffer>('SELECT data FROM entries WHERE log_id = ? AND idx >= ? ORDER BY idx LIMIT ?')
      .pluck();

    const appendTx = db.transaction((requests: AppendRequest[]) => this.decide(requests));
    this.appendTx = (requests) => appendTx.immediate(requests);
    const bumpTx = db.transaction((site: string, log: string) => this.bump.get(site, log) as number);
    this.bumpTx = (site, log) => bumpTx.immediate(site, log);
  }

  /** Runs inside the batch transaction: decides each request in order (see LogStore). */
  private decide(requests: AppendRequest[]): AppendResult[] {
    // The log rows this batch touched, with their length as the batch goes on; written back
    // once per log at the end of the batch.
    const touched = new Map<string, LogRow & { dirty: boolean }>();
    // The last wid sequence number per (log, device) written in this batch.
    const seqs = new Map<string, number>();
    const results: AppendResult[] = [];
    for (const req of requests) {
      const key = `${req.site}\u0000${req.log}`;
      let row = touched.get(key);
      if (row === undefined) {
        const found = this.getLog.get(req.site, req.log);
        if (found !== undefined) {
          row = { ...found, dirty: false };
          touched.set(key, row);
        }
      }
      if (row !== undefined && req.wid !== undefined) {
        const prior = this.findWid.get(row.id, req.device, req.wid);
        if (prior !== undefined) {
          results.push({ status: 'dup', at: prior.at, length: prior.length });
          continue;
        }
      }
      const epoch = row?.epoch ?? 0;
      const length = row?.length ?? 0;
      if (req.epoch !== epoch) {
        results.push({ status: 'fenced', length, epoch });
        continue;
      }
      if (req.at !== length) {
        results.push({ status: 'nack', length, epoch });
        continue;
      }
      if (row === undefined) {
        row = { ...(this.createLog.get(req.site, req.log) as LogRow), dirty: false };
        touched.set(key, row);
      }
      let idx = req.at;
      for (const data of req.entries) this.insertEntry.run(row.id, idx++, data);
      row.length = idx;
      row.dirty = true;
      if (req.wid !== undefined) {
        const seqKey = `${row.id}\u0000${req.device}`;
        const seq = (seqs.get(seqKey) ?? (this.maxSeq.get(row.id, req.device) as number)) + 1;
        seqs.set(seqKey, seq);
        this.insertWid.run(row.id, req.device, seq, req.wid, req.at, idx);
        // Pruning in steps of PRUNE_EVERY keeps between WID_MEMORY and WID_MEMORY +
        // PRUNE_EVERY wids, for one delete statement per PRUNE_EVERY writes.
        if (seq % PRUNE_EVERY === 0 && seq > WID_MEMORY) this.pruneWids.run(row.id, req.device, seq - WID_MEMORY);
      }
      results.push({ status: 'ok', at: req.at, length: idx });
    }
    for (const row of touched.values()) if (row.dirty) this.setLength.run(row.length, row.id);
    return results;
  }

  private open(): void {
    if (this.closed) throw storeClosed();
  }

  /** Runs one call against the database, mapping storage failures and tracking health. */
  private guard<T>(fn: () => T): T {
    try {
      const out = fn();
      this.ok = true;
      return out;
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      this.ok = false;
      throw new DgError('UNAVAILABLE', 'log store is unavailable', { cause: err });
    }
  }

  async state(site: string, log: string): Promise<LogState> {
    this.open();
    checkLogName(site, log);
    const row = this.guard(() => this.getLog.get(site, log));
    return { length: row?.length ?? 0, epoch: row?.epoch ?? 0 };
  }

  async bumpEpoch(site: string, log: string): Promise<number> {
    this.open();
    checkLogName(site, log);
    return this.guard(() => this.bumpTx(site, log));
  }

  async appendBatch(requests: AppendRequest[]): Promise<AppendResult[]> {
    this.open();
    checkAppendBatch(requests);
    if (requests.length === 0) return [];
    return this.guard(() => this.appendTx(requests));
  }

  async read(site: string, log: string, from: number, limit: number, maxBytes: number): Promise<ReadResult> {
    this.open();
    const clamped = checkReadArgs(site, log, from, limit, maxBytes);
    // No transaction needed: the connection is used synchronously, so no commit can land
    // between reading the length and reading the entries.
    const row = this.guard(() => this.getLog.get(site, log));
    const length = row?.length ?? 0;
    if (from > length) throw beyondEnd(from, length);
    const entries: Buffer[] = [];
    if (row === undefined || from === length) return { entries, length };
    this.guard(() => {
      let bytes = 0;
      for (const data of this.readEntries.iterate(row.id, from, clamped.limit)) {
        if (entries.length > 0 && bytes + data.length > clamped.maxBytes) break;
        bytes += data.length;
        entries.push(data);
      }
    });
    return { entries, length };
  }

  healthy(): boolean {
    return !this.closed && this.ok && this.db.open;
  }

  /** The durability settings of this store's own connection (for diagnostics and tests). */
  settings(): { journalMode: string; synchronous: number } {
    this.open();
    return {
      journalMode: String(this.db.pragma('journal_mode', { simple: true })),
      synchronous: Number(this.db.pragma('synchronous', { simple: true })),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

/**
 * Opens (creating if needed) the log store in the SQLite file at `path`, migrating its
 * schema. Throws if the file cannot be opened or holds a newer schema.
 *
 * @example
 *   const store = openSqliteLogStore(join(dataDir, 'tail.db'));
 *   const [r] = await store.appendBatch([{ site, log, at: 0, epoch: 0, device, entries: [buf] }]);
 */
export function openSqliteLogStore(path: string, options?: SqliteLogStoreOptions): LogStore {
  return new SqliteLogStore(path, options);
}
