/**
 * Delivery: turns "this device should hear about (site, log) at length n" into Web Push
 * requests, with coalescing, a bounded queue, bounded concurrency and retries.
 *
 * Guarantees:
 * - Per (device, site) at most one push starts per `intervalMs`. The first goes at once;
 *   publishes within the interval are held and sent when it ends, as one push carrying the
 *   newest (log, length). A retry is the same push, not a new one, and also carries the
 *   newest (log, length) known when it starts. When the newest cannot go for its own log
 *   (auth says the device may not read it, or it was pushed already), the newest want of
 *   another log that it displaced goes instead: a log the device may read is never
 *   shadowed by one it may not.
 * - Just before each attempt the device is checked again (still joined, not muted, has an
 *   endpoint on the allowlist, its user not online at any moment since the newest write the
 *   push announces was made, length beyond what was pushed for that log, and auth says it
 *   may read that log), so a state change while a push waits is honored: a user who came
 *   online meanwhile, even briefly, has seen those writes.
 * - The interval is claimed in the store (`claimWindow`) before the first attempt of each
 *   window, so several notify processes on one store push at most once per (device, site)
 *   per interval between them; a process that finds the window taken waits for its end.
 * - 404/410 deletes that endpoint (only while it is still the device's) and tells auth
 *   (`gone`), which drops it from the profile. 429, 5xx and network errors are retried
 *   after max(retry-after, exponential backoff), at most `maxAttempts` attempts; a
 *   retry-after beyond `maxRetryDelayMs` gives up. Other statuses fail at once.
 * - Memory is bounded: at most `maxSlots` (device, site) pairs are tracked, at most
 *   `maxQueue` pushes wait and `maxConcurrent` requests are in flight; a push over a bound is
 *   dropped and counted. Delivery is at most once: a dropped or failed push leaves the pushed
 *   length unchanged, so the next publish of that log pushes again.
 */
import { setMaxListeners } from 'node:events';
import type { FastifyBaseLogger } from 'fastify';
import { checkPushEndpoint } from '../protocol/push-endpoint.js';
import type { NotifyMetrics } from './metrics.js';
import type { PresenceTracker } from './presence.js';
import { sendPush, type PushSettings } from './push-request.js';
import type { UnavailableLog } from '../protocol/unavailable-log.js';
import type { NotifyStore } from './store.js';

export interface DeliveryLimits {
  /** Pushes waiting for a connection slot. */
  maxQueue: number;
  /** Push requests in flight at once. */
  maxConcurrent: number;
  /** (device, site) pairs tracked at once (coalescing windows, waits, retries). */
  maxSlots: number;
  /** Attempts per push, the first included. */
  maxAttempts: number;
  /** Backoff before the first retry; doubled for each later one. */
  retryBaseMs: number;
  /** Longest wait before a retry; a push service asking for more is given up on. */
  maxRetryDelayMs: number;
  /** Deadline of one push request, response included. */
  requestTimeoutMs: number;
}

export const DEFAULT_DELIVERY_LIMITS: DeliveryLimits = {
  maxQueue: 10_000,
  maxConcurrent: 32,
  maxSlots: 100_000,
  maxAttempts: 5,
  retryBaseMs: 1000,
  maxRetryDelayMs: 10 * 60_000,
  requestTimeoutMs: 10_000,
};

export interface DeliveryDeps {
  store: NotifyStore;
  presence: PresenceTracker;
  settings: PushSettings;
  pushHosts: readonly string[];
  intervalMs: number;
  limits: DeliveryLimits;
  metrics: NotifyMetrics;
  log: FastifyBaseLogger;
  /** Logs failures of the store that is down (a full disk) once per interval instead of per push. */
  unavailable?: UnavailableLog;
  /** Told of each endpoint deleted because the push service called it gone (auth drops it from the profile). */
  gone?: (user: string, device: string, endpoint: string) => void;
  /**
   * Whether the device may read the log now (auth's answer). A push names the log and its
   * length, so it goes only to devices that may read it: a subscription is per site, access
   * may be per log, and access may have been revoked since the device subscribed. False when
   * auth cannot say.
   */
  mayRead?: (user: string, device: string, site: string, log: string) => Promise<boolean>;
}

