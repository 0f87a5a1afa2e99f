/**
 * Whether the bus carries this process's own messages, measured by sending them.
 *
 * A NATS connection that is black-holed (still open, carrying nothing) stays "connected",
 * and `Bus.healthy()` true, until the client's pings time out (about 30 s). A SelfEcho
 * publishes an empty message every `intervalMs` on a subject only it listens to
 * (`dg.cluster.echo.<random>`) and notes when one comes back.
 *
 * Guarantees:
 * - `hearsItself()` is true from `start` while an echo came back within the last
 *   `intervalMs` plus 2 s (at least 5 s), counted from `start`; false past that, until the
 *   next echo arrives. It is true before `start`.
 * - `lastHeard()` is when the last echo came back on this process's clock (-Infinity
 *   before the first): what the bus carried, never what a peer's clock says.
 * - Listeners added with `onHeard` run on every echo, with the silence it ended (from the
 *   previous echo, or from `start` for the first).
 * - Publishing never throws: a bus that is closed or down simply sends no echo back.
 *
 * One per process (src/server/app.ts), whatever its roles: /ready and the shard map's
 * expiries read the same one.
 */
import { randomBytes } from 'node:crypto';
import type { Bus, Subscription } from './bus.js';

/** Subject prefix of the echoes (one random token per instance). */
export const ECHO_SUBJECT_PREFIX = 'dg.cluster.echo.';
/** Shortest silence of the echoes that counts as not hearing itself. */
const ECHO_SILENT_MS = 5000;

export interface SelfEchoOptions {
  bus: Bus;
  /** How often an echo is sent. */
  intervalMs: number;
  now?: () => number;
}

export class SelfEcho {
  readonly #bus: Bus;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #subject = ECHO_SUBJECT_PREFIX + randomBytes(8).toString('hex');
  readonly #listeners = new Set<(silentMs: number) => void>();
  #sub: Subscription | null = null;
  #timer: NodeJS.Timeout | null = null;
  #startedAt: number | null = null;
  #lastHeard = Number.NEGATIVE_INFINITY;

  constructor(opts: SelfEchoOptions) {
    this.#bus = opts.bus;
    this.#intervalMs = Math.max(1, Math.floor(opts.intervalMs));
    this.#now = opts.now ?? Date.now;
  }

  /** Listens for its echoes, sends one now and then every interval. Idempotent. */
  start(): void {
    if (this.#sub !== null) return;
    this.#sub = this.#bus.subscribe(this.#subject, () => this.#heard());
    this.#startedAt = this.#now();
    this.echo();
    this.#timer = setInterval(() => this.echo(), this.#intervalMs);
    this.#timer.unref();
  }

  /** Stops sending and listening. Idempotent. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#sub?.unsubscribe();
    this.#sub = null;
  }

  /** Sends an echo now (the timer does, every interval). Public for tests that drive the clock. */
  echo(): void {
    try {
      this.#bus.publish(this.#subject, {});
    } catch {
      // The bus is closed or down: no echo comes back, which is the point.
    }
  }

  hearsItself(): boolean {
    if (this.#startedAt === null) return true;
    const last = this.#lastHeard === Number.NEGATIVE_INFINITY ? this.#startedAt : this.#lastHeard;
    return this.#now() - last <= Math.max(ECHO_SILENT_MS, this.#intervalMs + 2000);
  }

  lastHeard(): number {
    return this.#lastHeard;
  }

  /** Runs `listener(silentMs)` on every echo that comes back. */
  onHeard(listener: (silentMs: number) => void): Subscription {
    this.#listeners.add(listener);
    return { unsubscribe: () => void this.#listeners.delete(listener) };
  }

  #heard(): void {
    const now = this.#now();
    const previous = this.#lastHeard === Number.NEGATIVE_INFINITY ? (this.#startedAt ?? now) : this.#lastHeard;
    this.#lastHeard = now;
    for (const f of [...this.#listeners]) f(now - previous);
  }
}
