/**
 * The key directory part of the auth store: public user keys (a versioned chain, each
 * version signed by the one before), device certificates (a user key's signature over a
 * device's keys), and the lookups that tell a client whom to encrypt a site key to.
 * Everything here is public material: the server holds no private key and no site key.
 *
 * Guarantees every implementation gives (in addition to those of store.ts):
 * - `addUserKey` is a compare-and-set on the version: it writes only when `version` is the
 *   user's newest version + 1 (1 for a user without a key), so of concurrent writers of one
 *   version exactly one wins ("first writer wins"), and versions have no holes.
 * - `putCertificate` checks, in the same transaction as the write, that the device is a live
 *   device of `user` and that `keyVersion` is the user's newest key version; a device holds
 *   one certificate (a newer one replaces it).
 * - Lists come back in a stable order (versions ascending; devices by creation time, then id).
 */
import { MAX_USER_KEY_VERSION } from '../protocol/key-statements.js';
import type { AccessRecord, GrantRecord } from './store.js';

/** At most this many user key versions per user (a rotation per revoked device is plenty). */
export const MAX_USER_KEY_VERSIONS = MAX_USER_KEY_VERSION;

export interface UserKeyRecord {
  user: string;
  /** 1, 2, …: the chain position. */
  version: number;
  /** base64url of the raw Ed25519 public key. */
  publicKey: string;
  /** The new key's signature over the user key statement (proof of possession). */
  sig: string;
  /** The previous version's signature over the same statement; null for version 1. */
  prevSig: string | null;
  createdAt: number;
}

export interface CertificateRecord {
  device: string;
  user: string;
  /** The user key version that signed it. */
  keyVersion: number;
  /** The compact JWS (typ dg-device+jwt). */
  certificate: string;
  createdAt: number;
}

export interface CertifiedDevice extends CertificateRecord {
  boxKey: string;
  revokedAt: number | null;
}

export interface KeyDirectoryStore {
  /** The user's key chain, oldest version first (empty when the user has no key). */
  userKeys(user: string): Promise<UserKeyRecord[]>;
  /** Compare-and-set on the version (see above); false and nothing written otherwise. */
  addUserKey(key: UserKeyRecord): Promise<boolean>;
  /** Stores or replaces the device's certificate under the checks above. */
  putCertificate(c: CertificateRecord): Promise<'ok' | 'no-device' | 'stale-key'>;
  /** Certificates of the user's devices, revoked devices included (callers filter). */
  certificatesOf(user: string): Promise<CertifiedDevice[]>;
  /** The user an email is bound to (the first user to sign in with it), or null. */
  userOfEmail(email: string): Promise<string | null>;
  /** Access rows of a site that are unexpired at `now`, at most `limit`. */
  accessOfSite(site: string, now: number, limit: number): Promise<AccessRecord[]>;
  /** Declared grants of a site that are not revoked, oldest first, at most `limit`. */
  grantsOfSite(site: string, limit: number): Promise<GrantRecord[]>;
}
