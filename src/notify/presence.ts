/**
 * Who is online, from the dg.notify.presence messages of every tail node
 * (PresenceMessage in src/protocol/bus-messages.ts). A user is online while any live node
 * lists them; a node is live until `ttlMs` after its last message, so the users of a node
 * that died go offline by themselves. Kept in memory: after a restart notify knows a node's
 * users again from its next full snapshot (tail sends one every ttlMs/3).
 *
 * A push is about writes made at some moment, and a user who was online at or after that
 * moment has seen them: `seenSince` answers that, so a user whose session ended between a
 * write and the publish or push about it is not pushed. For this the tracker remembers when
 * each user who went offline was last listed, for `memoryMs` (as long as a push can wait)
 * and for at most `maxUsers` users (the oldest are forgotten first). A user it forgot is
 * judged only by whether they are online now. All times are this process's clock. After a
 * restart the tail nodes hand back, in `left`, who left them within the last hour, and when.
 */
import type { PresenceMessage } from '../protocol/bus-messages.js';

interface NodePresence {
  expiresAt: number;
  users: Set<string>;
}

export interface PresenceMemory {
  /** How long the time a user was last online is remembered. */
  memoryMs: number;
  /** Users whose last time online is remembered at once. */
  maxUsers: number;
}

export class PresenceTracker {
  readonly #nodes = new Map<string, NodePresence>();
  readonly #maxNodes: number;
  /** user → when a node last listed them, for users some node stopped listing; oldest first. */
  readonly #lastSeen = new Map<string, number>();
  readonly #memory: PresenceMemory;

  constructor(maxNodes: number, memory: PresenceMemory = { memoryMs: 3_600_000, maxUsers: 100_000 }) {
    this.#maxNodes = maxNodes;
    this.#memory = memory;
  }

  /** Applies a message; false when refused because too many nodes are live. */
  apply(msg: PresenceMessage, now: number): boolean {
    let node = this.#nodes.get(msg.node);
    // A node silent for its TTL is gone whether or not a look-up swept it yet: its users
    // were last online when it expired, and a later message starts it afresh.
    if (node !== undefined && node.expiresAt <= now) {
      this.#sweep(now);
      node = undefined;
    }
    if (node === undefined) {
      this.#sweep(now);
      if (this.#nodes.size >= this.#maxNodes) return false;
      node = { expiresAt: 0, users: new Set() };
      this.#nodes.set(msg.node, node);
    }
    node.expiresAt = now + msg.ttlMs;
    if (msg.full) {
      const listed = new Set(msg.online);
      for (const u of node.users) if (!listed.has(u)) this.#seen(u, now);
      node.users = listed;
    } else {
      // The node says the user was online here until now, whether or not notify knew it.
      for (const u of msg.offline) {
        node.users.delete(u);
        this.#seen(u, now);
      }
      for (const u of msg.online) node.users.add(u);
    }
    // Users who left the node before this process knew it (tail answering dg.notify.hello).
    for (const { user, agoMs } of msg.left ?? []) this.#seen(user, now - agoMs);
    return true;
  }

  /** True when a live node lists the user. */
  isOnline(user: string, now: number): boolean {
    this.#sweep(now);
    for (const node of this.#nodes.values()) if (node.users.has(user)) return true;
    return false;
  }

  /** True when the user is online, or was at or after `since` (as far as remembered). */
  seenSince(user: string, since: number, now: number): boolean {
    if (this.isOnline(user, now)) return true;
    const at = this.#lastSeen.get(user);
    return at !== undefined && at >= since;
  }

  /** Live nodes (for diagnostics). */
  liveNodes(now: number): number {
    this.#sweep(now);
    return this.#nodes.size;
  }

  /** Users whose last time online is remembered (for tests and diagnostics). */
  get remembered(): number {
    return this.#lastSeen.size;
  }

  #sweep(now: number): void {
    for (const [id, node] of this.#nodes) {
      if (node.expiresAt > now) continue;
      this.#nodes.delete(id);
      // Listed until the node expired: online, as far as notify could tell, until then.
      this.#left(node.users, node.expiresAt);
    }
    this.#forget(now);
  }

  #left(users: Iterable<string>, at: number): void {
    for (const u of users) this.#seen(u, at);
  }

  #seen(user: string, at: number): void {
    const before = this.#lastSeen.get(user);
    if (before !== undefined && before >= at) return;
    // Re-inserted, so the map stays (roughly) in order of time, oldest first.
    this.#lastSeen.delete(user);
    this.#lastSeen.set(user, at);
    if (this.#lastSeen.size > this.#memory.maxUsers) {
      const oldest = this.#lastSeen.keys().next();
      if (oldest.done !== true) this.#lastSeen.delete(oldest.value);
    }
  }

  #forget(now: number): void {
    const horizon = now - this.#memory.memoryMs;
    for (const [user, at] of this.#lastSeen) {
      if (at >= horizon) break;
      this.#lastSeen.delete(user);
    }
  }
}
