/**
 * The SDK header in front of every log entry the SDK writes. The server sees entries as
 * opaque bytes; the header lets writers find their own entries again after a leader dies,
 * so that an append is neither lost nor duplicated, and tells subscribers who wrote what.
 *
 * Layout of version 2, which the SDK writes (all multi-byte integers big-endian unless said
 * otherwise):
 *
 * | offset | size | field                                                             |
 * | ------ | ---- | ----------------------------------------------------------------- |
 * | 0      | 1    | magic 0xDB                                                        |
 * | 1      | 1    | version 2                                                         |
 * | 2      | 32   | origin device: the raw Ed25519 public key of the writing device   |
 * | 34     | 8    | writer stream: random bytes chosen when the writer opened the log |
 * | 42     | 1..8 | origin sequence number: unsigned LEB128 (low 7 bits first), ≥ 1   |
 * | s      | 64   | signature: Ed25519 by the origin device over the signed message   |
 * | s + 64 | rest | the application's payload (sealed, when the log has a codec)      |
 *
 * The signed message is the UTF-8 of `"datagrove-entry-v2\n" site "\n" log "\n"` (neither
 * may contain a newline), then the header bytes before the signature (offsets 0 to s: magic,
 * version, device, stream, seq as written), then the payload bytes as written. So an entry
 * names its writer only if that device wrote it, for this site and log, with this seq and
 * these payload bytes; with a codec, the signature covers the ciphertext.
 *
 * Version 1 (written by earlier SDKs, still read) is the same without the signature: nothing
 * in it proves who wrote it. Readers mark such entries unsigned (`LogEntry.signed`).
 *
 * (device, stream, seq) identifies an append uniquely: a stream's sequence numbers start at 1
 * and grow by one per append, and a new stream is drawn for every opened log, so nothing
 * needs to be persisted to keep them unique. An entry that does not start with a valid
 * header (written by another kind of client) is delivered as it is, with `origin: null`.
 */
import { b64urlDecode, b64urlEncode, concatBytes, utf8 } from './bytes.js';

export const ENTRY_MAGIC = 0xdb;
/** The header version the SDK writes (signed). */
export const ENTRY_VERSION = 2;
/** The version of unsigned headers, written by earlier SDKs. */
export const ENTRY_VERSION_UNSIGNED = 1;
export const STREAM_BYTES = 8;
export const ENTRY_SIGNATURE_BYTES = 64;
const FIXED = 2 + 32 + STREAM_BYTES;
/** The largest header: fixed part + an 8-byte varint (enough for 2^53) + the signature. */
export const MAX_HEADER_BYTES = FIXED + 8 + ENTRY_SIGNATURE_BYTES;

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
  /** The writer's signature (version 2); null for an unsigned header or none. */
  signature: Uint8Array | null;
  /** The header bytes the signature covers (before it); empty when there is no signature. */
  signedHeader: Uint8Array;
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

/** Signs entries of one log with a device key (`sign`: the device's Ed25519 signature). */
export interface EntrySigner {
  /** The start of every signed message of the log (`entrySigner` encodes it once). */
  readonly scope: Uint8Array;
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/**
 * A signer of `site`/`log` entries with a device's key.
 *
 * @example
 * ```ts
 * import { DeviceKeys, entrySigner } from 'datagrove/client';
 * const keys = DeviceKeys.generate();
 * const signer = entrySigner('site-id', 'chat', (m) => keys.signAsync(m));
 * ```
 */
export function entrySigner(site: string, log: string, sign: (message: Uint8Array) => Promise<Uint8Array>): EntrySigner {
  return { scope: signingScope(site, log), sign };
}

/** The start of every signed message of `site`/`log`. */
export function signingScope(site: string, log: string): Uint8Array {
  return utf8(`datagrove-entry-v2\n${site}\n${log}\n`);
}

/** The message a version 2 header's signature covers: scope ‖ header before the signature ‖ payload. */
export function entrySigningMessage(scope: Uint8Array, signedHeader: Uint8Array, payload: Uint8Array): Uint8Array {
  return concatBytes([scope, signedHeader, payload]);
}

/**
 * Header (version 2, signed by `signer`) + payload. Asynchronous because signing is (many
 * entries encoded at once are signed concurrently).
 *
 * @example
 * ```ts
 * import { DeviceKeys, decodeEntry, encodeEntry, entrySigner, originPrefix } from 'datagrove/client';
 * const keys = DeviceKeys.generate();
 * const signer = entrySigner('site-id', 'chat', (m) => keys.signAsync(m));
 * const bytes = await encodeEntry(originPrefix(keys.deviceId, stream), 1, new TextEncoder().encode('hi'), signer);
 * decodeEntry(bytes).origin?.seq; // 1
 * ```
 */
export async function encodeEntry(prefix: OriginPrefix, seq: number, payload: Uint8Array, signer: EntrySigner): Promise<Uint8Array> {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new Error('entry header: seq must be a positive safe integer');
  const varint: number[] = [];
  let v = seq;
  while (v >= 0x80) {
    varint.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  varint.push(v);
  const headerEnd = FIXED + varint.length;
  const out = new Uint8Array(headerEnd + ENTRY_SIGNATURE_BYTES + payload.length);
  out[0] = ENTRY_MAGIC;
  out[1] = ENTRY_VERSION;
  out.set(prefix.device, 2);
  out.set(prefix.stream, 34);
  out.set(varint, FIXED);
  out.set(payload, headerEnd + ENTRY_SIGNATURE_BYTES);
  const signature = await signer.sign(entrySigningMessage(signer.scope, out.subarray(0, headerEnd), payload));
  if (signature.length !== ENTRY_SIGNATURE_BYTES) throw new Error('entry header: the signature must be 64 bytes');
  out.set(signature, headerEnd);
  return out;
}

/**
 * Splits an entry into origin, signature and payload; an entry without a valid header has
 * origin null. Checks no signature (the reading Log does).
 *
 * @example
 * ```ts
 * import { decodeEntry } from 'datagrove/client';
 * const { origin, payload, signature } = decodeEntry(bytes);
 * ```
 */
export function decodeEntry(bytes: Uint8Array): DecodedEntry {
  const version = bytes[1];
  const none = { origin: null, payload: bytes, signature: null, signedHeader: bytes.subarray(0, 0) };
  if (bytes.length <= FIXED || bytes[0] !== ENTRY_MAGIC || (version !== ENTRY_VERSION && version !== ENTRY_VERSION_UNSIGNED)) return none;
  let seq = 0;
  let mul = 1;
  let i = FIXED;
  for (;;) {
    if (i >= bytes.length || i - FIXED >= 8) return none;
    const b = bytes[i++]!;
    seq += (b & 0x7f) * mul;
    mul *= 0x80;
    if ((b & 0x80) === 0) break;
  }
  if (seq < 1 || !Number.isSafeInteger(seq)) return none;
  const origin = { device: b64urlEncode(bytes.subarray(2, 34)), stream: b64urlEncode(bytes.subarray(34, FIXED)), seq };
  if (version === ENTRY_VERSION_UNSIGNED) return { origin, payload: bytes.subarray(i), signature: null, signedHeader: bytes.subarray(0, 0) };
  if (bytes.length < i + ENTRY_SIGNATURE_BYTES) return none;
  return { origin, payload: bytes.subarray(i + ENTRY_SIGNATURE_BYTES), signature: bytes.subarray(i, i + ENTRY_SIGNATURE_BYTES), signedHeader: bytes.subarray(0, i) };
}
