/**
 * Short-lived HMAC tokens (JWT HS256 with `kid`), the fast form of a verified credential.
 * Auth mints them; tail verifies them locally with the same key ring, with no round trip.
 * Verification is node:crypto HMAC-SHA256 plus a constant-time compare.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Right } from './ids.js';
import { b64urlDecode } from './b64.js';

export interface HmacKey {
  kid: string;
  secret: Buffer;
}

/** The HMAC key ring: `active` signs; every key in `keys` verifies (rotation keeps old ones). */
export interface KeyRing {
  active: string;
  keys: ReadonlyMap<string, Buffer>;
}

export interface AccessClaims {
  typ: 'access';
  sub: string;
  dev: string;
  fam: string;
  iat: number;
  exp: number;
  jti: string;
}

export interface LeaseClaims {
  typ: 'lease';
  sub: string;
  dev: string;
  site: string;
  log: string;
  rights: Right[];
  iat: number;
  exp: number;
  jti: string;
}

export type TokenClaims = AccessClaims | LeaseClaims;

/** Why a token was refused; callers map every reason to UNAUTHORIZED on the wire. */
export type TokenFailure = 'malformed' | 'unknown-kid' | 'bad-signature' | 'expired' | 'wrong-type';

export type VerifyResult<T> = { ok: true; claims: T } | { ok: false; reason: TokenFailure };

const HEADER_CACHE = new Map<string, string>();

function headerFor(kid: string): string {
  let h = HEADER_CACHE.get(kid);
  if (h === undefined) {
    h = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid })).toString('base64url');
    HEADER_CACHE.set(kid, h);
  }
  return h;
}

export function newJti(): string {
  return randomBytes(12).toString('base64url');
}

export function signToken(ring: KeyRing, claims: TokenClaims): string {
  const secret = ring.keys.get(ring.active);
  if (secret === undefined) throw new Error(`active kid ${ring.active} missing from key ring`);
  const input = `${headerFor(ring.active)}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const sig = createHmac('sha256', secret).update(input).digest('base64url');
  return `${input}.${sig}`;
}

/**
 * Verifies signature, `kid`, `exp` (with `skewSec` of leeway) and `typ`.
 * `nowSec` is injectable for tests. Never throws.
 */
export function verifyToken<T extends TokenClaims>(
  ring: KeyRing,
  token: string,
  typ: T['typ'],
  nowSec: number = Math.floor(Date.now() / 1000),
  skewSec = 0,
): VerifyResult<T> {
  if (typeof token !== 'string' || token.length > 4096) return { ok: false, reason: 'malformed' };
  const dot1 = token.indexOf('.');
  const dot2 = token.indexOf('.', dot1 + 1);
  if (dot1 < 1 || dot2 < 0 || token.indexOf('.', dot2 + 1) !== -1) return { ok: false, reason: 'malformed' };
  let header: { alg?: unknown; kid?: unknown };
  let claims: Partial<TokenClaims>;
  try {
    header = JSON.parse(Buffer.from(token.slice(0, dot1), 'base64url').toString('utf8')) as typeof header;
    claims = JSON.parse(Buffer.from(token.slice(dot1 + 1, dot2), 'base64url').toString('utf8')) as typeof claims;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (header === null || typeof header !== 'object' || header.alg !== 'HS256' || typeof header.kid !== 'string') {
    return { ok: false, reason: 'malformed' };
  }
  const secret = ring.keys.get(header.kid);
  if (secret === undefined) return { ok: false, reason: 'unknown-kid' };
  const expected = createHmac('sha256', secret).update(token.slice(0, dot2)).digest();
  // Strict: one spelling per signature, no characters skipped.
  const given = b64urlDecode(token.slice(dot2 + 1));
  if (given === null || given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, reason: 'bad-signature' };
  }
  if (claims === null || typeof claims !== 'object' || typeof claims.exp !== 'number' || typeof claims.sub !== 'string') {
    return { ok: false, reason: 'malformed' };
  }
  if (claims.typ !== typ) return { ok: false, reason: 'wrong-type' };
  if (claims.exp + skewSec <= nowSec) return { ok: false, reason: 'expired' };
  return { ok: true, claims: claims as T };
}

/** Reads claims without verifying (for expiry bookkeeping of an already verified token). */
export function peekClaims(token: string): Partial<TokenClaims> | null {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1] === undefined) return null;
  try {
    return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as Partial<TokenClaims>;
  } catch {
    return null;
  }
}
