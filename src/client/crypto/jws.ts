/**
 * Compact JWS with EdDSA (Ed25519) without a JOSE library: the SDK signs device
 * certificates and checks certificates, grants and identity attestations. Only the
 * features those need: a JSON header and payload, one signature, no unencoded payloads.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { b64urlDecode, b64urlEncode, fromUtf8, utf8 } from '../bytes.js';
import { repeatedKey } from '../../protocol/json-keys.js';

export interface DecodedJws {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  /** The ASCII bytes that were signed: `header.payload`. */
  signingInput: Uint8Array;
  signature: Uint8Array;
}

/** A JWS longer than this is refused before any parsing (certificates and attestations are far shorter). */
export const MAX_JWS_LENGTH = 8192;

function jsonObject(part: string): Record<string, unknown> | null {
  const bytes = b64urlDecode(part);
  if (bytes === null) return null;
  try {
    const text = fromUtf8(bytes);
    const v = JSON.parse(text) as unknown;
    // A key given twice would be read differently by other verifiers of the same signature.
    if (repeatedKey(text) !== null) return null;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Splits and decodes a compact JWS; null when malformed. Does not verify. */
export function decodeJws(jws: string): DecodedJws | null {
  if (jws.length > MAX_JWS_LENGTH) return null;
  const parts = jws.split('.');
  if (parts.length !== 3) return null;
  const [h, p, s] = parts as [string, string, string];
  const header = jsonObject(h);
  const payload = jsonObject(p);
  const signature = b64urlDecode(s);
  if (header === null || payload === null || signature === null) return null;
  return { header, payload, signingInput: utf8(`${h}.${p}`), signature };
}

/** Signs `payload` under `header` with an Ed25519 secret key. */
export function signJws(header: Record<string, unknown>, payload: Record<string, unknown>, sign: (message: Uint8Array) => Uint8Array): string {
  const input = `${b64urlEncode(utf8(JSON.stringify(header)))}.${b64urlEncode(utf8(JSON.stringify(payload)))}`;
  return `${input}.${b64urlEncode(sign(utf8(input)))}`;
}

/** Ed25519 verification with a base64url raw public key; false (never a throw) for anything malformed. */
export function verifyEd25519(publicKey: string, message: Uint8Array, signature: Uint8Array): boolean {
  const pk = b64urlDecode(publicKey);
  if (pk?.length !== 32 || signature.length !== 64) return false;
  try {
    // Strict (RFC 8032): no non-canonical encodings, no small-order keys, under which
    // signatures anyone can make verify.
    return ed25519.verify(signature, message, pk, { zip215: false });
  } catch {
    return false;
  }
}
