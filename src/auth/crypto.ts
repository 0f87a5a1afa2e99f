/**
 * The few cryptographic primitives auth uses, node:crypto but for one point check: Ed25519 verification of device
 * signatures, SHA-256 hashes, random identifiers, constant-time comparison, and the sealing of
 * a refresh answer under a key only the presenter of the refresh token can derive.
 */
import { createCipheriv, createDecipheriv, createHash, createPublicKey, hkdfSync, randomBytes, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { b64urlDecode } from '../protocol/b64.js';
import { isStrongEd25519Key } from '../protocol/ed25519-key.js';

export const CHALLENGE_PREFIX = 'datagrove-auth-v1:';

/** n random bytes, base64url. */
export function randomId(bytes = 16): string {
  return randomBytes(bytes).toString('base64url');
}

export function sha256b64(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('base64url');
}

/** Constant-time equality of two strings (hashed first, so lengths leak nothing either). */
export function constantTimeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}

/**
 * The Ed25519 public key of a device id (base64url of the raw 32 bytes), or null. Null too
 * for a key that is not a canonical encoding or is of small order: OpenSSL takes such keys,
 * and under one signatures anyone can make verify (for the identity point, all of them), so
 * whoever registered it could not be told from anyone else signing in as it.
 */
export function devicePublicKey(device: string): KeyObject | null {
  const cached = keys.get(device);
  if (cached !== undefined) return cached;
  const raw = b64urlDecode(device);
  if (raw === null || raw.length !== 32) return null;
  let key: KeyObject | null = null;
  if (isStrongEd25519Key(raw)) {
    try {
      key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: device }, format: 'jwk' });
    } catch {
      key = null;
    }
  }
  if (keys.size >= MAX_CACHED_KEYS) keys.delete(keys.keys().next().value as string);
  keys.set(device, key);
  return key;
}

/** Parsed device keys (null: refused), oldest first: parsing and the point check cost more than a verification. */
const keys = new Map<string, KeyObject | null>();
const MAX_CACHED_KEYS = 10_000;

/** Verifies an Ed25519 signature (base64url, 64 bytes) by `device` over `data`. Never throws. */
export function verifyDeviceSignature(device: string, data: Uint8Array, signature: string): boolean {
  const key = devicePublicKey(device);
  const sig = b64urlDecode(signature);
  if (key === null || sig === null || sig.length !== 64) return false;
  try {
    return verify(null, data, key, sig);
  } catch {
    return false;
  }
}

export function challengeMessage(nonce: string): Buffer {
  return Buffer.from(CHALLENGE_PREFIX + nonce, 'utf8');
}

function answerKey(refresh: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(refresh, 'utf8'), Buffer.alloc(0), 'datagrove-refresh-answer-v1', 32));
}

/**
 * Seals the answer of a refresh (it holds the next refresh token) with AES-256-GCM under a key
 * derived from the presented refresh token. The store keeps only SHA-256(token) and this
 * ciphertext, so a copy of the database yields no usable token, while a retry that presents
 * the same token can still be given the same answer.
 */
export function sealAnswer(refresh: string, answer: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', answerKey(refresh), iv);
  const body = Buffer.concat([c.update(answer, 'utf8'), c.final()]);
  return Buffer.concat([iv, body, c.getAuthTag()]).toString('base64url');
}

/** The sealed answer, or null when it does not open under this token. */
export function openAnswer(refresh: string, sealed: string): string | null {
  const raw = b64urlDecode(sealed);
  if (raw === null || raw.length < 28) return null;
  try {
    const d = createDecipheriv('aes-256-gcm', answerKey(refresh), raw.subarray(0, 12));
    d.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString('utf8');
  } catch {
    return null;
  }
}