interface Want {
  log: string;
  length: number;
  /** When the newest write it announces was made (this process's clock). */
  madeAt: number;
}

interface Slot {
  key: string;
  user: string;
  device: string;
  site: string;
  /** The newest publish not yet taken by an attempt. */
  want: Want | null;
  /**
   * The newest want of each other log that a newer want displaced, oldest first (at most
   * MAX_SHADOWED): taken when the push that displaced it may not go for its own log.
   */
  shadowed: Map<string, Want>;
  /** The push being attempted (or waiting for a retry). */
  sending: Want | null;
  state: 'idle' | 'queued' | 'sending' | 'backoff';
  /** No new push starts before this time. */
  windowEnd: number;
  attempt: number;
  timer: NodeJS.Timeout | null;
}

const covers = (a: Want | null | undefined, w: Want): boolean => a !== null && a !== undefined && a.log === w.log && a.length >= w.length;

/** Displaced wants of other logs kept per (device, site). */
const MAX_SHADOWED = 32;

export class Delivery {
  readonly #d: DeliveryDeps;
  readonly #slots = new Map<string, Slot>();
  #queue: Slot[] = [];
  #active = 0;
  readonly #inflight = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #closed = false;

  constructor(deps: DeliveryDeps) {
    this.#d = deps;
    // Each request in flight listens on the one abort signal: up to maxConcurrent at once.
    setMaxListeners(Math.max(10, deps.limits.maxConcurrent), this.#abort.signal);
  }

  /** Asks for a push of (site, log, length) to one device of `user`. */
  offer(user: string, device: string, site: string, want: Want): void {
    if (this.#closed) return;
    const key = `${device}/${site}`;
    let slot = this.#slots.get(key);
    if (slot === undefined) {
      if (this.#slots.size >= this.#d.limits.maxSlots) {
        this.#d.metrics.dropped.inc({ reason: 'slots' });
        return;
      }
      slot = { key, user, device, site, want: null, shadowed: new Map(), sending: null, state: 'idle', windowEnd: 0, attempt: 0, timer: null };
      this.#slots.set(key, slot);
    }
    if (covers(slot.sending, want) || covers(slot.want, want)) return;
    if (slot.want !== null) {
      this.#d.metrics.coalesced.inc();
      if (slot.want.log !== want.log) this.#shadow(slot, slot.want);
    }
    // The new want covers what was shadowed of its own log.
    const own = slot.shadowed.get(want.log);
    if (own !== undefined && own.length <= want.length) slot.shadowed.delete(want.log);
    slot.want = { log: want.log, length: want.length, madeAt: want.madeAt };
    this.#schedule(slot);
  }

  /** Pairs tracked now (for tests and diagnostics). */
  get size(): number {
    return this.#slots.size;
  }

  /** Stops: in-flight requests are aborted, waiting pushes dropped. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    let dropped = 0;
    for (const slot of this.#slots.values()) {
      if (slot.timer !== null) clearTimeout(slot.timer);
      if (slot.want !== null || slot.state === 'queued' || slot.state === 'backoff') dropped++;
    }
    if (dropped > 0) this.#d.metrics.dropped.inc({ reason: 'shutdown' }, dropped);
    this.#slots.clear();
    this.#queue = [];
    this.#d.metrics.queued.set(0);
    await Promise.allSettled([...this.#inflight]);
  }

  /** An idle slot: wait for its window, then queue its wanted push, or forget it. */
  #schedule(slot: Slot): void {
    if (this.#closed || slot.state !== 'idle') return;
    const now = Date.now();
    if (now < slot.windowEnd) {
      if (slot.timer === null) {
        slot.timer = setTimeout(() => {
          slot.timer = null;
          this.#schedule(slot);
        }, slot.windowEnd - now);
        slot.timer.unref();
      }
      return;
    }
    if (slot.want === null) {
      if (this.#slots.get(slot.key) === slot) this.#slots.delete(slot.key);
      return;
    }
    this.#enqueue(slot);
  }

  #enqueue(slot: Slot): void {
    if (this.#queue.length >= this.#d.limits.maxQueue) {
      this.#d.metrics.dropped.inc({ reason: 'queue' });
      this.#d.log.warn({ device: slot.device, site: slot.site }, 'push queue full; push dropped');
      slot.want = null;
      slot.shadowed.clear();
      this.#finish(slot);
      return;
    }
    slot.state = 'queued';
    this.#queue.push(slot);
    this.#d.metrics.queued.set(this.#queue.length);
    this.#pump();
  }

  #pump(): void {
    while (!this.#closed && this.#active < this.#d.limits.maxConcurrent && this.#queue.length > 0) {
      const slot = this.#queue.shift();
      if (slot === undefined) break;
      this.#d.metrics.queued.set(this.#queue.length);
      this.#active++;
      const run: Promise<void> = this.#run(slot)
        .catch((err: unknown) => {
          if (this.#d.unavailable?.report(err) !== true) this.#d.log.error({ err, device: slot.device, site: slot.site }, 'push delivery failed');
          if (!this.#closed) this.#finish(slot);
        })
        .finally(() => {
          this.#active--;
          this.#inflight.delete(run);
          this.#pump();
        });
      this.#inflight.add(run);
    }
  }

  /** Keeps `w`, displaced by a newer want of another log, in case that one may not go. */
  #shadow(slot: Slot, w: Want): void {
    if (covers(slot.shadowed.get(w.log), w)) return;
    slot.shadowed.delete(w.log);
    slot.shadowed.set(w.log, w);
    if (slot.shadowed.size > MAX_SHADOWED) {
      const oldest = slot.shadowed.keys().next();
      if (oldest.done !== true) slot.shadowed.delete(oldest.value);
    }
  }

  /** `w` waits for the window: the want again, unless a newer one came meanwhile (then kept behind it). */
  #hold(slot: Slot, w: Want): void {
    if (slot.want === null) slot.want = w;
    else if (slot.want.log !== w.log) this.#shadow(slot, w);
  }

  /** `w` could not go for its log: the newest displaced want of another log goes instead. */
  #fallBack(slot: Slot): void {
    if (slot.want !== null) return;
    const newest = [...slot.shadowed.values()].pop();
    if (newest === undefined) return;
    slot.shadowed.delete(newest.log);
    slot.want = newest;
  }

