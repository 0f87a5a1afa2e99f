/**
 * The SDK header in front of every log entry the SDK writes. The server sees entries as
 * opaque bytes; the header lets writers find their own entries again after a leader dies,
 * so that an append is neither lost nor duplicated, and tells subscribers who wrote what.
 *
 * Layout (all multi-byte integers big-endian unless said otherwise):
 *
 * | offset | size | field                                                             |
 * | ------ | ---- | ----------------------------------------------------------------- |
 * | 0      | 1    | magic 0xDB                                                        |
 * | 1      | 1    | version 1                                                         |
 * | 2      | 32   | origin device: the raw Ed25519 public key of the writing device   |
 * | 34     | 8    | writer stream: random bytes chosen when the writer opened the log |
 * | 42     | 1..8 | origin sequence number: unsigned LEB128 (low 7 bits first), ≥ 1   |
 * | …      | rest | the application's payload, unchanged                              |
 *
 * (device, stream, seq) identifies an append uniquely: a stream's sequence numbers start at 1
 * and grow by one per append, and a new stream is drawn for every opened log, so nothing
 * needs to be persisted to keep them unique. An entry that does not start with a valid
 * header (written by another kind of client) is delivered as it is, with `origin: null`.
 */
import { b64urlDecode, b64urlEncode } from './bytes.js';

export const ENTRY_MAGIC = 0xdb;
export const ENTRY_VERSION = 1;
export const STREAM_BYTES = 8;
const FIXED = 2 + 32 + STREAM_BYTES;
/** The largest header: fixed part + an 8-byte varint (enough for 2^53). */
export const MAX_HEADER_BYTES = FIXED + 8;

export interface EntryOrigin {
  /** Device id (base64url of the raw public key). */
  device: string;
  /** Writer stream (base64url of 8 bytes). */
  stream: string;
  seq: number;
}

export interface DecodedEntry {
  origin: EntryOrigin | null;
  payload: Uint8Array;
}

/** Raw form of an origin, to build headers without re-decoding base64 per entry. */
export interface OriginPrefix {
  device: Uint8Array;
  stream: Uint8Array;
}

export function originPrefix(device: string, stream: string): OriginPrefix {
  const d = b64urlDecode(device);
  const s = b64urlDecode(stream);
  if (d?.length !== 32 || s?.length !== STREAM_BYTES) throw new Error('entry header: malformed device or stream');
  return { device: d, stream: s };
}

/**
 * Header + payload.
 *
 * @example
 * ```ts
 * import { encodeEntry, decodeEntry, originPrefix } from 'datagrove/client';
 * const bytes = encodeEntry(originPrefix(deviceId, stream), 1, new TextEncoder().encode('hi'));
 * decodeEntry(bytes).origin?.seq; // 1
 * ```
 */
export function encodeEntry(prefix: OriginPrefix, seq: number, payload: Uint8Array): Uint8Array {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new Error('entry header: seq must be a positive safe integer');
  const varint: number[] = [];
  let v = seq;
  while (v >= 0x80) {
    varint.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  varint.push(v);
  const out = new Uint8Array(FIXED + varint.length + payload.length);
  out[0] = ENTRY_MAGIC;
  out[1] = ENTRY_VERSION;
  out.set(prefix.device, 2);
  out.set(prefix.stream, 34);
  out.set(varint, FIXED);
  out.set(payload, FIXED + varint.length);
  return out;
}

/**
 * Splits an entry into origin and payload; an entry without a valid header has origin null.
 *
 * @example
 * ```ts
 * import { decodeEntry } from 'datagrove/client';
 * const { origin, payload } = decodeEntry(bytes);
 * ```
 */
export function decodeEntry(bytes: Uint8Array): DecodedEntry {
  if (bytes.length <= FIXED || bytes[0] !== ENTRY_MAGIC || bytes[1] !== ENTRY_VERSION) return { origin: null, payload: bytes };
  let seq = 0;
  let mul = 1;
  let i = FIXED;
  for (;;) {
    if (i >= bytes.length || i - FIXED >= 8) return { origin: null, payload: bytes };
    const b = bytes[i++]!;
    seq += (b & 0x7f) * mul;
    mul *= 0x80;
    if ((b & 0x80) === 0) break;
  }
  if (seq < 1 || !Number.isSafeInteger(seq)) return { origin: null, payload: bytes };
  return {
    origin: {
      device: b64urlEncode(bytes.subarray(2, 34)),
      stream: b64urlEncode(bytes.subarray(34, FIXED)),
      seq,
    },
    payload: bytes.subarray(i),
  };
}
