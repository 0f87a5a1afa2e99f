/**
 * Who is online, from the dg.notify.presence messages of every tail node
 * (PresenceMessage in src/protocol/bus-messages.ts). A user is online while any live node
 * lists them; a node is live until `ttlMs` after its last message, so the users of a node
 * that died go offline by themselves. Kept in memory: after a restart notify knows a node's
 * users again from its next full snapshot (tail sends one every ttlMs/3).
 */
import type { PresenceMessage } from '../protocol/bus-messages.js';

interface NodePresence {
  expiresAt: number;
  users: Set<string>;
}

export class PresenceTracker {
  readonly #nodes = new Map<string, NodePresence>();
  readonly #maxNodes: number;

  constructor(maxNodes: number) {
    this.#maxNodes = maxNodes;
  }

  /** Applies a message; false when refused because too many nodes are live. */
  apply(msg: PresenceMessage, now: number): boolean {
    let node = this.#nodes.get(msg.node);
    if (node === undefined) {
      this.#sweep(now);
      if (this.#nodes.size >= this.#maxNodes) return false;
      node = { expiresAt: 0, users: new Set() };
      this.#nodes.set(msg.node, node);
    }
    node.expiresAt = now + msg.ttlMs;
    if (msg.full) node.users = new Set(msg.online);
    else {
      for (const u of msg.offline) node.users.delete(u);
      for (const u of msg.online) node.users.add(u);
    }
    return true;
  }

  /** True when a live node lists the user. */
  isOnline(user: string, now: number): boolean {
    for (const [id, node] of this.#nodes) {
      if (node.expiresAt <= now) {
        this.#nodes.delete(id);
        continue;
      }
      if (node.users.has(user)) return true;
    }
    return false;
  }

  /** Live nodes (for diagnostics). */
  liveNodes(now: number): number {
    this.#sweep(now);
    return this.#nodes.size;
  }

  #sweep(now: number): void {
    for (const [id, node] of this.#nodes) if (node.expiresAt <= now) this.#nodes.delete(id);
  }
}
