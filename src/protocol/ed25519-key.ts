/**
 * Which Ed25519 public keys may verify anything: the canonical encoding of a point that is not
 * of small order (RFC 8032 strict). OpenSSL, and so WebCrypto in Node, takes a small-order key,
 * under which signatures anyone can make verify (for the identity point, every message), so
 * auth and the SDK check a key here before they trust a signature by it. Uses @noble/curves
 * (not node:crypto) so the same code runs in browsers.
 */
import { ed25519 } from '@noble/curves/ed25519.js';

/**
 * Whether the 32 bytes `raw` are a usable Ed25519 public key.
 *
 * @example
 * isStrongEd25519Key(new Uint8Array(32)); // false (not a canonical point of large order)
 */
export function isStrongEd25519Key(raw: Uint8Array): boolean {
  if (raw.length !== 32) return false;
  try {
    return !ed25519.Point.fromBytes(raw, false).isSmallOrder();
  } catch {
    return false;
  }
}
