/**
 * Secrets kept in the data dir, made on first start and reused after (files 0600, dir 0700):
 * - `hmac-keys.json`: the HMAC key ring that signs access and lease tokens (`kid` per key);
 * - `attestation-keys.json`: Ed25519 keys that sign identity attestations, each
 *   active, retired (still verifiable) or revoked.
 * Writes go to a temp file then rename, so a crash never leaves a torn file.
 */
import { generateKeyPairSync, randomBytes, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DgError } from '../protocol/errors.js';
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

/**
 * Makes `dir` (and missing parents) with mode 0700. Each level is made on its own: Node's
 * recursive mkdir never returns under a pseudo file system such as /proc.
 */
export function ensureDataDir(dir: string): void {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) {
    missing.push(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot make the data directory ${dir}: ${(err as Error).message}`, { cause: err });
    }
  }
  if (!statSync(dir).isDirectory()) throw new Error(`the data directory ${dir} is not a directory`);
}

/**
 * Makes each missing file of `names` in `dir` empty with mode 0600, so that what opens it
 * next (SQLite, which gives its -wal and -shm files the database's mode) keeps it private.
 * Files that exist keep the mode their owner gave them.
 */
export function createPrivateFiles(dir: string, names: readonly string[]): void {
  for (const name of names) {
    const path = join(dir, name);
    if (existsSync(path)) continue;
    writeFileSync(path, '', { mode: 0o600, flag: 'wx' });
    chmodSync(path, 0o600);
  }
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

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (err) {
    throw new Error(`${path} is not valid JSON (${(err as Error).message}); restore it from a backup`, { cause: err });
  }
}

const KID_RE = /^[A-Za-z0-9._-]{1,64}$/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads and checks `hmac-keys.json`: every key a kid, a secret of at least 32 bytes and a time; the active one among them. */
function readHmacFile(path: string): HmacFile {
  const v = readJson(path);
  const bad = (why: string) => new Error(`${path}: ${why}; restore it from a backup`);
  if (!isRecord(v) || !Array.isArray(v.keys) || typeof v.active !== 'string') throw bad('not an HMAC key ring ({active, keys})');
  const keys: HmacFile['keys'] = [];
  for (const k of v.keys as unknown[]) {
    if (!isRecord(k) || typeof k.kid !== 'string' || !KID_RE.test(k.kid) || typeof k.secret !== 'string' || typeof k.createdAt !== 'number') {
      throw bad('a key is not {kid, secret, createdAt}');
    }
    if (!/^[A-Za-z0-9_-]+$/.test(k.secret) || Buffer.from(k.secret, 'base64url').length < 32) throw bad(`key ${k.kid} has a secret shorter than 32 bytes`);
    keys.push({ kid: k.kid, secret: k.secret, createdAt: k.createdAt });
  }
  if (!keys.some((k) => k.kid === v.active)) throw bad(`the active key ${v.active} is not in the ring`);
  return { active: v.active, keys };
}

function readAttestationFile(path: string): AttestationFile {
  const v = readJson(path);
  const bad = (why: string) => new Error(`${path}: ${why}; restore it from a backup`);
  if (!isRecord(v) || !Array.isArray(v.keys)) throw bad('not an attestation key list ({keys})');
  const keys: AttestationFile['keys'] = [];
  for (const k of v.keys as unknown[]) {
    if (
      !isRecord(k) ||
      typeof k.kid !== 'string' ||
      !KID_RE.test(k.kid) ||
      (k.status !== 'active' && k.status !== 'retired' && k.status !== 'revoked') ||
      typeof k.privateKeyPkcs8 !== 'string' ||
      typeof k.createdAt !== 'number'
    ) {
      throw bad('a key is not {kid, status, privateKeyPkcs8, createdAt}');
    }
    keys.push({ kid: k.kid, status: k.status, privateKeyPkcs8: k.privateKeyPkcs8, createdAt: k.createdAt });
  }
  if (!keys.some((k) => k.status === 'active')) throw bad('no active key');
  return { keys };
}

function toSecrets(h: HmacFile, a: AttestationFile, aPath: string): Secrets {
  return {
    ring: { active: h.active, keys: new Map(h.keys.map((k) => [k.kid, Buffer.from(k.secret, 'base64url')])) },
    attestation: a.keys.map((k) => {
      let privateKey: KeyObject;
      try {
        privateKey = createPrivateKey({ key: Buffer.from(k.privateKeyPkcs8, 'base64url'), format: 'der', type: 'pkcs8' });
      } catch (err) {
        throw new Error(`${aPath}: key ${k.kid} is not a PKCS#8 private key; restore it from a backup`, { cause: err });
      }
      if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`${aPath}: key ${k.kid} is not an Ed25519 key; restore it from a backup`);
      const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
      return { kid: k.kid, status: k.status, publicKey: String(jwk.x), privateKey, createdAt: k.createdAt };
    }),
  };
}

