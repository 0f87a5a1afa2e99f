/**
 * The SQLite log store (the monolith's store): one file, WAL, `synchronous=FULL`, so a
 * resolved `appendBatch` has reached the disk. better-sqlite3 is synchronous: each call
 * runs to completion on the event loop, which makes every batch one serial transaction
 * and leaves the group committer to amortize the fsync over many writes.
 *
 * The schema (sqlite-log-schema.ts) keeps one row per write, its entries packed in one
 * blob, so a batch costs a few statements per write whatever the number of entries: the
 * chunk, the write id (decided against an in-memory copy of the stored ones,
 * sqlite-wid-memory.ts, so no query precedes it), a prune every PRUNE_EVERY writes of a
 * (log, device), and the new length once per log per batch.
 */
import Database from 'better-sqlite3';
import { DgError } from '../protocol/errors.js';
import { isSqliteStorageFailure, sqliteDamage } from '../protocol/sqlite-failure.js';
import { isPackOf, packEntries, unpackEntries } from './entry-pack.js';
import {
  EPOCH_LIFT,
  WID_MEMORY,
  checkLift,
  epochTimeFloor,
  beyondEnd,
  checkAppendBatch,
  checkDevice,
  checkEpoch,
  checkLeader,
  checkLogName,
  checkReadArgs,
  leaderOfRow,
  storeClosed,
  type AppendRequest,
  type AppendResult,
  type LeaderRecord,
  type LogState,
  type LogStore,
  type ReadResult,
  type StoredWid,
} from './log-store.js';
import { SQLITE_LOG_SCHEMA_VERSION, migrateLogSchema } from './sqlite-log-schema.js';
import { WidMemory } from './sqlite-wid-memory.js';
import { DamageRecord, type StoreDamage } from './store-damage.js';

export { SQLITE_LOG_SCHEMA_VERSION };

/**
 * Old write ids are pruned every this many writes of a (log, device): the table keeps
 * between WID_MEMORY and WID_MEMORY + PRUNE_EVERY of them, for one delete per PRUNE_EVERY writes.
 */
const PRUNE_EVERY = 64;

/** (log, device) pairs whose write ids are kept in memory. */
const WID_MEMORY_PAIRS = 4096;

export interface SqliteLogStoreOptions {
  /**
   * How long a write waits for another connection's lock on the file before it fails with
   * UNAVAILABLE (default 5 000 ms). Only another process (a backup, an operator's shell)
   * ever holds one: the store itself uses one connection.
   */
  busyTimeoutMs?: number;
}

interface StateRow {
  length: number;
  epoch: number;
  leader: string | null;
  leader_user: string | null;
}

function stateOf(row: StateRow): LogState {
  const leader = leaderOfRow(row.leader, row.leader_user);
  return leader === undefined ? { length: row.length, epoch: row.epoch } : { length: row.length, epoch: row.epoch, leader };
}

interface LogRow {
  id: number;
  length: number;
  epoch: number;
}

/**
 * The chunks of a log contradict themselves or its length (a gap, a missing chunk, a blob
 * that does not unpack): SQLite read them without complaint, but they are as damaged as a
 * corrupt page.
 */
class DamagedChunks extends Error {
  override name = 'DamagedChunks';
}

/** The reason a failure shows damaged storage (the SQLite code, without its extension), or null. */
function damageOf(err: unknown): string | null {
  if (err instanceof DamagedChunks) return 'damaged chunks';
  return sqliteDamage(err);
}

export class SqliteLogStore implements LogStore {
  private readonly db: Database.Database;
  private closed = false;
  /** False after a storage failure, true again after the next success (for /ready). */
  private ok = true;
  /** Damage found by a call (store-damage.ts): kept until the store is closed. */
  private readonly damaged = new DamageRecord();
  /** `PRAGMA data_version` when this connection last looked: a change means another connection committed. */
  private dataVersion = -1;

  private readonly getLog: Database.Statement<[string, string], LogRow>;
  private readonly createLog: Database.Statement<[string, string], LogRow>;
  private readonly insertChunk: Database.Statement<[number, number, Buffer]>;
  private readonly setLength: Database.Statement<[number, number]>;
  private readonly loadWids: Database.Statement<[number, string], { seq: number; wid: string; at: number; length: number }>;
  private readonly insertWid: Database.Statement<[number, string, number, string, number, number]>;
  private readonly pruneWids: Database.Statement<[number, string, number]>;
  private readonly bump: Database.Statement<[string, string, string | null, string | null], number>;
  private readonly getState: Database.Statement<[string, string], StateRow>;
  private readonly endTx: (site: string, log: string, epoch: number) => number;
  private readonly readChunks: Database.Statement<[number, number, number], { first: number; data: Buffer }>;
  private readonly wids: WidMemory;

  private readonly appendTx: (requests: AppendRequest[]) => AppendResult[];
  private readonly bumpTx: (site: string, log: string, device: string | null, user: string | null) => number;
  private readonly liftTx: (now: number) => number;

