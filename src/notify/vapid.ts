/**
 * The VAPID key pair (RFC 8292, ES256 on P-256): made on the first start and kept in the
 * data dir as `vapid-keys.json` (mode 0600, written to a temp file then renamed). Browsers
 * bind every push subscription to the public key, so the file is never regenerated over a
 * damaged one: a corrupt file stops the start with an error instead of silently
 * invalidating every subscription. Every notify process of a cluster needs the same file.
 */
import { createECDH, generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { b64urlDecode } from '../protocol/b64.js';

export const VAPID_FILE = 'vapid-keys.json';

export interface VapidKeys {
  /** base64url of the uncompressed P-256 public key (65 bytes): the applicationServerKey. */
  publicKey: string;
  /** base64url of the 32-byte private scalar. */
  privateKey: string;
}

interface VapidFile extends VapidKeys {
  createdAt: number;
}

function generate(): VapidFile {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  const x = b64urlDecode(String(jwk.x));
  const y = b64urlDecode(String(jwk.y));
  const d = b64urlDecode(String(jwk.d));
  if (x === null || y === null || d === null) throw new Error('P-256 key export failed');
  return {
    publicKey: Buffer.concat([Buffer.from([4]), x, y]).toString('base64url'),
    privateKey: d.toString('base64url'),
    createdAt: Date.now(),
  };
}

function valid(v: unknown): v is VapidFile {
  if (typeof v !== 'object' || v === null) return false;
  const f = v as Record<string, unknown>;
  if (typeof f.publicKey !== 'string' || typeof f.privateKey !== 'string') return false;
  const pub = b64urlDecode(f.publicKey);
  const priv = b64urlDecode(f.privateKey);
  if (pub === null || pub.length !== 65 || pub[0] !== 4 || priv === null || priv.length !== 32) return false;
  // The public key must be the private key's: a pair mixed from two files signs every push
  // with a key its subscriptions are not bound to, and push services refuse them all.
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(priv);
    return ecdh.getPublicKey().equals(pub);
  } catch {
    return false;
  }
}

/** Loads the VAPID keys of `dataDir`, creating them on the first start. */
export function loadVapidKeys(dataDir: string): VapidKeys {
  if (!existsSync(dataDir)) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, VAPID_FILE);
  if (!existsSync(path)) {
    const tmp = `${path}.tmp`;
    writeFileSync(tmp, JSON.stringify(generate(), null, 2), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path} is not valid JSON; restore it from a backup (a new key would invalidate every push subscription)`, { cause: err });
  }
  if (!valid(parsed)) throw new Error(`${path} does not hold a P-256 key pair; restore it from a backup`);
  return { publicKey: parsed.publicKey, privateKey: parsed.privateKey };
}