/**
 * Makes the key files of `dir` that are missing: `hmac-keys.json`, `attestation-keys.json`
 * and, when `vapid` is given (notify's maker), `vapid-keys.json`. Returns the files it made.
 */
export function initKeyFiles(dir: string, vapid?: { file: string; make: (dir: string) => void }): string[] {
  ensureDataDir(dir);
  const made: string[] = [];
  const hPath = join(dir, HMAC_FILE);
  if (!existsSync(hPath)) {
    const k = newHmacKey();
    writeSecret(hPath, { active: k.kid, keys: [k] } satisfies HmacFile);
    made.push(HMAC_FILE);
  }
  const aPath = join(dir, ATTESTATION_FILE);
  if (!existsSync(aPath)) {
    writeSecret(aPath, { keys: [newAttestationKey()] } satisfies AttestationFile);
    made.push(ATTESTATION_FILE);
  }
  if (vapid !== undefined && !existsSync(join(dir, vapid.file))) {
    vapid.make(dir);
    made.push(vapid.file);
  }
  return made;
}

/**
 * Loads the secrets of `dir`, creating any that are missing unless `create` is false: then
 * a missing file (of these two and `alsoRequire`) is an error. The processes of a cluster must share one key ring (auth signs
 * what tail checks), so there a process that made its own would refuse every token.
 */
export function loadSecrets(dir: string, opts: { create?: boolean; alsoRequire?: readonly string[] } = {}): Secrets {
  const hPath = join(dir, HMAC_FILE);
  const aPath = join(dir, ATTESTATION_FILE);
  if (opts.create === false) {
    const missing = [HMAC_FILE, ATTESTATION_FILE, ...(opts.alsoRequire ?? [])].filter((f) => !existsSync(join(dir, f)));
    if (missing.length > 0) {
      throw new DgError(
        'BAD_REQUEST',
        `no ${missing.join(' or ')} in ${dir}: every process of a cluster uses the same key files; make them once (\`datagrove keys init --data DIR\`) and copy them into every process's data directory`,
      );
    }
  } else {
    initKeyFiles(dir);
  }
  return toSecrets(readHmacFile(hPath), readAttestationFile(aPath), aPath);
}

/** How long a replaced HMAC key keeps verifying: servers may run on with it until they restart. */
export const RETIRED_HMAC_KEY_MS = 24 * 3600 * 1000;

/**
 * Rotation: a new HMAC key becomes active (old ones keep verifying tokens: a key replaced
 * less than RETIRED_HMAC_KEY_MS ago is kept, older ones are dropped) and a new attestation
 * key becomes active (the old one is retired: still listed and verifiable). Running
 * servers pick the new keys up on restart.
 */
export function rotateSecrets(dir: string, now = Date.now()): { hmacKid: string; attestationKid: string; droppedHmacKids: string[] } {
  if (!existsSync(dir)) throw new DgError('BAD_REQUEST', `no data directory ${dir}`);
  const hPath = join(dir, HMAC_FILE);
  const aPath = join(dir, ATTESTATION_FILE);
  for (const path of [hPath, aPath]) {
    if (!existsSync(path)) throw new DgError('BAD_REQUEST', `no ${path}: nothing to rotate (the first start, or \`datagrove keys init\`, makes the keys)`);
  }
  const h = readHmacFile(hPath);
  const a = readAttestationFile(aPath);
  const hk = { ...newHmacKey(), createdAt: now };
  // Newest first; a key was replaced when the next newer one was made.
  const old = [...h.keys].sort((x, y) => y.createdAt - x.createdAt);
  const kept: HmacFile['keys'] = [];
  const droppedHmacKids: string[] = [];
  let replacedAt = now;
  for (const k of old) {
    if (now - replacedAt < RETIRED_HMAC_KEY_MS) kept.push(k);
    else droppedHmacKids.push(k.kid);
    replacedAt = k.createdAt;
  }
  writeSecret(hPath, { active: hk.kid, keys: [hk, ...kept] } satisfies HmacFile);
  const ak = newAttestationKey();
  for (const k of a.keys) if (k.status === 'active') k.status = 'retired';
  writeSecret(aPath, { keys: [ak, ...a.keys] } satisfies AttestationFile);
  return { hmacKid: hk.kid, attestationKid: ak.kid, droppedHmacKids };
}


/** Marks an attestation key revoked (compromised): clients must stop trusting what it signed. */
export function revokeAttestationKey(dir: string, kid: string): boolean {
  const aPath = join(dir, ATTESTATION_FILE);
  if (!existsSync(aPath)) throw new DgError('BAD_REQUEST', `no ${aPath}`);
  const a = readAttestationFile(aPath);
  const k = a.keys.find((x) => x.kid === kid);
  if (k === undefined) return false;
  k.status = 'revoked';
  if (!a.keys.some((x) => x.status === 'active')) a.keys.unshift(newAttestationKey());
  writeSecret(aPath, a);
  return true;
}
