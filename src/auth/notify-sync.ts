/**
 * Keeps notify's copy of each user's subscriptions and push endpoints current, over the bus
 * request `dg.notify.update` (PROTOCOL.md "Internal bus"):
 *
 * - after every profile update, `{user, version, changes}` with the new version and the
 *   notify-relevant changes (join, leave, mute, unmute, push, unpush; none for an update of
 *   app data only, which still moves the version);
 * - when notify answers `{ok:false}` (it missed a version) or refuses the message, the full
 *   state `{user, version, full:{subscriptions, push}}` read from the store;
 * - when notify cannot be reached, or answers UNAVAILABLE (its store is down), the user is
 *   remembered (at most MAX_PENDING users) and its full state is re-sent with backoff, and
 *   instead of the changes of its next update.
 *
 * Updates of one user are sent one after another, in the order they were made on this node;
 * across nodes, a reordering shows up as a version gap and is repaired by the full state.
 * The profile update never waits for notify: this runs after the HTTP reply.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Bus } from '../bus/bus.js';
import { SUBJECTS, type NotifyUpdate } from '../protocol/bus-messages.js';
import { settlesWithin } from '../protocol/settles-within.js';
import type { ProfileChange } from '../protocol/auth-schemas.js';
import type { AuthStore } from './store.js';

/** Users whose state notify may lack; beyond this the oldest is forgotten (its next update repairs it). */
export const MAX_PENDING = 10_000;
const REQUEST_TIMEOUT_MS = 3000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 60_000;
/** How long close() lets queued sends settle before dropping those not started. */
const CLOSE_WAIT_MS = 2000;

export interface NotifySyncDeps {
  bus: Bus;
  store: AuthStore;
  log: FastifyBaseLogger;
  count: (outcome: 'changes' | 'full' | 'gap' | 'unreachable' | 'refused') => void;
}

type NotifyOp = Exclude<ProfileChange, { op: 'set' }>;

export function notifyChanges(changes: readonly ProfileChange[]): NotifyOp[] {
  return changes.filter((c): c is NotifyOp => c.op !== 'set');
}

export class NotifySync {
  readonly #deps: NotifySyncDeps;
  /** The tail of each user's chain of sends. */
  readonly #chains = new Map<string, Promise<void>>();
  /** Users whose full state must be re-sent (insertion order: oldest first). */
  readonly #pending = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #retryMs = RETRY_MIN_MS;
  #closed = false;
  /** Past close()'s wait: queued sends are skipped. */
  #dropping = false;

  constructor(deps: NotifySyncDeps) {
    this.#deps = deps;
  }

  /** After a profile update to `version` (the changes already committed). */
  updated(user: string, version: number, changes: readonly ProfileChange[]): void {
    // Every update is sent, an update of app data only (`set`) as no changes: it moves the
    // version, so a notify that lost its store or missed a message sees the gap and gets the
    // full state now, not at the user's next change of subscriptions.
    const relevant = notifyChanges(changes);
    this.#enqueue(user, () => (this.#pending.has(user) ? this.#sendFull(user) : this.#sendChanges(user, version, relevant)));
  }

  /** The state changed outside a profile update (a device was purged): send it whole. */
  replaced(user: string): void {
    this.#enqueue(user, () => this.#sendFull(user));
  }

  /** Resolves when every send queued so far has settled (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#chains.size > 0) await Promise.all([...this.#chains.values()]);
  }

  /**
   * Takes no more sends, and lets those queued settle for at most `waitMs`; the ones not
   * started by then are dropped, so a shutdown while notify cannot be reached takes at most
   * `waitMs` plus one request's timeout. A dropped send leaves a version gap that notify
   * repairs (full state) at the user's next update.
   */
  async close(waitMs = CLOSE_WAIT_MS): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    if (await settlesWithin(this.idle(), waitMs)) return;
    this.#dropping = true;
    this.#deps.log.warn({ users: this.#chains.size }, 'notify updates dropped at shutdown; notify repairs them at the next update of each user');
    await this.idle();
  }

  #enqueue(user: string, job: () => Promise<void>): void {
    if (this.#closed) return;
    const prev = this.#chains.get(user) ?? Promise.resolve();
    const next = prev
      .then(() => (this.#dropping ? undefined : job()))
      .catch((err: unknown) => this.#deps.log.error({ err, user }, 'notify sync failed'))
      .finally(() => {
        if (this.#chains.get(user) === next) this.#chains.delete(user);
      });
    this.#chains.set(user, next);
  }

  async #request(message: NotifyUpdate): Promise<{ ok: boolean } | null> {
    let r: { ok?: unknown; error?: { code?: unknown } } | null;
    try {
      r = await this.#deps.bus.request<{ ok?: unknown; error?: { code?: unknown } } | null>(SUBJECTS.notifyUpdate, message, { timeoutMs: REQUEST_TIMEOUT_MS });
    } catch (err) {
      return this.#unreachable(message.user, err);
    }
    const ok = r !== null && typeof r === 'object' && r.ok === true;
    // Notify answered but its store is down (a full disk): not a gap, the same as unreachable.
    if (!ok && r?.error?.code === 'UNAVAILABLE') return this.#unreachable(message.user, r.error);
    return { ok };
  }

  #unreachable(user: string, err: unknown): null {
    this.#deps.count('unreachable');
    this.#deps.log.warn({ err, user }, 'notify unreachable; its state will be re-sent');
    this.#markPending(user);
    return null;
  }

  async #sendChanges(user: string, version: number, changes: NotifyOp[]): Promise<void> {
    const r = await this.#request({ user, version, changes });
    if (r === null) return;
    if (r.ok) {
      this.#deps.count('changes');
      return;
    }
    this.#deps.count('gap');
    if (!this.#dropping) await this.#sendFull(user);
  }

  async #sendFull(user: string): Promise<void> {
    const p = await this.#deps.store.getProfile(user);
    const r = await this.#request({
      user,
      version: p.version,
      full: { subscriptions: p.subscriptions, push: p.push.map((x) => ({ device: x.device, endpoint: x.endpoint, keys: x.keys })) },
    });
    if (r === null) return;
    this.#pending.delete(user);
    if (r.ok) this.#deps.count('full');
    else {
      // Notify refused a full state this store holds: a bug on one side; retrying would loop.
      this.#deps.count('refused');
      this.#deps.log.error({ user, version: p.version }, 'notify refused a full profile state');
    }
  }

  #markPending(user: string): void {
    this.#pending.delete(user);
    this.#pending.add(user);
    if (this.#pending.size > MAX_PENDING) {
      const oldest = this.#pending.values().next().value;
      if (oldest !== undefined) this.#pending.delete(oldest);
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const users = [...this.#pending];
      const before = this.#pending.size;
      for (const u of users) this.#enqueue(u, () => (this.#pending.has(u) ? this.#sendFull(u) : Promise.resolve()));
      void this.idle().then(() => {
        // Still failing: back off; some got through: retry the rest soon.
        this.#retryMs = this.#pending.size >= before ? Math.min(this.#retryMs * 2, RETRY_MAX_MS) : RETRY_MIN_MS;
        if (this.#pending.size > 0) this.#schedule();
      });
    }, this.#retryMs);
    this.#timer.unref();
  }
}
