/** The live sessions of this node, indexed by user once connected; presence follows them. */
import type { Presence } from './presence.js';
import type { Session } from './session.js';

export class SessionRegistry {
  readonly #all = new Set<Session>();
  readonly #byUser = new Map<string, Set<Session>>();
  /** Sessions in `#all` that have not connected yet, with their client addresses, and how many per address. */
  readonly #pending = new Map<Session, string>();
  readonly #pendingBy = new Map<string, number>();

  constructor(private readonly presence: Presence) {}

  get size(): number {
    return this.#all.size;
  }

  /** Sessions that have not `connect`ed yet. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Sessions from `address` that have not `connect`ed yet. */
  pendingFrom(address: string): number {
    return this.#pendingBy.get(address) ?? 0;
  }

  /** A new session from the client at `address` (not connected yet: `connected` follows). */
  add(s: Session, address = ''): void {
    if (this.#all.has(s)) return;
    this.#all.add(s);
    this.#pending.set(s, address);
    this.#pendingBy.set(address, this.pendingFrom(address) + 1);
  }

  #unpend(s: Session): void {
    const address = this.#pending.get(s);
    if (address === undefined) return;
    this.#pending.delete(s);
    const n = this.pendingFrom(address) - 1;
    if (n > 0) this.#pendingBy.set(address, n);
    else this.#pendingBy.delete(address);
  }

  /** The session's first successful `connect`. */
  connected(s: Session): void {
    const user = s.auth?.user;
    if (user === undefined || !this.#all.has(s)) return;
    this.#unpend(s);
    let set = this.#byUser.get(user);
    if (set === undefined) this.#byUser.set(user, (set = new Set()));
    set.add(s);
    this.presence.online(user);
  }

  remove(s: Session): void {
    if (!this.#all.delete(s)) return;
    this.#unpend(s);
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

  /** Connected sessions of `user` on this node. */
  countOf(user: string): number {
    return this.#byUser.get(user)?.size ?? 0;
  }

  ofUser(user: string): Iterable<Session> {
    return this.#byUser.get(user) ?? [];
  }
}
