/**
 * `dg.notify.publish {site, log, length, ageMs}`, coalesced per log: the first commit after
 * a quiet interval is published at once, later ones at most once per `notifyIntervalMs`,
 * carrying the latest length. State is kept only for logs that published recently.
 *
 * `ageMs` is how long ago tail took the newest write counted in `length`: notify pushes no
 * user who was online at or after that moment (src/notify/presence.ts). A held publish can
 * outlive the sessions whose writes it counts, so when a user's last session on this node
 * ends, the publishes holding that user's writes go out first (`flushWriter`), before the
 * presence delta saying the user left: notify then gets the write's date and the user's
 * departure moments apart, not an interval apart, and never pushes the writer about them.
 *
 * A publish is at most once: one made while notify is down (a deploy, a restart) reaches
 * nobody. So the last publish of each log is remembered (at most `maxLogs` logs, for
 * `keepMs` after its newest write was taken, the oldest forgotten first) and `republish()`
 * sends them again, with their `ageMs` counted from the same write, when a notify process
 * says hello (dg.notify.hello). Notify's stored pushed lengths make a republish of what it
 * already pushed a no-op. They go in batches, so that a notify process that just started is
 * not handed more than its bound of publishes being looked up at once.
 */
import type { Bus } from '../bus/bus.js';
import type { FastifyBaseLogger } from 'fastify';
import { SUBJECTS, type NotifyPublish } from '../protocol/bus-messages.js';
import { MAX_PUBLISH_AGE_MS } from '../protocol/notify-schemas.js';

interface Pending {
  site: string;
  log: string;
  length: number;
  sent: number;
  /** `performance.now()` when the newest write counted in `length` was taken. */
  madeAt: number;
  /** Users whose writes are counted in `length` but not published yet. */
  writers: Set<string>;
  timer: NodeJS.Timeout;
}

/** A publish as it went out, for `republish()`. */
interface Published {
  site: string;
  log: string;
  length: number;
  madeAt: number;
}

export interface PublishMemory {
  /** Logs whose last publish is remembered at once; the oldest publish is forgotten first. */
  maxLogs: number;
  /** A publish is forgotten this long after its newest write was taken. */
  keepMs: number;
  /** Publishes sent again per batch, and the pause between batches. */
  batch: number;
  batchGapMs: number;
}

export const DEFAULT_PUBLISH_MEMORY: PublishMemory = { maxLogs: 10_000, keepMs: MAX_PUBLISH_AGE_MS, batch: 100, batchGapMs: 100 };

