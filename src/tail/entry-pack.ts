/**
 * The packed form of a write's entries, as the SQLite log store keeps them (one row per
 * write): each entry is a 4-byte little-endian length followed by its bytes, entries in
 * order, nothing else. One blob per write costs one row insert where one row per entry
 * cost one per entry, and reads split it back into views without copying.
 */

import { hasCanonicalTail } from '../protocol/b64.js';

/** Bytes of the length prefix of each entry. */
export const PACK_PREFIX = 4;

/** Packs `entries` (whose bytes add up to `bytes`, when the caller knows it) into one blob. */
export function packEntries(entries: readonly Uint8Array[], bytes?: number): Buffer {
  let total = 0;
  if (bytes === undefined) for (const e of entries) total += e.byteLength;
  else total = bytes;
  const out = Buffer.allocUnsafe(total + PACK_PREFIX * entries.length);
  let off = 0;
  for (const e of entries) {
    out.writeUInt32LE(e.byteLength, off);
    off += PACK_PREFIX;
    out.set(e, off);
    off += e.byteLength;
  }
  if (off !== out.length) throw new Error('packEntries: the entries do not add up to the given byte count');
  return out;
}

/**
 * Whether `entries` are, in order, exactly the entries of the packed `blob` as views into
 * it (what `decodePacked` makes): then `blob` can be stored as it is, without packing
 * again. Checks offsets and length prefixes only, never the bytes.
 */
export function isPackOf(blob: Uint8Array, entries: readonly Uint8Array[]): boolean {
  let off = 0;
  for (const e of entries) {
    const start = off + PACK_PREFIX;
    if (e.buffer !== blob.buffer || e.byteOffset !== blob.byteOffset + start || start + e.byteLength > blob.byteLength) return false;
    const size = (blob[off] as number) | ((blob[off + 1] as number) << 8) | ((blob[off + 2] as number) << 16) | ((blob[off + 3] as number) << 24);
    if (size !== e.byteLength) return false;
    off = start + e.byteLength;
  }
  return off === blob.byteLength;
}

/**
 * Decodes base64url strings straight into the packed form: one buffer holding, per entry,
 * its 4-byte length and its bytes; `entries` receives the views of the entries' bytes.
 * Returns the packed buffer, or the index of the first string that is not base64url
 * (unpadded) of a whole number of bytes. Node's decoder passes over characters outside
 * both base64 alphabets, which leaves fewer bytes than the length promises, so the count
 * catches them; `+` and `/` (standard base64, which it would decode) are refused here, and
 * so is a last character whose unused bits are not zero (a second spelling of the same bytes,
 * which a reader would get back in the encoder's spelling).
 */
export function decodePacked(b64: readonly string[], out: Buffer[]): Buffer | number {
  let total = 0;
  for (let i = 0; i < b64.length; i++) {
    const len = (b64[i] as string).length;
    if (!hasCanonicalTail(b64[i] as string)) return i;
    total += PACK_PREFIX + ((len * 3) >>> 2);
  }
  const blob = Buffer.allocUnsafe(total);
  let off = 0;
  for (let i = 0; i < b64.length; i++) {
    const s = b64[i] as string;
    const size = (s.length * 3) >>> 2;
    if (s.indexOf('+') !== -1 || s.indexOf('/') !== -1) return i;
    blob.writeUInt32LE(size, off);
    off += PACK_PREFIX;
    if (blob.write(s, off, size, 'base64url') !== size) return i;
    out[i] = blob.subarray(off, off + size);
    off += size;
  }
  return blob;
}

/**
 * Appends to `out` the entries of `blob` (whose first entry has index `first`) from index
 * `from` on, as views into `blob`, while `out` has fewer than `limit` entries and their
 * bytes (counted in `budget.bytes`) stay within `budget.max` — except that an empty `out`
 * always takes one entry. Returns -1 when a limit stopped it (the caller reads no
 * further), else the index just after the blob's last entry. Throws if the blob is malformed.
 */
export function unpackEntries(
  blob: Buffer,
  first: number,
  from: number,
  limit: number,
  budget: { bytes: number; max: number },
  out: Buffer[],
): number {
  let off = 0;
  let idx = first;
  while (off < blob.length) {
    if (off + PACK_PREFIX > blob.length) throw new Error('log store: truncated entry blob');
    const size = blob.readUInt32LE(off);
    const start = off + PACK_PREFIX;
    const end = start + size;
    if (end > blob.length) throw new Error('log store: truncated entry blob');
    if (idx >= from) {
      if (out.length >= limit) return -1;
      if (out.length > 0 && budget.bytes + size > budget.max) return -1;
      budget.bytes += size;
      out.push(blob.subarray(start, end));
    }
    idx++;
    off = end;
  }
  return idx;
}
