/**
 * The auth store: auth's own store interface. SQLite (one file, the monolith) now, PostgreSQL
 * (clusters) next; both run one conformance suite (test/conformance/auth-store.ts).
 *
 * Guarantees every implementation gives:
 * - Every method is async and, once it resolves, what it wrote is durable (SQLite:
 *   synchronous=FULL; PostgreSQL: a committed transaction). A method that rejects wrote nothing.
 * - A storage that cannot be used (PostgreSQL unreachable or its connection lost; a SQLite
 *   disk full, an I/O error, a lock held past the busy timeout, a damaged file) rejects with
 *   DgError UNAVAILABLE, the driver's error as its cause: callers answer 503, never 500.
 * - Each method is atomic: concurrent calls (from this process or, for PostgreSQL, from other
 *   nodes) behave as if run one after another. The compare-and-set methods (`takeNonce`,
 *   `rotateRefresh`, `advanceKeyEpoch`, `createUser`, `revoke*`) therefore succeed for exactly
 *   one of several concurrent callers.
 * - Refresh tokens are stored only as their SHA-256 hash; the stored `answer` of a rotation is
 *   sealed by the caller (the store never sees a usable token).
 * - `putAccess` is linearizable with `revokeGrant` and `revokeDevice` (it checks its guard
 *   and inserts in one transaction; a revocation marks first, then deletes): a concurrent
 *   pair behaves as if one ran first. When the revocation does, the guard is checked against
 *   it; when putAccess does, its row is there for every read that starts after the
 *   revocation resolves (and `revokeGrant` deletes it itself). A revocation's sweep therefore
 *   never misses a row joined concurrently that the revocation made dead, provided the guard
 *   names everything the chain rests on (see AccessGuard).
 * - `linkIdentity`, `putProfile`, `claim`, `putEnvelope` and the OIDC login steps are
 *   compare-and-set or insert-if-absent under a unique key: of concurrent callers racing for
 *   the same email, profile version, name, mailbox slot or login state, each outcome is one
 *   that some serial order of the calls would give.
 * - Emails are stored lower-cased and trimmed; callers pass them normalized.
 * - Times are milliseconds since the epoch, except grant `iat`/`exp`, which are JWT seconds.
 * - Lists come back in a stable order (creation time, then id; `liveFamilies` newest first) so
 *   callers and tests can rely on it.
 */
import type { Right } from '../protocol/ids.js';
import type { KeyDirectoryStore } from './key-directory.js';

export interface NewDevice {
  id: string;
  boxKey: string;
  /** The device's signature of its box key statement, checked by the caller (absent: none). */
  boxSig?: string | null;
  name: string;
  createdAt: number;
}

export interface DeviceRecord extends NewDevice {
  user: string;
  boxSig: string | null;
  revokedAt: number | null;
}

export interface RefreshRecord {
  /** base64url SHA-256 of the token. */
  hash: string;
  family: string;
  user: string;
  device: string;
  state: 'live' | 'rotated';
  expiresAt: number;
  rotatedAt: number | null;
  /** The idempotency key of the rotation that consumed it, and its sealed answer. */
  guid: string | null;
  answer: string | null;
  familyRevoked: boolean;
  deviceRevoked: boolean;
}

/** A refresh family: one sign-in (signup, login, OIDC login) of one device. */
export interface FamilyRecord {
  id: string;
  user: string;
  device: string;
  createdAt: number;
}

export interface RotateRefresh {
  guid: string;
  answer: string;
  now: number;
  next: { hash: string; expiresAt: number };
}

export interface SiteRecord {
  id: string;
  owner: string;
  name: string;
  keyEpoch: number;
  rotationRequired: boolean;
  createdAt: number;
}

export interface GrantRecord {
  hash: string;
  jws: string;
  /** The issuing device. */
  issuer: string;
  subject: string;
  site: string;
  logs: string[];
  rights: Right[];
  iat: number;
  exp: number | null;
  prf: string | null;
  declaredAt: number;
  revokedAt: number | null;
}

export interface AccessRecord {
  user: string;
  site: string;
  /** The leaf grant the access was joined with. */
  grant: string;
  logs: string[];
  rights: Right[];
  expiresAt: number | null;
  createdAt: number;
}

/**
 * What `putAccess` checks in the same transaction as the insert: everything whose revocation
 * would invalidate the access. Anything the caller leaves out can be revoked between its
 * check of the chain and the insert without either noticing, and the access outlives it.
 */
