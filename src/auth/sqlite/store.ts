/**
 * The SQLite auth store of the monolith: one file, WAL, synchronous=FULL (a resolved call is
 * on disk). better-sqlite3 is synchronous, so each method runs to completion before any other
 * JavaScript; multi-statement methods also run in an IMMEDIATE transaction so that another
 * process opening the same file cannot interleave.
 */
import { normalizeEmail } from '../../protocol/email.js';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import type {
  AccessGuard,
  AccessRecord,
  AuthStore,
  ClaimResult,
  DeviceRecord,
  EnvelopeLimits,
  EnvelopePut,
  EnvelopeRecord,
  FamilyRecord,
  GrantRecord,
  IdentityLink,
  IdentityLinkResult,
  IdentityRecord,
  NewDevice,
  NewOidcLogin,
  OidcLoginRecord,
  OidcOutcome,
  ProfileRecord,
  ProfileState,
  RefreshRecord,
  Revoked,
  RevokedAccess,
  RotateRefresh,
  SiteRecord,
} from '../store.js';
import { splitSubjects } from '../grant-subjects.js';
import { REVOKED_ACCESS_KEEP_MS } from '../store.js';
import { SqliteFamilies } from './families.js';
import { SqliteIdentities } from './identity.js';
import { SqliteKeyDirectory } from './keys.js';
import { SqliteMailbox } from './mailbox.js';
import { migrate } from './migrations.js';
import { SqliteProfiles } from './profile.js';
import { num, numOrNull, str, strOrNull, toAccess, toDevice, toGrant, toSite, type Row } from './rows.js';
import { statements, type StatementLookup } from './statements.js';
import { damageFound, guardStorageFailures } from './storage-guard.js';

/** Grants that are `hashes` or descend from one through `prf` (bounded: chains are ≤ 8 deep). */
const DESCENDANTS = `
  WITH RECURSIVE d(hash, depth) AS (
    SELECT value, 0 FROM json_each(?)
    UNION
    SELECT g.hash, d.depth + 1 FROM grants g JOIN d ON g.prf = d.hash WHERE d.depth < 16
  )`;

export interface SqliteAuthStoreOptions {
  /**
   * How long a call waits for another connection's lock on the file before it fails with
   * UNAVAILABLE (default 5 000 ms). Only another process (a backup, an operator's shell)
   * holds one for long.
   */
  busyTimeoutMs?: number;
}

export class SqliteAuthStore implements AuthStore {
  readonly #db: Database;
  readonly #s: StatementLookup;
  readonly #identities: SqliteIdentities;
  readonly #profiles: SqliteProfiles;
  readonly #mailbox: SqliteMailbox;
  readonly #families: SqliteFamilies;
  readonly keys: SqliteKeyDirectory;

