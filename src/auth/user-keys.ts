/**
 * Checks of the key directory's inputs. The server never holds a user's private key; it
 * keeps the public chain and certificates so that any client can fetch and verify them, and
 * it checks them on the way in so that nothing malformed or unsigned is stored:
 * - a user key version must carry the new key's signature over the user key statement
 *   (protocol/key-schemas.ts `userKeyStatement`) and, from version 2 on, the previous
 *   version's signature over the same statement;
 * - a device certificate is a compact JWS (EdDSA, typ dg-device+jwt) whose signature verifies
 *   with the user key version it names.
 */
import { DeviceCertHeader, DeviceCertPayload, MAX_CERTIFICATE_LENGTH, userKeyStatement, type UserKeyBody } from '../protocol/key-schemas.js';
import { verifyDeviceSignature } from './crypto.js';
import type { UserKeyRecord } from './key-directory.js';
import { readJwsPart } from './validation.js';

/** Why the body cannot be version `body.version` after `chain`, or null when it can. */
export function userKeyProblem(user: string, body: UserKeyBody, chain: UserKeyRecord[]): string | null {
  const statement = Buffer.from(userKeyStatement(user, body.version, body.publicKey), 'utf8');
  if (!verifyDeviceSignature(body.publicKey, statement, body.sig)) return 'sig: does not verify with publicKey over the user key statement';
  if (body.version === 1) return body.prevSig === undefined ? null : 'prevSig: version 1 has no previous key';
  const prev = chain.find((k) => k.version === body.version - 1);
  if (prev === undefined) return null; // the compare-and-set will refuse it as out of order
  if (body.prevSig === undefined) return 'prevSig: required from version 2 on';
  if (!verifyDeviceSignature(prev.publicKey, statement, body.prevSig)) return 'prevSig: does not verify with the previous user key';
  return null;
}

export type ParsedCertificate = { ok: true; payload: DeviceCertPayload; signingInput: Buffer; sig: string } | { ok: false; message: string };

/** Decodes a device certificate and checks its shape (not its signature). Never throws. */
export function parseCertificate(jws: string): ParsedCertificate {
  if (jws.length > MAX_CERTIFICATE_LENGTH) return { ok: false, message: 'certificate: too long' };
  const parts = jws.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) return { ok: false, message: 'certificate: not a compact JWS' };
  const [h, p, s] = parts as [string, string, string];
  const header = readJwsPart('certificate.header', DeviceCertHeader, h);
  if (!header.ok) return header;
  const payload = readJwsPart('certificate.payload', DeviceCertPayload, p);
  if (!payload.ok) return payload;
  return { ok: true, payload: payload.value, signingInput: Buffer.from(`${h}.${p}`, 'ascii'), sig: s };
}

/** Whether the certificate's signature verifies with `publicKey` (a user key). */
export function certificateSignedBy(c: Extract<ParsedCertificate, { ok: true }>, publicKey: string): boolean {
  return verifyDeviceSignature(publicKey, c.signingInput, c.sig);
}
