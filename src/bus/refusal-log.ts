/**
 * The log lines of bus messages a receiver refuses: malformed, of another version, or sent
 * by anyone who can reach NATS. Their sender can send them as fast as the bus carries them,
 * so each kind of refusal (its log message, which comes from code) gets at most `burst`
 * lines per interval; the first line after some were left out says how many
 * (`notLogged`). A few refusals in a row are each logged, with their own reasons.
 */
export const REFUSAL_LOG_MS = 10_000;
export const REFUSAL_LOG_BURST = 10;
/** Kinds of refusal tracked; messages come from code, so this is never reached in practice. */
const MAX_KINDS = 64;

export interface RefusalLogger {
  warn(obj: object, msg: string): void;
}

interface Kind {
  windowStart: number;
  logged: number;
  notLogged: number;
}

export class RefusalLog {
  readonly #kinds = new Map<string, Kind>();

  constructor(
    private readonly log: RefusalLogger,
    private readonly everyMs = REFUSAL_LOG_MS,
    private readonly burst = REFUSAL_LOG_BURST,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts one refused message; logs `msg` with `obj` unless its kind used its lines. */
  refused(obj: object, msg: string): void {
    let k = this.#kinds.get(msg);
    if (k === undefined) {
      if (this.#kinds.size >= MAX_KINDS) this.#kinds.clear();
      k = { windowStart: Number.NEGATIVE_INFINITY, logged: 0, notLogged: 0 };
      this.#kinds.set(msg, k);
    }
    const t = this.now();
    if (t - k.windowStart >= this.everyMs) {
      k.windowStart = t;
      k.logged = 0;
    }
    if (k.logged >= this.burst) {
      k.notLogged++;
      return;
    }
    k.logged++;
    const notLogged = k.notLogged;
    k.notLogged = 0;
    this.log.warn(notLogged > 0 ? { ...obj, notLogged } : obj, msg);
  }
}