  /** `w` went, or was given up: what it displaced and is no newer was folded into it. */
  #fold(slot: Slot, w: Want): void {
    for (const [log, s] of slot.shadowed) if (s.madeAt <= w.madeAt) slot.shadowed.delete(log);
    this.#fallBack(slot);
  }

  #finish(slot: Slot): void {
    slot.sending = null;
    slot.attempt = 0;
    slot.state = 'idle';
    this.#schedule(slot);
  }

  async #run(slot: Slot): Promise<void> {
    const { store, presence, metrics, log, limits } = this.#d;
    if (slot.want !== null) {
      // A retry that a newer publish caught up with carries the newer length.
      if (slot.sending !== null) {
        metrics.coalesced.inc();
        if (slot.sending.log !== slot.want.log) this.#shadow(slot, slot.sending);
      }
      slot.sending = slot.want;
      slot.want = null;
    }
    const w = slot.sending;
    if (w === null) return this.#finish(slot);
    slot.state = 'sending';
    const now = Date.now();
    const target = await store.target(slot.user, slot.device, slot.site, w.log, now);
    if (this.#closed) return;
    if (target === null || presence.seenSince(slot.user, w.madeAt, Date.now())) {
      this.#fold(slot, w);
      return this.#finish(slot);
    }
    if (target.pushedLength >= w.length) {
      this.#fallBack(slot);
      return this.#finish(slot);
    }
    const refused = checkPushEndpoint(target.endpoint, this.#d.pushHosts);
    if (refused !== null) {
      metrics.failed.inc({ status: 'refused' });
      log.warn({ user: slot.user, device: slot.device, reason: refused }, 'push endpoint refused; not sent');
      this.#fold(slot, w);
      return this.#finish(slot);
    }
    const mayRead = (await this.#d.mayRead?.(slot.user, slot.device, slot.site, w.log)) ?? true;
    if (this.#closed) return;
    if (!mayRead) {
      metrics.dropped.inc({ reason: 'no-access' });
      log.info({ user: slot.user, device: slot.device, site: slot.site }, 'push not sent: the device may not read the log');
      this.#fallBack(slot);
      return this.#finish(slot);
    }
    if (slot.attempt === 0) {
      // The window is shared by every notify process on the store: claim it, or wait for it.
      // The window starts now, after the checks above (which wait on the store and on auth).
      const start = Date.now();
      const busyUntil = await store.claimWindow(slot.user, slot.device, slot.site, start, this.#d.intervalMs);
      if (this.#closed) return;
      if (busyUntil > start) {
        metrics.coalesced.inc();
        this.#hold(slot, w);
        slot.sending = null;
        slot.windowEnd = busyUntil;
        return this.#finish(slot);
      }
      slot.windowEnd = start + this.#d.intervalMs;
    }
    slot.attempt++;
    const payload = { site: slot.site, log: w.log, length: w.length };
    const outcome = await sendPush({ endpoint: target.endpoint, keys: target.keys, device: slot.device, payload }, this.#d.settings, this.#abort.signal);
    if (outcome.kind === 'sent') {
      // Recorded even while closing (close waits for this, then closes the store): a push
      // that went out is not pushed again when tail republishes its log after a restart.
      metrics.sent.inc();
      await store.markPushed(slot.user, slot.device, slot.site, w.log, w.length);
      if (this.#closed) return;
      this.#fold(slot, w);
      return this.#finish(slot);
    }
    if (this.#closed) return;
    switch (outcome.kind) {
      case 'gone':
        metrics.failed.inc({ status: outcome.status });
        if (await store.removeEndpoint(slot.user, slot.device, target.endpoint)) {
          metrics.endpointsRemoved.inc();
          log.info({ user: slot.user, device: slot.device, status: outcome.status }, 'push endpoint gone; removed');
          this.#d.gone?.(slot.user, slot.device, target.endpoint);
        }
        this.#fold(slot, w);
        return this.#finish(slot);
      case 'failed':
        metrics.failed.inc({ status: outcome.status });
        log.warn({ user: slot.user, device: slot.device, status: outcome.status }, 'push refused by the push service');
        this.#fold(slot, w);
        return this.#finish(slot);
      case 'retry': {
        metrics.failed.inc({ status: outcome.status });
        const asked = outcome.retryAfterMs ?? 0;
        if (slot.attempt >= limits.maxAttempts || asked > limits.maxRetryDelayMs) {
          log.warn({ user: slot.user, device: slot.device, status: outcome.status, attempts: slot.attempt }, 'push given up');
          this.#fold(slot, w);
          return this.#finish(slot);
        }
        const backoff = Math.min(limits.maxRetryDelayMs, limits.retryBaseMs * 2 ** (slot.attempt - 1) * (1 + Math.random() * 0.2));
        metrics.retried.inc();
        slot.state = 'backoff';
        slot.timer = setTimeout(() => {
          slot.timer = null;
          if (!this.#closed) this.#enqueue(slot);
        }, Math.max(asked, backoff));
        slot.timer.unref();
        return;
      }
    }
  }
}
