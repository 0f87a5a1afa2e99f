/**
 * The SQLite side of OIDC logins: the login steps (start → callback → complete), the atomic
 * link of a verified email to a user and device, and the attestations served by /keys.
 * Every multi-statement method runs in one IMMEDIATE transaction.
 */
import type { Database } from 'better-sqlite3';
import type { IdentityLink, IdentityLinkResult, NewOidcLogin, OidcLoginRecord, OidcOutcome } from '../store.js';
import { statements, type StatementLookup } from './statements.js';

type Row = Record<string, unknown>;

function toLogin(r: Row): OidcLoginRecord {
  const phase = r.phase === 'done' ? 'done' : r.phase === 'callback' ? 'callback' : 'started';
  return {
    state: String(r.state),
    provider: String(r.provider),
    device: String(r.device),
    boxKey: r.box_key === null ? null : String(r.box_key),
    boxSig: r.box_sig === null ? null : String(r.box_sig),
    name: String(r.name),
    verifier: r.verifier === null ? '' : String(r.verifier),
    oidcNonce: String(r.oidc_nonce),
    redirect: r.redirect === null ? null : String(r.redirect),
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
    phase,
    outcome: r.outcome === null ? null : (JSON.parse(String(r.outcome)) as OidcOutcome),
  };
}

export class SqliteIdentities {
  readonly #db: Database;
  readonly #s: StatementLookup;

  constructor(db: Database) {
    this.#db = db;
    this.#s = statements(db, (p) => ({
      device: p('SELECT user_id, revoked_at FROM devices WHERE id = ?'),
      emailUser: p('SELECT user_id FROM emails WHERE email = ?'),
      insertEmail: p('INSERT INTO emails (email, user_id, created_at) VALUES (?, ?, ?)'),
      insertUser: p('INSERT INTO users (id, created_at) VALUES (?, ?)'),
      insertDevice: p('INSERT INTO devices (id, user_id, box_key, box_sig, name, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
      upsertIdentity: p(`
        INSERT INTO identities (email, provider, device, user_id, attested_at, attestation) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (email, provider, device) DO UPDATE SET user_id = excluded.user_id, attested_at = excluded.attested_at,
          attestation = excluded.attestation`),
      attestations: p(`
        SELECT i.device, i.provider, i.attestation FROM identities i JOIN devices d ON d.id = i.device
        WHERE i.email = ? AND i.attestation IS NOT NULL AND d.revoked_at IS NULL AND d.user_id = i.user_id
        ORDER BY i.attested_at, i.device, i.provider LIMIT ?`),
      rename: p('UPDATE devices SET name = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL'),
      putLogin: p(`
        INSERT INTO oidc_logins (state, provider, device, box_key, box_sig, name, verifier, oidc_nonce, redirect, phase, created_at, expires_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'started', ?, ?)`),
      getLogin: p('SELECT * FROM oidc_logins WHERE state = ?'),
      takeCallback: p("UPDATE oidc_logins SET phase = 'callback' WHERE state = ? AND phase = 'started' AND expires_at > ? RETURNING *"),
      finish: p("UPDATE oidc_logins SET phase = 'done', outcome = ?, verifier = NULL, expires_at = ? WHERE state = ? AND phase = 'callback'"),
      takeOutcome: p("DELETE FROM oidc_logins WHERE state = ? AND device = ? AND phase = 'done' AND expires_at > ? RETURNING outcome"),
      prune: p('DELETE FROM oidc_logins WHERE expires_at <= ?'),
    }));
  }


  async linkIdentity(l: IdentityLink): Promise<IdentityLinkResult> {
    return this.#db
      .transaction((): IdentityLinkResult => {
        const dev = this.#s('device').get(l.device.id) as Row | undefined;
        if (dev !== undefined && dev.revoked_at !== null) return { ok: false, reason: 'device-revoked' };
        const owner = this.#s('emailUser').get(l.email) as Row | undefined;
        let user: string;
        let newUser = false;
        let newDevice = false;
        if (owner === undefined) {
          if (dev !== undefined) user = String(dev.user_id);
          else {
            if (l.device.boxKey === null) return { ok: false, reason: 'box-key-required' };
            user = l.newUser;
            this.#s('insertUser').run(user, l.now);
            this.#s('insertDevice').run(l.device.id, user, l.device.boxKey, l.device.boxSig ?? null, l.device.name, l.now);
            newUser = true;
            newDevice = true;
          }
          this.#s('insertEmail').run(l.email, user, l.now);
        } else {
          user = String(owner.user_id);
          if (dev !== undefined && String(dev.user_id) !== user) return { ok: false, reason: 'device-of-another-user' };
          if (dev === undefined) {
            if (l.device.boxKey === null) return { ok: false, reason: 'box-key-required' };
            this.#s('insertDevice').run(l.device.id, user, l.device.boxKey, l.device.boxSig ?? null, l.device.name, l.now);
            newDevice = true;
          }
        }
        this.#s('upsertIdentity').run(l.email, l.provider, l.device.id, user, l.now, l.attestation);
        return { ok: true, user, newUser, newDevice };
      })
      .immediate();
  }

  async attestationsOf(email: string, limit: number): Promise<{ device: string; provider: string; attestation: string }[]> {
    return (this.#s('attestations').all(email, limit) as Row[]).map((r) => ({
      device: String(r.device),
      provider: String(r.provider),
      attestation: String(r.attestation),
    }));
  }

  async renameDevice(user: string, device: string, name: string): Promise<boolean> {
    return this.#s('rename').run(name, device, user).changes === 1;
  }

  async putOidcLogin(l: NewOidcLogin): Promise<void> {
    this.#s('putLogin').run(l.state, l.provider, l.device, l.boxKey, l.boxSig ?? null, l.name, l.verifier, l.oidcNonce, l.redirect, l.createdAt, l.expiresAt);
  }

  async getOidcLogin(state: string): Promise<OidcLoginRecord | null> {
    const r = this.#s('getLogin').get(state) as Row | undefined;
    return r === undefined ? null : toLogin(r);
  }

  async takeOidcCallback(state: string, now: number): Promise<OidcLoginRecord | null> {
    const r = this.#s('takeCallback').get(state, now) as Row | undefined;
    return r === undefined ? null : toLogin(r);
  }

  async finishOidcLogin(state: string, outcome: OidcOutcome, expiresAt: number): Promise<void> {
    this.#s('finish').run(JSON.stringify(outcome), expiresAt, state);
  }

  async takeOidcOutcome(state: string, device: string, now: number): Promise<OidcOutcome | null> {
    const r = this.#s('takeOutcome').get(state, device, now) as Row | undefined;
    return r === undefined || r.outcome === null ? null : (JSON.parse(String(r.outcome)) as OidcOutcome);
  }

  prune(now: number): void {
    this.#s('prune').run(now);
  }
}
