/**
 * Presence of users on this node (dg.notify.presence): a delta when a user's first session
 * here connects or the last one ends, and a full snapshot every `ttlMs / 3`, so that
 * notify can expire a node that stopped talking (its users go offline by themselves).
 * `beforeOffline(user)` runs just before a delta says the user left, so that what tail
 * still holds about the user's writes is published first (src/tail/notify-publish.ts).
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Bus } from '../bus/bus.js';
import { SUBJECTS, type PresenceMessage } from '../protocol/bus-messages.js';

export class Presence {
  readonly #count = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly bus: Bus,
    private readonly node: string,
    private readonly ttlMs: number,
    private readonly log: FastifyBaseLogger,
    private readonly beforeOffline: (user: string) => void = () => {},
  ) {}

  start(): void {
    this.#publish(true, [...this.#count.keys()], []);
    this.#timer = setInterval(() => this.#publish(true, [...this.#count.keys()], []), Math.max(1, Math.floor(this.ttlMs / 3)));
    this.#timer.unref();
  }

  /** Every user goes offline here (the node drains). */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    const users = [...this.#count.keys()];
    this.#count.clear();
    this.#publish(true, [], users);
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

  #publish(full: boolean, online: string[], offline: string[]): void {
    const msg: PresenceMessage = { node: this.node, ttlMs: this.ttlMs, full, online, offline };
    try {
      this.bus.publish(SUBJECTS.notifyPresence, msg);
    } catch (err) {
      this.log.warn({ err }, 'presence publish failed');
    }
  }
}
