/**
 * Claims and envelopes (tables auth_claims, auth_claim_counters, auth_envelopes) of the
 * PostgreSQL auth store, inside transactions the store opens. Claims of one user queue on
 * that user's row lock (so the per-user limit holds) and new ids of one namespace on its
 * counter row; names are unique by primary key. Envelopes to one device queue on the
 * device's row lock, so its limits (in all, per sender, from other users) are counted and
 * the insert made by one caller at a time, and a concurrent revocation cannot slip in between.
 */
import type { ClaimResult, EnvelopeLimits, EnvelopePut, EnvelopeRecord } from '../store.js';
import { num, type Sql, type TxSql } from './sql.js';

/** `retry`: a concurrent claim of the same name won between the check and the insert (rolled back). */
export async function claim(sql: TxSql, c: { namespace: string; name: string; user: string; now: number; maxPerUser: number }): Promise<ClaimResult | 'retry'> {
  const s = sql.s;
  const existing = await sql.rows<{ user_id: string; id: string }>(`SELECT user_id, id FROM ${s}.auth_claims WHERE namespace = $1 AND name = $2`, [c.namespace, c.name]);
  const e = existing[0];
  if (e !== undefined) return e.user_id === c.user ? { ok: true, id: num(e.id), created: false } : { ok: false, reason: 'taken' };
  await sql.rows(`SELECT 1 FROM ${s}.auth_users WHERE id = $1 FOR UPDATE`, [c.user]);
  const held = await sql.rows<{ n: string }>(`SELECT count(*) AS n FROM ${s}.auth_claims WHERE user_id = $1`, [c.user]);
  if (num(held[0]?.n ?? 0) >= c.maxPerUser) return { ok: false, reason: 'limit' };
  const next = await sql.rows<{ last: string }>(
    `INSERT INTO ${s}.auth_claim_counters AS c (namespace, last) VALUES ($1, 1)
     ON CONFLICT (namespace) DO UPDATE SET last = c.last + 1 RETURNING last`,
    [c.namespace],
  );
  const id = num(next[0]?.last);
  const n = await sql.count(
    `INSERT INTO ${s}.auth_claims (namespace, name, user_id, id, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (namespace, name) DO NOTHING`,
    [c.namespace, c.name, c.user, id, c.now],
  );
  if (n === 1) return { ok: true, id, created: true };
  sql.rollbackOnly();
  return 'retry';
}

export async function putEnvelope(sql: TxSql, e: EnvelopeRecord, limits: EnvelopeLimits, now: number): Promise<EnvelopePut> {
  const s = sql.s;
  const live = await sql.rows<{ user_id: string }>(`SELECT user_id FROM ${s}.auth_devices WHERE id = $1 AND revoked_at IS NULL FOR UPDATE`, [e.to]);
  const user = live[0]?.user_id;
  if (user === undefined) return 'no-device';
  // What the recipient holds: in all, from this sender, and from devices not of its user.
  const held = await sql.rows<{ total: string; sender: string; others: string }>(
    `SELECT count(*) AS total, count(*) FILTER (WHERE from_device = $3) AS sender,
            count(*) FILTER (WHERE from_device NOT IN (SELECT id FROM ${s}.auth_devices WHERE user_id = $4)) AS others
     FROM ${s}.auth_envelopes WHERE to_device = $1 AND expires_at > $2`,
    [e.to, now, e.from, user],
  );
  const h = held[0];
  if (num(h?.sender ?? 0) >= limits.perSender) return 'sender-full';
  if (num(h?.total ?? 0) >= limits.perDevice) return 'full';
  const sender = await sql.rows<{ user_id: string }>(`SELECT user_id FROM ${s}.auth_devices WHERE id = $1`, [e.from]);
  if (sender[0]?.user_id !== user && num(h?.others ?? 0) >= limits.fromOtherUsers) return 'full';
  await sql.count(
    `INSERT INTO ${s}.auth_envelopes (id, to_device, from_device, data, at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
    [e.id, e.to, e.from, e.data, e.at, e.expiresAt],
  );
  return 'ok';
}

interface EnvelopeRow {
  id: string;
  to_device: string;
  from_device: string;
  data: string;
  at: string;
  expires_at: string;
}

export async function listEnvelopes(sql: Sql, device: string, now: number, limit: number): Promise<EnvelopeRecord[]> {
  const rows = await sql.rows<EnvelopeRow>(
    `SELECT id, to_device, from_device, data, at, expires_at FROM ${sql.s}.auth_envelopes
     WHERE to_device = $1 AND expires_at > $2 ORDER BY at, id LIMIT $3`,
    [device, now, limit],
  );
  return rows.map((r) => ({ id: r.id, to: r.to_device, from: r.from_device, data: r.data, at: num(r.at), expiresAt: num(r.expires_at) }));
}

export async function deleteEnvelope(sql: Sql, id: string, device: string): Promise<boolean> {
  return (await sql.count(`DELETE FROM ${sql.s}.auth_envelopes WHERE id = $1 AND to_device = $2`, [id, device])) === 1;
}

/** Expired envelopes, and any left for a revoked device. */
export async function pruneEnvelopes(sql: Sql, now: number): Promise<void> {
  await sql.count(`DELETE FROM ${sql.s}.auth_envelopes WHERE expires_at <= $1`, [now]);
  await sql.count(
    `DELETE FROM ${sql.s}.auth_envelopes WHERE to_device IN (SELECT id FROM ${sql.s}.auth_devices WHERE revoked_at IS NOT NULL)`,
  );
}
