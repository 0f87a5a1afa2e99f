/**
 * Profiles (tables auth_profiles, auth_subscriptions, auth_push_endpoints) of the PostgreSQL
 * auth store. Every write to a user's subscriptions or push endpoints first takes the write
 * lock of the user's profile row (or creates it), and reads take its share lock, so a read
 * never mixes two versions and a compare-and-set on the version is decided once.
 */
import type { ProfileRecord, ProfileState } from '../store.js';
import { num, numOrNull, type TxSql } from './sql.js';

export async function getProfile(sql: TxSql, user: string): Promise<ProfileRecord> {
  const s = sql.s;
  const head = await sql.rows<{ version: string; data: string }>(`SELECT version, data FROM ${s}.auth_profiles WHERE user_id = $1 FOR SHARE`, [user]);
  const h = head[0];
  // No row yet: nothing else exists either (a first write creates the row before its other rows).
  if (h === undefined) return { version: 0, data: {}, subscriptions: [], push: [] };
  const subs = await sql.rows<{ device: string; site: string; muted_until: string | null }>(
    `SELECT device, site, muted_until FROM ${s}.auth_subscriptions WHERE user_id = $1 ORDER BY device, site`,
    [user],
  );
  const push = await sql.rows<{ device: string; endpoint: string; p256dh: string; auth: string }>(
    `SELECT device, endpoint, p256dh, auth FROM ${s}.auth_push_endpoints WHERE user_id = $1 ORDER BY device`,
    [user],
  );
  return {
    version: num(h.version),
    data: JSON.parse(h.data) as Record<string, unknown>,
    subscriptions: subs.map((r) => ({ device: r.device, site: r.site, mutedUntil: numOrNull(r.muted_until) })),
    push: push.map((r) => ({ device: r.device, endpoint: r.endpoint, keys: { p256dh: r.p256dh, auth: r.auth } })),
  };
}

/**
 * Version 0 inserts the row (ON CONFLICT DO NOTHING waits for a concurrent insert and then
 * reports nothing); any other version is a conditional UPDATE, which a concurrent writer
 * makes wait and then re-checks against the committed version.
 */
export async function putProfile(sql: TxSql, user: string, version: number, next: ProfileState, now: number): Promise<boolean> {
  const s = sql.s;
  const data = JSON.stringify(next.data);
  const n =
    version === 0
      ? await sql.count(`INSERT INTO ${s}.auth_profiles (user_id, version, data, updated_at) VALUES ($1, 1, $2, $3) ON CONFLICT (user_id) DO NOTHING`, [user, data, now])
      : await sql.count(`UPDATE ${s}.auth_profiles SET version = version + 1, data = $1, updated_at = $2 WHERE user_id = $3 AND version = $4`, [data, now, user, version]);
  if (n !== 1) return false;
  await sql.count(`DELETE FROM ${s}.auth_subscriptions WHERE user_id = $1`, [user]);
  await sql.count(`DELETE FROM ${s}.auth_push_endpoints WHERE user_id = $1`, [user]);
  if (next.subscriptions.length > 0) {
    await sql.count(
      `INSERT INTO ${s}.auth_subscriptions (user_id, device, site, muted_until)
       SELECT $1, d, st, m FROM unnest($2::text[], $3::text[], $4::bigint[]) AS t(d, st, m)`,
      [user, next.subscriptions.map((x) => x.device), next.subscriptions.map((x) => x.site), next.subscriptions.map((x) => x.mutedUntil)],
    );
  }
  if (next.push.length > 0) {
    await sql.count(
      `INSERT INTO ${s}.auth_push_endpoints (device, user_id, endpoint, p256dh, auth)
       SELECT d, $1, e, p, a FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS t(d, e, p, a)`,
      [user, next.push.map((x) => x.device), next.push.map((x) => x.endpoint), next.push.map((x) => x.keys.p256dh), next.push.map((x) => x.keys.auth)],
    );
  }
  return true;
}

export async function purgeDevice(sql: TxSql, user: string, device: string, now: number): Promise<{ profileVersion: number | null }> {
  const s = sql.s;
  await sql.count(`DELETE FROM ${s}.auth_envelopes WHERE to_device = $1`, [device]);
  const head = await sql.rows<{ version: string }>(`SELECT version FROM ${s}.auth_profiles WHERE user_id = $1 FOR UPDATE`, [user]);
  if (head[0] === undefined) return { profileVersion: null };
  const removed =
    (await sql.count(`DELETE FROM ${s}.auth_subscriptions WHERE user_id = $1 AND device = $2`, [user, device])) +
    (await sql.count(`DELETE FROM ${s}.auth_push_endpoints WHERE user_id = $1 AND device = $2`, [user, device]));
  if (removed === 0) return { profileVersion: null };
  const r = await sql.rows<{ version: string }>(`UPDATE ${s}.auth_profiles SET version = version + 1, updated_at = $1 WHERE user_id = $2 RETURNING version`, [now, user]);
  return { profileVersion: r[0] === undefined ? null : num(r[0].version) };
}
