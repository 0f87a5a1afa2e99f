/** Key derivation (HKDF-SHA256, RFC 5869) and hashing for the SDK's key hierarchy. */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8 } from '../bytes.js';

/** 32 bytes of HKDF-SHA256(ikm, salt, info), with `salt` and `info` as UTF-8 labels. */
export function derive32(ikm: Uint8Array, salt: string, info: string): Uint8Array {
  return hkdf(sha256, ikm, utf8(salt), utf8(info), 32);
}

export function sha256Bytes(data: Uint8Array): Uint8Array {
  return sha256(data);
}