export class NotifyPublisher {
  readonly #pending = new Map<string, Pending>();
  /** user → keys of the pending logs holding writes of that user. */
  readonly #byWriter = new Map<string, Set<string>>();
  /** key → the last publish of that log; in order of publishing, oldest first. */
  readonly #published = new Map<string, Published>();
  #republishTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly bus: Bus,
    private readonly intervalMs: number,
    private readonly log: FastifyBaseLogger,
    private readonly memory: PublishMemory = DEFAULT_PUBLISH_MEMORY,
  ) {}

  /**
   * A commit of (site, log) up to `length`; `key` names the pair uniquely (the live log's
   * key). `writer` is the user whose write it was, `madeAt` the `performance.now()` when
   * tail took that write.
   */
  committed(key: string, site: string, log: string, length: number, writer: string | undefined, madeAt: number): void {
    const p = this.#pending.get(key);
    if (p === undefined) {
      this.#publish(key, { site, log, length, madeAt });
      this.#pending.set(key, { site, log, length, sent: length, madeAt, writers: new Set(), timer: this.#arm(key) });
      return;
    }
    if (length <= p.length) return;
    p.length = length;
    p.madeAt = madeAt;
    if (writer !== undefined && !p.writers.has(writer)) {
      p.writers.add(writer);
      let keys = this.#byWriter.get(writer);
      if (keys === undefined) this.#byWriter.set(writer, (keys = new Set()));
      keys.add(key);
    }
  }

  /**
   * Publishes now what is held of the writes of `user`, whose last session here is ending.
   * Called before the presence delta that says so; the interval of each log starts again.
   */
  flushWriter(user: string): void {
    const keys = this.#byWriter.get(user);
    if (keys === undefined) return;
    for (const key of [...keys]) {
      const p = this.#pending.get(key);
      if (p === undefined || p.length <= p.sent) continue;
      this.#send(key, p);
      clearTimeout(p.timer);
      p.timer = this.#arm(key);
    }
  }

  /** Publishes everything held (the node drains) and forgets it. */
  stop(): void {
    for (const [key, p] of this.#pending) {
      clearTimeout(p.timer);
      if (p.length > p.sent) this.#send(key, p);
    }
    this.#pending.clear();
    this.#byWriter.clear();
    this.#cancelRepublish();
    this.#published.clear();
  }

  /**
   * Sends the remembered last publish of every log again (a notify process said hello), in
   * batches; a republish still going on starts over. A log published meanwhile is sent as
   * it stands then.
   */
  republish(): void {
    this.#cancelRepublish();
    this.#forgetOld();
    const keys = [...this.#published.keys()];
    let next = 0;
    const batch = (): void => {
      this.#republishTimer = null;
      const end = Math.min(keys.length, next + this.memory.batch);
      for (; next < end; next++) {
        const key = keys[next] as string;
        const p = this.#published.get(key);
        if (p !== undefined && performance.now() - p.madeAt <= this.memory.keepMs) this.#emit(p);
      }
      if (next < keys.length) {
        this.#republishTimer = setTimeout(batch, this.memory.batchGapMs);
        this.#republishTimer.unref();
      }
    };
    batch();
  }

  /** Logs whose last publish is remembered (for tests and diagnostics). */
  get remembered(): number {
    return this.#published.size;
  }

  #cancelRepublish(): void {
    if (this.#republishTimer !== null) clearTimeout(this.#republishTimer);
    this.#republishTimer = null;
  }

  /** Forgets publishes whose write is older than `keepMs`, oldest first (publish order is close to write order). */
  #forgetOld(): void {
    const horizon = performance.now() - this.memory.keepMs;
    for (const [key, p] of this.#published) {
      if (p.madeAt >= horizon) break;
      this.#published.delete(key);
    }
  }

  #arm(key: string): NodeJS.Timeout {
    const t = setTimeout(() => this.#due(key), this.intervalMs);
    t.unref();
    return t;
  }

  #due(key: string): void {
    const p = this.#pending.get(key);
    if (p === undefined) return;
    if (p.length > p.sent) {
      this.#send(key, p);
      p.timer = this.#arm(key);
    } else {
      this.#pending.delete(key);
    }
  }

  /** Publishes what `p` holds; its writers are no longer waiting on it. */
  #send(key: string, p: Pending): void {
    this.#publish(key, { site: p.site, log: p.log, length: p.length, madeAt: p.madeAt });
    p.sent = p.length;
    for (const user of p.writers) {
      const keys = this.#byWriter.get(user);
      keys?.delete(key);
      if (keys?.size === 0) this.#byWriter.delete(user);
    }
    p.writers.clear();
  }

  #publish(key: string, p: Published): void {
    // Re-inserted, so the map stays in order of publishing, oldest first.
    this.#published.delete(key);
    this.#published.set(key, p);
    if (this.#published.size > this.memory.maxLogs) {
      const oldest = this.#published.keys().next();
      if (oldest.done !== true) this.#published.delete(oldest.value);
    }
    this.#forgetOld();
    this.#emit(p);
  }

  #emit({ site, log, length, madeAt }: Published): void {
    // Rounded up: dating a write a little early errs towards not pushing a user who left just after it.
    const ageMs = Math.min(MAX_PUBLISH_AGE_MS, Math.max(0, Math.ceil(performance.now() - madeAt)));
    try {
      this.bus.publish(SUBJECTS.notifyPublish, { site, log, length, ageMs } satisfies NotifyPublish);
    } catch (err) {
      this.log.warn({ err }, 'notify publish failed');
    }
  }
}
