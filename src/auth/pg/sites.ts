/** Sites and their key epochs (table auth_sites) of the PostgreSQL auth store. */
import type { SiteRecord } from '../store.js';
import { num, type Sql } from './sql.js';

interface SiteRow {
  id: string;
  owner: string;
  name: string;
  key_epoch: string;
  rotation_required: boolean;
  created_at: string;
}

/** Throws (unique violation) when the id exists, as the SQLite store does. */
export async function createSite(sql: Sql, site: { id: string; owner: string; name: string; createdAt: number }): Promise<void> {
  await sql.count(`INSERT INTO ${sql.s}.auth_sites (id, owner, name, key_epoch, created_at) VALUES ($1, $2, $3, 1, $4)`, [
    site.id,
    site.owner,
    site.name,
    site.createdAt,
  ]);
}

export async function getSite(sql: Sql, id: string): Promise<SiteRecord | null> {
  const rows = await sql.rows<SiteRow>(`SELECT id, owner, name, key_epoch, rotation_required, created_at FROM ${sql.s}.auth_sites WHERE id = $1`, [id]);
  const r = rows[0];
  if (r === undefined) return null;
  return { id: r.id, owner: r.owner, name: r.name, keyEpoch: num(r.key_epoch), rotationRequired: r.rotation_required, createdAt: num(r.created_at) };
}

export async function sitesOwnedBy(sql: Sql, user: string): Promise<string[]> {
  const rows = await sql.rows<{ id: string }>(`SELECT id FROM ${sql.s}.auth_sites WHERE owner = $1 ORDER BY created_at, id`, [user]);
  return rows.map((r) => r.id);
}

export async function markRotationRequired(sql: Sql, sites: readonly string[]): Promise<void> {
  if (sites.length === 0) return;
  await sql.count(`UPDATE ${sql.s}.auth_sites SET rotation_required = true WHERE id = ANY($1::text[])`, [sites]);
}

/**
 * Compare-and-set in one conditional UPDATE: concurrent callers serialize on the row lock
 * and only the first still finds `key_epoch = keyEpoch - 1`.
 */
export async function advanceKeyEpoch(sql: Sql, site: string, keyEpoch: number): Promise<boolean> {
  const n = await sql.count(`UPDATE ${sql.s}.auth_sites SET key_epoch = $1, rotation_required = false WHERE id = $2 AND key_epoch = $3`, [
    keyEpoch,
    site,
    keyEpoch - 1,
  ]);
  return n === 1;
}
