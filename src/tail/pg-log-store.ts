/**
 * The PostgreSQL log store (clusters): any number of tail nodes share one database, and the
 * database is the fence. Each batch is one READ COMMITTED transaction that first locks the
 * rows of all its logs (`SELECT … FOR UPDATE`, in sorted order), then decides every request
 * against the locked lengths and epochs and the stored write ids, then stores what it
 * accepted. Two nodes that both believe they lead a log (one of them a zombie) serialize on
 * that row and the loser is nacked or fenced: a log can never be corrupted.
 *
 * Tables live in `options.schema` (default `public`), prefixed `tail_`, created and
 * migrated on open under an advisory lock so nodes starting together do not race:
 * tail_schema(version), tail_logs(id, site, log, length, epoch, leader, leader_user),
 * tail_entries(log_id, idx, data), tail_wids(log_id, device, seq, wid, at, length).
 *
 * A lost connection while COMMIT is in flight leaves the outcome unknown: the batch rejects
 * with UNAVAILABLE although it may have committed. Callers re-read the log's state before
 * deciding further writes, and resend with the same write ids (answered `dup` if stored).
 */
import pg from 'pg';
import { DgError } from '../protocol/errors.js';
import { checkOut } from '../protocol/pg-checkout.js';
import { pgFailure, pgStoreError } from '../protocol/pg-failure.js';
import { pgLogMigrations, pgLogQueries, type PgLogQueries } from './pg-log-store-sql.js';
import { DamageRecord, type StoreDamage } from './store-damage.js';
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

export interface PgLogStoreOptions {
  /** Schema that holds the tables; created if missing (default `public`). */
  schema?: string;
  /** Most connections (default 10). */
  poolSize?: number;
  /** Longest a statement may run before it is cancelled (default 15 000 ms). */
  statementTimeoutMs?: number;
  /** Longest to wait for a connection (default 5 000 ms). */
  connectTimeoutMs?: number;
  /** How often health is probed with `SELECT 1` (default 5 000 ms). */
  healthIntervalMs?: number;
}

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;
/** Deadlock and serialization failures: the transaction rolled back, so the batch is retried. */
const RETRY_CODES = new Set(['40P01', '40001']);
const MAX_ATTEMPTS = 3;

function num(v: unknown): number {
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new Error(`log store: not a safe integer: ${String(v)}`);
  return n;
}

/** A failure of the database (pg-failure.ts) as UNAVAILABLE; anything else is a bug. */
function mapError(err: unknown): unknown {
  return pgStoreError('log store', err);
}

interface LockedLog {
  id: number;
  length: number;
  epoch: number;
  /** The batch moved its length. */
  dirty?: boolean;
}

class PgLogStore implements LogStore {
  private readonly pool: pg.Pool;
  private readonly q: PgLogQueries;
  private closed = false;
  private ok = true;
  /** Damage PostgreSQL reported (store-damage.ts): kept until the store is closed. */
  private readonly damaged = new DamageRecord();
  private probe: NodeJS.Timeout | undefined;

  constructor(pool: pg.Pool, schema: string) {
    this.pool = pool;
    this.q = pgLogQueries(schema);
  }

  startProbe(intervalMs: number): void {
    this.probe = setInterval(() => {
      this.pool.query('SELECT 1').then(
        () => void (this.ok = true),
        () => void (this.ok = false),
      );
    }, intervalMs);
    this.probe.unref();
  }

  markDown(): void {
    this.ok = false;
  }

