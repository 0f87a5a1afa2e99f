/**
 * Frames on the wire: parsing and validating what clients send, and building replies.
 * Parsing never throws: every malformed frame becomes a typed problem the session answers.
 */
import type { ErrorCode } from '../protocol/errors.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../protocol/json-depth.js';
import { isTailOp, tailArgsProblem, type TailOp, type TailOpArgs } from '../protocol/tail-schemas.js';

export type Parsed =
  | { [K in TailOp]: { ok: true; id: number; op: K; args: TailOpArgs[K] } }[TailOp]
  | { ok: false; id: number | null; code: ErrorCode; message: string; unauthorized?: 'not connected' | 'no token' };

/** Reads a leading `"id": <number>` cheaply (any JSON spelling: `100`, `1e2`, `100.0`), for frames too large to parse. */
const LEADING_ID = /^\s*\{\s*"id"\s*:\s*(-?(?:0|[1-9]\d{0,20})(?:\.\d{1,20})?(?:[eE][+-]?\d{1,3})?)\s*[,}]/;

/** The id of a frame that is not parsed (too large, too deep), when it comes first. */
function leadingId(data: Buffer): number | null {
  const m = LEADING_ID.exec(data.subarray(0, 64).toString('latin1'));
  const id = m?.[1] === undefined ? null : Number(m[1]);
  return id !== null && Number.isSafeInteger(id) ? id : null;
}

function bad(id: number | null, code: ErrorCode, message: string): Parsed {
  return { ok: false, id, code, message };
}

/**
 * `connected` tells whether the session has had its `connect`: before it, every request
 * other than `connect` is UNAUTHORIZED whatever else is wrong with it, and a `connect`
 * without a usable token is UNAUTHORIZED like one with an invalid token.
 */
export function parseFrame(data: Buffer, isBinary: boolean, maxFrame: number, connected: boolean): Parsed {
  if (data.length > maxFrame) return bad(leadingId(data), 'TOO_LARGE', `frame over ${maxFrame} bytes`);
  if (isBinary) return bad(null, 'BAD_REQUEST', 'frames are JSON text messages');
  if (nestsDeeperThan(data)) return bad(leadingId(data), 'BAD_REQUEST', `frame nests deeper than ${MAX_JSON_DEPTH} levels`);
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch {
    return bad(null, 'BAD_REQUEST', 'frame is not JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return bad(null, 'BAD_REQUEST', 'frame must be a JSON object');
  const frame = value as Record<string, unknown>;
  const id = frame.id;
  if (typeof id !== 'number' || !Number.isSafeInteger(id)) return bad(null, 'BAD_REQUEST', 'id: must be an integer');
  const op = frame.op;
  if (!connected && op !== 'connect') return { ok: false, id, code: 'UNAUTHORIZED', message: 'connect first', unauthorized: 'not connected' };
  if (typeof op !== 'string') return bad(id, 'BAD_REQUEST', 'op: must be a string');
  if (!isTailOp(op)) return bad(id, 'UNKNOWN_OP', `unknown op '${op.slice(0, 32)}'`);
  const problem = tailArgsProblem(op, frame);
  if (problem !== null) {
    if (op === 'connect') return { ok: false, id, code: 'UNAUTHORIZED', message: problem, unauthorized: 'no token' };
    return bad(id, 'BAD_REQUEST', problem);
  }
  return { ok: true, id, op, args: frame } as Parsed;
}

/** `{"re":id, ...result}` built without copying the result object. */
export function replyFrame(id: number, result: object): string {
  const body = JSON.stringify(result);
  return body === '{}' ? `{"re":${id}}` : `{"re":${id},${body.slice(1)}`;
}

export function errorFrame(id: number | null, code: ErrorCode, message: string): string {
  return JSON.stringify({ re: id, error: { code, message } });
}

/** A JSON array of strings that are known to need no escaping (validated base64url). */
export function b64Array(entries: readonly string[]): string {
  return entries.length === 0 ? '[]' : `["${entries.join('","')}"]`;
}
