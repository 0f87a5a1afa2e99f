/**
 * `dg.notify.publish {site, log, length}`, coalesced per log: the first commit after a
 * quiet interval is published at once, later ones at most once per `notifyIntervalMs`,
 * carrying the latest length. State is kept only for logs that published recently.
 */
import type { Bus } from '../bus/bus.js';
import type { FastifyBaseLogger } from 'fastify';
import { SUBJECTS, type NotifyPublish } from '../protocol/bus-messages.js';

interface Pending {
  site: string;
  log: string;
  length: number;
  sent: number;
  timer: NodeJS.Timeout;
}

export class NotifyPublisher {
  readonly #pending = new Map<string, Pending>();

  constructor(
    private readonly bus: Bus,
    private readonly intervalMs: number,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** A commit of (site, log); `key` names the pair uniquely (the live log's key). */
  committed(key: string, site: string, log: string, length: number): void {
    const p = this.#pending.get(key);
    if (p !== undefined) {
      if (length > p.length) p.length = length;
      return;
    }
    this.#publish(site, log, length);
    this.#pending.set(key, { site, log, length, sent: length, timer: this.#arm(key) });
  }

  stop(): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      if (p.length > p.sent) this.#publish(p.site, p.log, p.length);
    }
    this.#pending.clear();
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
      this.#publish(p.site, p.log, p.length);
      p.sent = p.length;
      p.timer = this.#arm(key);
    } else {
      this.#pending.delete(key);
    }
  }

  #publish(site: string, log: string, length: number): void {
    try {
      this.bus.publish(SUBJECTS.notifyPublish, { site, log, length } satisfies NotifyPublish);
    } catch (err) {
      this.log.warn({ err }, 'notify publish failed');
    }
  }
}
