/**
 * The SQL of the PostgreSQL log store (pg-log-store.ts): its schema migrations and its
 * statements, all qualified with the store's schema.
 */
import { createHash } from 'node:crypto';

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
    // The epoch a log not yet stored starts above: raised by every liftEpochs, so a log
    // created after a store was copied cannot be handed the epochs it had before the restore.
    `
    CREATE TABLE ${s}.tail_epoch_floor (
      one   smallint PRIMARY KEY CHECK (one = 0),
      floor bigint   NOT NULL CHECK (floor >= 0)
    );
    INSERT INTO ${s}.tail_epoch_floor (one, floor) VALUES (0, 0);
    `,
    // Who took the current epoch, so a node loading the log can give that device the grace.
    `ALTER TABLE ${s}.tail_logs ADD COLUMN leader text;`,
    // Whose device that is, so a revocation of the user's access can end a grace loaded here.
    `ALTER TABLE ${s}.tail_logs ADD COLUMN leader_user text;`,
  ];
}

/** The schema version this code writes. */
export const PG_LOG_SCHEMA_VERSION = pgLogMigrations('x').length;

export interface PgQuery {
  name: string;
  text: string;
}

export type PgLogQueries = Record<'lockAll' | 'createAll' | 'knownWids' | 'recentWids' | 'writeAll' | 'state' | 'bump' | 'unlead' | 'lift' | 'read', PgQuery>;

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
    // The stored wids among the batch's ($1-$3), and the last wid sequence number of each
    // (log, device) that sends one ($4-$5; 0 when it has none).
    knownWids: q(
      'known_wids',
      `SELECT w.log_id, w.device, w.wid, w.at, w.length, NULL::bigint AS maxseq
       FROM ${s}.tail_wids w
       JOIN unnest($1::bigint[], $2::text[], $3::text[]) AS k(log_id, device, wid)
         ON w.log_id = k.log_id AND w.device = k.device AND w.wid = k.wid
       UNION ALL
       SELECT k.log_id, k.device, NULL, NULL, NULL,
         (SELECT COALESCE(MAX(x.seq), 0) FROM ${s}.tail_wids x WHERE x.log_id = k.log_id AND x.device = k.device)
       FROM unnest($4::bigint[], $5::text[]) AS k(log_id, device)`,
    ),
    // The wids one device has stored on a log ($1-$3), oldest first.
    recentWids: q(
      'recent_wids',
      `SELECT w.wid, w.at, w.length
       FROM ${s}.tail_wids w JOIN ${s}.tail_logs l ON l.id = w.log_id
       WHERE l.site = $1 AND l.log = $2 AND w.device = $3
       ORDER BY w.seq`,
    ),
    // Everything a batch stores, in one statement: the entries ($1-$3), the new wids
    // ($4-$9), the pruning of wids older than the last WID_MEMORY per (log, device)
    // ($10-$12: delete seq <= upto) and the new lengths ($13-$14). The parts touch
    // disjoint rows, so sharing one snapshot is safe.
    writeAll: q(
      'write_all',
      `WITH e AS (
         INSERT INTO ${s}.tail_entries (log_id, idx, data)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])
       ), w AS (
         INSERT INTO ${s}.tail_wids (log_id, device, seq, wid, at, length)
         SELECT * FROM unnest($4::bigint[], $5::text[], $6::bigint[], $7::text[], $8::bigint[], $9::bigint[])
       ), p AS (
         DELETE FROM ${s}.tail_wids w USING unnest($10::bigint[], $11::text[], $12::bigint[]) AS k(log_id, device, upto)
         WHERE w.log_id = k.log_id AND w.device = k.device AND w.seq <= k.upto
       )
       UPDATE ${s}.tail_logs l SET length = k.length
       FROM unnest($13::bigint[], $14::bigint[]) AS k(id, length) WHERE l.id = k.id`,
    ),
    state: q('state', `SELECT length, epoch, leader, leader_user FROM ${s}.tail_logs WHERE site = $1 AND log = $2`),
    bump: q(
      'bump',
      `INSERT INTO ${s}.tail_logs (site, log, epoch, leader, leader_user)
       VALUES ($1, $2, (SELECT floor FROM ${s}.tail_epoch_floor) + 1, $3, $4)
       ON CONFLICT (site, log) DO UPDATE
         SET epoch = GREATEST(${s}.tail_logs.epoch, (SELECT floor FROM ${s}.tail_epoch_floor)) + 1,
             leader = EXCLUDED.leader, leader_user = EXCLUDED.leader_user
       RETURNING epoch`,
    ),
    // The next epoch, with no leader, if the log is still at $3; else its epoch as it is.
    unlead: q(
      'unlead',
      `WITH up AS (
         UPDATE ${s}.tail_logs SET epoch = GREATEST(epoch, (SELECT floor FROM ${s}.tail_epoch_floor)) + 1, leader = NULL, leader_user = NULL
         WHERE site = $1 AND log = $2 AND epoch = $3::bigint RETURNING epoch
       )
       SELECT epoch FROM up
       UNION ALL
       SELECT epoch FROM ${s}.tail_logs WHERE site = $1 AND log = $2 AND NOT EXISTS (SELECT 1 FROM up)`,
    ),
    // Every epoch and the floor up by $1 and to at least $3 in one statement, or nothing
    // when the largest would pass $2 (then `floored` is 0).
    lift: q(
      'lift',
      `WITH span AS (
         SELECT COUNT(*) AS n,
                GREATEST(COALESCE(MAX(epoch), 0), (SELECT floor FROM ${s}.tail_epoch_floor)) AS top
         FROM ${s}.tail_logs
       ), lifted AS (
         UPDATE ${s}.tail_logs SET epoch = GREATEST(epoch + $1::bigint, $3::bigint)
         WHERE (SELECT top FROM span) <= $2::bigint - $1::bigint RETURNING 1
       ), floored AS (
         UPDATE ${s}.tail_epoch_floor SET floor = GREATEST(floor + $1::bigint, $3::bigint)
         WHERE (SELECT top FROM span) <= $2::bigint - $1::bigint RETURNING 1
       )
       SELECT span.n, span.top, (SELECT COUNT(*) FROM floored) AS floored FROM span`,
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