export interface AccessGuard {
  /** Every grant of the chain: none may be revoked. */
  grants: string[];
  /** Every device the chain rests on by itself (issuers, devices that subjects name): none may be revoked. */
  devices: string[];
  /**
   * Sets of devices of which each must still hold a live one (unknown ids count as not
   * live): for every email that a proof or the joined grant names, the devices through which
   * it is attested for the user it must name. The email names that user while one is live.
   */
  anyOf: string[][];
}

export interface IdentityRecord {
  email: string;
  provider: string;
  device: string;
  user: string;
  attestedAt: number;
}

export interface IdentityLink {
  /** Normalized (trimmed, lower-cased) and verified by the provider. */
  email: string;
  provider: string;
  /** The device that signed in; `boxKey` (and its signature `boxSig`, if any) are used only when it is new. */
  device: { id: string; boxKey: string | null; boxSig?: string | null; name: string };
  /** The id a new user gets when the email is new and the device unknown. */
  newUser: string;
  /** The identity attestation (compact JWS) of this device and email. */
  attestation: string;
  now: number;
}

export type IdentityLinkResult =
  | { ok: true; user: string; newUser: boolean; newDevice: boolean }
  | { ok: false; reason: 'device-revoked' | 'device-of-another-user' | 'box-key-required' };

/**
 * The result of an OIDC login's callback, kept until the device collects it: what it found, the verified email and the SHA-256 of the confirmation code the
 * browser was given (the identity is linked only when the device presents that code), or
 * why the sign-in failed.
 */
export type OidcOutcome =
  | { ok: true; email: string; confirmation: string }
  | { ok: false; code: 'FORBIDDEN' | 'UNAUTHORIZED' | 'UNAVAILABLE' | 'BAD_REQUEST'; message: string };

export interface NewOidcLogin {
  state: string;
  provider: string;
  device: string;
  boxKey: string | null;
  /** The signature of `boxKey` the device sent, checked (absent: none). */
  boxSig?: string | null;
  name: string;
  /** PKCE code verifier: a short-lived secret, wiped when the callback is taken. */
  verifier: string;
  /** The `nonce` of the ID token (not the device's challenge nonce). */
  oidcNonce: string;
  redirect: string | null;
  createdAt: number;
  expiresAt: number;
}

export interface OidcLoginRecord extends NewOidcLogin {
  boxSig: string | null;
  /** started: waiting for the callback; callback: the callback is being handled; done: outcome ready. */
  phase: 'started' | 'callback' | 'done';
  outcome: OidcOutcome | null;
}

export interface ProfileSubscription {
  device: string;
  site: string;
  /** ms since the epoch; null when not muted. */
  mutedUntil: number | null;
}

export interface ProfilePush {
  device: string;
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export interface ProfileState {
  /** App data: opaque JSON values by key. */
  data: Record<string, unknown>;
  subscriptions: ProfileSubscription[];
  push: ProfilePush[];
}

export interface ProfileRecord extends ProfileState {
  /** 0 for a user whose profile was never written. */
  version: number;
}

export type ClaimResult = { ok: true; id: number; created: boolean } | { ok: false; reason: 'taken' | 'limit' };

export interface EnvelopeRecord {
  id: string;
  to: string;
  from: string;
  /** Opaque base64url. */
  data: string;
  at: number;
  expiresAt: number;
}

/** The bounds `putEnvelope` checks in the same transaction as the insert. */
export interface EnvelopeLimits {
  /** Unexpired envelopes one device holds, from anyone. */
  perDevice: number;
  /** Unexpired envelopes one sending device may have waiting at one recipient. */
  perSender: number;
  /**
   * Unexpired envelopes one device holds from devices of other users than its own (a sender
   * whose device is unknown counts as another user's); the rest of `perDevice` is kept for
   * the recipient's own user.
   */
  fromOtherUsers: number;
}

export type EnvelopePut = 'ok' | 'full' | 'sender-full' | 'no-device';

export interface Revoked {
  id: string;
  at: number;
}

/** A (user, site) pair that lost access rows (its grant revoked, or rows found dead), and when. */
export interface RevokedAccess {
  user: string;
  site: string;
  at: number;
}

/**
 * How long `revokedSince` keeps listing a (user, site) pair that lost access: well over the
 * longest lifetime of a token that could still carry that access (lease tokens: 15 minutes).
 */
export const REVOKED_ACCESS_KEEP_MS = 60 * 60_000;

export interface AuthStore {
  /** Public user keys, device certificates and site member lookups (key-directory.ts). */
  readonly keys: KeyDirectoryStore;

