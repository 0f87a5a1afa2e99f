/**
 * OIDC logins and the identities they attest (tables auth_oidc_logins, auth_emails,
 * auth_identities) of the PostgreSQL auth store. The login steps are single-statement
 * compare-and-sets; `linkIdentity` runs inside the caller's transaction.
 */
import { DgError } from '../../protocol/errors.js';
import type { IdentityLink, IdentityLinkResult, NewOidcLogin, OidcLoginRecord, OidcOutcome } from '../store.js';
import { num, type Sql, type TxSql } from './sql.js';

interface LoginRow {
  state: string;
  provider: string;
  device: string;
  box_key: string | null;
  box_sig: string | null;
  name: string;
  verifier: string | null;
  oidc_nonce: string;
  redirect: string | null;
  phase: string;
  outcome: string | null;
  created_at: string;
  expires_at: string;
}

function toLogin(r: LoginRow): OidcLoginRecord {
  return {
    state: r.state,
    provider: r.provider,
    device: r.device,
    boxKey: r.box_key,
    boxSig: r.box_sig,
    name: r.name,
    verifier: r.verifier ?? '',
    oidcNonce: r.oidc_nonce,
    redirect: r.redirect,
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
    phase: r.phase === 'done' ? 'done' : r.phase === 'callback' ? 'callback' : 'started',
    outcome: r.outcome === null ? null : (JSON.parse(r.outcome) as OidcOutcome),
  };
}

/**
 * In the caller's transaction: the device row is locked first (a concurrent revocation or
 * login of the same device waits), then the email is bound with an insert-if-absent on its
 * primary key, so two first logins with one email agree on one user.
 */
export async function linkIdentity(sql: TxSql, l: IdentityLink): Promise<IdentityLinkResult> {
  const s = sql.s;
  const devs = await sql.rows<{ user_id: string; revoked_at: string | null }>(`SELECT user_id, revoked_at FROM ${s}.auth_devices WHERE id = $1 FOR UPDATE`, [l.device.id]);
  const dev = devs[0];
  if (dev !== undefined && dev.revoked_at !== null) return { ok: false, reason: 'device-revoked' };
  if (dev === undefined && l.device.boxKey === null) return { ok: false, reason: 'box-key-required' };
  const candidate = dev?.user_id ?? l.newUser;
  const bound = await sql.rows<{ user_id: string }>(
    `INSERT INTO ${s}.auth_emails (email, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (email) DO NOTHING RETURNING user_id`,
    [l.email, candidate, l.now],
  );
  let user: string;
  let newUser = false;
  if (bound.length === 1) {
    user = candidate;
    newUser = dev === undefined;
    if (newUser) await sql.count(`INSERT INTO ${s}.auth_users (id, created_at) VALUES ($1, $2)`, [user, l.now]);
  } else {
    const owner = await sql.rows<{ user_id: string }>(`SELECT user_id FROM ${s}.auth_emails WHERE email = $1`, [l.email]);
    user = owner[0]?.user_id ?? '';
    if (dev !== undefined && dev.user_id !== user) return { ok: false, reason: 'device-of-another-user' };
  }
  const newDevice = dev === undefined;
  if (newDevice) {
    const n = await sql.count(
      `INSERT INTO ${s}.auth_devices (id, user_id, box_key, box_sig, name, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
      [l.device.id, user, l.device.boxKey, l.device.boxSig ?? null, l.device.name, l.now],
    );
    if (n !== 1) {
      // The same device registered concurrently through another path: the throw rolls back.
      throw new DgError('CONFLICT', 'device: registered concurrently; retry');
    }
  }
  await sql.count(
    `INSERT INTO ${s}.auth_identities (email, provider, device, user_id, attested_at, attestation) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (email, provider, device) DO UPDATE SET user_id = EXCLUDED.user_id, attested_at = EXCLUDED.attested_at, attestation = EXCLUDED.attestation`,
    [l.email, l.provider, l.device.id, user, l.now, l.attestation],
  );
  return { ok: true, user, newUser, newDevice };
}

export async function attestationsOf(sql: Sql, email: string, limit: number): Promise<{ device: string; provider: string; attestation: string }[]> {
  const rows = await sql.rows<{ device: string; provider: string; attestation: string }>(
    `SELECT i.device, i.provider, i.attestation FROM ${sql.s}.auth_identities i JOIN ${sql.s}.auth_devices d ON d.id = i.device
     WHERE i.email = $1 AND i.attestation IS NOT NULL AND d.revoked_at IS NULL AND d.user_id = i.user_id
     ORDER BY i.attested_at, i.device, i.provider LIMIT $2`,
    [email, limit],
  );
  return rows.map((r) => ({ device: r.device, provider: r.provider, attestation: r.attestation }));
}

export async function renameDevice(sql: Sql, user: string, device: string, name: string): Promise<boolean> {
  return (await sql.count(`UPDATE ${sql.s}.auth_devices SET name = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL`, [name, device, user])) === 1;
}

export async function putOidcLogin(sql: Sql, l: NewOidcLogin): Promise<void> {
  await sql.count(
    `INSERT INTO ${sql.s}.auth_oidc_logins (state, provider, device, box_key, box_sig, name, verifier, oidc_nonce, redirect, phase, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'started', $10, $11)`,
    [l.state, l.provider, l.device, l.boxKey, l.boxSig ?? null, l.name, l.verifier, l.oidcNonce, l.redirect, l.createdAt, l.expiresAt],
  );
}

export async function getOidcLogin(sql: Sql, state: string): Promise<OidcLoginRecord | null> {
  const rows = await sql.rows<LoginRow>(`SELECT * FROM ${sql.s}.auth_oidc_logins WHERE state = $1`, [state]);
  return rows[0] === undefined ? null : toLogin(rows[0]);
}

/** One conditional UPDATE: concurrent callers queue on the row lock; one sees phase 'started'. */
export async function takeOidcCallback(sql: Sql, state: string, now: number): Promise<OidcLoginRecord | null> {
  const rows = await sql.rows<LoginRow>(
    `UPDATE ${sql.s}.auth_oidc_logins SET phase = 'callback' WHERE state = $1 AND phase = 'started' AND expires_at > $2 RETURNING *`,
    [state, now],
  );
  return rows[0] === undefined ? null : toLogin(rows[0]);
}

export async function finishOidcLogin(sql: Sql, state: string, outcome: OidcOutcome, expiresAt: number): Promise<void> {
  await sql.count(
    `UPDATE ${sql.s}.auth_oidc_logins SET phase = 'done', outcome = $1, verifier = NULL, expires_at = $2 WHERE state = $3 AND phase = 'callback'`,
    [JSON.stringify(outcome), expiresAt, state],
  );
}

export async function takeOidcOutcome(sql: Sql, state: string, device: string, now: number): Promise<OidcOutcome | null> {
  const rows = await sql.rows<{ outcome: string | null }>(
    `DELETE FROM ${sql.s}.auth_oidc_logins WHERE state = $1 AND device = $2 AND phase = 'done' AND expires_at > $3 RETURNING outcome`,
    [state, device, now],
  );
  const o = rows[0]?.outcome;
  return o === undefined || o === null ? null : (JSON.parse(o) as OidcOutcome);
}

export async function pruneOidcLogins(sql: Sql, now: number): Promise<void> {
  await sql.count(`DELETE FROM ${sql.s}.auth_oidc_logins WHERE expires_at <= $1`, [now]);
}
