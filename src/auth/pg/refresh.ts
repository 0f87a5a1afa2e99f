/** Refresh families and tokens (tables auth_families, auth_refresh_tokens) of the PostgreSQL auth store. */
import type { FamilyRecord, RefreshRecord, Revoked, RotateRefresh } from '../store.js';
import { num, numOrNull, type Sql } from './sql.js';

interface RefreshRow {
  hash: string;
  family: string;
  state: string;
  expires_at: string;
  rotated_at: string | null;
  guid: string | null;
  answer: string | null;
  user_id: string;
  device: string;
  family_revoked_at: string | null;
  device_row: string | null;
  device_revoked_at: string | null;
}

export async function insertFamily(sql: Sql, f: { id: string; user: string; device: string; createdAt: number }): Promise<void> {
  await sql.count(`INSERT INTO ${sql.s}.auth_families (id, user_id, device, created_at) VALUES ($1, $2, $3, $4)`, [f.id, f.user, f.device, f.createdAt]);
}

export async function insertToken(sql: Sql, family: string, token: { hash: string; expiresAt: number }): Promise<void> {
  await sql.count(`INSERT INTO ${sql.s}.auth_refresh_tokens (hash, family, state, expires_at) VALUES ($1, $2, 'live', $3)`, [token.hash, family, token.expiresAt]);
}

export async function getRefresh(sql: Sql, hash: string): Promise<RefreshRecord | null> {
  const rows = await sql.rows<RefreshRow>(
    `SELECT t.hash, t.family, t.state, t.expires_at, t.rotated_at, t.guid, t.answer, f.user_id, f.device,
            f.revoked_at AS family_revoked_at, d.id AS device_row, d.revoked_at AS device_revoked_at
     FROM ${sql.s}.auth_refresh_tokens t
     JOIN ${sql.s}.auth_families f ON f.id = t.family
     LEFT JOIN ${sql.s}.auth_devices d ON d.id = f.device
     WHERE t.hash = $1`,
    [hash],
  );
  const r = rows[0];
  if (r === undefined) return null;
  return {
    hash: r.hash,
    family: r.family,
    user: r.user_id,
    device: r.device,
    state: r.state === 'rotated' ? 'rotated' : 'live',
    expiresAt: num(r.expires_at),
    rotatedAt: numOrNull(r.rotated_at),
    guid: r.guid,
    answer: r.answer,
    familyRevoked: r.family_revoked_at !== null,
    // A family whose device row is missing is treated as revoked.
    deviceRevoked: r.device_revoked_at !== null || r.device_row === null,
  };
}

/**
 * The compare-and-set half of a rotation: marks the token rotated if it is live, unexpired,
 * and its family and device are not revoked; returns its family, or null (nothing written).
 * Two concurrent rotations serialize on the token's row lock; the second re-checks
 * `state = 'live'` against the committed row and matches nothing.
 */
export async function markRotated(sql: Sql, hash: string, rot: RotateRefresh): Promise<string | null> {
  const rows = await sql.rows<{ family: string }>(
    `UPDATE ${sql.s}.auth_refresh_tokens t SET state = 'rotated', rotated_at = $1, guid = $2, answer = $3
     WHERE t.hash = $4 AND t.state = 'live' AND t.expires_at > $1
       AND EXISTS (SELECT 1 FROM ${sql.s}.auth_families f JOIN ${sql.s}.auth_devices d ON d.id = f.device
                   WHERE f.id = t.family AND f.revoked_at IS NULL AND d.revoked_at IS NULL)
     RETURNING t.family`,
    [rot.now, rot.guid, rot.answer, hash],
  );
  return rows[0]?.family ?? null;
}

/** true when this call revoked it. */
export async function revokeFamily(sql: Sql, id: string, now: number): Promise<boolean> {
  return (await sql.count(`UPDATE ${sql.s}.auth_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, [now, id])) === 1;
}

/** The conditions under which family `f` is live at the time given as parameter number `now`. */
function live(s: string, now: number): string {
  return `f.revoked_at IS NULL
    AND EXISTS (SELECT 1 FROM ${s}.auth_devices d WHERE d.id = f.device AND d.user_id = f.user_id AND d.revoked_at IS NULL)
    AND EXISTS (SELECT 1 FROM ${s}.auth_refresh_tokens t WHERE t.family = f.id AND t.state = 'live' AND t.expires_at > $${now})`;
}

/** The user's live families, newest first, at most `limit`. */
export async function liveFamilies(sql: Sql, user: string, now: number, limit: number): Promise<FamilyRecord[]> {
  const rows = await sql.rows<{ id: string; user_id: string; device: string; created_at: string }>(
    `SELECT f.id, f.user_id, f.device, f.created_at FROM ${sql.s}.auth_families f
     WHERE f.device IN (SELECT id FROM ${sql.s}.auth_devices WHERE user_id = $1) AND f.user_id = $1 AND ${live(sql.s, 2)}
     ORDER BY f.created_at DESC, f.id DESC LIMIT $3`,
    [user, now, limit],
  );
  return rows.map((r) => ({ id: r.id, user: r.user_id, device: r.device, createdAt: num(r.created_at) }));
}

/**
 * Revokes the family when it is a live family of `user`; true when this call revoked it. One
 * conditional UPDATE: a concurrent revocation of the family (or of its device, which revokes
 * its families too) holds the row, and the condition is re-checked against what it committed.
 */
export async function revokeLiveFamily(sql: Sql, user: string, id: string, now: number): Promise<boolean> {
  return (await sql.count(`UPDATE ${sql.s}.auth_families f SET revoked_at = $3 WHERE f.id = $1 AND f.user_id = $2 AND ${live(sql.s, 3)}`, [id, user, now])) === 1;
}

/** Revokes every live family of the device; returns the ids this call revoked. */
export async function revokeFamiliesOf(sql: Sql, device: string, now: number): Promise<string[]> {
  const rows = await sql.rows<{ id: string }>(
    `UPDATE ${sql.s}.auth_families SET revoked_at = $1 WHERE device = $2 AND revoked_at IS NULL RETURNING id`,
    [now, device],
  );
  return rows.map((r) => r.id).sort();
}

export async function familiesRevokedSince(sql: Sql, since: number): Promise<Revoked[]> {
  const rows = await sql.rows<{ id: string; revoked_at: string }>(
    `SELECT id, revoked_at FROM ${sql.s}.auth_families WHERE revoked_at >= $1 ORDER BY revoked_at, id`,
    [since],
  );
  return rows.map((r) => ({ id: r.id, at: num(r.revoked_at) }));
}

export async function pruneTokens(sql: Sql, now: number): Promise<void> {
  await sql.count(`DELETE FROM ${sql.s}.auth_refresh_tokens WHERE expires_at <= $1`, [now]);
}