  // ---- users and devices ----
  /** Creates a user whose first device this is. false (nothing written) when the device id exists. */
  createUser(user: { id: string; createdAt: number }, device: NewDevice): Promise<boolean>;
  /** Adds a device to an existing user (a device flow completed). false (nothing written) when the id exists or the user does not. */
  addDevice(user: string, device: NewDevice): Promise<boolean>;
  getDevice(id: string): Promise<DeviceRecord | null>;
  /** Every device of the user, revoked ones included. */
  listDevices(user: string): Promise<DeviceRecord[]>;
  /**
   * Records `boxSig` (checked by the caller) as the device's signature of its box key, when
   * the device is live and its box key is `boxKey`; false (nothing written) otherwise.
   */
  setBoxSig(device: string, boxKey: string, boxSig: string): Promise<boolean>;
  /**
   * Revokes the device and, in the same transaction, every refresh family of it.
   * `revoked` is false when it was already revoked (or does not exist); `families` lists the
   * families this call revoked.
   */
  revokeDevice(id: string, now: number): Promise<{ revoked: boolean; families: string[] }>;

  // ---- challenge nonces ----
  putNonce(nonce: string, device: string, expiresAt: number): Promise<void>;
  /** Consumes the nonce if it was issued to `device` and has not expired: true exactly once. */
  takeNonce(nonce: string, device: string, now: number): Promise<boolean>;

  // ---- refresh tokens ----
  /** Creates a refresh family with its first (live) token. */
  createFamily(family: { id: string; user: string; device: string; createdAt: number }, token: { hash: string; expiresAt: number }): Promise<void>;
  getRefresh(hash: string): Promise<RefreshRecord | null>;
  /**
   * Compare-and-set: if the token is live, unexpired, and its family and device are not revoked,
   * marks it rotated with `guid` and `answer` and inserts `next` as the family's new live
   * token; returns true. Otherwise writes nothing and returns false.
   */
  rotateRefresh(hash: string, rotation: RotateRefresh): Promise<boolean>;
  /** true when this call revoked it. */
  revokeFamily(id: string, now: number): Promise<boolean>;
  /**
   * The user's live families, newest first (creation time, then id), at most `limit`: not
   * revoked, of a live device of the user, and holding a live refresh token unexpired at `now`.
   */
  liveFamilies(user: string, now: number, limit: number): Promise<FamilyRecord[]>;
  /** Compare-and-set: revokes the family when it is one of `liveFamilies(user, now)`; true when this call revoked it. */
  revokeLiveFamily(user: string, id: string, now: number): Promise<boolean>;
  /**
   * Devices and families revoked at or after `since`, and the (user, site) pairs that lost
   * access at or after it (the latest time per pair; kept `REVOKED_ACCESS_KEEP_MS`).
   */
  revokedSince(since: number): Promise<{ devices: Revoked[]; families: Revoked[]; access: RevokedAccess[] }>;

  // ---- sites ----
  /** Creates a site at key epoch 1, rotation not required. */
  createSite(site: { id: string; owner: string; name: string; createdAt: number }): Promise<void>;
  getSite(id: string): Promise<SiteRecord | null>;
  sitesOwnedBy(user: string): Promise<string[]>;
  markRotationRequired(sites: string[]): Promise<void>;
  /** Compare-and-set: when the key epoch is `keyEpoch - 1`, sets it and clears rotationRequired. */
  advanceKeyEpoch(site: string, keyEpoch: number): Promise<boolean>;

  // ---- grants ----
  /** Stores a verified grant; a grant already stored (same hash) is left as it is. */
  putGrant(grant: Omit<GrantRecord, 'revokedAt'>): Promise<void>;
  getGrant(hash: string): Promise<GrantRecord | null>;
  /**
   * Grants issued by one of `issuers` or naming one of `subjects`. An `email:` subject
   * matches whatever the case of the ASCII letters of the address (as `normalizeEmail`
   * compares emails: `email:Bob@X.org` names `email:bob@x.org`); other subjects match exactly.
   */
  findGrants(query: { issuers: string[]; subjects: string[] }): Promise<GrantRecord[]>;
  /**
   * Marks the grant revoked and, in the same transaction, deletes every access row whose leaf
   * grant is it or descends from it (through `prf`), recording their (user, site) pairs as
   * revoked at `now` (see `revokedSince`); returns the deleted rows. `revoked` is false when
   * it was already revoked (rows are still swept).
   */
  revokeGrant(hash: string, now: number): Promise<{ revoked: boolean; dropped: AccessRecord[] }>;

