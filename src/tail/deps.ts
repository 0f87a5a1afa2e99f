/** What the tail service needs from its host (the composition root wires it). */
import type { IncomingMessage } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import type { Registry } from 'prom-client';
import type { Bus } from '../bus/bus.js';
import type { KeyRing } from '../protocol/token.js';
import type { TailLimits } from './limits.js';
import type { LogStore } from './log-store.js';

export interface TailDeps {
  store: LogStore;
  bus: Bus;
  ring: KeyRing;
  nodeId: string;
  publicUrl: string;
  leaseGraceMs: number;
  /** The tail URL of the node that serves `site`, or null when this node does. */
  redirectFor: (site: string) => string | null;
  /** Changes whenever the shard map does (absent: a map that never changes). */
  shardVersion?: () => number;
  /**
   * Whether the shard map has heard from every live node (absent: always). Until then this
   * node could take sites another node serves, so upgrades are refused with `retry-after`.
   */
  clusterSettled?: () => boolean;
  log: FastifyBaseLogger;
  registry: Registry;
  /** Overrides of DEFAULT_TAIL_LIMITS (tests shrink the time-based ones). */
  limits?: Partial<TailLimits>;
  /**
   * The client's address for an upgrade request (behind trusted proxies, from
   * `X-Forwarded-For`), for the per-address limit; absent: the peer's address.
   */
  clientAddress?: (req: IncomingMessage) => string;
}
