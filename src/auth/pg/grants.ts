/** Grants (table auth_grants) of the PostgreSQL auth store. */
import type { Right } from '../../protocol/ids.js';
import type { GrantRecord } from '../store.js';
import { splitSubjects } from '../grant-subjects.js';
import { num, numOrNull, type Sql } from './sql.js';

/** `column` with its ASCII letters lower-cased and nothing else (as normalizeEmail; lower() folds more). */
export const ASCII_LOWER = (column: string) => `translate(${column}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')`;

export interface GrantRow {
  hash: string;
  jws: string;
  issuer: string;
  subject: string;
  site: string;
  logs: string[];
  rights: string[];
  iat: string;
  exp: string | null;
  prf: string | null;
  declared_at: string;
  revoked_at: string | null;
}

export const GRANT_COLUMNS = 'hash, jws, issuer, subject, site, logs, rights, iat, exp, prf, declared_at, revoked_at';

export function toGrant(r: GrantRow): GrantRecord {
  return {
    hash: r.hash,
    jws: r.jws,
    issuer: r.issuer,
    subject: r.subject,
    site: r.site,
    logs: r.logs,
    // Only verified grants are stored, so the rights are the ones the schema allows.
    rights: r.rights as Right[],
    iat: num(r.iat),
    exp: numOrNull(r.exp),
    prf: r.prf,
    declaredAt: num(r.declared_at),
    revokedAt: numOrNull(r.revoked_at),
  };
}

/**
 * The grants that are `$1` (a text[] of hashes) or descend from one through `prf`. Chains
 * are at most 8 deep; the depth bound also ends the recursion on a (forged) cycle.
 */
export function descendantsCte(s: string): string {
  return `
  WITH RECURSIVE d(hash, depth) AS (
    SELECT h COLLATE "C", 0 FROM unnest($1::text[]) AS h
    UNION
    SELECT g.hash, d.depth + 1 FROM ${s}.auth_grants g JOIN d ON g.prf = d.hash WHERE d.depth < 16
  )`;
}

/** A grant already stored (same hash) is left as it is. */
export async function putGrant(sql: Sql, g: Omit<GrantRecord, 'revokedAt'>): Promise<void> {
  await sql.count(
    `INSERT INTO ${sql.s}.auth_grants (hash, jws, issuer, subject, site, logs, rights, iat, exp, prf, declared_at)
     VALUES ($1, $2, $3, $4, $5, $6::text[], $7::text[], $8, $9, $10, $11) ON CONFLICT (hash) DO NOTHING`,
    [g.hash, g.jws, g.issuer, g.subject, g.site, g.logs, g.rights, g.iat, g.exp, g.prf, g.declaredAt],
  );
}

export async function getGrant(sql: Sql, hash: string): Promise<GrantRecord | null> {
  const rows = await sql.rows<GrantRow>(`SELECT ${GRANT_COLUMNS} FROM ${sql.s}.auth_grants WHERE hash = $1`, [hash]);
  return rows[0] === undefined ? null : toGrant(rows[0]);
}

export async function findGrants(sql: Sql, query: { issuers: readonly string[]; subjects: readonly string[] }): Promise<GrantRecord[]> {
  if (query.issuers.length === 0 && query.subjects.length === 0) return [];
  const { exact, emails } = splitSubjects(query.subjects);
  const rows = await sql.rows<GrantRow>(
    `SELECT ${GRANT_COLUMNS} FROM ${sql.s}.auth_grants
     WHERE issuer = ANY($1::text[]) OR subject = ANY($2::text[]) OR ${ASCII_LOWER('subject')} = ANY($3::text[])
     ORDER BY declared_at, hash`,
    [query.issuers, exact, emails],
  );
  return rows.map(toGrant);
}

/** Marks the grant revoked; true when this call did. Holds the row lock until the transaction ends. */
export async function markGrantRevoked(sql: Sql, hash: string, now: number): Promise<boolean> {
  return (await sql.count(`UPDATE ${sql.s}.auth_grants SET revoked_at = $1 WHERE hash = $2 AND revoked_at IS NULL`, [now, hash])) === 1;
}

/**
 * Share-locks the grants among `hashes` and tells whether one of them is revoked. A
 * concurrent `markGrantRevoked` waits for this transaction to end, so the access row it
 * guards is committed before the revocation's sweep reads (or the guard sees the revocation).
 */
export async function anyGrantRevoked(sql: Sql, hashes: readonly string[]): Promise<boolean> {
  if (hashes.length === 0) return false;
  const rows = await sql.rows<{ revoked: boolean }>(
    `SELECT revoked_at IS NOT NULL AS revoked FROM ${sql.s}.auth_grants WHERE hash = ANY($1::text[]) ORDER BY hash FOR SHARE`,
    [hashes],
  );
  return rows.some((r) => r.revoked);
}