  constructor(path: string, options: SqliteAuthStoreOptions = {}) {
    this.#db = new BetterSqlite3(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('foreign_keys = ON');
    this.#db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
    migrate(this.#db);
    this.#s = statements(this.#db, (p) => ({
      insertUser: p('INSERT INTO users (id, created_at) VALUES (?, ?)'),
      deviceExists: p('SELECT 1 FROM devices WHERE id = ?'),
      userExists: p('SELECT 1 FROM users WHERE id = ?'),
      insertDevice: p('INSERT INTO devices (id, user_id, box_key, box_sig, name, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
      setBoxSig: p('UPDATE devices SET box_sig = ? WHERE id = ? AND box_key = ? AND revoked_at IS NULL'),
      getDevice: p('SELECT * FROM devices WHERE id = ?'),
      listDevices: p('SELECT * FROM devices WHERE user_id = ? ORDER BY created_at, id'),
      revokeDevice: p('UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      revokeDeviceFamilies: p('UPDATE families SET revoked_at = ? WHERE device = ? AND revoked_at IS NULL RETURNING id'),
      putNonce: p('INSERT INTO nonces (nonce, device, expires_at) VALUES (?, ?, ?)'),
      takeNonce: p('DELETE FROM nonces WHERE nonce = ? AND device = ? AND expires_at > ?'),
      insertFamily: p('INSERT INTO families (id, user_id, device, created_at) VALUES (?, ?, ?, ?)'),
      insertRefresh: p("INSERT INTO refresh_tokens (hash, family, state, expires_at) VALUES (?, ?, 'live', ?)"),
      getRefresh: p(`
        SELECT t.*, f.user_id, f.device, f.revoked_at AS family_revoked_at, d.id AS device_row, d.revoked_at AS device_revoked_at
        FROM refresh_tokens t JOIN families f ON f.id = t.family LEFT JOIN devices d ON d.id = f.device
        WHERE t.hash = ?`),
      rotateRefresh: p(`
        UPDATE refresh_tokens SET state = 'rotated', rotated_at = ?, guid = ?, answer = ?
        WHERE hash = ? AND state = 'live' AND expires_at > ?
          AND EXISTS (SELECT 1 FROM families f JOIN devices d ON d.id = f.device
                      WHERE f.id = refresh_tokens.family AND f.revoked_at IS NULL AND d.revoked_at IS NULL)
        RETURNING family`),
      revokeFamily: p('UPDATE families SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      revokedDevices: p('SELECT id, revoked_at FROM devices WHERE revoked_at >= ? ORDER BY revoked_at, id'),
      revokedFamilies: p('SELECT id, revoked_at FROM families WHERE revoked_at >= ? ORDER BY revoked_at, id'),
      revokedAccess: p('SELECT user_id, site, revoked_at FROM access_revocations WHERE revoked_at >= ? ORDER BY revoked_at, user_id, site'),
      recordRevokedAccess: p(
        `INSERT INTO access_revocations (user_id, site, revoked_at) VALUES (?, ?, ?)
         ON CONFLICT (user_id, site) DO UPDATE SET revoked_at = max(revoked_at, excluded.revoked_at)`,
      ),
      pruneRevokedAccess: p('DELETE FROM access_revocations WHERE revoked_at < ?'),
      insertSite: p('INSERT INTO sites (id, owner, name, key_epoch, created_at) VALUES (?, ?, ?, 1, ?)'),
      getSite: p('SELECT * FROM sites WHERE id = ?'),
      sitesOwnedBy: p('SELECT id FROM sites WHERE owner = ? ORDER BY created_at, id'),
      markRotation: p('UPDATE sites SET rotation_required = 1 WHERE id IN (SELECT value FROM json_each(?))'),
      advanceEpoch: p('UPDATE sites SET key_epoch = ?, rotation_required = 0 WHERE id = ? AND key_epoch = ?'),
      putGrant: p(`
        INSERT INTO grants (hash, jws, issuer, subject, site, logs, rights, iat, exp, prf, declared_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING`),
      getGrant: p('SELECT * FROM grants WHERE hash = ?'),
      findGrants: p(`
        SELECT * FROM grants WHERE issuer IN (SELECT value FROM json_each(?)) OR subject IN (SELECT value FROM json_each(?))
        ORDER BY declared_at, hash`),
      // Its own statement: an OR with the NOCASE term would make SQLite scan the table.
      findEmailGrants: p('SELECT * FROM grants WHERE subject COLLATE NOCASE IN (SELECT value FROM json_each(?))'),
      revokeGrant: p('UPDATE grants SET revoked_at = ? WHERE hash = ? AND revoked_at IS NULL'),
      accessThrough: p(`${DESCENDANTS} SELECT * FROM access WHERE grant_hash IN (SELECT hash FROM d) ORDER BY created_at, user_id, site, grant_hash`),
      deleteThrough: p(`${DESCENDANTS} DELETE FROM access WHERE grant_hash IN (SELECT hash FROM d) RETURNING *`),
      guardGrants: p('SELECT 1 FROM grants WHERE hash IN (SELECT value FROM json_each(?)) AND revoked_at IS NOT NULL LIMIT 1'),
      guardDevices: p('SELECT 1 FROM devices WHERE id IN (SELECT value FROM json_each(?)) AND revoked_at IS NOT NULL LIMIT 1'),
      guardAnyLive: p('SELECT 1 FROM devices WHERE id IN (SELECT value FROM json_each(?)) AND revoked_at IS NULL LIMIT 1'),
      putAccess: p(`
        INSERT INTO access (user_id, site, grant_hash, logs, rights, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (user_id, site, grant_hash) DO UPDATE SET logs = excluded.logs, rights = excluded.rights, expires_at = excluded.expires_at`),
      accessFor: p('SELECT * FROM access WHERE user_id = ? AND site = ? ORDER BY created_at, grant_hash'),
      accessOfUser: p('SELECT * FROM access WHERE user_id = ? ORDER BY created_at, site, grant_hash'),
      deleteAccess: p('DELETE FROM access WHERE user_id = ? AND site = ? AND grant_hash = ?'),
      addIdentity: p(`
        INSERT INTO identities (email, provider, device, user_id, attested_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (email, provider, device) DO UPDATE SET user_id = excluded.user_id, attested_at = excluded.attested_at`),
      identitiesOf: p('SELECT * FROM identities WHERE user_id = ? ORDER BY attested_at, email, provider, device'),
      pruneNonces: p('DELETE FROM nonces WHERE expires_at <= ?'),
      pruneRefresh: p('DELETE FROM refresh_tokens WHERE expires_at <= ?'),
      pruneAccess: p('DELETE FROM access WHERE expires_at IS NOT NULL AND expires_at <= ?'),
      ping: p('SELECT 1'),
    }));
    this.#identities = new SqliteIdentities(this.#db);
    this.#profiles = new SqliteProfiles(this.#db);
    this.#mailbox = new SqliteMailbox(this.#db);
    this.#families = new SqliteFamilies(this.#db);
    this.keys = new SqliteKeyDirectory(this.#db);
  }


  #tx<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate();
  }

  async createUser(user: { id: string; createdAt: number }, device: NewDevice): Promise<boolean> {
    return this.#tx(() => {
      if (this.#s('deviceExists').get(device.id) !== undefined) return false;
      this.#s('insertUser').run(user.id, user.createdAt);
      this.#s('insertDevice').run(device.id, user.id, device.boxKey, device.boxSig ?? null, device.name, device.createdAt);
      return true;
    });
  }

