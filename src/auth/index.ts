/** Placeholder until the auth service lands: the public entry point of the auth service. */
import type { KeyObject } from 'node:crypto';
import type { FastifyBaseLogger, FastifyPluginAsync } from 'fastify';
import type { Registry } from 'prom-client';
import type { Bus } from '../bus/bus.js';
import type { KeyRing } from '../protocol/token.js';

export interface AttestationKeyView {
  kid: string;
  status: 'active' | 'retired' | 'revoked';
  publicKey: string;
  privateKey: KeyObject;
}

export interface AuthDeps {
  store: unknown;
  bus: Bus;
  ring: KeyRing;
  attestation: AttestationKeyView[];
  publicUrl: string;
  accessTtlSec: number;
  pushHosts: string[];
  shards: () => { version: number; shards: { id: string; url: string }[] };
  log: FastifyBaseLogger;
  registry: Registry;
}

export interface AuthService {
  routes: FastifyPluginAsync;
  start(): Promise<void>;
  ready(): boolean;
  close(): Promise<void>;
}

export function createAuth(_deps: AuthDeps): AuthService {
  return { routes: async () => {}, start: async () => {}, ready: () => true, close: async () => {} };
}

export function openSqliteAuthStore(_path: string): unknown {
  return null;
}