  constructor(path: string, options: SqliteLogStoreOptions = {}) {
    const db = new Database(path, { timeout: options.busyTimeoutMs ?? 5000 });
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      migrateLogSchema(db);
    } catch (err) {
      db.close();
      throw err;
    }
    this.db = db;

    this.getLog = db.prepare('SELECT id, length, epoch FROM logs WHERE site = ? AND log = ?');
    this.createLog = db.prepare('INSERT INTO logs (site, log) VALUES (?, ?) RETURNING id, length, epoch');
    this.insertChunk = db.prepare('INSERT INTO chunks (log_id, first, data) VALUES (?, ?, ?)');
    this.setLength = db.prepare('UPDATE logs SET length = ? WHERE id = ?');
    this.loadWids = db.prepare('SELECT seq, wid, at, length FROM wids WHERE log_id = ? AND device = ? ORDER BY seq');
    this.insertWid = db.prepare('INSERT INTO wids (log_id, device, seq, wid, at, length) VALUES (?, ?, ?, ?, ?, ?)');
    this.pruneWids = db.prepare('DELETE FROM wids WHERE log_id = ? AND device = ? AND seq <= ?');
    this.bump = db
      .prepare<[string, string, string | null, string | null], number>(
        `INSERT INTO logs (site, log, epoch, leader, leader_user) VALUES (?, ?, (SELECT floor FROM epoch_floor) + 1, ?, ?)
         ON CONFLICT (site, log) DO UPDATE
         SET epoch = MAX(epoch, (SELECT floor FROM epoch_floor)) + 1, leader = excluded.leader, leader_user = excluded.leader_user
         RETURNING epoch`,
      )
      .pluck();
    this.getState = db.prepare('SELECT length, epoch, leader, leader_user FROM logs WHERE site = ? AND log = ?');
    // The chunk holding `from` (the greatest first <= from) and every later one, in order.
    this.readChunks = db.prepare(
      `SELECT first, data FROM chunks WHERE log_id = ? AND first >= COALESCE(
         (SELECT first FROM chunks WHERE log_id = ? AND first <= ? ORDER BY first DESC LIMIT 1), 0)
       ORDER BY first`,
    );
    this.wids = new WidMemory((logId, device) => this.loadWids.iterate(logId, device), WID_MEMORY_PAIRS);
    const dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();

