/**
 * What the key flows (user-key-flows.ts, device-approval.ts, site-key-flows.ts) share: the
 * signed-in client, the HTTP calls, this device's secrets at rest, the pins, the site keys
 * held, and the user key when this device holds it. The KeyManager implements it.
 */
import type { DatagroveClient } from '../client.js';
import type { DgError } from '../../protocol/errors.js';
import type { ServerKey } from './attestation.js';
import type { VerifiedUser } from './directory.js';
import type { KeyApi } from './key-api.js';
import type { KeyPins } from './pins.js';
import type { ServerEpochs } from './server-epochs.js';
import type { SiteKeyring } from './site-keyring.js';
import type { UserKey } from './user-key.js';
import type { LocalVault } from './vault.js';

export interface HeldUserKey {
  key: UserKey;
  version: number;
}

export interface KeyContext {
  readonly client: DatagroveClient;
  readonly api: KeyApi;
  readonly vault: LocalVault;
  readonly pins: KeyPins;
  readonly ring: SiteKeyring;
  /** The sites' key epochs on the server: no site key above them is taken (key-admission.ts). */
  readonly epochs: ServerEpochs;
  readonly user: string;
  /** Check identity attestations' `iss` against this (undefined: not checked). */
  readonly issuer: string | undefined;
  /** The user key this device holds (newest version it has), or null. */
  held(): HeldUserKey | null;
  /** Seals the key at rest and makes it the held one. */
  adoptUserKey(key: UserKey, version: number): Promise<void>;
  /** Saves the site keys at rest and, when the user key is held, merges them into the keychain. */
  saveRing(): Promise<void>;
  /**
   * Saves the site keys at rest only, merged with those other clients of the device saved
   * in the shared storage (which the ring takes too): a save never drops a stored key.
   */
  persistRing(): Promise<void>;
  /** The server's attestation keys, fetched fresh (a revocation must be seen at once). */
  serverKeys(): Promise<ServerKey[]>;
  /** A user's key chain and certified devices, verified. */
  verified(who: { user: string } | { email: string }): Promise<VerifiedUser>;
  /**
   * Whether this device revoked `device`: keys never go to it, whatever the server lists
   * (the server names the recipients of a rotation, and could list a revoked device).
   */
  revokedHere(device: string): boolean;
  /** Reports a failure of background work. */
  report(err: DgError): void;
}
