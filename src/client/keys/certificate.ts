/**
 * Device certificates (docs/protocol.md "Additions"): a compact JWS signed by a user key,
 * header {alg:"EdDSA", typ:"dg-device+jwt"}, payload {sub: deviceId, box: boxKey, user,
 * ukv: user key version, iat}. The SDK encrypts to a device only after it has checked such a
 * certificate against the user's verified key chain (user-key-chain.ts).
 */
import { DEVICE_CERT_TYP } from '../../protocol/key-statements.js';
import { decodeJws, signJws, verifyEd25519 } from '../crypto/jws.js';
import type { UserKey } from './user-key.js';

export interface DeviceCertificate {
  device: string;
  boxKey: string;
  user: string;
  keyVersion: number;
  iat: number;
}

/** Signs the certificate of `device` (with its box key) by version `keyVersion` of `user`'s key. */
export function signDeviceCertificate(key: UserKey, c: { device: string; boxKey: string; user: string; keyVersion: number }, now = Date.now()): string {
  return signJws({ alg: 'EdDSA', typ: DEVICE_CERT_TYP }, { sub: c.device, box: c.boxKey, user: c.user, ukv: c.keyVersion, iat: Math.floor(now / 1000) }, (m) => key.sign(m));
}

/**
 * The certificate's claims when it is well formed and signed by `publicKey` (the user key of
 * the version it names, which the caller looked up); null otherwise.
 */
export function verifyDeviceCertificate(jws: string, keyOfVersion: (version: number) => string | undefined): DeviceCertificate | null {
  const d = decodeJws(jws);
  if (d === null || d.header.alg !== 'EdDSA' || d.header.typ !== DEVICE_CERT_TYP) return null;
  const { sub, box, user, ukv, iat } = d.payload;
  if (typeof sub !== 'string' || typeof box !== 'string' || typeof user !== 'string' || typeof iat !== 'number') return null;
  if (typeof ukv !== 'number' || !Number.isSafeInteger(ukv)) return null;
  const publicKey = keyOfVersion(ukv);
  if (publicKey === undefined || !verifyEd25519(publicKey, d.signingInput, d.signature)) return null;
  return { device: sub, boxKey: box, user, keyVersion: ukv, iat };
}
