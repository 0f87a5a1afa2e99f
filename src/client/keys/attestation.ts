/**
 * Checking an identity attestation (PROTOCOL.md "Identity attestation"): a compact JWS by
 * the server's Ed25519 attestation key, header {alg:"EdDSA", typ:"dg-identity+jwt", kid},
 * payload {iss, sub: deviceId, email, provider, iat, box?}, against GET /auth/v1/server-keys.
 * A `revoked` kid is refused (the key may have been stolen, so anything it signed may be
 * forged), and so is an unknown one; `active` and `retired` keys are trusted.
 */
import { decodeJws, verifyEd25519 } from '../crypto/jws.js';

export interface ServerKey {
  kid: string;
  publicKey: string;
  status: 'active' | 'retired' | 'revoked';
}

export interface Attested {
  device: string;
  email: string;
  provider: string;
  iat: number;
  kid: string;
  /** The device's box key (attestations made before it was added have none). */
  box?: string;
}

export type AttestationCheck = { ok: true; attested: Attested } | { ok: false; reason: 'malformed' | 'unknown-key' | 'revoked-key' | 'bad-signature' | 'wrong-issuer' };

/** Checks `jws` against the server's keys; `issuer`, when given, must equal `iss`. */
export function checkAttestation(jws: string, keys: readonly ServerKey[], issuer?: string): AttestationCheck {
  const d = decodeJws(jws);
  if (d === null || d.header.alg !== 'EdDSA' || d.header.typ !== 'dg-identity+jwt' || typeof d.header.kid !== 'string') return { ok: false, reason: 'malformed' };
  const { sub, email, provider, iat, iss, box } = d.payload;
  if (typeof sub !== 'string' || typeof email !== 'string' || typeof provider !== 'string' || typeof iat !== 'number') return { ok: false, reason: 'malformed' };
  const key = keys.find((k) => k.kid === d.header.kid);
  if (key === undefined) return { ok: false, reason: 'unknown-key' };
  if (key.status === 'revoked') return { ok: false, reason: 'revoked-key' };
  if (!verifyEd25519(key.publicKey, d.signingInput, d.signature)) return { ok: false, reason: 'bad-signature' };
  if (issuer !== undefined && iss !== issuer) return { ok: false, reason: 'wrong-issuer' };
  return { ok: true, attested: { device: sub, email, provider, iat, kid: key.kid, ...(typeof box === 'string' ? { box } : {}) } };
}
