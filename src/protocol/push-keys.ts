/**
 * The key check of a Web Push subscription (RFC 8291), shared by auth (which refuses such a
 * `push` change with a comment) and notify (which checks again before it stores or sends):
 * `p256dh` must be a point of P-256, or no push can ever be encrypted to it. Server-side
 * only (node:crypto).
 */
import { ECDH } from 'node:crypto';

/**
 * Whether `key` is an uncompressed (65 bytes, 0x04 first) point of P-256.
 *
 * @example
 * isP256Point(createECDH('prime256v1').generateKeys()); // true
 */
export function isP256Point(key: Uint8Array): boolean {
  if (key.length !== 65 || key[0] !== 4) return false;
  try {
    ECDH.convertKey(key, 'prime256v1');
    return true;
  } catch {
    return false;
  }
}
