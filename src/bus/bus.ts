/**
 * The bus: how services talk (PROTOCOL.md "Internal bus"). Two implementations, one
 * contract, one conformance suite (test/conformance/bus.ts):
 * - InProcessBus: a direct function call inside one process (the monolith);
 * - NatsBus: NATS core request/reply, publish and queue groups (split roles).
 *
 * Guarantees every implementation gives:
 * - Messages are JSON values. Receivers must not mutate them (the in-process bus passes
 *   the sender's object as it is, with no copy).
 * - Delivery is asynchronous: `publish` returns before any handler runs.
 * - Per (publisher, subject), messages reach each subscriber in publish order.
 * - `publish` is at-most-once: with no subscriber the message is dropped.
 * - A subscriber without a queue group gets every message; among subscribers sharing a
 *   queue group on a subject, each message goes to exactly one.
 * - `request` resolves with the first reply. It rejects with DgError UNAVAILABLE when
 *   nobody answers the subject or no reply comes within `timeoutMs`.
 * - A handler that throws (or rejects) answers a request with
 *   `{ok:false, error:{code, message}}` (DgError code kept, anything else INTERNAL) and is
 *   logged; it never takes the bus down.
 */
export type BusHandler = (message: unknown, subject: string) => unknown;

export interface SubscribeOptions {
  /** Queue group: each message goes to one member of the group. */
  queue?: string;
}

export interface Subscription {
  unsubscribe(): void;
}

export interface RequestOptions {
  timeoutMs?: number;
}

export interface Bus {
  publish(subject: string, message: unknown): void;
  /**
   * Handlers of published messages return nothing; handlers that answer requests return
   * (or resolve to) the reply.
   */
  subscribe(subject: string, handler: BusHandler, options?: SubscribeOptions): Subscription;
  request<T = unknown>(subject: string, message: unknown, options?: RequestOptions): Promise<T>;
  /** True while the bus can carry messages (for /ready). */
  healthy(): boolean;
  /**
   * Runs `listener` each time the bus carries messages again after an outage, its
   * subscriptions restored: what was published meanwhile did not reach them. Absent from a
   * bus that cannot be cut off (the in-process one).
   */
  onReconnect?(listener: () => void): Subscription;
  /** Flushes what was published and stops; later calls fail. */
  close(): Promise<void>;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
