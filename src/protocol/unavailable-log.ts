/**
 * The log lines of requests answered UNAVAILABLE because a dependency failed (a store whose
 * disk is full, a database that went away, a provider that cannot be reached). While it
 * stays down every request fails the same way, and a line per request would flood the log,
 * often on the very disk that is full: each reason is logged at most once per interval, at
 * error level with its cause, and with the count of lines left out since the last one.
 */
import { DgError } from './errors.js';
import { LogThrottle } from './log-throttle.js';

export const UNAVAILABLE_LOG_MS = 10_000;
/** Distinct reasons tracked; messages come from code, so this is never reached in practice. */
const MAX_REASONS = 64;

export interface ErrorLogger {
  error(obj: object, msg: string): void;
}

export class UnavailableLog {
  readonly #throttles = new Map<string, LogThrottle>();

  constructor(
    private readonly log: ErrorLogger,
    private readonly everyMs = UNAVAILABLE_LOG_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Takes `err` if it is an UNAVAILABLE DgError with a cause (a failed dependency, not a
   * refusal such as "draining"): logs it when it is its reason's turn. Returns whether it
   * took it (logged or counted).
   */
  report(err: unknown, context: object = {}): boolean {
    if (!(err instanceof DgError) || err.code !== 'UNAVAILABLE' || err.cause === undefined) return false;
    let t = this.#throttles.get(err.message);
    if (t === undefined) {
      if (this.#throttles.size >= MAX_REASONS) this.#throttles.clear();
      t = new LogThrottle(this.everyMs, this.now);
      this.#throttles.set(err.message, t);
    }
    const left = t.take();
    if (left !== null) this.log.error({ ...context, err: err.cause, notLogged: left }, `${err.message} (at most one line per ${this.everyMs / 1000} s)`);
    return true;
  }
}
