/** Identities attested by OIDC logins (table auth_identities) of the PostgreSQL auth store. */
import { normalizeEmail } from '../../protocol/email.js';
import type { IdentityRecord } from '../store.js';
import { num, type Sql } from './sql.js';

/** One row per (email, provider, device); a new attestation replaces the user and time. Emails are lower-cased. */
export async function addIdentity(sql: Sql, i: IdentityRecord): Promise<void> {
  await sql.count(
    `INSERT INTO ${sql.s}.auth_identities (email, provider, device, user_id, attested_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (email, provider, device) DO UPDATE SET user_id = EXCLUDED.user_id, attested_at = EXCLUDED.attested_at`,
    [normalizeEmail(i.email), i.provider, i.device, i.user, i.attestedAt],
  );
}

export async function identitiesOf(sql: Sql, user: string): Promise<IdentityRecord[]> {
  const rows = await sql.rows<{ email: string; provider: string; device: string; user_id: string; attested_at: string }>(
    `SELECT email, provider, device, user_id, attested_at FROM ${sql.s}.auth_identities
     WHERE user_id = $1 ORDER BY attested_at, email, provider, device`,
    [user],
  );
  return rows.map((r) => ({ email: r.email, provider: r.provider, device: r.device, user: r.user_id, attestedAt: num(r.attested_at) }));
}
