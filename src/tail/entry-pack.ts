/**
 * The packed form of a write's entries, as the SQLite log store keeps them (one row per
 * write): each entry is a 4-byte little-endian length followed by its bytes, entries in
 * order, nothing else. One blob per write costs one row insert where one row per entry
 * cost one per entry, and reads split it back into views without copying.
 */

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