  // ---- access (capabilities derived from joined grants) ----
  /**
   * Inserts (or replaces, for the same user, site and grant) an access row, unless a grant or
   * device of `guard` is revoked or a set of `guard.anyOf` has no live device left: then
   * writes nothing and returns false. Linearizable with the revocations (see above).
   */
  putAccess(row: AccessRecord, guard: AccessGuard): Promise<boolean>;
  accessFor(user: string, site: string): Promise<AccessRecord[]>;
  accessOfUser(user: string): Promise<AccessRecord[]>;
  /** Access rows whose leaf grant is one of `hashes` or descends from one (through `prf`). */
  accessThroughGrants(hashes: string[]): Promise<AccessRecord[]>;
  /** Deletes these access rows and records the pairs of the deleted ones as revoked at `now`; returns how many went. */
  deleteAccess(rows: { user: string; site: string; grant: string }[], now: number): Promise<number>;

  // ---- identities (OIDC logins attest device → email) ----
  addIdentity(identity: IdentityRecord): Promise<void>;
  /** Identities attested for the user's devices, revoked devices included (callers filter). */
  identitiesOf(user: string): Promise<IdentityRecord[]>;

  /**
   * The OIDC login result, in one transaction: the email's user (or, for an email never seen,
   * the device's user, or a new user `newUser` whose first device this is), the device added
   * to that user when it is new, the email bound to that user, and the identity (with its
   * attestation) recorded. Nothing is written when it fails. An email belongs to at most one
   * user, even under concurrent first logins.
   */
  linkIdentity(link: IdentityLink): Promise<IdentityLinkResult>;
  /** Attestations of `email` on live devices, oldest first, at most `limit`. */
  attestationsOf(email: string, limit: number): Promise<{ device: string; provider: string; attestation: string }[]>;
  /** Renames a live device of `user`; false (nothing written) otherwise. */
  renameDevice(user: string, device: string, name: string): Promise<boolean>;

  // ---- OIDC logins (start → callback → complete) ----
  putOidcLogin(login: NewOidcLogin): Promise<void>;
  getOidcLogin(state: string): Promise<OidcLoginRecord | null>;
  /** Compare-and-set started → callback (unexpired): the record exactly once, else null. */
  takeOidcCallback(state: string, now: number): Promise<OidcLoginRecord | null>;
  /** callback → done with its outcome, expiring at `expiresAt`; the PKCE verifier is wiped. */
  finishOidcLogin(state: string, outcome: OidcOutcome, expiresAt: number): Promise<void>;
  /** Deletes a done, unexpired login of `device` and returns its outcome: exactly once, else null. */
  takeOidcOutcome(state: string, device: string, now: number): Promise<OidcOutcome | null>;

  // ---- profiles ----
  /** The profile; version 0 and empty when never written. */
  getProfile(user: string): Promise<ProfileRecord>;
  /** Compare-and-set: when the stored version is `version`, replaces the state at `version + 1`. */
  putProfile(user: string, version: number, next: ProfileState, now: number): Promise<boolean>;
  /**
   * Removes what a revoked device leaves behind: its envelopes, subscriptions and push
   * endpoint. When the profile changed, its version is bumped and returned, else null.
   */
  purgeDevice(user: string, device: string, now: number): Promise<{ profileVersion: number | null }>;

  // ---- claims ----
  /**
   * Claims `name` in `namespace` for `user`: a new id (1, 2, … per namespace), or the same id
   * again for its owner; `taken` when another user owns it; `limit` when the user already
   * holds `maxPerUser` claims. Ids are never reused.
   */
  claim(c: { namespace: string; name: string; user: string; now: number; maxPerUser: number }): Promise<ClaimResult>;

  // ---- envelopes ----
  /**
   * Stores it unless the recipient is not a live device (`no-device`), already holds
   * `limits.perSender` unexpired envelopes from this sender (`sender-full`), or holds
   * `limits.perDevice` in all or, for a sender of another user, `limits.fromOtherUsers` from
   * other users (`full`).
   */
  putEnvelope(envelope: EnvelopeRecord, limits: EnvelopeLimits, now: number): Promise<EnvelopePut>;
  /** Unexpired envelopes to `device`, oldest first, at most `limit`. */
  listEnvelopes(device: string, now: number, limit: number): Promise<EnvelopeRecord[]>;
  /** Deletes an envelope addressed to `device`; false when there is none. */
  deleteEnvelope(id: string, device: string): Promise<boolean>;

  // ---- housekeeping ----
  /**
   * Deletes expired nonces, refresh tokens, access rows, OIDC logins and envelopes, and access
   * revocations older than `REVOKED_ACCESS_KEEP_MS`.
   */
  prune(now: number): Promise<void>;
  /** true while the store answers (for /ready). */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}
