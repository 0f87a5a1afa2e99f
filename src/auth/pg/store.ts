/**
 * The PostgreSQL auth store (clusters): any number of auth nodes share one database. Each
 * table group has its own file (users.ts, nonces.ts, refresh.ts, sites.ts, grants.ts,
 * access.ts, identities.ts) holding its statements; this class composes them and opens a
 * transaction where a method writes more than one statement.
 *
 * How the guarantees of store.ts hold across nodes:
 * - single-statement compare-and-sets (`takeNonce`, `advanceKeyEpoch`, `revokeFamily`,
 *   `revokeLiveFamily`) are conditional UPDATE/DELETE: concurrent callers queue on the row
 *   lock and re-check the condition against the committed row, so exactly one matches;
 * - `rotateRefresh` is a conditional UPDATE … RETURNING plus the insert of the next token, in
 *   one transaction;
 * - `createUser`/`addDevice` rely on the device id's primary key (ON CONFLICT DO NOTHING
 *   waits for a concurrent insert of the same id, then reports false);
 * - `putAccess` share-locks the guard's grant and device rows (those of `anyOf` too) before
 *   it checks and inserts, and revocations take those rows' write locks first ("mark first,
 *   then delete"): either the access row commits before the revocation's mark (and so
 *   before its sweep reads), or the guard sees the mark.
 * Unique violations that the SQLite store throws (an existing user, nonce, family or site
 * id) are thrown here too; an unreachable database rejects with UNAVAILABLE.
 */
import pg from 'pg';
import { DgError } from '../../protocol/errors.js';
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
import { REVOKED_ACCESS_KEEP_MS } from '../store.js';
import * as access from './access.js';
import { mapError, PgDb } from './db.js';
import * as grants from './grants.js';
import * as identities from './identities.js';
import { PgKeyDirectory } from './keys.js';
import * as mailbox from './mailbox.js';
import { migrate } from './migrations.js';
import * as nonces from './nonces.js';
import * as oidc from './oidc.js';
import * as profiles from './profiles.js';
import * as refresh from './refresh.js';
import * as sites from './sites.js';
import * as users from './users.js';

export interface PgAuthStoreOptions {
  /** Schema that holds the tables; created if missing (default `public`). */
  schema?: string;
  /** Most connections (default 10). */
  poolSize?: number;
  /** Longest a statement may run before it is cancelled (default 15 000 ms). */
  statementTimeoutMs?: number;
  /** Longest to wait for a connection (default 5 000 ms). */
  connectTimeoutMs?: number;
}

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

export class PgAuthStore implements AuthStore {
  readonly #db: PgDb;
  readonly keys: PgKeyDirectory;

  constructor(db: PgDb) {
    this.#db = db;
    this.keys = new PgKeyDirectory(db);
  }

  // ---- users and devices ----

