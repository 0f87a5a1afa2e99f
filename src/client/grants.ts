/**
 * Grants (PROTOCOL.md "Tokens and credentials"): compact JWS, header
 * {alg:"EdDSA", typ:"dg-grant+jwt"}, payload {iss, sub, site, logs, rights, iat, exp?, prf?},
 * signed with the issuing device's Ed25519 key. The hash of a grant is the base64url
 * SHA-256 of its ASCII compact form.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { DgError } from '../protocol/errors.js';
import { LOG_NAME_RE, RIGHTS, SITE_ID_RE, type Right } from '../protocol/ids.js';
import { b64urlEncode, utf8 } from './bytes.js';
import { decodeJws } from './crypto/jws.js';
import { verifyDeviceSignature, type DeviceKeys } from './device-keys.js';

export interface GrantSpec {
  /** "user:<id>", "device:<id>" or "email:<addr>". */
  sub: string;
  site: string;
  /** ["*"] for every log, or log names. */
  logs: string[];
  rights: Right[];
  /** Expiry, seconds since the epoch. */
  exp?: number;
  /** The hash of the grant that gives the issuer admin on the site (delegation). */
  prf?: string;
}

export interface GrantPayload extends GrantSpec {
  iss: string;
  iat: number;
}

const SUBJECT_RE = /^(user:[A-Za-z0-9_-]{1,64}|device:[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]|email:[^\s@]{1,200}@[^\s@]{1,64})$/;

/**
 * Signs a grant with the device key.
 *
 * @example
 * ```ts
 * import { DeviceKeys, signGrant } from 'datagrove/client';
 * const keys = DeviceKeys.generate();
 * const jws = signGrant(keys, { sub: 'user:bob', site: 'abc', logs: ['*'], rights: ['read', 'write'] });
 * ```
 */
export function signGrant(keys: DeviceKeys, spec: GrantSpec, now: number = Date.now()): string {
  if (!SUBJECT_RE.test(spec.sub)) throw new DgError('BAD_REQUEST', 'sub: must be user:<id>, device:<id> or email:<addr>');
  if (!SITE_ID_RE.test(spec.site)) throw new DgError('BAD_REQUEST', 'site: malformed');
  if (spec.logs.length === 0 || !spec.logs.every((l) => l === '*' || LOG_NAME_RE.test(l))) throw new DgError('BAD_REQUEST', 'logs: malformed');
  if (spec.rights.length === 0 || !spec.rights.every((r) => (RIGHTS as readonly string[]).includes(r))) throw new DgError('BAD_REQUEST', 'rights: malformed');
  const iat = Math.floor(now / 1000);
  // Seconds, not milliseconds (a Date.now() value would read as the year 50 000 or so).
  if (spec.exp !== undefined && (!Number.isSafeInteger(spec.exp) || spec.exp <= iat || spec.exp >= 1e11)) {
    throw new DgError('BAD_REQUEST', `exp: must be whole seconds since 1970, later than now (${iat}); got ${String(spec.exp)}`);
  }
  const payload: GrantPayload = {
    iss: keys.deviceId,
    sub: spec.sub,
    site: spec.site,
    logs: [...spec.logs],
    rights: [...new Set(spec.rights)],
    iat,
    ...(spec.exp === undefined ? {} : { exp: spec.exp }),
    ...(spec.prf === undefined ? {} : { prf: spec.prf }),
  };
  const signingInput = `${b64urlEncode(utf8(JSON.stringify({ alg: 'EdDSA', typ: 'dg-grant+jwt' })))}.${b64urlEncode(utf8(JSON.stringify(payload)))}`;
  return `${signingInput}.${b64urlEncode(keys.sign(utf8(signingInput)))}`;
}

/**
 * The hash of a grant: base64url SHA-256 of its compact form.
 *
 * @example
 * ```ts
 * import { grantHash } from 'datagrove/client';
 * const hash = grantHash(jws); // 43 chars
 * ```
 */
export function grantHash(jws: string): string {
  return b64urlEncode(sha256(utf8(jws)));
}

/**
 * Reads a grant's payload and checks its signature by its issuer (not the chain: that is
 * the server's job). Returns null when malformed or badly signed.
 *
 * @example
 * ```ts
 * import { readGrant } from 'datagrove/client';
 * readGrant(jws)?.rights; // ["read", "write"]
 * ```
 */
export function readGrant(jws: string): GrantPayload | null {
  // decodeJws refuses what is not JSON, and a part that gives a key twice.
  const d = decodeJws(jws);
  if (d === null || d.header.alg !== 'EdDSA' || d.header.typ !== 'dg-grant+jwt') return null;
  const payload = d.payload as unknown as GrantPayload;
  if (typeof payload.iss !== 'string' || typeof payload.site !== 'string') return null;
  return verifyDeviceSignature(payload.iss, d.signingInput, d.signature) ? payload : null;
}