    const appendTx = db.transaction((requests: AppendRequest[]) => {
      // Inside the write lock: if another connection committed since this one last looked,
      // the cached write ids may be stale.
      const v = dataVersion.get() as number;
      if (v !== this.dataVersion) {
        this.wids.clear();
        this.dataVersion = v;
      }
      return this.decide(requests);
    });
    this.appendTx = (requests) => {
      try {
        return appendTx.immediate(requests);
      } catch (err) {
        // Rolled back: the cache may hold write ids of this batch that were never stored.
        this.wids.clear();
        throw err;
      }
    };
    const bumpTx = db.transaction((site: string, log: string, device: string | null, user: string | null) => this.bump.get(site, log, device, user) as number);
    this.bumpTx = (site, log, device, user) => bumpTx.immediate(site, log, device, user);
    const unlead = db
      .prepare<[string, string, number], number>(
        `UPDATE logs SET epoch = MAX(epoch, (SELECT floor FROM epoch_floor)) + 1, leader = NULL, leader_user = NULL
         WHERE site = ? AND log = ? AND epoch = ? RETURNING epoch`,
      )
      .pluck();
    const endTx = db.transaction((site: string, log: string, epoch: number) => (unlead.get(site, log, epoch) as number | undefined) ?? this.getState.get(site, log)?.epoch ?? 0);
    this.endTx = (site, log, epoch) => endTx.immediate(site, log, epoch);
    const span = db.prepare<[], { n: number; top: number }>(
      'SELECT COUNT(*) AS n, MAX(COALESCE(MAX(epoch), 0), (SELECT floor FROM epoch_floor)) AS top FROM logs',
    );
    const lift = db.prepare<[number, number]>('UPDATE logs SET epoch = MAX(epoch + ?, ?)');
    const liftFloor = db.prepare<[number, number]>('UPDATE epoch_floor SET floor = MAX(floor + ?, ?)');
    const liftTx = db.transaction((now: number) => {
      const { n, top } = span.get() as { n: number; top: number };
      const floor = epochTimeFloor(now);
      checkLift(top, floor);
      lift.run(EPOCH_LIFT, floor);
      liftFloor.run(EPOCH_LIFT, floor);
      return n;
    });
    this.liftTx = (now) => liftTx.immediate(now);
  }

  /** Runs inside the batch transaction: decides each request in order (see LogStore). */
  private decide(requests: AppendRequest[]): AppendResult[] {
    // The log rows this batch touched, with their length as the batch goes on; written back
    // once per log at the end of the batch.
    const touched = new Map<string, LogRow & { dirty: boolean }>();
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
      const mine = row !== undefined && req.wid !== undefined ? this.wids.get(row.id, req.device) : undefined;
      if (mine !== undefined && req.wid !== undefined) {
        const prior = mine.byWid.get(req.wid);
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
      const end = req.at + req.entries.length;
      // An empty write stores no chunk: its `first` would be the next write's.
      if (end > req.at) {
        const packed = req.packed !== undefined && isPackOf(req.packed, req.entries) ? req.packed : packEntries(req.entries);
        this.insertChunk.run(row.id, req.at, packed);
      }
      row.length = end;
      row.dirty = true;
      if (req.wid !== undefined) {
        const d = mine ?? this.wids.get(row.id, req.device);
        const seq = ++d.seq;
        this.insertWid.run(row.id, req.device, seq, req.wid, req.at, end);
        d.byWid.set(req.wid, { seq, at: req.at, length: end });
        if (seq % PRUNE_EVERY === 0 && seq > WID_MEMORY) {
          this.pruneWids.run(row.id, req.device, seq - WID_MEMORY);
          WidMemory.prune(d, seq - WID_MEMORY);
        }
      }
      results.push({ status: 'ok', at: req.at, length: end });
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
      const damage = damageOf(err);
      if (damage !== null) throw this.damaged.failed(damage, err);
      // Damage is told apart above; the other storage failures are "not usable right now".
      if (!isSqliteStorageFailure(err)) throw err;
      this.ok = false;
      throw new DgError('UNAVAILABLE', 'log store is unavailable', { cause: err });
    }
  }

  async state(site: string, log: string): Promise<LogState> {
    this.open();
    checkLogName(site, log);
    const row = this.guard(() => this.getState.get(site, log));
    if (row === undefined) return { length: 0, epoch: 0 };
    return stateOf(row);
  }

  async bumpEpoch(site: string, log: string, leader?: LeaderRecord): Promise<number> {
    this.open();
    checkLogName(site, log);
    checkLeader(leader);
    return this.guard(() => this.bumpTx(site, log, leader?.device ?? null, leader?.user ?? null));
  }

  async endEpoch(site: string, log: string, epoch: number): Promise<number> {
    this.open();
    checkLogName(site, log);
    checkEpoch(epoch);
    return this.guard(() => this.endTx(site, log, epoch));
  }

  async liftEpochs(now = Date.now()): Promise<number> {
    this.open();
    return this.guard(() => this.liftTx(now));
  }

  async appendBatch(requests: AppendRequest[]): Promise<AppendResult[]> {
    this.open();
    checkAppendBatch(requests);
    if (requests.length === 0) return [];
    return this.guard(() => this.appendTx(requests));
  }

  async recentWids(site: string, log: string, device: string): Promise<StoredWid[]> {
    this.open();
    checkLogName(site, log);
    checkDevice(device);
    return this.guard(() => {
      const row = this.getLog.get(site, log);
      if (row === undefined) return [];
      return this.loadWids.all(row.id, device).map((w) => ({ wid: w.wid, at: w.at, length: w.length }));
    });
  }

  async read(site: string, log: string, from: number, limit: number, maxBytes: number): Promise<ReadResult> {
    this.open();
    const clamped = checkReadArgs(site, log, from, limit, maxBytes);
    // No transaction needed: the connection is used synchronously, so no commit of this
    // store can land between reading the length and reading the entries (and chunks that
    // another connection committed since are cut off at `length`).
    const row = this.guard(() => this.getLog.get(site, log));
    const length = row?.length ?? 0;
    if (from > length) throw beyondEnd(from, length);
    const entries: Buffer[] = [];
    if (row === undefined || from === length) return { entries, length };
    this.guard(() => {
      const budget = { bytes: 0, max: clamped.maxBytes };
      // The first chunk must hold `from`, and each next one start where the last ended.
      let next = -1;
      for (const chunk of this.readChunks.iterate(row.id, row.id, from)) {
        if (chunk.first >= length) break; // committed by another connection after `length` was read
        if (next < 0 ? chunk.first > from : chunk.first !== next) throw new DamagedChunks(`log store: the chunks of log ${row.id} leave a gap at ${Math.max(next, from)}`);
        try {
          next = unpackEntries(chunk.data, chunk.first, from, clamped.limit, budget, entries);
        } catch (err) {
          throw new DamagedChunks(`log store: the chunk at ${chunk.first} of log ${row.id} does not unpack`, { cause: err });
        }
        if (next < 0) break;
      }
      if (entries.length === 0) throw new DamagedChunks(`log store: no chunk holds entry ${from} of log ${row.id}`);
    });
    return { entries, length };
  }

  healthy(): boolean {
    return !this.closed && this.ok && this.db.open && this.damaged.report() === null;
  }

  damage(): StoreDamage | null {
    return this.damaged.report();
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
