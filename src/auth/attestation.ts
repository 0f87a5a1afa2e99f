/**
 * Identity attestations (PROTOCOL.md "Tokens and credentials"): a compact JWS signed by the
 * server's active Ed25519 attestation key, header `{alg:"EdDSA", typ:"dg-identity+jwt", kid}`,
 * payload `{iss: publicUrl, sub: deviceId, email, provider, iat, box}` (`box`, the device's box
 * key, is an addition to PROTOCOL.md: it lets a sender encrypt to the device). Anyone can check one
 * against GET /auth/v1/server-keys (and must refuse a `revoked` kid).
 */
import { SignJWT } from 'jose';
import type { IdentityPayload } from '../protocol/auth-schemas.js';
import { DgError } from '../protocol/errors.js';
import type { AuthContext } from './context.js';

export const IDENTITY_TYP = 'dg-identity+jwt';

export async function signIdentityAttestation(ctx: AuthContext, a: { device: string; email: string; provider: string; box?: string }): Promise<string> {
  const key = ctx.deps.attestation.find((k) => k.status === 'active');
  if (key === undefined) throw new DgError('UNAVAILABLE', 'no active attestation key; run `datagrove keys rotate`');
  const payload: IdentityPayload = {
    iss: ctx.deps.publicUrl(),
    sub: a.device,
    email: a.email,
    provider: a.provider,
    iat: Math.floor(ctx.now() / 1000),
    // Addition: the device's box key, so that whoever finds the device by email can encrypt to it.
    ...(a.box === undefined ? {} : { box: a.box }),
  };
  return new SignJWT({ ...payload }).setProtectedHeader({ alg: 'EdDSA', typ: IDENTITY_TYP, kid: key.kid }).sign(key.privateKey);
}
