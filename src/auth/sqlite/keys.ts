/**
 * The SQLite side of the key directory (key-directory.ts): user key chains, device
 * certificates and the site lookups behind GET /sites/:site/members. The compare-and-sets run
 * in one IMMEDIATE transaction with their checks, so they hold against another process that
 * opens the same file.
 */
import type { Database } from 'better-sqlite3';
import type { CertificateRecord, CertifiedDevice, KeyDirectoryStore, UserKeyRecord } from '../key-directory.js';
import { MAX_USER_KEY_VERSIONS } from '../key-directory.js';
import type { AccessRecord, GrantRecord } from '../store.js';
import { num, numOrNull, str, strOrNull, toAccess, toGrant, type Row } from './rows.js';
import { statements, type StatementLookup } from './statements.js';

function toUserKey(r: Row): UserKeyRecord {
  return { user: str(r.user_id), version: num(r.version), publicKey: str(r.public_key), sig: str(r.sig), prevSig: strOrNull(r.prev_sig), createdAt: num(r.created_at) };
}

export class SqliteKeyDirectory implements KeyDirectoryStore {
  readonly #db: Database;
  readonly #s: StatementLookup;

  constructor(db: Database) {
    this.#db = db;
    this.#s = statements(db, (p) => ({
      userKeys: p('SELECT * FROM user_keys WHERE user_id = ? ORDER BY version'),
      newestVersion: p('SELECT COALESCE(MAX(version), 0) AS v FROM user_keys WHERE user_id = ?'),
      insertUserKey: p('INSERT INTO user_keys (user_id, version, public_key, sig, prev_sig, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
      liveDeviceOf: p('SELECT 1 FROM devices WHERE id = ? AND user_id = ? AND revoked_at IS NULL'),
      putCertificate: p(`
        INSERT INTO device_certificates (device, user_id, key_version, certificate, created_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (device) DO UPDATE SET user_id = excluded.user_id, key_version = excluded.key_version,
          certificate = excluded.certificate, created_at = excluded.created_at`),
      certificatesOf: p(`
        SELECT c.*, d.box_key, d.revoked_at FROM device_certificates c JOIN devices d ON d.id = c.device
        WHERE c.user_id = ? AND d.user_id = c.user_id ORDER BY d.created_at, d.id`),
      userOfEmail: p('SELECT user_id FROM emails WHERE email = ?'),
      accessOfSite: p('SELECT * FROM access WHERE site = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at, user_id, grant_hash LIMIT ?'),
      grantsOfSite: p('SELECT * FROM grants WHERE site = ? AND revoked_at IS NULL ORDER BY declared_at, hash LIMIT ?'),
    }));
  }


  async userKeys(user: string): Promise<UserKeyRecord[]> {
    return (this.#s('userKeys').all(user) as Row[]).map(toUserKey);
  }

  async addUserKey(k: UserKeyRecord): Promise<boolean> {
    return this.#db
      .transaction((): boolean => {
        const newest = num((this.#s('newestVersion').get(k.user) as Row).v);
        if (k.version !== newest + 1 || k.version > MAX_USER_KEY_VERSIONS) return false;
        this.#s('insertUserKey').run(k.user, k.version, k.publicKey, k.sig, k.prevSig, k.createdAt);
        return true;
      })
      .immediate();
  }

  async putCertificate(c: CertificateRecord): Promise<'ok' | 'no-device' | 'stale-key'> {
    return this.#db
      .transaction((): 'ok' | 'no-device' | 'stale-key' => {
        if (this.#s('liveDeviceOf').get(c.device, c.user) === undefined) return 'no-device';
        if (num((this.#s('newestVersion').get(c.user) as Row).v) !== c.keyVersion) return 'stale-key';
        this.#s('putCertificate').run(c.device, c.user, c.keyVersion, c.certificate, c.createdAt);
        return 'ok';
      })
      .immediate();
  }

  async certificatesOf(user: string): Promise<CertifiedDevice[]> {
    return (this.#s('certificatesOf').all(user) as Row[]).map((r) => ({
      device: str(r.device),
      user: str(r.user_id),
      keyVersion: num(r.key_version),
      certificate: str(r.certificate),
      createdAt: num(r.created_at),
      boxKey: str(r.box_key),
      revokedAt: numOrNull(r.revoked_at),
    }));
  }

  async userOfEmail(email: string): Promise<string | null> {
    const r = this.#s('userOfEmail').get(email) as Row | undefined;
    return r === undefined ? null : str(r.user_id);
  }

  async accessOfSite(site: string, now: number, limit: number): Promise<AccessRecord[]> {
    return (this.#s('accessOfSite').all(site, now, limit) as Row[]).map(toAccess);
  }

  async grantsOfSite(site: string, limit: number): Promise<GrantRecord[]> {
    return (this.#s('grantsOfSite').all(site, limit) as Row[]).map(toGrant);
  }
}