  /** Runs one call, mapping failures and keeping the health flag current. */
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw storeClosed();
    try {
      const out = await fn();
      this.ok = true;
      return out;
    } catch (err) {
      const kind = pgFailure(err);
      if (kind === 'damaged') throw this.damaged.failed((err as { code: string }).code, err);
      if (kind === 'down') this.ok = false;
      throw mapError(err);
    }
  }

  async state(site: string, log: string): Promise<LogState> {
    checkLogName(site, log);
    return this.run(async () => {
      const { rows } = await this.pool.query({ ...this.q.state, values: [site, log] });
      const row = rows[0] as { length: string; epoch: string; leader: string | null; leader_user: string | null } | undefined;
      if (row === undefined) return { length: 0, epoch: 0 };
      const st: LogState = { length: num(row.length), epoch: num(row.epoch) };
      const leader = leaderOfRow(row.leader, row.leader_user);
      if (leader !== undefined) st.leader = leader;
      return st;
    });
  }

  async bumpEpoch(site: string, log: string, leader?: LeaderRecord): Promise<number> {
    checkLogName(site, log);
    checkLeader(leader);
    return this.run(async () => {
      // A single upsert is its own transaction: the increment is atomic and durable.
      const { rows } = await this.pool.query({ ...this.q.bump, values: [site, log, leader?.device ?? null, leader?.user ?? null] });
      return num((rows[0] as { epoch: string }).epoch);
    });
  }

  async endEpoch(site: string, log: string, epoch: number): Promise<number> {
    checkLogName(site, log);
    checkEpoch(epoch);
    return this.run(async () => {
      const { rows } = await this.pool.query({ ...this.q.unlead, values: [site, log, epoch] });
      const row = rows[0] as { epoch: string } | undefined;
      return row === undefined ? 0 : num(row.epoch);
    });
  }

  async liftEpochs(now = Date.now()): Promise<number> {
    const floor = epochTimeFloor(now);
    checkLift(0, floor);
    return this.run(async () => {
      const { rows } = await this.pool.query({ ...this.q.lift, values: [EPOCH_LIFT, Number.MAX_SAFE_INTEGER, floor] });
      const r = rows[0] as { n: string; top: string; floored: string };
      if (num(r.floored) !== 1) throw new Error(`log store: epoch ${r.top} cannot be lifted by ${EPOCH_LIFT} and stay a safe integer`);
      return num(r.n);
    });
  }

  async appendBatch(requests: AppendRequest[]): Promise<AppendResult[]> {
    if (this.closed) throw storeClosed();
    checkAppendBatch(requests);
    if (requests.length === 0) return [];
    return this.run(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.transaction((c) => this.decide(c, requests));
        } catch (err) {
          const code = (err as { code?: unknown }).code;
          if (attempt >= MAX_ATTEMPTS || typeof code !== 'string' || !RETRY_CODES.has(code)) throw err;
        }
      }
    });
  }

  private async transaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const held = await checkOut(this.pool);
    const client = held.client;
    let broken: Error | undefined;
    try {
      await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
      try {
        const out = await fn(client);
        await client.query('COMMIT');
        return out;
      } catch (err) {
        await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
          // The connection is gone; the server rolls back on its own. Drop the client.
          broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
        });
        throw err;
      }
    } finally {
      held.release(broken);
    }
  }

  /**
   * Locks the rows of every log of the batch, creating the missing ones, and returns them.
   * Existing rows are locked in sorted order, then new ones are created in sorted order, so
   * concurrent batches queue instead of deadlocking (the rare deadlock left, with a row
   * committed between the two steps, is retried by `appendBatch`).
   */
  private async lockLogs(c: pg.PoolClient, requests: AppendRequest[]): Promise<Map<string, LockedLog>> {
    const keys = new Map<string, [string, string]>();
    for (const r of requests) keys.set(`${r.site}\u0000${r.log}`, [r.site, r.log]);
    const locked = new Map<string, LockedLog>();
    const lock = async (pairs: [string, string][]) => {
      const { rows } = await c.query({ ...this.q.lockAll, values: [pairs.map((p) => p[0]), pairs.map((p) => p[1])] });
      for (const r of rows as { id: string; site: string; log: string; length: string; epoch: string }[]) {
        locked.set(`${r.site}\u0000${r.log}`, { id: num(r.id), length: num(r.length), epoch: num(r.epoch) });
      }
    };
    await lock([...keys.values()]);
    if (locked.size < keys.size) {
      const missing = [...keys].filter(([k]) => !locked.has(k)).map(([, pair]) => pair);
      await c.query({ ...this.q.createAll, values: [missing.map((p) => p[0]), missing.map((p) => p[1])] });
      await lock(missing);
      if (locked.size < keys.size) throw new Error('log store: a log row vanished while locking');
    }
    return locked;
  }

  /**
   * The write ids the batch mentions that are already stored, and the last wid sequence
   * number of each (log, device) that sends a wid. Runs after the row locks, so its snapshot
   * holds every wid ever committed for these logs.
   */
  private async knownWids(c: pg.PoolClient, requests: AppendRequest[], locked: Map<string, LockedLog>) {
    const prior = new Map<string, { at: number; length: number }>();
    const lastSeq = new Map<string, number>();
    const w: [number[], string[], string[]] = [[], [], []];
    const pairs = new Map<string, [number, string]>();
    for (const r of requests) {
      if (r.wid === undefined) continue;
      const id = (locked.get(`${r.site}\u0000${r.log}`) as LockedLog).id;
      w[0].push(id);
      w[1].push(r.device);
      w[2].push(r.wid);
      pairs.set(`${id}\u0000${r.device}`, [id, r.device]);
    }
    if (pairs.size === 0) return { prior, lastSeq };
    const p = [...pairs.values()];
    const { rows } = await c.query({ ...this.q.knownWids, values: [...w, p.map((x) => x[0]), p.map((x) => x[1])] });
    for (const r of rows as { log_id: string; device: string; wid: string | null; at: string | null; length: string | null; maxseq: string | null }[]) {
      if (r.wid !== null) prior.set(`${r.log_id}\u0000${r.device}\u0000${r.wid}`, { at: num(r.at), length: num(r.length) });
      else lastSeq.set(`${r.log_id}\u0000${r.device}`, num(r.maxseq));
    }
    return { prior, lastSeq };
  }

  /**
   * Inside the batch transaction: decides each request in order (see LogStore) in memory,
   * against the locked rows and the known wids, then stores everything that was accepted
   * in one statement. A batch costs the same few round trips whatever its size.
   */
  private async decide(c: pg.PoolClient, requests: AppendRequest[]): Promise<AppendResult[]> {
    // No other transaction can change the locked rows until COMMIT, so their length is kept
    // here as the batch goes on instead of being read again.
    const locked = await this.lockLogs(c, requests);
    const { prior, lastSeq } = await this.knownWids(c, requests, locked);
    const entries: [number[], number[], Buffer[]] = [[], [], []];
    const wids: [number[], string[], number[], string[], number[], number[]] = [[], [], [], [], [], []];
    const grown = new Set<string>();
    const results: AppendResult[] = [];
    for (const req of requests) {
      const row = locked.get(`${req.site}\u0000${req.log}`) as LockedLog;
      const widKey = req.wid === undefined ? null : `${row.id}\u0000${req.device}\u0000${req.wid}`;
      const dup = widKey === null ? undefined : prior.get(widKey);
      if (dup !== undefined) {
        results.push({ status: 'dup', at: dup.at, length: dup.length });
        continue;
      }
      if (req.epoch !== row.epoch || req.at !== row.length) {
        const { length, epoch } = row;
        results.push(req.epoch !== epoch ? { status: 'fenced', length, epoch } : { status: 'nack', length, epoch });
        continue;
      }
      let idx = req.at;
      for (const e of req.entries as Uint8Array[]) {
        entries[0].push(row.id);
        entries[1].push(idx++);
        // pg encodes only Buffers as bytea; a plain Uint8Array is wrapped without a copy.
        entries[2].push(Buffer.isBuffer(e) ? e : Buffer.from(e.buffer, e.byteOffset, e.byteLength));
      }
      if (widKey !== null && req.wid !== undefined) {
        const pair = `${row.id}\u0000${req.device}`;
        const seq = (lastSeq.get(pair) ?? 0) + 1;
        lastSeq.set(pair, seq);
        wids[0].push(row.id);
        wids[1].push(req.device);
        wids[2].push(seq);
        wids[3].push(req.wid);
        wids[4].push(req.at);
        wids[5].push(idx);
        prior.set(widKey, { at: req.at, length: idx });
        grown.add(pair);
      }
      row.length = idx;
      row.dirty = true;
      results.push({ status: 'ok', at: req.at, length: idx });
    }
    const dirty = [...locked.values()].filter((r) => r.dirty);
    if (dirty.length === 0) return results;
    // Prune each (log, device) that got new wids down to its last WID_MEMORY.
    const prune: [number[], string[], number[]] = [[], [], []];
    for (const pair of grown) {
      const seq = lastSeq.get(pair) as number;
      if (seq <= WID_MEMORY) continue;
      const [id, device] = pair.split('\u0000') as [string, string];
      prune[0].push(Number(id));
      prune[1].push(device);
      prune[2].push(seq - WID_MEMORY);
    }
    await c.query({ ...this.q.writeAll, values: [...entries, ...wids, ...prune, dirty.map((r) => r.id), dirty.map((r) => r.length)] });
    return results;
  }

  async recentWids(site: string, log: string, device: string): Promise<StoredWid[]> {
    checkLogName(site, log);
    checkDevice(device);
    return this.run(async () => {
      const { rows } = await this.pool.query({ ...this.q.recentWids, values: [site, log, device] });
      return (rows as { wid: string; at: string; length: string }[]).map((r) => ({ wid: r.wid, at: num(r.at), length: num(r.length) }));
    });
  }

  async read(site: string, log: string, from: number, limit: number, maxBytes: number): Promise<ReadResult> {
    const clamped = checkReadArgs(site, log, from, limit, maxBytes);
    return this.run(async () => {
      const { rows } = await this.pool.query({ ...this.q.read, values: [site, log, from, clamped.limit, clamped.maxBytes] });
      const typed = rows as { length: string; idx: string | null; data: Buffer | null }[];
      const length = typed[0] ? num(typed[0].length) : 0;
      if (from > length) throw beyondEnd(from, length);
      const entries: Buffer[] = [];
      for (const r of typed) if (r.data !== null) entries.push(r.data);
      return { entries, length };
    });
  }

  healthy(): boolean {
    return !this.closed && this.ok && this.damaged.report() === null;
  }

  damage(): StoreDamage | null {
    return this.damaged.report();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.probe);
    await this.pool.end();
  }
}

