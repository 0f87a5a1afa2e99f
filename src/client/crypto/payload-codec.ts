/**
 * The hook through which a Log seals payloads before they are framed and sent, and opens
 * them before subscribers see them (`codec` in LogOptions, or `client.setCodec`). The SDK
 * header (entry-header.ts) stays OUTSIDE the sealed part: the leader and every writer must
 * read the writer stream and sequence number of each entry to settle appends exactly once
 * after a disruption, without holding the site key on the hot path; the header is passed to
 * the codec as `origin`, so an implementation can bind it (keys/entry-cipher.ts does, in the
 * AAD) and a server that swaps headers between entries is caught.
 */
import type { EntryOrigin } from '../entry-header.js';

export interface PayloadContext {
  site: string;
  log: string;
  /** The entry's writer as its SDK header names it; null for an entry without the header. */
  origin: EntryOrigin | null;
}

export interface PayloadCodec {
  /** The most bytes `seal` adds to a payload (counted against the entry size limit). */
  readonly overhead: number;
  /** Seals an app payload; rejects when it cannot (e.g. no key for the site yet). */
  seal(payload: Uint8Array, ctx: PayloadContext): Promise<Uint8Array>;
  /** Opens a stored payload; rejects with a DgError when it cannot. */
  open(sealed: Uint8Array, ctx: PayloadContext): Promise<Uint8Array>;
}
