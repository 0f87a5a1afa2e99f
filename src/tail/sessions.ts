/** The live sessions of this node, indexed by user once connected; presence follows them. */
import type { Presence } from './presence.js';
import type { Session } from './session.js';

export class SessionRegistry {
  readonly #all = new Set<Session>();
  readonly #byUser = new Map<string, Set<Session>>();

  constructor(private readonly presence: Presence) {}

  get size(): number {
    return this.#all.size;
  }

  add(s: Session): void {
    this.#all.add(s);
  }

  /** The session's first successful `connect`. */
  connected(s: Session): void {
    const user = s.auth?.user;
    if (user === undefined) return;
    let set = this.#byUser.get(user);
    if (set === undefined) this.#byUser.set(user, (set = new Set()));
    set.add(s);
    this.presence.online(user);
  }

  remove(s: Session): void {
    if (!this.#all.delete(s)) return;
    const user = s.auth?.user;
    if (user === undefined) return;
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
