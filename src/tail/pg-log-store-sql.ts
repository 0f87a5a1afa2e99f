/**
 * The SQL of the PostgreSQL log store (pg-log-store.ts): its schema migrations and its
 * statements, all qualified with the store's schema.
 */
import { createHash } from 'node:crypto';
import { WID_MEMORY } from './log-store.js';

/** Migrations, in order; entry i brings the schema from version i to i + 1. Never edit one. */
export function pgLogMigrations(s: string): string[] {
  return [
    `
    CREATE TABLE ${s}.tail_logs (
      id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      site   text   NOT NULL,
      log    text   NOT NULL,
      length bigint NOT NULL DEFAULT 0 CHECK (length >= 0),
      epoch  bigint NOT NULL DEFAULT 0 CHECK (epoch >= 0),
      UNIQUE (site, log)
    );
    CREATE TABLE ${s}.tail_entries (
      log_id bigint NOT NULL,
      idx    bigint NOT NULL,
      data   bytea  NOT NULL,
      PRIMARY KEY (log_id, idx)
    );
    -- Entries are opaque (usually encrypted) bytes: compressing them only costs CPU.
    ALTER TABLE ${s}.tail_entries ALTER COLUMN data SET STORAGE EXTERNAL;
    CREATE TABLE ${s}.tail_wids (
      log_id bigint NOT NULL,
      device text   NOT NULL,
      seq    bigint NOT NULL,
      wid    text   NOT NULL,
      at     bigint NOT NULL,
      length bigint NOT NULL,
      PRIMARY KEY (log_id, device, seq),
      UNIQUE (log_id, device, wid)
    );
    `,
  ];
}

/** The schema version this code writes. */
export const PG_LOG_SCHEMA_VERSION = pgLogMigrations('x').length;

export interface PgQuery {
  name: string;
  text: string;
}

export type PgLogQueries = Record<'lockAll' | 'createAll' | 'findWid' | 'write' | 'writeWid' | 'state' | 'bump' | 'read', PgQuery>;

/** The store's statements for `schema` (a validated identifier), as named prepared statements. */
export function pgLogQueries(schema: string): PgLogQueries {
  const s = `"${schema}"`;
  // Named statements are prepared once per connection; the tag keeps two stores with
  // different schemas from ever sharing a name.
  const tag = createHash('sha256').update(schema).digest('hex').slice(0, 10);
  const q = (name: string, text: string) => ({ name: `dg_tail_${tag}_${name}`, text });
  return {
    // Locks the rows of every log a batch touches, in one sorted order, so two batches
    // over the same logs queue behind each other instead of deadlocking.
    lockAll: q(
      'lock_all',
      `SELECT l.id, l.site, l.log, l.length, l.epoch
       FROM ${s}.tail_logs l JOIN unnest($1::text[], $2::text[]) AS k(site, log) ON l.site = k.site AND l.log = k.log
       ORDER BY l.site, l.log FOR UPDATE OF l`,
    ),
    // Creates the rows of new logs, in the same sorted order (an empty row means the same
    // as no row, so creating one for a request that is then nacked changes nothing).
    createAll: q(
      'create_all',
      `INSERT INTO ${s}.tail_logs (site, log)
       SELECT k.site, k.log FROM unnest($1::text[], $2::text[]) AS k(site, log) ORDER BY k.site, k.log
       ON CONFLICT (site, log) DO NOTHING`,
    ),
    findWid: q('find_wid', `SELECT at, length FROM ${s}.tail_wids WHERE log_id = $1 AND device = $2 AND wid = $3`),
    write: q(
      'write',
      `WITH ins AS (
         INSERT INTO ${s}.tail_entries (log_id, idx, data)
         SELECT $1::bigint, $2::bigint + t.ord - 1, t.data FROM unnest($3::bytea[]) WITH ORDINALITY AS t(data, ord)
       )
       UPDATE ${s}.tail_logs SET length = $4::bigint WHERE id = $1::bigint`,
    ),
    // One round trip for a write with a write id: writes nothing and returns the earlier
    // position when the wid is known, else inserts the entries, moves the length, records
    // the wid and prunes the device's wids beyond the last WID_MEMORY. Runs after the
    // row lock, so its snapshot holds every wid committed for this log.
    writeWid: q(
      'write_wid',
      `WITH dup AS (
         SELECT at, length FROM ${s}.tail_wids WHERE log_id = $1::bigint AND device = $5::text AND wid = $6::text
       ), ins AS (
         INSERT INTO ${s}.tail_entries (log_id, idx, data)
         SELECT $1::bigint, $2::bigint + t.ord - 1, t.data FROM unnest($3::bytea[]) WITH ORDINALITY AS t(data, ord)
         WHERE NOT EXISTS (SELECT 1 FROM dup)
       ), upd AS (
         UPDATE ${s}.tail_logs SET length = $4::bigint WHERE id = $1::bigint AND NOT EXISTS (SELECT 1 FROM dup)
       ), w AS (
         INSERT INTO ${s}.tail_wids (log_id, device, seq, wid, at, length)
         SELECT $1::bigint, $5::text, COALESCE(MAX(seq), 0) + 1, $6::text, $2::bigint, $4::bigint
         FROM ${s}.tail_wids WHERE log_id = $1::bigint AND device = $5::text
         HAVING NOT EXISTS (SELECT 1 FROM dup)
         RETURNING seq
       ), prune AS (
         DELETE FROM ${s}.tail_wids
         WHERE log_id = $1::bigint AND device = $5::text AND seq <= (SELECT seq FROM w) - ${WID_MEMORY}
       )
       SELECT at, length FROM dup`,
    ),
    state: q('state', `SELECT length, epoch FROM ${s}.tail_logs WHERE site = $1 AND log = $2`),
    bump: q(
      'bump',
      `INSERT INTO ${s}.tail_logs (site, log, epoch) VALUES ($1, $2, 1)
       ON CONFLICT (site, log) DO UPDATE SET epoch = ${s}.tail_logs.epoch + 1 RETURNING epoch`,
    ),
    // One statement, so the length and the entries come from the same snapshot. The running
    // byte sum cuts the entries at maxBytes on the server (the first one always passes).
    read: q(
      'read',
      `SELECT l.length, e.idx, e.data FROM ${s}.tail_logs l
       LEFT JOIN LATERAL (
         SELECT w.idx, w.data FROM (
           SELECT idx, data, SUM(octet_length(data)) OVER (ORDER BY idx) AS cum
           FROM ${s}.tail_entries WHERE log_id = l.id AND idx >= $3::bigint ORDER BY idx LIMIT $4::bigint
         ) w WHERE w.cum <= $5::bigint OR w.idx = $3::bigint
       ) e ON true
       WHERE l.site = $1 AND l.log = $2
       ORDER BY e.idx`,
    ),
  };
}
