/** base64url without padding, as every byte field of the protocol is encoded. */
export function b64urlEncode(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

const B64URL = /^[A-Za-z0-9_-]*$/;

/** Decodes strict base64url (no padding, no other alphabet); returns null when malformed. */
export function b64urlDecode(text: string): Buffer | null {
  if (!B64URL.test(text) || text.length % 4 === 1) return null;
  return Buffer.from(text, 'base64url');
}
