/** The live sessions of this node, indexed by user once connected; presence follows them. */
import type { Presence } from './presence.js';
import type { Session } from './session.js';

export class SessionRegistry {
  readonly #all = new Set<Session>();
  readonly #byUser = new Map<string, Set<Session>>();
  /** Sessions in `#all` that have not connected yet. */
  #pending = 0;

  constructor(private readonly presence: Presence) {}

  get size(): number {
    return this.#all.size;
  }

  /** Sessions that have not `connect`ed yet. */
  get pending(): number {
    return this.#pending;
  }

  /** A new session, not connected yet. */
  add(s: Session): void {
    if (this.#all.has(s)) return;
    this.#all.add(s);
    if (s.auth === null) this.#pending++;
  }

  /** The session's first successful `connect`. */
  connected(s: Session): void {
    const user = s.auth?.user;
    if (user === undefined || !this.#all.has(s)) return;
    this.#pending--;
    let set = this.#byUser.get(user);
    if (set === undefined) this.#byUser.set(user, (set = new Set()));
    set.add(s);
    this.presence.online(user);
  }

  remove(s: Session): void {
    if (!this.#all.delete(s)) return;
    const user = s.auth?.user;
    if (user === undefined) {
      this.#pending--;
      return;
    }
    const set = this.#byUser.get(user);
    if (set?.delete(s) !== true) return;
    if (set.size === 0) this.#byUser.delete(user);
    this.presence.offline(user);
  }

  all(): IterableIterator<Session> {
    return this.#all.values();
  }

  ofUser(user: string): Iterable<Session> {
    return this.#byUser.get(user) ?? [];
  }
}
