/** Challenge nonces (table auth_nonces) of the PostgreSQL auth store. */
import type { Sql } from './sql.js';

/** Throws (unique violation) when the nonce exists, as the SQLite store does. */
export async function putNonce(sql: Sql, nonce: string, device: string, expiresAt: number): Promise<void> {
  await sql.count(`INSERT INTO ${sql.s}.auth_nonces (nonce, device, expires_at) VALUES ($1, $2, $3)`, [nonce, device, expiresAt]);
}

/**
 * Consumes the nonce with one conditional DELETE: of several concurrent callers (on any
 * node) the first takes the row lock and deletes; the others wait, find the row gone and
 * delete nothing. So it is true exactly once.
 */
export async function takeNonce(sql: Sql, nonce: string, device: string, now: number): Promise<boolean> {
  const n = await sql.count(`DELETE FROM ${sql.s}.auth_nonces WHERE nonce = $1 AND device = $2 AND expires_at > $3`, [nonce, device, now]);
  return n === 1;
}

export async function pruneNonces(sql: Sql, now: number): Promise<void> {
  await sql.count(`DELETE FROM ${sql.s}.auth_nonces WHERE expires_at <= $1`, [now]);
}
