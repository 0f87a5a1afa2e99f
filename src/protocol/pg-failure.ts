/**
 * PostgreSQL failures that are not the request's fault, as the PostgreSQL stores of auth,
 * tail and notify tell them apart (SQLSTATE classes, or node's own error codes for a socket):
 * - `down`: the database cannot be reached or used now (08 connection exception, 53
 *   insufficient resources, 57 operator intervention such as a shutdown or a statement
 *   timeout, 58 system error; ECONNREFUSED, ECONNRESET, ... from node; a pool or connect
 *   timeout);
 * - `busy`: it refused this transaction (40: deadlock, serialization failure), which the
 *   stores retry a few times first;
 * - `damaged`: it found the data or an index corrupt (XX001, XX002).
 * The stores answer all three `UNAVAILABLE` (503: retry with backoff), never `INTERNAL`;
 * anything else (a constraint, a bad statement) is a bug or the caller's and keeps its error.
 */
import { DgError } from './errors.js';

export type PgFailure = 'down' | 'busy' | 'damaged';

export function pgFailure(err: unknown): PgFailure | null {
  if (!(err instanceof Error) || err instanceof DgError) return null;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (code === 'XX001' || code === 'XX002') return 'damaged';
    if (/^(08|53|57|58)/.test(code) || code.startsWith('E')) return 'down';
    if (code.startsWith('40')) return 'busy';
    return null;
  }
  return /connect|terminat|timeout|pool/i.test(err.message) ? 'down' : null;
}

/**
 * `err` as callers of `store` ('auth store', 'notify store', ...) see it: a failure of the
 * database becomes `UNAVAILABLE` with the driver's error as its cause (logged, never sent);
 * anything else is returned as it is.
 */
export function pgStoreError(store: string, err: unknown): unknown {
  return pgFailure(err) === null ? err : new DgError('UNAVAILABLE', `${store} is unavailable`, { cause: err });
}
