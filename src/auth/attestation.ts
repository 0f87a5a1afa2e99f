/**
 * Identity attestations (PROTOCOL.md "Tokens and credentials"): a compact JWS signed by the
 * server's active Ed25519 attestation key, header `{alg:"EdDSA", typ:"dg-identity+jwt", kid}`,
 * payload `{iss: publicUrl, sub: deviceId, email, provider, iat}`. Anyone can check one
 * against GET /auth/v1/server-keys (and must refuse a `revoked` kid).
 */
import { SignJWT } from 'jose';
import type { IdentityPayload } from '../protocol/auth-schemas.js';
import { DgError } from '../protocol/errors.js';
import type { AuthContext } from './context.js';

export const IDENTITY_TYP = 'dg-identity+jwt';

export async function signIdentityAttestation(ctx: AuthContext, a: { device: string; email: string; provider: string }): Promise<string> {
  const key = ctx.deps.attestation.find((k) => k.status === 'active');
  if (key === undefined) throw new DgError('UNAVAILABLE', 'no active attestation key; run `datagrove keys rotate`');
  const payload: IdentityPayload = { iss: ctx.deps.publicUrl(), sub: a.device, email: a.email, provider: a.provider, iat: Math.floor(ctx.now() / 1000) };
  return new SignJWT({ ...payload }).setProtectedHeader({ alg: 'EdDSA', typ: IDENTITY_TYP, kid: key.kid }).sign(key.privateKey);
}

/** Emails compare as the providers send them, trimmed and lower-cased. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}