  async addDevice(user: string, device: NewDevice): Promise<boolean> {
    return this.#tx(() => {
      if (this.#s('deviceExists').get(device.id) !== undefined || this.#s('userExists').get(user) === undefined) return false;
      this.#s('insertDevice').run(device.id, user, device.boxKey, device.boxSig ?? null, device.name, device.createdAt);
      return true;
    });
  }

  async getDevice(id: string): Promise<DeviceRecord | null> {
    const r = this.#s('getDevice').get(id) as Row | undefined;
    return r === undefined ? null : toDevice(r);
  }

  async listDevices(user: string): Promise<DeviceRecord[]> {
    return (this.#s('listDevices').all(user) as Row[]).map(toDevice);
  }

  async setBoxSig(device: string, boxKey: string, boxSig: string): Promise<boolean> {
    return this.#s('setBoxSig').run(boxSig, device, boxKey).changes === 1;
  }

  async revokeDevice(id: string, now: number): Promise<{ revoked: boolean; families: string[] }> {
    return this.#tx(() => {
      const revoked = this.#s('revokeDevice').run(now, id).changes === 1;
      const families = (this.#s('revokeDeviceFamilies').all(now, id) as Row[]).map((r) => str(r.id));
      return { revoked, families };
    });
  }

  async putNonce(nonce: string, device: string, expiresAt: number): Promise<void> {
    this.#s('putNonce').run(nonce, device, expiresAt);
  }

  async takeNonce(nonce: string, device: string, now: number): Promise<boolean> {
    return this.#s('takeNonce').run(nonce, device, now).changes === 1;
  }

  async createFamily(family: { id: string; user: string; device: string; createdAt: number }, token: { hash: string; expiresAt: number }): Promise<void> {
    this.#tx(() => {
      this.#s('insertFamily').run(family.id, family.user, family.device, family.createdAt);
      this.#s('insertRefresh').run(token.hash, family.id, token.expiresAt);
    });
  }

  async getRefresh(hash: string): Promise<RefreshRecord | null> {
    const r = this.#s('getRefresh').get(hash) as Row | undefined;
    if (r === undefined) return null;
    return {
      hash: str(r.hash),
      family: str(r.family),
      user: str(r.user_id),
      device: str(r.device),
      state: r.state === 'rotated' ? 'rotated' : 'live',
      expiresAt: num(r.expires_at),
      rotatedAt: numOrNull(r.rotated_at),
      guid: strOrNull(r.guid),
      answer: strOrNull(r.answer),
      familyRevoked: r.family_revoked_at !== null,
      // A family whose device row is missing is treated as revoked.
      deviceRevoked: r.device_revoked_at !== null || r.device_row === null,
    };
  }

  async rotateRefresh(hash: string, rot: RotateRefresh): Promise<boolean> {
    return this.#tx(() => {
      const done = this.#s('rotateRefresh').get(rot.now, rot.guid, rot.answer, hash, rot.now) as Row | undefined;
      if (done === undefined) return false;
      this.#s('insertRefresh').run(rot.next.hash, str(done.family), rot.next.expiresAt);
      return true;
    });
  }

  async revokeFamily(id: string, now: number): Promise<boolean> {
    return this.#s('revokeFamily').run(now, id).changes === 1;
  }

  liveFamilies(user: string, now: number, limit: number): Promise<FamilyRecord[]> {
    return this.#families.liveFamilies(user, now, limit);
  }

  revokeLiveFamily(user: string, id: string, now: number): Promise<boolean> {
    return this.#families.revokeLiveFamily(user, id, now);
  }

  async revokedSince(since: number): Promise<{ devices: Revoked[]; families: Revoked[]; access: RevokedAccess[] }> {
    const map = (rows: Row[]): Revoked[] => rows.map((r) => ({ id: str(r.id), at: num(r.revoked_at) }));
    return this.#db.transaction(() => ({
      devices: map(this.#s('revokedDevices').all(since) as Row[]),
      families: map(this.#s('revokedFamilies').all(since) as Row[]),
      access: (this.#s('revokedAccess').all(since) as Row[]).map((r) => ({ user: str(r.user_id), site: str(r.site), at: num(r.revoked_at) })),
    }))();
  }

  async createSite(site: { id: string; owner: string; name: string; createdAt: number }): Promise<void> {
    this.#s('insertSite').run(site.id, site.owner, site.name, site.createdAt);
  }

  async getSite(id: string): Promise<SiteRecord | null> {
    const r = this.#s('getSite').get(id) as Row | undefined;
    return r === undefined ? null : toSite(r);
  }

  async sitesOwnedBy(user: string): Promise<string[]> {
    return (this.#s('sitesOwnedBy').all(user) as Row[]).map((r) => str(r.id));
  }

  async markRotationRequired(sites: string[]): Promise<void> {
    if (sites.length > 0) this.#s('markRotation').run(JSON.stringify(sites));
  }

  async advanceKeyEpoch(site: string, keyEpoch: number): Promise<boolean> {
    return this.#s('advanceEpoch').run(keyEpoch, site, keyEpoch - 1).changes === 1;
  }

  async putGrant(g: Omit<GrantRecord, 'revokedAt'>): Promise<void> {
    this.#s('putGrant').run(g.hash, g.jws, g.issuer, g.subject, g.site, JSON.stringify(g.logs), JSON.stringify(g.rights), g.iat, g.exp, g.prf, g.declaredAt);
  }

  async getGrant(hash: string): Promise<GrantRecord | null> {
    const r = this.#s('getGrant').get(hash) as Row | undefined;
    return r === undefined ? null : toGrant(r);
  }

  async findGrants(query: { issuers: string[]; subjects: string[] }): Promise<GrantRecord[]> {
    if (query.issuers.length === 0 && query.subjects.length === 0) return [];
    const { exact, emails } = splitSubjects(query.subjects);
    const rows = this.#s('findGrants').all(JSON.stringify(query.issuers), JSON.stringify(exact)) as Row[];
    if (emails.length === 0) return rows.map(toGrant);
    const byHash = new Map(rows.map((r) => [r.hash, r]));
    for (const r of this.#s('findEmailGrants').all(JSON.stringify(emails)) as Row[]) byHash.set(r.hash, r);
    return [...byHash.values()].map(toGrant).sort((a, b) => a.declaredAt - b.declaredAt || (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0));
  }

  async revokeGrant(hash: string, now: number): Promise<{ revoked: boolean; dropped: AccessRecord[] }> {
    return this.#tx(() => {
      const revoked = this.#s('revokeGrant').run(now, hash).changes === 1;
      const dropped = (this.#s('deleteThrough').all(JSON.stringify([hash])) as Row[]).map(toAccess);
      for (const r of dropped) this.#s('recordRevokedAccess').run(r.user, r.site, now);
      return { revoked, dropped };
    });
  }

  async putAccess(row: AccessRecord, guard: AccessGuard): Promise<boolean> {
    return this.#tx(() => {
      if (this.#s('guardGrants').get(JSON.stringify(guard.grants)) !== undefined) return false;
      if (this.#s('guardDevices').get(JSON.stringify(guard.devices)) !== undefined) return false;
      if (guard.anyOf.some((set) => this.#s('guardAnyLive').get(JSON.stringify(set)) === undefined)) return false;
      this.#s('putAccess').run(row.user, row.site, row.grant, JSON.stringify(row.logs), JSON.stringify(row.rights), row.expiresAt, row.createdAt);
      return true;
    });
  }

  async accessFor(user: string, site: string): Promise<AccessRecord[]> {
    return (this.#s('accessFor').all(user, site) as Row[]).map(toAccess);
  }

  async accessOfUser(user: string): Promise<AccessRecord[]> {
    return (this.#s('accessOfUser').all(user) as Row[]).map(toAccess);
  }

  async accessThroughGrants(hashes: string[]): Promise<AccessRecord[]> {
    if (hashes.length === 0) return [];
    return (this.#s('accessThrough').all(JSON.stringify(hashes)) as Row[]).map(toAccess);
  }

  async deleteAccess(rows: { user: string; site: string; grant: string }[], now: number): Promise<number> {
    return this.#tx(() => {
      let n = 0;
      for (const r of rows) {
        if (this.#s('deleteAccess').run(r.user, r.site, r.grant).changes === 0) continue;
        this.#s('recordRevokedAccess').run(r.user, r.site, now);
        n++;
      }
      return n;
    });
  }

  async addIdentity(i: IdentityRecord): Promise<void> {
    this.#s('addIdentity').run(normalizeEmail(i.email), i.provider, i.device, i.user, i.attestedAt);
  }

  async identitiesOf(user: string): Promise<IdentityRecord[]> {
    return (this.#s('identitiesOf').all(user) as Row[]).map((r) => ({
      email: str(r.email),
      provider: str(r.provider),
      device: str(r.device),
      user: str(r.user_id),
      attestedAt: num(r.attested_at),
    }));
  }

  linkIdentity(link: IdentityLink): Promise<IdentityLinkResult> {
    return this.#identities.linkIdentity(link);
  }

  attestationsOf(email: string, limit: number): Promise<{ device: string; provider: string; attestation: string }[]> {
    return this.#identities.attestationsOf(email, limit);
  }

  renameDevice(user: string, device: string, name: string): Promise<boolean> {
    return this.#identities.renameDevice(user, device, name);
  }

  putOidcLogin(login: NewOidcLogin): Promise<void> {
    return this.#identities.putOidcLogin(login);
  }

  getOidcLogin(state: string): Promise<OidcLoginRecord | null> {
    return this.#identities.getOidcLogin(state);
  }

  takeOidcCallback(state: string, now: number): Promise<OidcLoginRecord | null> {
    return this.#identities.takeOidcCallback(state, now);
  }

  finishOidcLogin(state: string, outcome: OidcOutcome, expiresAt: number): Promise<void> {
    return this.#identities.finishOidcLogin(state, outcome, expiresAt);
  }

  takeOidcOutcome(state: string, device: string, now: number): Promise<OidcOutcome | null> {
    return this.#identities.takeOidcOutcome(state, device, now);
  }

  getProfile(user: string): Promise<ProfileRecord> {
    return this.#profiles.getProfile(user);
  }

  putProfile(user: string, version: number, next: ProfileState, now: number): Promise<boolean> {
    return this.#profiles.putProfile(user, version, next, now);
  }

  purgeDevice(user: string, device: string, now: number): Promise<{ profileVersion: number | null }> {
    return this.#profiles.purgeDevice(user, device, now);
  }

  claim(c: { namespace: string; name: string; user: string; now: number; maxPerUser: number }): Promise<ClaimResult> {
    return this.#mailbox.claim(c);
  }

  putEnvelope(envelope: EnvelopeRecord, limits: EnvelopeLimits, now: number): Promise<EnvelopePut> {
    return this.#mailbox.putEnvelope(envelope, limits, now);
  }

  listEnvelopes(device: string, now: number, limit: number): Promise<EnvelopeRecord[]> {
    return this.#mailbox.listEnvelopes(device, now, limit);
  }

  deleteEnvelope(id: string, device: string): Promise<boolean> {
    return this.#mailbox.deleteEnvelope(id, device);
  }

  async prune(now: number): Promise<void> {
    this.#tx(() => {
      this.#s('pruneNonces').run(now);
      this.#s('pruneRefresh').run(now);
      this.#s('pruneAccess').run(now);
      this.#s('pruneRevokedAccess').run(now - REVOKED_ACCESS_KEEP_MS);
      this.#identities.prune(now);
      this.#mailbox.prune(now);
    });
  }

  async healthy(): Promise<boolean> {
    // `SELECT 1` answers on a damaged file: a call that met the damage says so.
    if (damageFound(this) !== null || damageFound(this.keys) !== null) return false;
    try {
      return this.#db.open && this.#s('ping').get() !== undefined;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}

// Storage failures (a full disk, an I/O error, a lock held past the busy timeout) reject
// with UNAVAILABLE, from every method, as the AuthStore contract says.
guardStorageFailures(SqliteAuthStore.prototype);
guardStorageFailures(SqliteKeyDirectory.prototype);
