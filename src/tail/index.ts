/** Placeholder until the tail service lands: the public entry point of the tail service. */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import type { Registry } from 'prom-client';
import type { Bus } from '../bus/bus.js';
import type { KeyRing } from '../protocol/token.js';
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
  log: FastifyBaseLogger;
  registry: Registry;
}

export interface TailService {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  start(): Promise<void>;
  ready(): boolean;
  /** Stop accepting, finish committing, close sessions with 1001. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

export function createTail(_deps: TailDeps): TailService {
  return {
    handleUpgrade: (_req, socket) => void socket.destroy(),
    start: async () => {},
    ready: () => true,
    drain: async () => {},
    close: async () => {},
  };
}

export function openSqliteLogStore(_path: string): LogStore {
  return null as unknown as LogStore;
}