async function migrate(pool: pg.Pool, schema: string): Promise<void> {
  const s = `"${schema}"`;
  const all = pgLogMigrations(s);
  const held = await checkOut(pool);
  const client = held.client;
  try {
    await client.query('BEGIN');
    // Serializes nodes that open the same schema at once (CREATE … IF NOT EXISTS races).
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`datagrove.tail.${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${s}.tail_schema (version integer NOT NULL)`);
    const { rows } = await client.query(`SELECT version FROM ${s}.tail_schema`);
    const version = rows[0] ? num((rows[0] as { version: number }).version) : 0;
    if (rows.length === 0) await client.query(`INSERT INTO ${s}.tail_schema (version) VALUES (0)`);
    if (version > all.length) throw new Error(`log store schema version ${version} is newer than this server (${all.length})`);
    for (let v = version; v < all.length; v++) await client.query(all[v] as string);
    await client.query(`UPDATE ${s}.tail_schema SET version = $1`, [all.length]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    held.release();
  }
}

/**
 * Connects to PostgreSQL at `url`, creates or migrates the schema, and returns the store.
 * Rejects if the database cannot be reached or holds a newer schema.
 *
 * @example
 *   const store = await openPgLogStore('postgres://tail@db/datagrove', { schema: 'datagrove' });
 */
export async function openPgLogStore(url: string, options: PgLogStoreOptions = {}): Promise<LogStore> {
  const schema = options.schema ?? 'public';
  if (!SCHEMA_RE.test(schema)) throw new DgError('BAD_REQUEST', 'schema must be a lower-case SQL identifier');
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    statement_timeout: options.statementTimeoutMs ?? 15_000,
    // A transaction left open by a stalled node must not hold a log's row lock forever.
    idle_in_transaction_session_timeout: 30_000,
    // Names the store's connections (PostgreSQL truncates it to 63 bytes) so an operator
    // can tell them apart in pg_stat_activity.
    application_name: `datagrove-tail:${schema}`,
  });
  const store = new PgLogStore(pool, schema);
  // An idle connection that dies emits 'error' on the pool; unhandled, it would end the process.
  pool.on('error', () => store.markDown());
  try {
    await migrate(pool, schema);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw mapError(err);
  }
  store.startProbe(options.healthIntervalMs ?? 5000);
  return store;
}
