/**
 * Checks the options of `openLog` before anything is leased: a mistake in them (a `from`
 * parsed from a URL as NaN or left a string, a timeout of the wrong type) is a programming
 * error that no retry can fix, so it throws BAD_REQUEST at once instead of opening a log
 * that waits or reads from the wrong place.
 */
import { DgError } from '../protocol/errors.js';
import type { LogOptions } from './log-types.js';

/** Timeouts above this (a day) are taken for a unit mistake. */
const MAX_TIMEOUT_MS = 86_400_000;

export function checkLogOptions(opts: LogOptions): void {
  if (opts === null || typeof opts !== 'object') throw new DgError('BAD_REQUEST', 'options: must be an object');
  const { from, lead, channelTimeoutMs, retransmitMs, codec, outbox } = opts;
  if (from !== undefined && from !== 'end' && !(typeof from === 'number' && Number.isSafeInteger(from) && from >= 0)) {
    throw new DgError('BAD_REQUEST', `from: must be an index (an integer, 0 or more) or 'end', not ${describe(from)}`);
  }
  if (lead !== undefined && typeof lead !== 'boolean') throw new DgError('BAD_REQUEST', `lead: must be a boolean, not ${describe(lead)}`);
  for (const [name, v] of [['channelTimeoutMs', channelTimeoutMs], ['retransmitMs', retransmitMs]] as const) {
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= MAX_TIMEOUT_MS)) {
      throw new DgError('BAD_REQUEST', `${name}: must be a number of milliseconds above 0 and at most ${MAX_TIMEOUT_MS}, not ${describe(v)}`);
    }
  }
  if (codec !== undefined && codec !== null && typeof codec !== 'object') throw new DgError('BAD_REQUEST', `codec: must be a payload codec or null, not ${describe(codec)}`);
  // Taking up a dead Log's appends needs the lock: two Logs must never both send them.
  if (outbox !== undefined && !(typeof outbox === 'object' && outbox !== null && ['load', 'save', 'remove', 'lock'].every((m) => typeof (outbox as unknown as Record<string, unknown>)[m] === 'function'))) {
    throw new DgError('BAD_REQUEST', `outbox: must be a KeyStorage with a lock, not ${describe(outbox)}`);
  }
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  return `a value of type ${typeof v}`;
}
