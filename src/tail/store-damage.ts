/**
 * Damaged storage: a log store that finds its data unreadable (a corrupt page, a file that
 * is no longer a database, chunks that contradict each other) is not having an outage.
 * Retrying does not help and it does not heal by itself, so it is kept apart from the
 * transient failures that `healthy()` tracks: once seen, the store reports it until it is
 * closed (an operator repairs or restores the file, then restarts), for /ready, the log
 * and /metrics. Calls that do not touch the damaged part go on working meanwhile.
 */
import { DgError } from '../protocol/errors.js';

/** What a store reports once it found its storage damaged (LogStore.damage). */
export interface StoreDamage {
  /** The kind of error that first showed it: a code such as SQLITE_CORRUPT or XX001, never data. */
  reason: string;
  /** Calls that failed on damaged storage since the store was opened. */
  failures: number;
}

/** The cause under the UNAVAILABLE of a call that failed on damaged storage. */
class DamagedStorage extends Error {
  constructor(reason: string, cause: unknown) {
    super(`damaged storage (${reason})`, { cause });
    this.name = 'DamagedStorage';
  }
}

/** Whether `err`, or an error it was caused by, is a failure on damaged storage. */
export function isDamagedStorage(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 8; depth++, e = e.cause) if (e instanceof DamagedStorage) return true;
  return false;
}

/** One store's record of damage: the first reason, and the calls that failed on it. */
export class DamageRecord {
  #reason: string | null = null;
  #failures = 0;

  /**
   * Counts a call that failed on damaged storage and returns what the store rejects it with:
   * UNAVAILABLE, as for a dependency that is down (clients back off; the cause is logged,
   * never sent).
   */
  failed(reason: string, cause: unknown): DgError {
    this.#reason ??= reason;
    this.#failures++;
    return new DgError('UNAVAILABLE', 'log store is damaged', { cause: new DamagedStorage(reason, cause) });
  }

  report(): StoreDamage | null {
    return this.#reason === null ? null : { reason: this.#reason, failures: this.#failures };
  }
}
