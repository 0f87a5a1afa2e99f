/** Access rows, the capabilities derived from joined grants (table auth_access), of the PostgreSQL auth store. */
import type { Right } from '../../protocol/ids.js';
import type { AccessRecord, RevokedAccess } from '../store.js';
import { descendantsCte } from './grants.js';
import { num, numOrNull, type Sql } from './sql.js';

export interface AccessRow {
  user_id: string;
  site: string;
  grant_hash: string;
  logs: string[];
  rights: string[];
  expires_at: string | null;
  created_at: string;
}

export const ACCESS_COLUMNS = 'user_id, site, grant_hash, logs, rights, expires_at, created_at';

export function toAccess(r: AccessRow): AccessRecord {
  return {
    user: r.user_id,
    site: r.site,
    grant: r.grant_hash,
    logs: r.logs,
    rights: r.rights as Right[],
    expiresAt: numOrNull(r.expires_at),
    createdAt: num(r.created_at),
  };
}

/** Inserts, or replaces the logs, rights and expiry of, the row for (user, site, grant). */
export async function upsertAccess(sql: Sql, row: AccessRecord): Promise<void> {
  await sql.count(
    `INSERT INTO ${sql.s}.auth_access (user_id, site, grant_hash, logs, rights, expires_at, created_at)
     VALUES ($1, $2, $3, $4::text[], $5::text[], $6, $7)
     ON CONFLICT (user_id, site, grant_hash)
     DO UPDATE SET logs = EXCLUDED.logs, rights = EXCLUDED.rights, expires_at = EXCLUDED.expires_at`,
    [row.user, row.site, row.grant, row.logs, row.rights, row.expiresAt, row.createdAt],
  );
}

export async function accessFor(sql: Sql, user: string, site: string): Promise<AccessRecord[]> {
  const rows = await sql.rows<AccessRow>(
    `SELECT ${ACCESS_COLUMNS} FROM ${sql.s}.auth_access WHERE user_id = $1 AND site = $2 ORDER BY created_at, grant_hash`,
    [user, site],
  );
  return rows.map(toAccess);
}

export async function accessOfUser(sql: Sql, user: string): Promise<AccessRecord[]> {
  const rows = await sql.rows<AccessRow>(`SELECT ${ACCESS_COLUMNS} FROM ${sql.s}.auth_access WHERE user_id = $1 ORDER BY created_at, site, grant_hash`, [user]);
  return rows.map(toAccess);
}

/** Rows whose leaf grant is one of `hashes` or descends from one. */
export async function accessThroughGrants(sql: Sql, hashes: readonly string[]): Promise<AccessRecord[]> {
  if (hashes.length === 0) return [];
  const rows = await sql.rows<AccessRow>(
    `${descendantsCte(sql.s)}
     SELECT ${ACCESS_COLUMNS} FROM ${sql.s}.auth_access WHERE grant_hash IN (SELECT hash FROM d)
     ORDER BY created_at, user_id, site, grant_hash`,
    [hashes],
  );
  return rows.map(toAccess);
}

/** Deletes the rows whose leaf grant is one of `hashes` or descends from one; returns them. */
export async function deleteAccessThrough(sql: Sql, hashes: readonly string[]): Promise<AccessRecord[]> {
  if (hashes.length === 0) return [];
  const rows = await sql.rows<AccessRow>(
    `${descendantsCte(sql.s)}, gone AS (
       DELETE FROM ${sql.s}.auth_access WHERE grant_hash IN (SELECT hash FROM d) RETURNING ${ACCESS_COLUMNS}
     )
     SELECT ${ACCESS_COLUMNS} FROM gone ORDER BY created_at, user_id, site, grant_hash`,
    [hashes],
  );
  return rows.map(toAccess);
}

/** Deletes these rows; returns the (user, site) of each row that was there. */
export async function deleteAccess(sql: Sql, rows: readonly { user: string; site: string; grant: string }[]): Promise<{ user: string; site: string }[]> {
  if (rows.length === 0) return [];
  const gone = await sql.rows<{ user_id: string; site: string }>(
    `DELETE FROM ${sql.s}.auth_access a
     USING unnest($1::text[], $2::text[], $3::text[]) AS k(user_id, site, grant_hash)
     WHERE a.user_id = k.user_id AND a.site = k.site AND a.grant_hash = k.grant_hash
     RETURNING a.user_id, a.site`,
    [rows.map((r) => r.user), rows.map((r) => r.site), rows.map((r) => r.grant)],
  );
  return gone.map((r) => ({ user: r.user_id, site: r.site }));
}

/** Records that these (user, site) pairs lost access at `now`; a pair keeps its latest time. */
export async function recordRevokedAccess(sql: Sql, pairs: readonly { user: string; site: string }[], now: number): Promise<void> {
  if (pairs.length === 0) return;
  await sql.count(
    `INSERT INTO ${sql.s}.auth_access_revocations AS r (user_id, site, revoked_at)
     SELECT DISTINCT k.user_id, k.site, $3::bigint FROM unnest($1::text[], $2::text[]) AS k(user_id, site)
     ON CONFLICT (user_id, site) DO UPDATE SET revoked_at = GREATEST(r.revoked_at, EXCLUDED.revoked_at)`,
    [pairs.map((p) => p.user), pairs.map((p) => p.site), now],
  );
}

export async function accessRevokedSince(sql: Sql, since: number): Promise<RevokedAccess[]> {
  const rows = await sql.rows<{ user_id: string; site: string; revoked_at: string }>(
    `SELECT user_id, site, revoked_at FROM ${sql.s}.auth_access_revocations WHERE revoked_at >= $1 ORDER BY revoked_at, user_id, site`,
    [since],
  );
  return rows.map((r) => ({ user: r.user_id, site: r.site, at: num(r.revoked_at) }));
}

export async function pruneRevokedAccess(sql: Sql, before: number): Promise<void> {
  await sql.count(`DELETE FROM ${sql.s}.auth_access_revocations WHERE revoked_at < $1`, [before]);
}

export async function pruneAccess(sql: Sql, now: number): Promise<void> {
  await sql.count(`DELETE FROM ${sql.s}.auth_access WHERE expires_at IS NOT NULL AND expires_at <= $1`, [now]);
}
