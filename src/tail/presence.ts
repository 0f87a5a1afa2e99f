/**
 * Presence of users on this node (dg.notify.presence): a delta when a user's first session
 * here connects or the last one ends, and a full snapshot every `ttlMs / 3`, so that
 * notify can expire a node that stopped talking (its users go offline by themselves). A
 * snapshot of many users goes as one `full` message and deltas, each of at most
 * SNAPSHOT_CHUNK users, so that every message fits the bus.
 * `beforeOffline(user)` runs just before a delta says the user left, so that what tail
 * still holds about the user's writes is published first (src/tail/notify-publish.ts).
 *
 * It also remembers when each user left this node (for `LEFT_MEMORY_MS`, at most
 * `MAX_LEFT_USERS` users, the oldest forgotten first): a notify process that just started
 * (dg.notify.hello) gets them after the full snapshot, so that it does not push a user for
 * writes that tail republishes and that the user was online for.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Bus } from '../bus/bus.js';
import { SUBJECTS, type PresenceMessage } from '../protocol/bus-messages.js';
import { MAX_LEFT_AGO_MS } from '../protocol/notify-schemas.js';

export const LEFT_MEMORY_MS = MAX_LEFT_AGO_MS;
export const MAX_LEFT_USERS = 100_000;
/** Users per message of a `left` list, to keep each message small. */
const LEFT_CHUNK = 1000;
/**
 * Users per message of a full snapshot: user ids have at most 64 characters, so a message
 * stays well under NATS's 1 MiB limit (a node may have 100 000 users online; one message
 * listing them all would be refused as too large and notify would hear no snapshot).
 */
export const SNAPSHOT_CHUNK = 10_000;

export class Presence {
  readonly #count = new Map<string, number>();
  /** user → `performance.now()` when they left this node; oldest first. */
  readonly #left = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly bus: Bus,
    private readonly node: string,
    private readonly ttlMs: number,
    private readonly log: FastifyBaseLogger,
    private readonly beforeOffline: (user: string) => void = () => {},
  ) {}

  start(): void {
    this.#publishFull([...this.#count.keys()], []);
    this.#timer = setInterval(() => this.#publishFull([...this.#count.keys()], []), Math.max(1, Math.floor(this.ttlMs / 3)));
    this.#timer.unref();
  }

  /**
   * Publishes a full snapshot now, then who left within `LEFT_MEMORY_MS` (a notify process
   * that just started asked); nothing before start or after stop.
   */
  snapshot(): void {
    if (this.#timer === null) return;
    this.#publishFull([...this.#count.keys()], []);
    const now = performance.now();
    this.#forgetLeft(now);
    let chunk: { user: string; agoMs: number }[] = [];
    for (const [user, at] of this.#left) {
      // Rounded down: a departure dated a little late errs towards not pushing the user.
      chunk.push({ user, agoMs: Math.min(LEFT_MEMORY_MS, Math.max(0, Math.floor(now - at))) });
      if (chunk.length === LEFT_CHUNK) {
        this.#publish(false, [], [], chunk);
        chunk = [];
      }
    }
    if (chunk.length > 0) this.#publish(false, [], [], chunk);
  }

  /** Every user goes offline here (the node drains). */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    const users = [...this.#count.keys()];
    this.#count.clear();
    this.#publishFull([], users);
  }

  online(user: string): void {
    const n = this.#count.get(user) ?? 0;
    this.#count.set(user, n + 1);
    if (n === 0) this.#publish(false, [user], []);
  }

  offline(user: string): void {
    const n = this.#count.get(user) ?? 0;
    if (n <= 1) {
      this.#count.delete(user);
      if (n === 1) {
        this.#remember(user);
        this.beforeOffline(user);
        this.#publish(false, [], [user]);
      }
    } else {
      this.#count.set(user, n - 1);
    }
  }

  isOnline(user: string): boolean {
    return this.#count.has(user);
  }

  #remember(user: string): void {
    const now = performance.now();
    this.#left.delete(user);
    this.#left.set(user, now);
    if (this.#left.size > MAX_LEFT_USERS) {
      const oldest = this.#left.keys().next();
      if (oldest.done !== true) this.#left.delete(oldest.value);
    }
    this.#forgetLeft(now);
  }

  #forgetLeft(now: number): void {
    for (const [user, at] of this.#left) {
      if (now - at <= LEFT_MEMORY_MS) break;
      this.#left.delete(user);
    }
  }

  /**
   * A full snapshot, in messages of at most SNAPSHOT_CHUNK users: the first is `full` and
   * replaces what notify holds for this node, the others are deltas that add the rest (one
   * publisher, so notify applies them in this order).
   */
  #publishFull(online: string[], offline: string[]): void {
    this.#publish(true, online.slice(0, SNAPSHOT_CHUNK), offline.slice(0, SNAPSHOT_CHUNK));
    for (let i = SNAPSHOT_CHUNK; i < Math.max(online.length, offline.length); i += SNAPSHOT_CHUNK) {
      this.#publish(false, online.slice(i, i + SNAPSHOT_CHUNK), offline.slice(i, i + SNAPSHOT_CHUNK));
    }
  }

  #publish(full: boolean, online: string[], offline: string[], left?: { user: string; agoMs: number }[]): void {
    const msg: PresenceMessage = { node: this.node, ttlMs: this.ttlMs, full, online, offline, ...(left === undefined ? {} : { left }) };
    try {
      this.bus.publish(SUBJECTS.notifyPresence, msg);
    } catch (err) {
      this.log.warn({ err }, 'presence publish failed');
    }
  }
}
