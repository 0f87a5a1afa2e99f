/**
 * Secrets kept in the data dir, made on first start and reused after (files 0600, dir 0700):
 * - `hmac-keys.json`: the HMAC key ring that signs access and lease tokens (`kid` per key);
 * - `attestation-keys.json`: Ed25519 keys that sign identity attestations, each
 *   active, retired (still verifiable) or revoked.
 * Writes go to a temp file then rename, so a crash never leaves a torn file.
 */
import { generateKeyPairSync, randomBytes, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyRing } from '../protocol/token.js';

export interface AttestationKey {
  kid: string;
  status: 'active' | 'retired' | 'revoked';
  /** base64url raw 32-byte Ed25519 public key. */
  publicKey: string;
  privateKey: KeyObject;
  createdAt: number;
}

export interface Secrets {
  ring: KeyRing;
  attestation: AttestationKey[];
}

interface HmacFile {
  active: string;
  keys: { kid: string; secret: string; createdAt: number }[];
}

interface AttestationFile {
  keys: { kid: string; status: AttestationKey['status']; privateKeyPkcs8: string; createdAt: number }[];
}

export const HMAC_FILE = 'hmac-keys.json';
export const ATTESTATION_FILE = 'attestation-keys.json';

function newKid(prefix: string): string {
  return `${prefix}-${new Date().toISOString().slice(0, 10)}-${randomBytes(4).toString('hex')}`;
}

function writeSecret(path: string, value: unknown): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export function ensureDataDir(dir: string): void {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
}

function newHmacKey(): HmacFile['keys'][number] {
  return { kid: newKid('h'), secret: randomBytes(32).toString('base64url'), createdAt: Date.now() };
}

function newAttestationKey(): AttestationFile['keys'][number] {
  const { privateKey } = generateKeyPairSync('ed25519');
  return {
    kid: newKid('a'),
    status: 'active',
    privateKeyPkcs8: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64url'),
    createdAt: Date.now(),
  };
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

function toSecrets(h: HmacFile, a: AttestationFile): Secrets {
  return {
    ring: { active: h.active, keys: new Map(h.keys.map((k) => [k.kid, Buffer.from(k.secret, 'base64url')])) },
    attestation: a.keys.map((k) => {
      const privateKey = createPrivateKey({ key: Buffer.from(k.privateKeyPkcs8, 'base64url'), format: 'der', type: 'pkcs8' });
      const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
      return { kid: k.kid, status: k.status, publicKey: String(jwk.x), privateKey, createdAt: k.createdAt };
    }),
  };
}

/** Loads the secrets of `dir`, creating any that are missing. */
export function loadSecrets(dir: string): Secrets {
  ensureDataDir(dir);
  const hPath = join(dir, HMAC_FILE);
  const aPath = join(dir, ATTESTATION_FILE);
  if (!existsSync(hPath)) {
    const k = newHmacKey();
    writeSecret(hPath, { active: k.kid, keys: [k] } satisfies HmacFile);
  }
  if (!existsSync(aPath)) writeSecret(aPath, { keys: [newAttestationKey()] } satisfies AttestationFile);
  return toSecrets(readJson<HmacFile>(hPath), readJson<AttestationFile>(aPath));
}

/**
 * Rotation: a new HMAC key becomes active (old ones keep verifying tokens until they
 * expire) and a new attestation key becomes active (the old one is retired: still listed
 * and verifiable). Running servers pick the new keys up on restart.
 */
export function rotateSecrets(dir: string): { hmacKid: string; attestationKid: string } {
  loadSecrets(dir);
  const hPath = join(dir, HMAC_FILE);
  const aPath = join(dir, ATTESTATION_FILE);
  const h = readJson<HmacFile>(hPath);
  const hk = newHmacKey();
  // Keep at most 3 HMAC keys: an access token lives at most 15 minutes.
  writeSecret(hPath, { active: hk.kid, keys: [hk, ...h.keys].slice(0, 3) } satisfies HmacFile);
  const a = readJson<AttestationFile>(aPath);
  const ak = newAttestationKey();
  for (const k of a.keys) if (k.status === 'active') k.status = 'retired';
  writeSecret(aPath, { keys: [ak, ...a.keys] } satisfies AttestationFile);
  return { hmacKid: hk.kid, attestationKid: ak.kid };
}

/** Marks an attestation key revoked (compromised): clients must stop trusting what it signed. */
export function revokeAttestationKey(dir: string, kid: string): boolean {
  const aPath = join(dir, ATTESTATION_FILE);
  if (!existsSync(aPath)) return false;
  const a = readJson<AttestationFile>(aPath);
  const k = a.keys.find((x) => x.kid === kid);
  if (k === undefined) return false;
  k.status = 'revoked';
  if (!a.keys.some((x) => x.status === 'active')) a.keys.unshift(newAttestationKey());
  writeSecret(aPath, a);
  return true;
}
