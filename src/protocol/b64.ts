/** base64url without padding, as every byte field of the protocol is encoded. */
export function b64urlEncode(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

const B64URL = /^[A-Za-z0-9_-]*$/;

/** The value (0–63) of each base64url character, by char code; -1 for other characters. */
const VALUE = new Int8Array(128).fill(-1);
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'].entries()) VALUE[c.charCodeAt(0)] = i;

/**
 * Whether the bits a string's last character carries beyond its last byte are zero, as every
 * encoder writes them. Decoding ignores those bits, so without this check one byte string
 * would have several spellings (2 bits' worth of twins for a 32-byte key, 4 bits' for a
 * 64-byte signature), and a value compared or hashed as text (a device id, a grant) could be
 * presented under another name. Assumes the alphabet was checked.
 */
export function hasCanonicalTail(text: string): boolean {
  const rest = text.length % 4;
  if (rest === 0) return true;
  if (rest === 1) return false;
  const v = VALUE[text.charCodeAt(text.length - 1)] ?? -1;
  return v >= 0 && (v & (rest === 2 ? 15 : 3)) === 0;
}

/**
 * Decodes strict base64url: no padding, no other alphabet, and the one spelling an encoder
 * gives (the unused low bits of the last character zero). Returns null when malformed.
 */
export function b64urlDecode(text: string): Buffer | null {
  if (!B64URL.test(text) || !hasCanonicalTail(text)) return null;
  return Buffer.from(text, 'base64url');
}
