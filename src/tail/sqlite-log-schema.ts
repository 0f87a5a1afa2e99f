/**
 * The schema of the SQLite log store, versioned with `PRAGMA user_version` and migrated on
 * open in one transaction (a crash mid-migration leaves the old version intact).
 *
 * Version 5 (current):
 * - logs(id, site, log, length, epoch, leader, leader_user): one row per log that was ever
 *   written or leased; `id` is a small integer so the other tables are keyed by it, not by
 *   two strings; `leader` is the device that took `epoch`, until it released (version 4),
 *   and `leader_user` its user (version 5; NULL in rows written before).
 * - chunks(log_id, first, data): one row per committed write, holding its entries packed
 *   (entry-pack.ts) from index `first` on. A log's chunks tile [0, length) with no gap or
 *   overlap, so the entry at index i is in the row with the greatest `first` <= i.
 * - wids(log_id, device, seq, wid, at, length): the last write ids per (log, device),
 *   numbered by `seq`; older ones are pruned in the appending transaction.
 * - epoch_floor(one, floor): one row; a log not yet stored takes its first epoch above
 *   `floor`, which `liftEpochs` raises with every stored epoch (version 3).
 * Version 1 kept one row per entry in entries(log_id, idx, data); migrating packs each run
 * of consecutive entries into chunks and drops that table.
 */
import type Database from 'better-sqlite3';
import { packEntries } from './entry-pack.js';

type Migration = string | ((db: Database.Database) => void);

/** Most entries and bytes the v1 → v2 migration packs into one chunk. */
const MIGRATE_CHUNK_ENTRIES = 1024;
const MIGRATE_CHUNK_BYTES = 1024 * 1024;

/** Moves the v1 per-entry rows into chunks, one chunk per run of at most the limits above. */
function entriesToChunks(db: Database.Database): void {
  db.exec(`
    CREATE TABLE chunks (
      log_id INTEGER NOT NULL,
      first  INTEGER NOT NULL,
      data   BLOB    NOT NULL,
      PRIMARY KEY (log_id, first)
    );
  `);
  const insert = db.prepare<[number, number, Buffer]>('INSERT INTO chunks (log_id, first, data) VALUES (?, ?, ?)');
  let log = -1;
  let first = 0;
  let next = 0;
  let run: Buffer[] = [];
  let bytes = 0;
  const flush = () => {
    if (run.length > 0) insert.run(log, first, packEntries(run, bytes));
    run = [];
    bytes = 0;
  };
  // Read in pages (a statement cannot write while another one iterates), in key order.
  const page = db.prepare<[number, number], { log_id: number; idx: number; data: Buffer }>(
    'SELECT log_id, idx, data FROM entries WHERE (log_id, idx) > (?, ?) ORDER BY log_id, idx LIMIT 4096',
  );
  let after: [number, number] = [-1, -1];
  for (;;) {
    const rows = page.all(...after);
    if (rows.length === 0) break;
    for (const r of rows) {
      if (r.log_id !== log || r.idx !== next || run.length >= MIGRATE_CHUNK_ENTRIES || bytes + r.data.length > MIGRATE_CHUNK_BYTES) {
        flush();
        log = r.log_id;
        first = r.idx;
      }
      run.push(r.data);
      bytes += r.data.length;
      next = r.idx + 1;
      after = [r.log_id, r.idx];
    }
  }
  flush();
  db.exec('DROP TABLE entries');
}

/** Migrations, in order; entry i brings the schema from version i to i + 1. Never edit one. */
const MIGRATIONS: readonly Migration[] = [
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
  entriesToChunks,
  // The epoch a log not yet stored starts above: raised by every liftEpochs, so a log
  // created after a store was copied cannot be handed the epochs it had before the restore.
  `
  CREATE TABLE epoch_floor (
    one   INTEGER PRIMARY KEY CHECK (one = 0),
    floor INTEGER NOT NULL CHECK (floor >= 0)
  );
  INSERT INTO epoch_floor (one, floor) VALUES (0, 0);
  `,
  // Who took the current epoch, so a restarted node can give that device the grace.
  `ALTER TABLE logs ADD COLUMN leader TEXT;`,
  // Whose device that is, so a revocation of the user's access can end a grace loaded here.
  `ALTER TABLE logs ADD COLUMN leader_user TEXT;`,
];

/** The schema version this code writes. */
export const SQLITE_LOG_SCHEMA_VERSION = MIGRATIONS.length;

/** The version-1 schema, for tests that check the migration from it. */
export const SQLITE_LOG_SCHEMA_V1 = MIGRATIONS[0] as string;

/** Brings the file's schema up to date; throws if it is newer than this code. */
export function migrateLogSchema(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true });
  if (typeof version !== 'number' || version > MIGRATIONS.length) {
    throw new Error(`log store schema version ${String(version)} is newer than this server (${MIGRATIONS.length})`);
  }
  if (version === MIGRATIONS.length) return;
  db.transaction(() => {
    for (let v = version; v < MIGRATIONS.length; v++) {
      const m = MIGRATIONS[v] as Migration;
      if (typeof m === 'string') db.exec(m);
      else m(db);
      db.pragma(`user_version = ${v + 1}`);
    }
  }).immediate();
}
