/**
 * The PostgreSQL side of the key directory (key-directory.ts; tables auth_user_keys and
 * auth_device_certificates, plus site lookups on auth_access and auth_grants). Writers of one
 * user's keys and certificates queue on that user's row lock, so the version compare-and-set
 * and the "certificate under the newest version" check hold across nodes; the device's row
 * lock keeps a concurrent revocation from slipping in between check and write.
 */
import type { CertificateRecord, CertifiedDevice, KeyDirectoryStore, UserKeyRecord } from '../key-directory.js';
import { MAX_USER_KEY_VERSIONS } from '../key-directory.js';
import type { AccessRecord, GrantRecord } from '../store.js';
import { ACCESS_COLUMNS, toAccess, type AccessRow } from './access.js';
import type { PgDb } from './db.js';
import { GRANT_COLUMNS, toGrant, type GrantRow } from './grants.js';
import { num, numOrNull, type Sql } from './sql.js';

interface UserKeyRow {
  user_id: string;
  version: number;
  public_key: string;
  sig: string;
  prev_sig: string | null;
  created_at: string;
}

interface CertRow {
  device: string;
  user_id: string;
  key_version: number;
  certificate: string;
  created_at: string;
  box_key: string;
  revoked_at: string | null;
}

async function newestVersion(sql: Sql, user: string): Promise<number> {
  const rows = await sql.rows<{ v: unknown }>(`SELECT COALESCE(MAX(version), 0) AS v FROM ${sql.s}.auth_user_keys WHERE user_id = $1`, [user]);
  return num(rows[0]?.v ?? 0);
}

export class PgKeyDirectory implements KeyDirectoryStore {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  async userKeys(user: string): Promise<UserKeyRecord[]> {
    const rows = await this.#db.rows<UserKeyRow>(
      `SELECT user_id, version, public_key, sig, prev_sig, created_at FROM ${this.#db.s}.auth_user_keys WHERE user_id = $1 ORDER BY version`,
      [user],
    );
    return rows.map((r) => ({ user: r.user_id, version: num(r.version), publicKey: r.public_key, sig: r.sig, prevSig: r.prev_sig, createdAt: num(r.created_at) }));
  }

  async addUserKey(k: UserKeyRecord): Promise<boolean> {
    if (k.version > MAX_USER_KEY_VERSIONS) return false;
    return this.#db.tx(async (sql) => {
      await sql.rows(`SELECT 1 FROM ${sql.s}.auth_users WHERE id = $1 FOR UPDATE`, [k.user]);
      if ((await newestVersion(sql, k.user)) !== k.version - 1) return false;
      const n = await sql.count(
        `INSERT INTO ${sql.s}.auth_user_keys (user_id, version, public_key, sig, prev_sig, created_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (user_id, version) DO NOTHING`,
        [k.user, k.version, k.publicKey, k.sig, k.prevSig, k.createdAt],
      );
      return n === 1;
    });
  }

  async putCertificate(c: CertificateRecord): Promise<'ok' | 'no-device' | 'stale-key'> {
    return this.#db.tx(async (sql) => {
      await sql.rows(`SELECT 1 FROM ${sql.s}.auth_users WHERE id = $1 FOR UPDATE`, [c.user]);
      const live = await sql.rows(`SELECT 1 FROM ${sql.s}.auth_devices WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL FOR UPDATE`, [c.device, c.user]);
      if (live.length === 0) return 'no-device';
      if ((await newestVersion(sql, c.user)) !== c.keyVersion) return 'stale-key';
      await sql.count(
        `INSERT INTO ${sql.s}.auth_device_certificates (device, user_id, key_version, certificate, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (device) DO UPDATE SET user_id = EXCLUDED.user_id, key_version = EXCLUDED.key_version,
           certificate = EXCLUDED.certificate, created_at = EXCLUDED.created_at`,
        [c.device, c.user, c.keyVersion, c.certificate, c.createdAt],
      );
      return 'ok';
    });
  }

  async certificatesOf(user: string): Promise<CertifiedDevice[]> {
    const rows = await this.#db.rows<CertRow>(
      `SELECT c.device, c.user_id, c.key_version, c.certificate, c.created_at, d.box_key, d.revoked_at
       FROM ${this.#db.s}.auth_device_certificates c JOIN ${this.#db.s}.auth_devices d ON d.id = c.device
       WHERE c.user_id = $1 AND d.user_id = c.user_id ORDER BY d.created_at, d.id`,
      [user],
    );
    return rows.map((r) => ({
      device: r.device,
      user: r.user_id,
      keyVersion: num(r.key_version),
      certificate: r.certificate,
      createdAt: num(r.created_at),
      boxKey: r.box_key,
      revokedAt: numOrNull(r.revoked_at),
    }));
  }

  async userOfEmail(email: string): Promise<string | null> {
    const rows = await this.#db.rows<{ user_id: string }>(`SELECT user_id FROM ${this.#db.s}.auth_emails WHERE email = $1`, [email]);
    return rows[0]?.user_id ?? null;
  }

  async accessOfSite(site: string, now: number, limit: number): Promise<AccessRecord[]> {
    const rows = await this.#db.rows<AccessRow>(
      `SELECT ${ACCESS_COLUMNS} FROM ${this.#db.s}.auth_access WHERE site = $1 AND (expires_at IS NULL OR expires_at > $2)
       ORDER BY created_at, user_id, grant_hash LIMIT $3`,
      [site, now, limit],
    );
    return rows.map(toAccess);
  }

  async grantsOfSite(site: string, limit: number): Promise<GrantRecord[]> {
    const rows = await this.#db.rows<GrantRow>(
      `SELECT ${GRANT_COLUMNS} FROM ${this.#db.s}.auth_grants WHERE site = $1 AND revoked_at IS NULL ORDER BY declared_at, hash LIMIT $2`,
      [site, limit],
    );
    return rows.map(toGrant);
  }
}