  async createUser(user: { id: string; createdAt: number }, device: NewDevice): Promise<boolean> {
    return this.#db.tx(async (sql) => {
      // Checked first so that an existing device answers false even when the user id exists too.
      if (await users.deviceExists(sql, device.id)) return false;
      await users.insertUser(sql, user);
      if (await users.insertDevice(sql, user.id, device)) return true;
      // Another node inserted the same device id meanwhile: undo the user row.
      sql.rollbackOnly();
      return false;
    });
  }

  async addDevice(user: string, device: NewDevice): Promise<boolean> {
    return users.insertDevice(this.#db, user, device);
  }

  async getDevice(id: string): Promise<DeviceRecord | null> {
    return users.getDevice(this.#db, id);
  }

  async listDevices(user: string): Promise<DeviceRecord[]> {
    return users.listDevices(this.#db, user);
  }

  async setBoxSig(device: string, boxKey: string, boxSig: string): Promise<boolean> {
    return users.setBoxSig(this.#db, device, boxKey, boxSig);
  }

  async revokeDevice(id: string, now: number): Promise<{ revoked: boolean; families: string[] }> {
    return this.#db.tx(async (sql) => {
      const revoked = await users.markDeviceRevoked(sql, id, now);
      const families = await refresh.revokeFamiliesOf(sql, id, now);
      return { revoked, families };
    });
  }

  // ---- challenge nonces ----

  async putNonce(nonce: string, device: string, expiresAt: number): Promise<void> {
    await nonces.putNonce(this.#db, nonce, device, expiresAt);
  }

  async takeNonce(nonce: string, device: string, now: number): Promise<boolean> {
    return nonces.takeNonce(this.#db, nonce, device, now);
  }

  // ---- refresh tokens ----

  async createFamily(family: { id: string; user: string; device: string; createdAt: number }, token: { hash: string; expiresAt: number }): Promise<void> {
    await this.#db.tx(async (sql) => {
      await refresh.insertFamily(sql, family);
      await refresh.insertToken(sql, family.id, token);
    });
  }

  async getRefresh(hash: string): Promise<RefreshRecord | null> {
    return refresh.getRefresh(this.#db, hash);
  }

  async rotateRefresh(hash: string, rotation: RotateRefresh): Promise<boolean> {
    return this.#db.tx(async (sql) => {
      const family = await refresh.markRotated(sql, hash, rotation);
      if (family === null) return false;
      await refresh.insertToken(sql, family, rotation.next);
      return true;
    });
  }

  async revokeFamily(id: string, now: number): Promise<boolean> {
    return refresh.revokeFamily(this.#db, id, now);
  }

  async liveFamilies(user: string, now: number, limit: number): Promise<FamilyRecord[]> {
    return refresh.liveFamilies(this.#db, user, now, limit);
  }

  async revokeLiveFamily(user: string, id: string, now: number): Promise<boolean> {
    return refresh.revokeLiveFamily(this.#db, user, id, now);
  }

  async revokedSince(since: number): Promise<{ devices: Revoked[]; families: Revoked[]; access: RevokedAccess[] }> {
    const [devices, families, revokedAccess] = await Promise.all([
      users.devicesRevokedSince(this.#db, since),
      refresh.familiesRevokedSince(this.#db, since),
      access.accessRevokedSince(this.#db, since),
    ]);
    return { devices, families, access: revokedAccess };
  }

  // ---- sites ----

  async createSite(site: { id: string; owner: string; name: string; createdAt: number }): Promise<void> {
    await sites.createSite(this.#db, site);
  }

  async getSite(id: string): Promise<SiteRecord | null> {
    return sites.getSite(this.#db, id);
  }

  async sitesOwnedBy(user: string): Promise<string[]> {
    return sites.sitesOwnedBy(this.#db, user);
  }

  async markRotationRequired(ids: string[]): Promise<void> {
    await sites.markRotationRequired(this.#db, ids);
  }

  async advanceKeyEpoch(site: string, keyEpoch: number): Promise<boolean> {
    return sites.advanceKeyEpoch(this.#db, site, keyEpoch);
  }

  // ---- grants ----

  async putGrant(grant: Omit<GrantRecord, 'revokedAt'>): Promise<void> {
    await grants.putGrant(this.#db, grant);
  }

  async getGrant(hash: string): Promise<GrantRecord | null> {
    return grants.getGrant(this.#db, hash);
  }

  async findGrants(query: { issuers: string[]; subjects: string[] }): Promise<GrantRecord[]> {
    return grants.findGrants(this.#db, query);
  }

  async revokeGrant(hash: string, now: number): Promise<{ revoked: boolean; dropped: AccessRecord[] }> {
    return this.#db.tx(async (sql) => {
      // The mark takes the grant's row lock, which waits for every putAccess holding it; the
      // sweep then runs on a fresh snapshot (READ COMMITTED) that holds their rows.
      const revoked = await grants.markGrantRevoked(sql, hash, now);
      const dropped = await access.deleteAccessThrough(sql, [hash]);
      await access.recordRevokedAccess(sql, dropped, now);
      return { revoked, dropped };
    });
  }

  // ---- access ----

  async putAccess(row: AccessRecord, guard: AccessGuard): Promise<boolean> {
    return this.#db.tx(async (sql) => {
      if (await grants.anyGrantRevoked(sql, guard.grants)) return false;
      // The devices of both lists in one statement, so that they are locked in one (id) order.
      const live = await users.lockDevicesLive(sql, [...guard.devices, ...guard.anyOf.flat()]);
      if (guard.devices.some((d) => live.get(d) === false)) return false;
      if (!guard.anyOf.every((set) => set.some((d) => live.get(d) === true))) return false;
      await access.upsertAccess(sql, row);
      return true;
    });
  }

  async accessFor(user: string, site: string): Promise<AccessRecord[]> {
    return access.accessFor(this.#db, user, site);
  }

  async accessOfUser(user: string): Promise<AccessRecord[]> {
    return access.accessOfUser(this.#db, user);
  }

  async accessThroughGrants(hashes: string[]): Promise<AccessRecord[]> {
    return access.accessThroughGrants(this.#db, hashes);
  }

  async deleteAccess(rows: { user: string; site: string; grant: string }[], now: number): Promise<number> {
    if (rows.length === 0) return 0;
    return this.#db.tx(async (sql) => {
      const gone = await access.deleteAccess(sql, rows);
      await access.recordRevokedAccess(sql, gone, now);
      return gone.length;
    });
  }

  // ---- identities ----

  async addIdentity(identity: IdentityRecord): Promise<void> {
    await identities.addIdentity(this.#db, identity);
  }

  async identitiesOf(user: string): Promise<IdentityRecord[]> {
    return identities.identitiesOf(this.#db, user);
  }

  async linkIdentity(link: IdentityLink): Promise<IdentityLinkResult> {
    return this.#db.tx((sql) => oidc.linkIdentity(sql, link));
  }

  async attestationsOf(email: string, limit: number): Promise<{ device: string; provider: string; attestation: string }[]> {
    return oidc.attestationsOf(this.#db, email, limit);
  }

  async renameDevice(user: string, device: string, name: string): Promise<boolean> {
    return oidc.renameDevice(this.#db, user, device, name);
  }

  // ---- OIDC logins ----

  async putOidcLogin(login: NewOidcLogin): Promise<void> {
    await oidc.putOidcLogin(this.#db, login);
  }

  async getOidcLogin(state: string): Promise<OidcLoginRecord | null> {
    return oidc.getOidcLogin(this.#db, state);
  }

  async takeOidcCallback(state: string, now: number): Promise<OidcLoginRecord | null> {
    return oidc.takeOidcCallback(this.#db, state, now);
  }

  async finishOidcLogin(state: string, outcome: OidcOutcome, expiresAt: number): Promise<void> {
    await oidc.finishOidcLogin(this.#db, state, outcome, expiresAt);
  }

  async takeOidcOutcome(state: string, device: string, now: number): Promise<OidcOutcome | null> {
    return oidc.takeOidcOutcome(this.#db, state, device, now);
  }

  // ---- profiles ----

  async getProfile(user: string): Promise<ProfileRecord> {
    return this.#db.tx((sql) => profiles.getProfile(sql, user));
  }

  async putProfile(user: string, version: number, next: ProfileState, now: number): Promise<boolean> {
    return this.#db.tx((sql) => profiles.putProfile(sql, user, version, next, now));
  }

  async purgeDevice(user: string, device: string, now: number): Promise<{ profileVersion: number | null }> {
    return this.#db.tx((sql) => profiles.purgeDevice(sql, user, device, now));
  }

  // ---- claims and envelopes ----

  async claim(c: { namespace: string; name: string; user: string; now: number; maxPerUser: number }): Promise<ClaimResult> {
    // A lost race (a concurrent claim of the name committed first) is rolled back and re-read.
    for (;;) {
      const r = await this.#db.tx((sql) => mailbox.claim(sql, c));
      if (r !== 'retry') return r;
    }
  }

  async putEnvelope(envelope: EnvelopeRecord, limits: EnvelopeLimits, now: number): Promise<EnvelopePut> {
    return this.#db.tx((sql) => mailbox.putEnvelope(sql, envelope, limits, now));
  }

  async listEnvelopes(device: string, now: number, limit: number): Promise<EnvelopeRecord[]> {
    return mailbox.listEnvelopes(this.#db, device, now, limit);
  }

  async deleteEnvelope(id: string, device: string): Promise<boolean> {
    return mailbox.deleteEnvelope(this.#db, id, device);
  }

  // ---- housekeeping ----

  async prune(now: number): Promise<void> {
    await this.#db.tx(async (sql) => {
      await nonces.pruneNonces(sql, now);
      await refresh.pruneTokens(sql, now);
      await access.pruneAccess(sql, now);
      await access.pruneRevokedAccess(sql, now - REVOKED_ACCESS_KEEP_MS);
      await oidc.pruneOidcLogins(sql, now);
      await mailbox.pruneEnvelopes(sql, now);
    });
  }

  async healthy(): Promise<boolean> {
    return this.#db.ping();
  }

  async close(): Promise<void> {
    await this.#db.end();
  }
}

/**
 * Connects to PostgreSQL at `url`, creates or migrates the schema, and returns the store.
 * Rejects with UNAVAILABLE when the database cannot be reached, and refuses a schema
 * written by a newer server.
 *
 * @example
 *   const store = await openPgAuthStore('postgres://auth@db/datagrove', { schema: 'datagrove' });
 */
export async function openPgAuthStore(url: string, options: PgAuthStoreOptions = {}): Promise<PgAuthStore> {
  const schema = options.schema ?? 'public';
  if (!SCHEMA_RE.test(schema)) throw new DgError('BAD_REQUEST', 'schema must be a lower-case SQL identifier');
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    statement_timeout: options.statementTimeoutMs ?? 15_000,
    // A transaction left open by a stalled node must not hold row locks forever.
    idle_in_transaction_session_timeout: 30_000,
    // Names the connections (truncated by PostgreSQL to 63 bytes) for pg_stat_activity.
    application_name: `datagrove-auth:${schema}`,
  });
  // An idle connection that dies emits 'error' on the pool; unhandled, it would end the
  // process. The pool replaces it on the next checkout, and healthy() reports the outage.
  pool.on('error', () => undefined);
  const db = new PgDb(pool, schema);
  try {
    await db.tx((sql) => migrate(sql, schema, Date.now()));
  } catch (err) {
    await db.end().catch(() => undefined);
    throw mapError(err);
  }
  return new PgAuthStore(db);
}
