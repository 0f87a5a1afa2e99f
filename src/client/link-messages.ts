/**
 * Messages between a log's followers and its leader (over a WebRTC data channel, or relayed
 * through the server's `signal` kind `data`), and their framing into pieces that fit the
 * 64 KiB limit of a relayed signal.
 *
 * - `submit` (follower → leader): entries (full entry bytes with the SDK header, base64url)
 *   of one writer stream for the leader of `epoch` to sequence. `floor` is the stream's
 *   lowest unacknowledged seq: every seq below it is known to be in the log. `seen` is how
 *   far the follower has checked the log: none of these entries is at an index below it
 *   (absent from SDKs before it; the leader then reads the log instead when it must know).
 * - `ack` (leader → follower): entries of `stream` the leader wrote, as [seq, index] pairs.
 *   The leader's word, not the log's: a follower takes it as a sign that the link works, and
 *   settles an append only when it reads the entry in the log (at the index it finds there).
 * - `stale` (leader → follower): the sender is not the leader of `epoch` (anymore).
 * - `denied` (leader → follower): the follower's device may not write on this log, as far
 *   as the leader knows (the server's `writers` and `peer` events; a writer between two
 *   handles is not known for a moment): its entries are refused, not sequenced. The
 *   follower resends, and fails its appends when the refusals last.
 * - `refused` (leader → follower): the server refused the write that carried these entries
 *   of `stream` (`TOO_LARGE` or `BAD_REQUEST`): they will never be written, and the
 *   follower fails their appends with that code instead of resending them.
 *
 * Every device on the log can send any of these: a follower takes `ack`, `denied` and
 * `refused` only from the leader it follows and of its epoch, and `stale` only from that
 * leader; a leader sequences `submit` only from devices that may write (the others get
 * `denied`). Fragments are reassembled within bounds (link-reassembly.ts).
 */
import { randomId } from './bytes.js';

export type LinkMessage =
  | { t: 'submit'; epoch: number; stream: string; floor: number; seen?: number; entries: string[] }
  | { t: 'ack'; epoch: number; stream: string; acks: [number, number][] }
  | { t: 'stale'; epoch: number }
  | { t: 'denied'; epoch: number }
  | { t: 'refused'; epoch: number; stream: string; seqs: number[]; code: RefusalCode };

/** The server's answers to a write that mean "never", not "not now". */
export type RefusalCode = 'TOO_LARGE' | 'BAD_REQUEST';

interface Fragment {
  t: 'frag';
  id: string;
  i: number;
  n: number;
  d: string;
}

/** Text of one frame on the wire, at most this many characters of payload. */
export const FRAGMENT_CHARS = 24_000;
/** Pieces of one message, at most (a receiver holds less unfinished: link-reassembly.ts). */
export const MAX_PARTS = 1024;

/** The frames that carry `msg` (one when small, else fragments). */
export function toFrames(msg: LinkMessage): object[] {
  const text = JSON.stringify(msg);
  if (text.length <= FRAGMENT_CHARS) return [msg];
  const n = Math.ceil(text.length / FRAGMENT_CHARS);
  if (n > MAX_PARTS) throw new Error('link message too large');
  const id = randomId(6);
  const out: Fragment[] = [];
  for (let i = 0; i < n; i++) out.push({ t: 'frag', id, i, n, d: text.slice(i * FRAGMENT_CHARS, (i + 1) * FRAGMENT_CHARS) });
  return out;
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Validates a decoded message; null when it is not one. */
export function parseMessage(v: unknown): LinkMessage | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  if (o.t === 'submit') {
    if (!isInt(o.epoch) || !isInt(o.floor) || typeof o.stream !== 'string' || !Array.isArray(o.entries)) return null;
    if (!o.entries.every((e) => typeof e === 'string')) return null;
    if (o.seen !== undefined && !isInt(o.seen)) return null;
    const seen = o.seen === undefined ? {} : { seen: o.seen };
    return { t: 'submit', epoch: o.epoch, stream: o.stream, floor: o.floor, ...seen, entries: o.entries as string[] };
  }
  if (o.t === 'ack') {
    if (!isInt(o.epoch) || typeof o.stream !== 'string' || !Array.isArray(o.acks)) return null;
    const acks = o.acks as unknown[];
    if (!acks.every((a) => Array.isArray(a) && a.length === 2 && isInt(a[0]) && isInt(a[1]))) return null;
    return { t: 'ack', epoch: o.epoch, stream: o.stream, acks: acks as [number, number][] };
  }
  if (o.t === 'stale') return isInt(o.epoch) ? { t: 'stale', epoch: o.epoch } : null;
  if (o.t === 'denied') return isInt(o.epoch) ? { t: 'denied', epoch: o.epoch } : null;
  if (o.t === 'refused') {
    if (!isInt(o.epoch) || typeof o.stream !== 'string' || !Array.isArray(o.seqs) || !(o.seqs as unknown[]).every(isInt)) return null;
    if (o.code !== 'TOO_LARGE' && o.code !== 'BAD_REQUEST') return null;
    return { t: 'refused', epoch: o.epoch, stream: o.stream, seqs: o.seqs as number[], code: o.code };
  }
  return null;
}
